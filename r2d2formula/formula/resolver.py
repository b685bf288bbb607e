"""Stage 3 of 3: give the syntax tree its lme4 meaning.

The resolver owns the lme4 outer layer: the response forms (``y``, ``log(y)``, ``p(s, n)``,
``s | trials(n)``, ``cbind(s, f)``), the intercept (``0 +``, ``- 1``, ``+ 0``), ``offset()``,
group terms ``(expr | factor)`` and ``(expr || factor)`` with ``g:h`` and ``g/h`` factors, and
``a/b = a + a:b`` in the population part. What is left -- population expressions and the Z
expressions of group terms -- is rendered as formulae text; formulae evaluates it later.
The result, a :class:`FormulaSpec`, knows nothing about the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..errors import FormulaError, FormulaSyntaxError, mark_span
from .parser import (
    BINARY_OPERATORS,
    Binary,
    Brace,
    Call,
    Name,
    Node,
    Number,
    Paren,
    Raw,
    Unary,
    parse,
)
from .scanner import TokenKind, scan

__all__ = ["Expr", "ResponseSpec", "GroupSpec", "FormulaSpec", "resolve", "parse_formula"]

#: Roots of dotted names that are modules, not columns (``np.log``).
NAMESPACE_ROOTS = frozenset({"np", "numpy"})

_PROPORTION = ("p", "prop", "proportion")

#: Functions whose arguments may be text or categorical columns.
CATEGORICAL_FUNCTIONS = frozenset({"C", "T", "S", "B", "binary"})

_COMPARISONS = frozenset({"==", "!=", "<", ">", "<=", ">="})


@dataclass(frozen=True)
class Expr:
    """A numeric expression: a plain column or formulae text giving one column.

    Attributes
    ----------
    source : str
        The expression as written.
    column : str or None
        The column name when the expression is just a column.
    formulae : str
        A formulae right-hand side that evaluates to one column (without intercept).
    variables, functions : tuple of Name
        Names used as values and names called, for checks against the data.
    numeric : tuple of Name
        Names used in arithmetic, which must be numeric columns.
    """

    source: str
    column: str | None
    formulae: str
    variables: tuple[Name, ...] = ()
    functions: tuple[Name, ...] = ()
    numeric: tuple[Name, ...] = ()


@dataclass(frozen=True)
class ResponseSpec:
    """The left side: ``kind`` is ``"value"``, ``"proportion"`` (``p(s, n)``), ``"trials"``
    (``s | trials(n)``) or ``"cbind"`` (``cbind(s, f)``); ``second`` is n, n or f."""

    kind: Literal["value", "proportion", "trials", "cbind"]
    label: str
    name: str
    value: Expr
    second: Expr | None = None


@dataclass(frozen=True)
class GroupSpec:
    """One group term for one factor, after expanding ``g/h``.

    ``z_formulae`` is the formulae text of the Z columns (``"1"`` for an intercept only);
    ``factor`` the columns whose interaction is the grouping factor.
    """

    expr: str
    z_formulae: str
    factor: tuple[str, ...]
    correlated: bool
    start: int
    end: int
    variables: tuple[Name, ...] = ()
    functions: tuple[Name, ...] = ()
    numeric: tuple[Name, ...] = ()

    @property
    def factor_name(self) -> str:
        return ":".join(self.factor)

    @property
    def intercept_only(self) -> bool:
        return self.z_formulae == "1"


@dataclass(frozen=True)
class FormulaSpec:
    """What a formula means, before any data is seen.

    Attributes
    ----------
    source : str
        The formula as given.
    response : ResponseSpec
    intercept : bool
        Population-level intercept.
    common : str
        formulae text of the population terms without the intercept (``""`` if none).
    common_variables, common_functions : tuple of Name
        Names used by the population terms.
    offsets : tuple of Expr
    groups : tuple of GroupSpec
    """

    source: str
    response: ResponseSpec
    intercept: bool
    common: str
    offsets: tuple[Expr, ...]
    groups: tuple[GroupSpec, ...]
    common_variables: tuple[Name, ...] = ()
    common_functions: tuple[Name, ...] = ()
    variables: tuple[Name, ...] = field(default=(), repr=False)
    functions: tuple[Name, ...] = field(default=(), repr=False)
    numeric: tuple[Name, ...] = field(default=(), repr=False)

    @property
    def response_variables(self) -> tuple[Name, ...]:
        """Names used by the response (and its trials)."""
        out = self.response.value.variables
        if self.response.second is not None:
            out += self.response.second.variables
        return out


# ----------------------------------------------------------------------------- rendering


def _quote_name(name: Name) -> str:
    text = name.name
    if name.quoted or not text.isidentifier():
        if "." in text and not name.quoted and text.split(".")[0] in NAMESPACE_ROOTS:
            return text
        return f"`{text}`"
    return text


class _Renderer:
    """Render formula-context nodes as formulae text, collecting the names used."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.variables: list[Name] = []
        self.functions: list[Name] = []
        self.numeric: list[Name] = []

    def error(self, node: Node, message: str, fix: str) -> FormulaError:
        return FormulaError(f"{message}\n{mark_span(self.source, node.start, node.end)}\n{fix}")

    def raw(self, raw: Raw, numeric: bool = False) -> str:
        self.variables.extend(raw.variables)
        self.functions.extend(raw.functions)
        if numeric and not any(
            t.kind is TokenKind.OPERATOR and t.value in _COMPARISONS for t in raw.tokens
        ):
            self.numeric.extend(raw.variables)
        parts: list[str] = []
        pos = raw.start
        toks = raw.tokens
        k = 0
        while k < len(toks):
            tok = toks[k]
            replacement = None
            stop = tok.end
            if (
                tok.kind is TokenKind.NAME and tok.value == "Q" and k + 3 < len(toks)
                and toks[k + 1].kind is TokenKind.LPAREN and toks[k + 2].kind is TokenKind.STRING
                and toks[k + 3].kind is TokenKind.RPAREN
            ):
                replacement = f"`{toks[k + 2].value}`"
                stop = toks[k + 3].end
                k += 3
            elif tok.kind is TokenKind.NAME and not tok.value.isidentifier():
                is_call = k + 1 < len(toks) and toks[k + 1].kind is TokenKind.LPAREN
                if not is_call and tok.value.split(".")[0] not in NAMESPACE_ROOTS:
                    replacement = f"`{tok.value}`"
            if replacement is not None:
                parts.append(self.source[pos : tok.start])
                parts.append(replacement)
                pos = stop
            k += 1
        parts.append(self.source[pos : raw.end])
        return "".join(parts)

    def render(self, node: Node, parent_prec: int = 0) -> str:
        if isinstance(node, Name):
            self.variables.append(node)
            return _quote_name(node)
        if isinstance(node, Number):
            return node.text
        if isinstance(node, Brace):
            return f"I({self.raw(node.body, numeric=True)})"
        if isinstance(node, Call):
            if node.func.name == "offset":
                raise self.error(
                    node, "offset() must be a top-level term", "Write it as '... + offset(x)'."
                )
            self.functions.append(node.func)
            numeric = node.func.name not in CATEGORICAL_FUNCTIONS
            args = ", ".join(self.raw(arg, numeric) for arg in node.args)
            return f"{node.func.name}({args})"
        if isinstance(node, Paren):
            if isinstance(node.body, Binary) and node.body.op in ("|", "||"):
                raise self.error(
                    node, "a group term cannot be combined with other terms",
                    "Add group terms with '+' at the top level: y ~ x + (1 | g).",
                )
            return f"({self.render(node.body)})"
        if isinstance(node, Unary):
            if node.op == "~":
                raise self.error(node, "unexpected '~'", "A formula has exactly one '~'.")
            text = f"{node.op}{self.render(node.operand, 4)}"
            return f"({text})" if parent_prec > 3 else text
        if isinstance(node, Binary):
            return self.binary(node, parent_prec)
        raise self.error(node, "unexpected expression", "Check the formula syntax.")

    def binary(self, node: Binary, parent_prec: int) -> str:
        if node.op in ("|", "||"):
            raise self.error(
                node, f"'{node.op}' outside parentheses",
                f"Put group terms in parentheses: ({self.source[node.start:node.end]}).",
            )
        if node.op == "~":
            raise self.error(node, "unexpected '~'", "A formula has exactly one '~'.")
        prec = BINARY_OPERATORS[node.op].precedence
        if node.op == "/":
            # R: a/b = a + a:b, where the a part of a:b holds every variable of a.
            left = self.render(node.left, 3)
            parents = _atoms(node.left)
            parent = ":".join(self.render(atom, 5) for atom in parents)
            right = self.render(node.right, 5)
            text = f"{left} + {parent}:{right}"
            return f"({text})" if parent_prec > 3 else text
        op = "**" if node.op == "^" else node.op
        left = self.render(node.left, prec)
        right = self.render(node.right, prec + 1)
        sep = f" {op} " if prec <= 3 else op
        text = f"{left}{sep}{right}"
        return f"({text})" if parent_prec > prec else text


def _atoms(node: Node) -> list[Node]:
    """Variables-like leaves of a term expression, for the parent side of ``a/b``."""
    if isinstance(node, Paren):
        return _atoms(node.body)
    if isinstance(node, Binary) and node.op in ("+", "-", "*", ":", "/"):
        out = _atoms(node.left)
        for atom in _atoms(node.right):
            if atom not in out:
                out.append(atom)
        return out
    if isinstance(node, Binary) and node.op in ("**", "^"):
        return _atoms(node.left)
    if isinstance(node, Unary | Number):
        return []
    return [node]


# ----------------------------------------------------------------------------- resolver


def _expr_from_raw(source: str, raw: Raw) -> Expr:
    toks = raw.tokens
    text = source[raw.start : raw.end]
    if len(toks) == 1 and toks[0].kind in (TokenKind.NAME, TokenKind.BACKTICK):
        name = raw.variables[0] if raw.variables else None
        if name is not None:
            return Expr(text, name.name, _quote_name(name), (name,))
    if len(raw.variables) == 1 and len(toks) == 4 and toks[0].value == "Q":
        name = raw.variables[0]
        return Expr(text, name.name, _quote_name(name), (name,))
    renderer = _Renderer(source)
    rendered = renderer.raw(raw, numeric=True)
    return Expr(text, None, f"I({rendered})", tuple(renderer.variables),
                tuple(renderer.functions), tuple(renderer.numeric))


def _span_raw(source: str, node: Node) -> Raw:
    toks = tuple(t for t in scan(source) if node.start <= t.start and t.end <= node.end
                 and t.kind is not TokenKind.END)
    return Raw(node.start, node.end, toks)


def _expr_from_node(source: str, node: Node) -> Expr:
    while isinstance(node, Paren):
        node = node.body
    if isinstance(node, Name):
        return Expr(source[node.start : node.end], node.name, _quote_name(node), (node,))
    if isinstance(node, Call):
        renderer = _Renderer(source)
        text = renderer.render(node)
        return Expr(source[node.start : node.end], None, text, tuple(renderer.variables),
                    tuple(renderer.functions), tuple(renderer.numeric))
    return _expr_from_raw(source, _span_raw(source, node))


def _resolve_response(source: str, node: Node) -> ResponseSpec:
    label = source[node.start : node.end].strip()
    inner = node
    while isinstance(inner, Paren):
        inner = inner.body
    if isinstance(inner, Call) and inner.func.name in (*_PROPORTION, "cbind"):
        kind: Literal["proportion", "cbind"] = (
            "cbind" if inner.func.name == "cbind" else "proportion"
        )
        if len(inner.args) != 2:
            what = "successes, failures" if kind == "cbind" else "successes, trials"
            raise FormulaError(
                f"{inner.func.name}() takes 2 arguments ({what}), got {len(inner.args)}\n"
                f"{mark_span(source, inner.start, inner.end)}\n"
                f"Write {inner.func.name}(s, {'f' if kind == 'cbind' else 'n'})."
            )
        value = _expr_from_raw(source, inner.args[0])
        second = _expr_from_raw(source, inner.args[1])
        return ResponseSpec(kind=kind, label=label, name=value.column or value.source,
                            value=value, second=second)
    if isinstance(inner, Binary) and inner.op in ("|", "||"):
        right = inner.right
        if not (isinstance(right, Call) and right.func.name == "trials" and len(right.args) == 1
                and inner.op == "|"):
            raise FormulaError(
                f"'{inner.op}' on the left of '~' must introduce the number of trials\n"
                f"{mark_span(source, inner.op_start, inner.op_end)}\n"
                "Write 'successes | trials(n)' for a binomial response."
            )
        value = _expr_from_node(source, inner.left)
        second = _expr_from_raw(source, right.args[0])
        return ResponseSpec(kind="trials", label=label, name=value.column or value.source,
                            value=value, second=second)
    value = _expr_from_node(source, inner)
    return ResponseSpec(kind="value", label=label, name=value.column or label, value=value)


def _factor_list(source: str, node: Node) -> list[tuple[str, ...]]:
    """Expand a grouping-factor expression: ``g`` -> [g]; ``g:h`` -> [g:h]; ``g/h`` -> [g, g:h]."""
    if isinstance(node, Paren):
        return _factor_list(source, node.body)
    if isinstance(node, Name):
        return [(node.name,)]
    if isinstance(node, Binary) and node.op == ":":
        out = []
        for left in _factor_list(source, node.left):
            for right in _factor_list(source, node.right):
                combined = tuple(dict.fromkeys(left + right))
                if combined not in out:
                    out.append(combined)
        return out
    if isinstance(node, Binary) and node.op == "/":
        left = _factor_list(source, node.left)
        parent = tuple(dict.fromkeys(v for term in left for v in term))
        out = list(left)
        for right in _factor_list(source, node.right):
            combined = tuple(dict.fromkeys(parent + right))
            if combined not in out:
                out.append(combined)
        return out
    if isinstance(node, Binary) and node.op == "+":
        raise FormulaError(
            f"'+' is not allowed in a grouping factor\n{mark_span(source, node.start, node.end)}\n"
            "For crossed factors write one group term each: (1 | g) + (1 | h)."
        )
    raise FormulaError(
        f"a grouping factor must be a column name, g:h or g/h\n"
        f"{mark_span(source, node.start, node.end)}\n"
        "Create the factor as a column of the data and use its name."
    )


def _resolve_group(source: str, paren: Paren, body: Binary) -> list[GroupSpec]:
    factors = _factor_list(source, body.right)
    renderer = _Renderer(source)
    lhs = body.left
    while isinstance(lhs, Paren):
        lhs = lhs.body
    z_text = "1" if isinstance(lhs, Number) and lhs.text == "1" else renderer.render(body.left)
    expr = source[body.left.start : body.left.end].strip()
    factor_vars = _factor_names(body.right)
    return [
        GroupSpec(expr=expr, z_formulae=z_text, factor=factor, correlated=body.op == "|",
                  start=paren.start, end=paren.end,
                  variables=tuple(renderer.variables) + factor_vars,
                  functions=tuple(renderer.functions), numeric=tuple(renderer.numeric))
        for factor in factors
    ]


def _factor_names(node: Node) -> tuple[Name, ...]:
    if isinstance(node, Name):
        return (node,)
    if isinstance(node, Paren):
        return _factor_names(node.body)
    if isinstance(node, Binary):
        return _factor_names(node.left) + _factor_names(node.right)
    return ()


def _flatten(node: Node, sign: int, out: list[tuple[int, Node]]) -> None:
    """The signed terms of a sum, left to right. Iterative: ``a + b + ...`` parses into a
    left-deep tree, and a formula of thousands of terms must not exhaust the stack."""
    stack: list[tuple[int, Node]] = [(sign, node)]
    while stack:
        sign, node = stack.pop()
        if isinstance(node, Binary) and node.op in ("+", "-"):
            stack.append((-sign if node.op == "-" else sign, node.right))
            stack.append((sign, node.left))
        elif isinstance(node, Unary) and node.op in ("+", "-"):
            stack.append((-sign if node.op == "-" else sign, node.operand))
        else:
            out.append((sign, node))


def resolve(tree: Node, source: str) -> FormulaSpec:
    """Give a syntax tree its lme4 meaning.

    Parameters
    ----------
    tree : Node
        Output of :func:`r2d2formula.formula.parser.parse`.
    source : str
        The formula text (for error messages).

    Returns
    -------
    FormulaSpec

    Raises
    ------
    FormulaSyntaxError
        Missing ``~``.
    FormulaError
        Missing response, a misplaced group term or offset, a bad grouping factor.
    """
    if isinstance(tree, Unary) and tree.op == "~":
        raise FormulaError(
            f"the formula has no response\n{mark_span(source, tree.start, tree.start + 1)}\n"
            "Put the response on the left: 'y ~ ...'."
        )
    if not (isinstance(tree, Binary) and tree.op == "~"):
        raise FormulaSyntaxError(
            f"the formula has no '~'\n{mark_span(source, 0, len(source))}\n"
            "Write it as 'response ~ predictors', for example 'y ~ x + (1 | g)'."
        )
    left = tree.left
    if isinstance(left, Binary) and left.op == "~" or isinstance(left, Unary) and left.op == "~":
        raise FormulaSyntaxError(
            f"the formula has more than one '~'\n"
            f"{mark_span(source, tree.op_start, tree.op_end)}\n"
            "A formula has exactly one '~', between the response and the predictors; join "
            "predictors with '+'."
        )
    response = _resolve_response(source, tree.left)

    items: list[tuple[int, Node]] = []
    _flatten(tree.right, 1, items)
    intercept = True
    common_parts: list[str] = []
    offsets: list[Expr] = []
    groups: list[GroupSpec] = []
    renderer = _Renderer(source)
    for sign, node in items:
        if isinstance(node, Number):
            if node.text not in ("0", "1"):
                raise FormulaError(
                    f"a number is not a term\n{mark_span(source, node.start, node.end)}\n"
                    "Use 1 or 0 to add or remove the intercept, or I(...) for arithmetic."
                )
            intercept = (node.text == "1") == (sign > 0)
            continue
        if isinstance(node, Paren) and isinstance(node.body, Binary) and node.body.op in ("|", "||"):
            if sign < 0:
                raise FormulaError(
                    f"a group term cannot be removed\n{mark_span(source, node.start, node.end)}\n"
                    "Delete it from the formula instead of subtracting it."
                )
            groups.extend(_resolve_group(source, node, node.body))
            continue
        if isinstance(node, Call) and node.func.name == "offset":
            if sign < 0 or len(node.args) != 1:
                raise FormulaError(
                    f"offset() takes one expression and is added with '+'\n"
                    f"{mark_span(source, node.start, node.end)}\nWrite '+ offset(log(exposure))'."
                )
            offsets.append(_expr_from_raw(source, node.args[0]))
            continue
        text = renderer.render(node, 3)
        if sign < 0:
            common_parts.append(f"- {text}")
        else:
            common_parts.append(f"+ {text}" if common_parts else text)
    common = " ".join(common_parts)
    if common.startswith("- "):
        common = ""  # only removals of terms that are not there
    exprs = [response.value, *([response.second] if response.second else []), *offsets]
    every_var = [v for e in exprs for v in e.variables] + renderer.variables
    every_fun = [f for e in exprs for f in e.functions] + renderer.functions
    every_num = [v for e in exprs for v in e.numeric] + renderer.numeric
    for g in groups:
        every_var += g.variables
        every_fun += g.functions
        every_num += g.numeric
    return FormulaSpec(
        source=source, response=response, intercept=intercept, common=common,
        offsets=tuple(offsets), groups=tuple(groups),
        common_variables=tuple(renderer.variables), common_functions=tuple(renderer.functions),
        variables=tuple(every_var), functions=tuple(every_fun), numeric=tuple(every_num),
    )


def parse_formula(formula: str) -> FormulaSpec:
    """Scan, parse and resolve a formula.

    Parameters
    ----------
    formula : str
        An lme4-style formula.

    Returns
    -------
    FormulaSpec

    Raises
    ------
    FormulaSyntaxError, FormulaError

    Examples
    --------
    >>> spec = parse_formula("y ~ a/b + (1 + x | g/h) + offset(log(n)) - 1")
    >>> spec.common, spec.intercept
    ('a + a:b', False)
    >>> [(g.factor_name, g.z_formulae, g.correlated) for g in spec.groups]
    [('g', '1 + x', True), ('g:h', '1 + x', True)]
    >>> spec.offsets[0].formulae
    'I(log(n))'
    >>> parse_formula("s | trials(n) ~ x").response.kind
    'trials'
    """
    if not isinstance(formula, str):
        raise FormulaError(f"the formula must be a string, got {type(formula).__name__}")
    try:
        return resolve(parse(formula), formula)
    except RecursionError:
        # hundreds of nested parentheses or prefix operators; sums of any length are fine
        raise FormulaSyntaxError(
            f"the formula nests too deeply to read ({len(formula)} characters); remove "
            "redundant parentheses or repeated '-'/'+' signs"
        ) from None
