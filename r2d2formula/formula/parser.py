"""Stage 2 of 3: turn tokens into a syntax tree.

The grammar is read off :data:`BINARY_OPERATORS` (lowest precedence first)::

    ~            response ~ predictors
    | ||         group term (expr | factor); binomial response  s | trials(n)
    + -          add / remove terms
    * /          crossing; nesting (a/b = a + a:b)
    :            interaction
    ** ^         power of a sum of terms, (a + b + c)**2

A prefix ``-``/``+`` binds looser than ``*`` and ``:`` (``- a:b`` removes ``a:b``). Function
calls (``log(x)``, ``C(g, Treatment('b'))``, ``I(x**2)``) and braces (``{x + 1}``) hold Python
expressions: the parser keeps them as :class:`Raw` spans (their text plus the names they use)
and formulae evaluates them later.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import FormulaSyntaxError, mark_span
from .scanner import Token, TokenKind, scan

__all__ = [
    "Operator",
    "BINARY_OPERATORS",
    "PREFIX_PRECEDENCE",
    "Node",
    "Name",
    "Number",
    "Raw",
    "Call",
    "Brace",
    "Paren",
    "Unary",
    "Binary",
    "parse",
]


@dataclass(frozen=True)
class Operator:
    """A binary formula operator: its precedence (higher binds tighter) and associativity."""

    symbol: str
    precedence: int
    right_assoc: bool = False


#: The formula operators, lowest precedence first. ``^`` is R's spelling of ``**``.
BINARY_OPERATORS: dict[str, Operator] = {
    op.symbol: op
    for op in (
        Operator("~", 1),
        Operator("|", 2),
        Operator("||", 2),
        Operator("+", 3),
        Operator("-", 3),
        Operator("*", 4),
        Operator("/", 4),
        Operator(":", 5),
        Operator("**", 7, right_assoc=True),
        Operator("^", 7, right_assoc=True),
    )
}

#: Operand precedence of prefix ``-``/``+``: ``- a:b`` is ``-(a:b)``.
PREFIX_PRECEDENCE = 4

_UNSUPPORTED_HINTS = {
    "%": "'%' is not a formula operator; for nesting write 'a/b' (= a + a:b), for arithmetic "
    "wrap it in I(...)",
    "//": "for arithmetic wrap it in I(...)",
    "==": "comparisons must be inside I(...), for example I(x == 1)",
    "!=": "comparisons must be inside I(...), for example I(x != 1)",
    "<": "comparisons must be inside I(...), for example I(x < 1)",
    ">": "comparisons must be inside I(...), for example I(x > 1)",
    "<=": "comparisons must be inside I(...), for example I(x <= 1)",
    ">=": "comparisons must be inside I(...), for example I(x >= 1)",
    "=": "separate the response from the predictors with '~'",
    "&": "join terms with '+' (or ':' for an interaction)",
    "!": "remove terms with '-'",
    "@": "remove it",
    ".": "'.' (all other columns) is not supported; list the columns",
}


# ----------------------------------------------------------------------------- nodes


@dataclass(frozen=True)
class Node:
    """Base of the syntax tree; ``source[start:end]`` is the node's text."""

    start: int
    end: int


@dataclass(frozen=True)
class Name(Node):
    """A column (or namespace) name; ``quoted`` for `` `my col` `` and ``Q("my col")``."""

    name: str
    quoted: bool = False


@dataclass(frozen=True)
class Number(Node):
    """A number literal, kept as written."""

    text: str


@dataclass(frozen=True)
class Raw(Node):
    """A Python expression inside a call or braces, kept as tokens."""

    tokens: tuple[Token, ...]

    @property
    def variables(self) -> tuple[Name, ...]:
        """Names used as values (not called, not keyword names, not after a dot)."""
        out: list[Name] = []
        toks = self.tokens
        for k, tok in enumerate(toks):
            nxt = toks[k + 1] if k + 1 < len(toks) else None
            if tok.kind is TokenKind.BACKTICK:
                out.append(Name(tok.start, tok.end, tok.value, True))
            elif tok.kind is TokenKind.NAME:
                if tok.value == "Q" and _is_q_call(toks, k):
                    out.append(Name(tok.start, toks[k + 3].end, toks[k + 2].value, True))
                    continue
                if nxt is not None and nxt.kind is TokenKind.LPAREN:
                    continue
                if nxt is not None and nxt.kind is TokenKind.OPERATOR and nxt.value == "=":
                    continue
                if k >= 2 and _is_q_call(toks, k - 2):
                    continue
                out.append(Name(tok.start, tok.end, tok.value))
        return tuple(out)

    @property
    def functions(self) -> tuple[Name, ...]:
        """Names that are called."""
        toks = self.tokens
        return tuple(
            Name(tok.start, tok.end, tok.value)
            for k, tok in enumerate(toks[:-1])
            if tok.kind is TokenKind.NAME and toks[k + 1].kind is TokenKind.LPAREN
        )


def _is_q_call(toks: tuple[Token, ...], k: int) -> bool:
    return (
        k + 3 < len(toks)
        and toks[k].kind is TokenKind.NAME
        and toks[k].value == "Q"
        and toks[k + 1].kind is TokenKind.LPAREN
        and toks[k + 2].kind is TokenKind.STRING
        and toks[k + 3].kind is TokenKind.RPAREN
    )


@dataclass(frozen=True)
class Call(Node):
    """``func(arg, ...)``; arguments are Python expressions."""

    func: Name
    args: tuple[Raw, ...]


@dataclass(frozen=True)
class Brace(Node):
    """``{expr}``: a Python expression, the same as ``I(expr)``."""

    body: Raw


@dataclass(frozen=True)
class Paren(Node):
    """``(expr)``."""

    body: Node


@dataclass(frozen=True)
class Unary(Node):
    """Prefix ``-``, ``+`` or ``~`` (the last only in a formula without response)."""

    op: str
    operand: Node


@dataclass(frozen=True)
class Binary(Node):
    """``left op right``; ``op_start``/``op_end`` locate the operator."""

    op: str
    left: Node
    right: Node
    op_start: int
    op_end: int


# ----------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = scan(source)
        self.pos = 0

    # helpers
    def peek(self) -> Token:
        return self.tokens[self.pos]

    def advance(self) -> Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def error(self, message: str, start: int, end: int | None, fix: str) -> FormulaSyntaxError:
        return FormulaSyntaxError(f"{message}\n{mark_span(self.source, start, end)}\n{fix}")

    # grammar
    def expression(self, min_prec: int) -> Node:
        left = self.prefix()
        while True:
            tok = self.peek()
            if tok.kind is TokenKind.OPERATOR:
                op = BINARY_OPERATORS.get(tok.value)
                if op is None:
                    hint = _UNSUPPORTED_HINTS.get(tok.value, "remove it")
                    raise self.error(
                        f"unsupported operator {tok.value!r} in formula", tok.start, tok.end,
                        hint[0].upper() + hint[1:] + ".",
                    )
                if op.precedence < min_prec:
                    return left
                self.advance()
                right = self.expression(op.precedence if op.right_assoc else op.precedence + 1)
                left = Binary(left.start, right.end, tok.value, left, right, tok.start, tok.end)
            elif tok.kind in (TokenKind.END, TokenKind.RPAREN):
                return left
            else:
                fix = "Join terms with '+' (or ':' for an interaction)."
                prev = self.tokens[self.pos - 1]
                words = (TokenKind.NAME, TokenKind.NUMBER)
                if prev.kind in words and tok.kind in words:
                    # "body mass", "1st": one column name with a space, or starting with a digit
                    name = self.source[prev.start:tok.end]
                    fix += f" If {name!r} is one column name, quote it: `{name}` or Q({name!r})."
                raise self.error(
                    f"unexpected {tok.value or tok.kind.value!r}: two terms without an operator "
                    "between them",
                    tok.start, tok.end, fix,
                )

    def prefix(self) -> Node:
        tok = self.advance()
        kind = tok.kind
        if kind is TokenKind.OPERATOR and tok.value in ("-", "+"):
            operand = self.expression(PREFIX_PRECEDENCE)
            return Unary(tok.start, operand.end, tok.value, operand)
        if kind is TokenKind.OPERATOR and tok.value == "~":
            operand = self.expression(2)
            return Unary(tok.start, operand.end, "~", operand)
        if kind is TokenKind.NAME:
            if self.peek().kind is TokenKind.LPAREN:
                return self.call(tok)
            return Name(tok.start, tok.end, tok.value)
        if kind is TokenKind.BACKTICK:
            return Name(tok.start, tok.end, tok.value, True)
        if kind is TokenKind.NUMBER:
            return Number(tok.start, tok.end, tok.value)
        if kind is TokenKind.LPAREN:
            body = self.expression(0)
            close = self.peek()
            if close.kind is not TokenKind.RPAREN:
                raise self.error(
                    "unclosed '('", tok.start, tok.end,
                    f"Add ')' after {self.source[body.start:body.end]!r}.",
                )
            self.advance()
            return Paren(tok.start, close.end, body)
        if kind is TokenKind.LBRACE:
            bodies = self.raw_until(tok, (TokenKind.RBRACE,))
            close = self.advance()
            if not bodies:
                raise self.error("empty braces", tok.start, close.end, "Put an expression in them.")
            body = bodies[0]
            return Brace(tok.start, close.end, body)
        if kind is TokenKind.STRING:
            raise self.error(
                "a string is not a term", tok.start, tok.end,
                f"For a column name with spaces or symbols write `{tok.value}` or "
                f'Q("{tok.value}").',
            )
        if kind is TokenKind.RPAREN:
            raise self.error("unmatched ')'", tok.start, tok.end, "Remove it or add a '(' before.")
        if kind is TokenKind.END:
            before = self.source.rstrip()
            raise self.error(
                "formula ends too early", len(before), len(before) + 1,
                "Add the missing term after the last operator.",
            )
        if kind is TokenKind.OPERATOR:
            hint = _UNSUPPORTED_HINTS.get(tok.value, "add a term before it")
            raise self.error(
                f"unexpected operator {tok.value!r}", tok.start, tok.end,
                hint[0].upper() + hint[1:] + ".",
            )
        raise self.error(
            f"unexpected {tok.value!r}", tok.start, tok.end,
            "Brackets and commas are only allowed inside function calls.",
        )

    def call(self, name: Token) -> Node:
        open_ = self.advance()
        args = self.raw_until(open_, (TokenKind.RPAREN,), split=True)
        close = self.advance()
        func = Name(name.start, name.end, name.value)
        if (
            name.value == "Q"
            and len(args) == 1
            and len(args[0].tokens) == 1
            and args[0].tokens[0].kind is TokenKind.STRING
        ):
            return Name(name.start, close.end, args[0].tokens[0].value, True)
        return Call(name.start, close.end, func, tuple(args))

    def raw_until(
        self, opener: Token, closers: tuple[TokenKind, ...], split: bool = False
    ) -> list[Raw]:
        """Collect tokens up to the matching closer (not consumed), split at top-level commas."""
        pairs = {TokenKind.LPAREN: TokenKind.RPAREN, TokenKind.LBRACE: TokenKind.RBRACE,
                 TokenKind.LBRACKET: TokenKind.RBRACKET}
        stack: list[Token] = []
        args: list[Raw] = []
        current: list[Token] = []

        def flush(at: Token) -> None:
            if current:
                args.append(Raw(current[0].start, current[-1].end, tuple(current)))
            elif split and (args or at.kind is TokenKind.COMMA):
                raise self.error("empty argument", at.start, at.end, "Remove the extra ','.")

        while True:
            tok = self.peek()
            if tok.kind is TokenKind.END:
                inner = stack[-1] if stack else opener
                raise self.error(
                    f"unclosed {inner.value!r}", inner.start, inner.end,
                    f"Add {pairs[inner.kind].value!r} to close it.",
                )
            if not stack and tok.kind in closers:
                flush(tok)
                return args if (args or not split) else []
            if not stack and split and tok.kind is TokenKind.COMMA:
                flush(tok)
                current = []
                self.advance()
                continue
            if tok.kind in pairs:
                stack.append(tok)
            elif tok.kind in pairs.values():
                if not stack or pairs[stack[-1].kind] is not tok.kind:
                    raise self.error(
                        f"unmatched {tok.value!r}", tok.start, tok.end,
                        "Remove it or add the matching opening bracket.",
                    )
                stack.pop()
            current.append(self.advance())


def parse(source: str) -> Node:
    """Parse formula text into a syntax tree.

    Parameters
    ----------
    source : str
        The formula.

    Returns
    -------
    Node
        The root, normally a :class:`Binary` with ``op == "~"``.

    Raises
    ------
    FormulaSyntaxError
        With the offending span of ``source`` marked.

    Examples
    --------
    >>> tree = parse("y ~ x + (1 | g)")
    >>> tree.op, tree.left.name, tree.right.op
    ('~', 'y', '+')
    >>> parse("y ~ (1 | g")
    Traceback (most recent call last):
    ...
    r2d2formula.errors.FormulaSyntaxError: unclosed '('
      y ~ (1 | g
          ^
    Add ')' after '1 | g'.
    """
    parser = _Parser(source)
    if parser.peek().kind is TokenKind.END:
        raise FormulaSyntaxError("the formula is empty; write it as 'y ~ x + (1 | g)'")
    tree = parser.expression(0)
    tok = parser.peek()
    if tok.kind is TokenKind.RPAREN:
        raise parser.error("unmatched ')'", tok.start, tok.end, "Remove it or add a '(' before.")
    return tree
