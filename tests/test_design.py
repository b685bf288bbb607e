"""Tests of build_design / new_data_design on small hand-checked data frames."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from r2d2formula.design import build_design, new_data_design
from r2d2formula.errors import DesignError, FormulaError, FormulaSyntaxError, R2D2FormulaWarning


@pytest.fixture
def df():
    return pd.DataFrame({
        "y": [1.0, 2, 3, 4, 5, 6, 7, 9],
        "x": [1.0, 2, 3, 5, 4, 7, 6, 8],
        "z": [2.0, 1, 4, 3, 6, 5, 8, 9],
        "gene": list("ABCABCAB"),
        "g": list("aabbccdd"),
        "h": [1, 2, 1, 2, 1, 2, 1, 2],
        "s": [1, 2, 0, 3, 1, 2, 2, 1],
        "n": [3, 3, 3, 4, 4, 4, 5, 5],
        "f": [2, 1, 3, 1, 3, 2, 3, 4],
        "b": list("nynynnyy"),
        "my col": [1.0, 3, 2, 4, 6, 5, 7, 8],
    })


def test_numeric_and_interaction(df):
    d = build_design("y ~ x*gene", df)
    assert d.common.labels == ("x", "gene[B]", "gene[C]", "x:gene[B]", "x:gene[C]")
    assert d.common.terms == ("x", "gene", "gene", "x:gene", "x:gene")
    assert d.common.intercept
    gene_b = (df.gene == "B").to_numpy(float)
    np.testing.assert_allclose(d.common.matrix[:, 1], gene_b)
    np.testing.assert_allclose(d.common.matrix[:, 3], df.x * gene_b)
    np.testing.assert_allclose(d.common.means, d.common.matrix.mean(0))
    np.testing.assert_allclose(d.common.scales, d.common.matrix.std(0))
    assert d.component_names == d.common.labels and not d.has_groups


@pytest.mark.parametrize(
    ("formula", "labels", "intercept"),
    [
        ("y ~ 0 + gene", ("gene[A]", "gene[B]", "gene[C]"), False),
        ("y ~ x - 1", ("x",), False),
        ("y ~ x + 0", ("x",), False),
        ("y ~ 1", (), True),
        ("y ~ gene/x", ("gene[B]", "gene[C]", "gene[A]:x", "gene[B]:x", "gene[C]:x"), True),
        ("y ~ (x + z)**2", ("x", "z", "x:z"), True),
        ("y ~ x*z - x:z", ("x", "z"), True),
        ("y ~ C(gene, Treatment('B'))",
         ("C(gene, Treatment('B'))[A]", "C(gene, Treatment('B'))[C]"), True),
        ("y ~ log(x) + np.log(z)", ("log(x)", "np.log(z)"), True),
        ("y ~ I(x**2) + {x + z}", ("I(x ** 2)", "I(x + z)"), True),
        ("y ~ `my col`", ("my col",), True),
        ('y ~ Q("my col")', ("my col",), True),
    ],
)
def test_population_forms(df, formula, labels, intercept):
    d = build_design(formula, df)
    assert d.common.labels == labels
    assert d.common.intercept is intercept
    assert d.common.matrix.shape == (8, len(labels))


def test_function_values(df):
    # {x * z}, not {x + z}: x + z, scale(x) and center(z) would be perfectly collinear
    d = build_design("y ~ log(x) + I(x**2) + {x * z} + scale(x) + center(z)", df)
    m = d.common.matrix
    np.testing.assert_allclose(m[:, 0], np.log(df.x))
    np.testing.assert_allclose(m[:, 1], df.x**2)
    np.testing.assert_allclose(m[:, 2], df.x * df.z)
    # formulae scale() uses the ddof=0 sd (R uses ddof=1)
    np.testing.assert_allclose(m[:, 3], (df.x - df.x.mean()) / df.x.std(ddof=0), rtol=1e-6)
    np.testing.assert_allclose(m[:, 4], df.z - df.z.mean())


def test_offsets(df):
    d = build_design("y ~ x + offset(log(n)) + offset(z)", df)
    assert d.common.labels == ("x",)
    np.testing.assert_allclose(d.offset, np.log(df.n) + df.z)


def test_group_intercept_and_slope(df):
    d = build_design("y ~ x + (1 + x | g)", df)
    assert d.component_names == ("x", "1|g", "x|g")
    (term,) = d.group_terms
    assert term.labels == ("1", "x") and term.correlated and term.factor == "g"
    np.testing.assert_allclose(term.matrix, np.column_stack([np.ones(8), df.x]))
    np.testing.assert_allclose(term.scales, [1.0, df.x.std(ddof=0)])
    f = d.factors["g"]
    assert f.levels == ("a", "b", "c", "d") and f.codes.dtype == np.int64
    assert f.codes.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert d.components.loc["x|g", "n_levels"] == 4


@pytest.mark.parametrize(
    ("formula", "blocks"),
    [
        ("y ~ (1 | g)", [("g", ("1",), False)]),
        ("y ~ (x | g)", [("g", ("1", "x"), True)]),
        ("y ~ (0 + x | g)", [("g", ("x",), False)]),
        ("y ~ (x || g)", [("g", ("1",), False), ("g", ("x",), False)]),
        ("y ~ (1 + x || g)", [("g", ("1",), False), ("g", ("x",), False)]),
        ("y ~ (gene | g)", [("g", ("1", "gene[B]", "gene[C]"), True)]),
        ("y ~ (0 + gene | g)", [("g", ("gene[A]", "gene[B]", "gene[C]"), True)]),
        ("y ~ (1 | g:h)", [("g:h", ("1",), False)]),
        ("y ~ (1 | g/h)", [("g", ("1",), False), ("g:h", ("1",), False)]),
        ("y ~ (x | g/h)", [("g", ("1", "x"), True), ("g:h", ("1", "x"), True)]),
        ("y ~ (1 | g) + (1 | h)", [("g", ("1",), False), ("h", ("1",), False)]),
        ("y ~ (1 | g) + (0 + x | g)", [("g", ("1",), False), ("g", ("x",), False)]),
    ],
)
def test_group_forms(df, formula, blocks):
    d = build_design(formula, df)
    assert [(t.factor, t.labels, t.correlated) for t in d.group_terms] == blocks
    for t in d.group_terms:
        assert t.matrix.shape == (8, len(t.labels))


def test_interaction_factor_only_observed_levels():
    data = pd.DataFrame({"y": [1.0, 2, 3, 4, 5], "g": ["b", "a", "b", "a", "a"],
                         "h": [2, 10, 10, 10, 2]})
    d = build_design("y ~ (1 | g/h)", data)
    assert d.factors["g"].levels == ("a", "b")
    # numeric levels sort numerically (2 before 10); only observed combinations
    assert d.factors["g:h"].levels == ("a:2", "a:10", "b:2", "b:10")
    assert d.factors["g:h"].codes.tolist() == [2, 1, 3, 1, 0]
    assert list(d.factors) == ["g", "g:h"]


def test_categorical_dtype_level_order():
    data = pd.DataFrame({"y": [1.0, 2, 3, 4],
                         "g": pd.Categorical(["lo", "hi", "lo", "hi"], ["lo", "hi", "mid"])})
    f = build_design("y ~ (1 | g)", data).factors["g"]
    assert f.levels == ("lo", "hi") and f.codes.tolist() == [0, 1, 0, 1]


def test_z_categorical_matrix(df):
    (t,) = build_design("y ~ (gene | g)", df).group_terms
    np.testing.assert_allclose(t.matrix[:, 2], (df.gene == "C").to_numpy(float))


@pytest.mark.parametrize(
    ("formula", "name", "values", "trials"),
    [
        ("p(s, n) ~ x", "s", [1, 2, 0, 3, 1, 2, 2, 1], [3, 3, 3, 4, 4, 4, 5, 5]),
        ("s | trials(n) ~ x", "s", [1, 2, 0, 3, 1, 2, 2, 1], [3, 3, 3, 4, 4, 4, 5, 5]),
        ("cbind(s, f) ~ x", "s", [1, 2, 0, 3, 1, 2, 2, 1], [3, 3, 3, 4, 4, 4, 5, 5]),
    ],
)
def test_binomial_responses(df, formula, name, values, trials):
    r = build_design(formula, df).response
    assert r.name == name and r.label == formula.split(" ~")[0]
    np.testing.assert_allclose(r.values, values)
    np.testing.assert_allclose(r.trials, trials)


def test_response_kinds(df):
    r = build_design("b ~ x", df).response
    assert r.label == "b[y]" and r.values.tolist() == [0, 1, 0, 1, 0, 0, 1, 1]
    r = build_design("log(y) ~ x", df).response
    np.testing.assert_allclose(r.values, np.log(df.y))
    assert r.trials is None
    data = df.assign(t=df.y > 3)
    assert build_design("t ~ x", data).response.values.tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    with pytest.raises(DesignError, match="3 levels"):
        build_design("gene ~ x", df)


# ----------------------------------------------------------------------------- new data


def test_new_data_stateful_and_levels(df):
    d = build_design("y ~ scale(x) + gene + (1 | g) + (1 | g:h)", df)
    new = pd.DataFrame({"x": [df.x.mean(), 2.0], "gene": ["B", "A"], "g": ["e", "a"],
                        "h": [1, 3]})
    nd = new_data_design(d, new)
    np.testing.assert_allclose(nd.common.matrix[0], [0.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(nd.common.matrix[1, 0], (2.0 - df.x.mean()) / df.x.std(ddof=0))
    np.testing.assert_allclose(nd.common.means, d.common.means)
    g = nd.factors["g"]
    assert g.levels == ("a", "b", "c", "d", "e") and g.n_train_levels == 4
    assert g.codes.tolist() == [4, 0] and g.n_new_levels == 1
    gh = nd.factors["g:h"]
    assert gh.codes.tolist() == [9, 8] and gh.levels[8:] == ("a:3", "e:1")
    assert np.isnan(nd.response.values).all()
    assert nd.row_index.equals(new.index)


def test_new_data_unseen_population_level(df):
    d = build_design("y ~ gene", df)
    with pytest.raises(DesignError, match=r"column 'gene' has levels not seen in training: D"):
        new_data_design(d, pd.DataFrame({"gene": ["D", "A"]}))


def test_new_data_response_and_trials(df):
    d = build_design("s | trials(n) ~ x", df)
    nd = new_data_design(d, pd.DataFrame({"x": [1.0], "n": [7]}))
    assert np.isnan(nd.response.values).all() and nd.response.trials.tolist() == [7.0]
    with pytest.raises(DesignError, match="response column"):
        new_data_design(d, pd.DataFrame({"x": [1.0]}), require_response=True)
    nd = new_data_design(d, pd.DataFrame({"x": [1.0], "s": [2], "n": [7]}),
                         require_response=True)
    assert nd.response.values.tolist() == [2.0]


def test_new_data_z_and_offset(df):
    d = build_design("y ~ offset(log(n)) + (1 + scale(x) | g)", df)
    nd = new_data_design(d, pd.DataFrame({"x": [df.x.mean()], "n": [np.e], "g": ["b"]}))
    np.testing.assert_allclose(nd.group_terms[0].matrix, [[1.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(nd.group_terms[0].scales, d.group_terms[0].scales)
    np.testing.assert_allclose(nd.offset, [1.0])


# ----------------------------------------------------------------------------- errors


def test_unknown_column_suggests(df):
    with pytest.raises(FormulaError, match=r"column 'gen' is not in the data(.|\n)*'gene'"):
        build_design("y ~ gen", df)


def test_unbalanced_parentheses(df):
    with pytest.raises(FormulaSyntaxError, match=re.escape("unclosed '('")):
        build_design("y ~ x + (1 | g", df)


@pytest.mark.parametrize("formula", ["y ~ x % z", "y ~ x $ z", "y ~ x == 1", "y ~ x | g"])
def test_unsupported_operators(df, formula):
    with pytest.raises(FormulaError):
        build_design(formula, df)


def test_missing_values_raise_and_drop(df):
    data = df.copy()
    data.loc[1, "x"] = np.nan
    data.loc[2, "g"] = None
    data.loc[3, "z"] = np.nan  # unused column: never dropped
    with pytest.raises(DesignError, match=r"2 rows have missing values.*'x' \(1\), 'g' \(1\)"):
        build_design("y ~ x + (1 | g)", data)
    with pytest.warns(R2D2FormulaWarning, match="dropped 2 of 8 rows"):
        d = build_design("y ~ x + (1 | g)", data, dropna=True)
    assert d.n_dropped == 2 and d.n_obs == 6
    assert d.row_index.tolist() == [0, 3, 4, 5, 6, 7]


@pytest.mark.parametrize(
    ("formula", "update", "message"),
    [
        ("y ~ x", {"x": [np.inf, 2, 3, 5, 4, 7, 6, 8]}, "infinite values"),
        ("y ~ log(x)", {"x": [0.0, 2, 3, 5, 4, 7, 6, 8]}, "non-finite"),
        ("y ~ log(gene)", {}, "column 'gene' is not numeric"),
        ("y ~ I(gene * 2)", {}, "column 'gene' is not numeric"),
        ("y ~ x + z", {"z": [1.0] * 8}, "constant predictor column 'z'"),
        ("y ~ (1 | g)", {"g": ["a"] * 8}, "only one level"),
    ],
)
def test_data_errors(df, formula, update, message):
    with pytest.raises(DesignError, match=message):
        build_design(formula, df.assign(**update))


def test_more_columns_than_rows_warns():
    # p > n is legitimate shrinkage regression under R2D2: a warning, not an error (issue 8)
    data = pd.DataFrame({"y": [1.0, 2, 3], "a": list("abc"), "x": [1.0, 2, 4]})
    with pytest.warns(R2D2FormulaWarning, match="4 population-level columns .* for 3 rows"):
        d = build_design("y ~ a + x", data)
    assert d.common.matrix.shape == (3, 3)


def test_empty_data_and_types(df):
    with pytest.raises(DesignError, match="no rows"):
        build_design("y ~ x", df.iloc[:0])
    with pytest.raises(DesignError, match="DataFrame"):
        build_design("y ~ x", {"y": [1]})


def test_duplicate_group_columns(df):
    with pytest.raises(FormulaError, match=r"'1\|g' appears twice"):
        build_design("y ~ (1 | g) + (1 | g)", df)
    with pytest.raises(FormulaError, match=r"0 \+ x \| g"):
        build_design("y ~ (x | g) + (1 | g)", df)


def test_unknown_function(df):
    with pytest.raises(FormulaError, match="unknown function 'foo'"):
        build_design("y ~ foo(x)", df)
    d = build_design("y ~ foo(x)", df, namespace={"foo": lambda v: v * 2})
    np.testing.assert_allclose(d.common.matrix[:, 0], df.x * 2)
