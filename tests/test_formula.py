"""Tests of the formula layer (scanner -> parser -> resolver); no data involved."""

from __future__ import annotations

import re
import textwrap

import pytest
from _interpreter import run_python

from r2d2formula.errors import FormulaError, FormulaSyntaxError
from r2d2formula.formula import TokenKind, parse, parse_formula, scan
from r2d2formula.formula.parser import Binary, Call, Name, Paren


def test_scan_spans_and_kinds():
    toks = scan("y ~ `my col` + Q('a b')")
    assert [t.kind for t in toks][:3] == [TokenKind.NAME, TokenKind.OPERATOR, TokenKind.BACKTICK]
    assert toks[2].value == "my col" and (toks[2].start, toks[2].end) == (4, 12)
    assert toks[-1].kind is TokenKind.END


def test_scan_bad_character_marks_span():
    with pytest.raises(FormulaSyntaxError, match=r"unexpected character '\$'") as exc:
        scan("y ~ data$x")
    assert "      ^" in str(exc.value) and "data$x" in str(exc.value)


def test_parse_tree_and_precedence():
    tree = parse("y ~ a + b:c | g")
    assert isinstance(tree, Binary) and tree.op == "~"
    assert tree.right.op == "|"  # '|' binds loosest on the right
    tree = parse("y ~ a + (1 | g)")
    assert isinstance(tree.right.right, Paren)
    call = parse("y ~ C(a, Treatment('b'))").right
    assert isinstance(call, Call) and call.func.name == "C" and len(call.args) == 2
    assert parse("y ~ Q('my col')").right == Name(4, 15, "my col", True)


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("y ~ x + (1 | g", "unclosed '('"),
        ("y ~ x + 1 | g)", "unmatched ')'"),
        ("y ~ x % z", "unsupported operator '%'"),
        ("y ~ x == 1", "unsupported operator '=='"),
        ("y ~ x +", "formula ends too early"),
        ("y ~ x z", "two terms without an operator"),
        ("y ~ log(x", "unclosed '('"),
        ("", "empty"),
    ],
)
def test_syntax_errors(formula, message):
    with pytest.raises(FormulaSyntaxError, match=re.escape(message)) as exc:
        parse_formula(formula)
    if formula:
        assert formula in str(exc.value) and "^" in str(exc.value)


def test_missing_tilde_and_response():
    with pytest.raises(FormulaSyntaxError, match="no '~'"):
        parse_formula("y + x")
    with pytest.raises(FormulaError, match="no response"):
        parse_formula("~ x")


def test_pipe_outside_parentheses():
    with pytest.raises(FormulaError, match="outside parentheses") as exc:
        parse_formula("y ~ x | g")
    assert "(x | g)" in str(exc.value)


@pytest.mark.parametrize(
    ("formula", "common", "intercept"),
    [
        ("y ~ x", "x", True),
        ("y ~ 0 + x", "x", False),
        ("y ~ x - 1", "x", False),
        ("y ~ x + 0", "x", False),
        ("y ~ -1 + x + 1", "x", True),
        ("y ~ a/b", "a + a:b", True),
        ("y ~ (a + b)/c", "(a + b) + a:b:c", True),
        ("y ~ a*b - a:b", "a*b - a:b", True),
        ("y ~ (a + b)^2", "(a + b)**2", True),
        ("y ~ {x + 1}", "I(x + 1)", True),
        ("y ~ `my col` + Q('é x') + my.var", "`my col` + `é x` + `my.var`", True),
        ("y ~ 1", "", True),
    ],
)
def test_population_rendering(formula, common, intercept):
    spec = parse_formula(formula)
    assert spec.common == common
    assert spec.intercept is intercept


@pytest.mark.parametrize(
    ("formula", "groups"),
    [
        ("y ~ (1 | g)", [("g", "1", True)]),
        ("y ~ (x | g)", [("g", "x", True)]),
        ("y ~ (1 + x | g)", [("g", "1 + x", True)]),
        ("y ~ (0 + x | g)", [("g", "0 + x", True)]),
        ("y ~ (x || g)", [("g", "x", False)]),
        ("y ~ (1 | g:h)", [("g:h", "1", True)]),
        ("y ~ (1 | g/h)", [("g", "1", True), ("g:h", "1", True)]),
        ("y ~ (x | g/h/k)", [("g", "x", True), ("g:h", "x", True), ("g:h:k", "x", True)]),
        ("y ~ (1 | g) + (1 | h)", [("g", "1", True), ("h", "1", True)]),
    ],
)
def test_group_terms(formula, groups):
    spec = parse_formula(formula)
    assert [(g.factor_name, g.z_formulae, g.correlated) for g in spec.groups] == groups


def test_group_errors():
    with pytest.raises(FormulaError, match=r"\(1 \| g\) \+ \(1 \| h\)"):
        parse_formula("y ~ (1 | g + h)")
    with pytest.raises(FormulaError, match="cannot be removed"):
        parse_formula("y ~ x - (1 | g)")
    with pytest.raises(FormulaError, match="cannot be combined"):
        parse_formula("y ~ x:(1 | g)")


@pytest.mark.parametrize(
    ("formula", "kind", "name", "second"),
    [
        ("y ~ x", "value", "y", None),
        ("log(y) ~ x", "value", "log(y)", None),
        ("p(s, n) ~ x", "proportion", "s", "n"),
        ("s | trials(n) ~ x", "trials", "s", "n"),
        ("cbind(s, f) ~ x", "cbind", "s", "f"),
    ],
)
def test_response_forms(formula, kind, name, second):
    r = parse_formula(formula).response
    assert (r.kind, r.name) == (kind, name)
    assert (r.second.column if r.second else None) == second
    assert r.label == formula.split(" ~")[0]


def test_offsets():
    spec = parse_formula("y ~ x + offset(log(n)) + offset(z)")
    assert [o.formulae for o in spec.offsets] == ["I(log(n))", "z"]
    assert spec.common == "x"
    with pytest.raises(FormulaError, match="top-level"):
        parse_formula("y ~ x:offset(z)")


def test_formula_and_design_import_without_pymc():
    code = textwrap.dedent(
        """
        import sys
        class Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('pymc', 'pytensor'):
                    raise ImportError('blocked: ' + name)
                return None
        sys.meta_path.insert(0, Blocker())
        import r2d2formula.formula, r2d2formula.design
        import pandas as pd
        d = r2d2formula.design.build_design(
            'y ~ x + (1 | g)', pd.DataFrame({'y': [1.0, 2, 3, 4], 'x': [1.0, 0, 2, 3],
                                             'g': list('aabb')}))
        assert d.component_names == ('x', '1|g')
        assert not any(m.split('.')[0] in ('pymc', 'pytensor') for m in sys.modules)
        """
    )
    run_python(code)
