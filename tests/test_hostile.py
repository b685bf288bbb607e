"""Large or hostile inputs: they work, or fail with one clear error, and do not exhaust memory
or the stack (issue 8).

Sizes are checked through shapes and memory, not wall-clock time; each test finishes in
seconds.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from r2d2formula import Model
from r2d2formula.design import build_design, new_data_design
from r2d2formula.errors import FormulaError, FormulaSyntaxError, R2D2FormulaError
from r2d2formula.formula import parse_formula

# ---- a grouping factor with 100,000 levels -----------------------------------------------


@pytest.fixture(scope="module")
def many_levels() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 250_000
    return pd.DataFrame({
        "y": rng.normal(size=n),
        "x": rng.normal(size=n),
        # every one of the 100,000 levels occurs (at least twice), in shuffled order
        "id": rng.permutation(np.resize(np.arange(100_000), n)).astype(str),
    })


def test_factor_with_100000_levels_uses_integer_codes(many_levels):
    d = build_design("y ~ x + (1 + x | id)", many_levels)
    factor = d.factors["id"]
    n = len(many_levels)
    assert len(factor.levels) == 100_000 and len(set(factor.levels)) == 100_000
    assert factor.codes.dtype == np.int64 and factor.codes.shape == (n,)
    assert factor.codes.min() == 0 and factor.codes.max() == 99_999
    # levels sort as text; codes point at each row's own level
    assert list(factor.levels[:3]) == ["0", "1", "10"]
    rows = np.arange(0, n, 9973)
    assert [factor.levels[c] for c in factor.codes[rows]] == list(many_levels["id"].iloc[rows])
    # the Z block is n x 2, never n x levels: nothing one-hot
    (term,) = d.group_terms
    assert term.matrix.shape == (n, 2)
    # a one-hot matrix would take n * levels * 8 bytes = 200 GB; every array of the design
    # together is a few numbers per row
    arrays = [d.response.values, d.common.matrix, factor.codes, term.matrix]
    assert sum(a.nbytes for a in arrays) <= 6 * 8 * n


def test_model_with_100000_levels_builds_without_the_graph(many_levels):
    m = Model("y ~ x + (1 | id)", many_levels)
    assert m.components.loc["1|id", "n_levels"] == 100_000
    assert m.variant == "R2D2M2"


def test_new_data_for_100000_levels(many_levels):
    d = build_design("y ~ x + (1 | id)", many_levels)
    new = pd.DataFrame({"x": [0.0, 1.0, 2.0], "id": ["99999", "new level", "0"]})
    nd = new_data_design(d, new)
    factor = nd.factors["id"]
    assert factor.n_train_levels == 100_000 and factor.n_new_levels == 1
    assert factor.codes.tolist() == [d.factors["id"].levels.index("99999"), 100_000, 0]


# ---- a formula with 500 terms ---------------------------------------------------------


def _wide(p: int, n: int) -> tuple[str, pd.DataFrame]:
    rng = np.random.default_rng(1)
    data = pd.DataFrame(rng.normal(size=(n, p)), columns=[f"x{i}" for i in range(p)])
    data["y"] = rng.normal(size=n)
    return "y ~ " + " + ".join(data.columns[:p]), data


def test_formula_with_500_terms():
    formula, data = _wide(500, 800)
    spec = parse_formula(formula)
    assert spec.common.count("+") == 499
    d = build_design(formula, data)
    assert d.common.matrix.shape == (800, 500)
    assert d.common.labels == tuple(f"x{i}" for i in range(500))
    np.testing.assert_array_equal(d.common.matrix[:, 123], data["x123"].to_numpy())
    # new data take the same path (formulae re-evaluates all 500 terms)
    nd = new_data_design(d, data.iloc[:5])
    np.testing.assert_allclose(nd.common.matrix, d.common.matrix[:5])


def test_formula_with_500_terms_of_interactions_and_transforms():
    p = 125
    _, data = _wide(p, 600)
    parts = []
    for i in range(p):
        parts += [f"x{i}", f"I(x{i}**2)", f"scale(x{i})" if i % 2 else f"x{i}:x{(i + 1) % p}",
                  f"np.exp(x{i} / 10)"]
    formula = "y ~ " + " + ".join(parts)  # 500 terms
    # scale(x) is collinear with x: the error names both, fast, instead of a silent fit
    with pytest.raises(R2D2FormulaError, match=r"perfectly collinear: 'scale\(x1\)' = "):
        build_design(formula, data)
    formula = formula.replace("scale(", "np.sin(")
    d = build_design(formula, data)
    assert d.common.matrix.shape == (600, 500)


def test_thousands_of_terms_do_not_exhaust_the_stack():
    formula = "y ~ " + " + ".join(["x"] * 5000)  # the same term 5000 times: one column
    data = pd.DataFrame({"y": [1.0, 3.0, 2.0, 4.0], "x": [0.0, 1.0, 3.0, 2.0]})
    assert build_design(formula, data).common.labels == ("x",)


def test_deep_nesting_works():
    data = pd.DataFrame({"y": [1.0, 3.0, 2.0, 4.0, 6.0], "x": [0.0, 1.0, 3.0, 2.0, 5.0],
                         "z": [1.0, 0.0, 2.0, 5.0, 4.0]})
    formula = "y ~ " + "(" * 300 + "x" + ")" * 300 + " + " + "-" * 300 + "z"  # -(-z) = z
    assert build_design(formula, data).common.labels == ("x", "z")


@pytest.mark.parametrize("formula", [
    # deeper than any recursion limit (PyTensor raises Python's to 10000 when imported)
    "y ~ " + "(" * 50_000 + "x" + ")" * 50_000,
    "y ~ " + "-" * 50_000 + "x",
])
def test_absurd_nesting_is_a_clear_error(formula):
    with pytest.raises(FormulaSyntaxError, match="nests too deeply.*remove redundant"):
        parse_formula(formula)


# ---- names with spaces, symbols and non-ASCII letters -----------------------------------

NAMES = ["größe", "body mass (kg)", "it's", 'say "hi"', "x-1", "1st", "naïve café", "数据",
         "😀 score", "a:b", "a|b", "a~b", "a/b", "a+b", "sp ace", "Zürich:Bern", "a[1]"]


def _named(name: str) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    return pd.DataFrame({"y": rng.normal(size=12), name: rng.normal(size=12),
                         "g": list("abc") * 4})


@pytest.mark.parametrize("name", NAMES)
def test_quoted_names_work_with_backticks_and_q(name):
    data = _named(name)
    quote = "'" if '"' in name else '"'
    for term in (f"`{name}`", f"Q({quote}{name}{quote})"):
        d = build_design(f"y ~ {term} + (0 + {term} | g)", data)
        assert d.common.labels == (name,)
        np.testing.assert_array_equal(d.common.matrix[:, 0], data[name].to_numpy())
        assert d.component_names == (name, f"{name}|g")
    # as the response and inside a function
    d = build_design(f"`{name}` ~ scale(`{name}`) + g", data.assign(**{name: data["y"]}))
    np.testing.assert_array_equal(d.response.values, data["y"].to_numpy())


@pytest.mark.parametrize(("name", "message"), [
    ("body mass", r"two terms without an operator.*quote it: `body mass`"),
    ("1st", r"quote it: `1st`"),
    ("naïve café", r"quote it: `naïve café`"),
    ("x-1", r"column 'x' is not in the data.*Did you mean `x-1`\?.*backticks"),
    ("a:b", r"column 'a' is not in the data.*Did you mean `a:b`\?"),
    ("😀 score", r"unexpected character '😀'.*quote the column name with backticks"),
])
def test_unquoted_names_fail_with_the_quoting_fix(name, message):
    with pytest.raises(FormulaError, match="(?s)" + message) as info:
        build_design(f"y ~ {name}", _named(name))
    assert "^" in str(info.value)  # the position is marked


def test_a_backtick_in_a_name_is_a_clear_error():
    with pytest.raises(FormulaError, match="(?s)contains a backtick.*Rename the column"):
        build_design('y ~ Q("a`b")', _named("a`b"))


def test_unicode_levels_and_factor_names():
    data = pd.DataFrame({"y": np.arange(8.0) ** 1.5, "x": np.arange(8.0) % 3,
                         "région": ["Île", "Zürich", "東京", "Île", "Zürich", "東京", "Île", "😀"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about
        m = Model("y ~ x + (1 | `région`)", data)
    assert m.design.factors["région"].levels == ("Zürich", "Île", "東京", "😀")  # code points
    assert list(m.components.index) == ["x", "1|région"]
