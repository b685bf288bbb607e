"""A catalogue of bad inputs: each gives one error of the exact type, whose message names the
problem and the fix (issue 8).

Every case is one parametrized test. ``match`` is a regular expression searched in the
message; it holds the key words of the problem (the column, level or position) and of the
remedy. The cases cover the formula (syntax with a caret under the position, unknown columns
with close matches, a missing response), the data (empty, wrong types, missing and infinite
values, constant, duplicated and collinear columns, one-level factors), the family (unknown
family or link, responses the family cannot model), the prior (hyperparameters, overrides)
and new data at prediction (unseen levels, missing columns), through
``r2d2formula.design.new_data_design`` and through ``fit.predict``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import arviz as az
import numpy as np
import pandas as pd
import pytest

from r2d2formula import R2D2, Model, Prior
from r2d2formula.design import build_design, new_data_design
from r2d2formula.errors import (
    DesignError,
    FamilyError,
    FormulaError,
    FormulaSyntaxError,
    PriorSpecError,
    R2D2FormulaError,
    R2D2FormulaWarning,
)
from r2d2formula.results import Fit


def frame(**changes) -> pd.DataFrame:
    """A small clean data set; keyword arguments replace or add columns."""
    df = pd.DataFrame({
        "y": [0.5, 1.2, 2.2, 3.1, 2.0, 1.1, 0.3, 2.5],
        "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 9.0],
        "z": [2.0, 1.0, 4.0, 3.0, 6.0, 5.0, 8.0, 9.0],
        "g": list("aabbccdd"),
        "h": list("xyxyxyxy"),
        "cat": list("pqrpqrpq"),
        "k": [0, 1, 2, 3, 1, 0, 4, 2],
        "b01": [0, 1, 0, 1, 1, 0, 1, 0],
        "s": [1, 2, 3, 2, 5, 1, 1, 0],
        "n": [5, 5, 5, 3, 5, 5, 2, 2],
    })
    for name, values in changes.items():
        df[name] = values
    return df


def model(formula: str, data: pd.DataFrame | None = None, **kwargs) -> Callable[[], object]:
    return lambda: Model(formula, frame() if data is None else data, **kwargs)


def design(formula: str, data: pd.DataFrame | None = None, **kwargs) -> Callable[[], object]:
    return lambda: build_design(formula, frame() if data is None else data, **kwargs)


def _trained(formula: str = "y ~ x + cat + (1 | g)") -> Model:
    return Model(formula, frame())


def new_data(rows: dict, formula: str = "y ~ x + cat + (1 | g)") -> Callable[[], object]:
    return lambda: new_data_design(_trained(formula).design, pd.DataFrame(rows))


def predict(rows: dict, **kwargs) -> Callable[[], object]:
    """fit.predict on a fit whose posterior is a stand-in: the data checks come first, so
    the errors are raised before any posterior draw is used."""
    def run():
        fitted = _trained()
        idata = az.from_dict(posterior={"R2": np.full((1, 4), 0.5)})
        fit = Fit(model=fitted, idata=idata, sampler="pymc")
        return fit.predict(pd.DataFrame(rows), **kwargs)
    return run


@dataclass(frozen=True)
class Case:
    id: str
    run: Callable[[], object]
    error: type[R2D2FormulaError]
    match: str


# the end of the message's first line, the formula quoted on the next, a caret under it
CARET = r"[^\n]*\n  [^\n]*\n *\^"

CASES = [
    # ---- formula syntax: the position marked, the fix said --------------------------------
    Case("unclosed-paren", model("y ~ x + (1 | g"), FormulaSyntaxError,
         rf"unclosed '\('{CARET}.*\nAdd '\)' after '1 \| g'"),
    Case("unmatched-paren", model("y ~ x)"), FormulaSyntaxError,
         rf"unmatched '\)'{CARET}.*\nRemove it"),
    Case("trailing-operator", model("y ~ x +"), FormulaSyntaxError,
         rf"ends too early{CARET}.*\nAdd the missing term"),
    Case("percent-operator", model("y ~ x % z"), FormulaSyntaxError,
         rf"unsupported operator '%'{CARET}.*nesting write 'a/b'"),
    Case("dollar-sign", model("y ~ x $ z"), FormulaSyntaxError,
         rf"unexpected character '\$'{CARET}.*by its name"),
    Case("missing-operator", model("y ~ x z"), FormulaSyntaxError,
         rf"'z': two terms without an operator{CARET}.*Join terms with '\+'"),
    Case("two-tildes", model("y ~ x ~ z"), FormulaSyntaxError,
         rf"more than one '~'{CARET}.*exactly one '~'"),
    Case("no-tilde", model("y + x"), FormulaSyntaxError,
         rf"no '~'{CARET}.*'response ~ predictors'"),
    Case("empty-formula", model(""), FormulaSyntaxError, r"formula is empty; write it as"),
    Case("unclosed-backtick", model("y ~ `my col"), FormulaSyntaxError,
         rf"unclosed backtick{CARET}.*closing `"),
    Case("string-term", model("y ~ 'x'"), FormulaSyntaxError,
         rf"a string is not a term{CARET}.*write `x` or Q\(\"x\"\)"),
    Case("dot-term", model("y ~ ."), FormulaSyntaxError,
         rf"unexpected operator '\.'{CARET}.*list the columns"),
    # ---- formula meaning ------------------------------------------------------------------
    Case("no-response", model("~ x"), FormulaError, rf"no response{CARET}.*'y ~ \.\.\.'"),
    Case("group-factor-sum", model("y ~ (1 | g + h)"), FormulaError,
         rf"'\+' is not allowed in a grouping factor{CARET}.*\(1 \| g\) \+ \(1 \| h\)"),
    Case("group-term-removed", model("y ~ x - (1 | g)"), FormulaError,
         rf"group term cannot be removed{CARET}.*Delete it"),
    Case("number-term", model("y ~ 2"), FormulaError,
         rf"a number is not a term{CARET}.*I\(\.\.\.\) for arithmetic"),
    Case("bar-on-left", model("s | n ~ x"), FormulaError,
         rf"must introduce the number of trials{CARET}.*'successes \| trials\(n\)'"),
    Case("duplicate-group-column", model("y ~ (x | g) + (1 | g)"), FormulaError,
         rf"'1\|g' appears twice{CARET}.*\(0 \+ x \| g\)"),
    Case("reserved-factor-name", model("y ~ x + (1 | coef)", frame(coef=list("abababab"))),
         FormulaError, r"'coef'.*already uses; rename the column.*'coef_group'"),
    Case("colon-column-name", model("y ~ x*z + `x:z`", frame(**{"x:z": np.arange(8.0) ** 2})),
         FormulaError, rf"'x:z' reads the same as the interaction{CARET}.*Rename the column"),
    # ---- unknown names: close matches suggested -------------------------------------------
    Case("unknown-column", model("y ~ xx + (1 | g)"), FormulaError,
         rf"column 'xx' is not in the data{CARET}.*Did you mean 'x'"),
    Case("unknown-response", model("yy ~ x"), FormulaError,
         rf"column 'yy' is not in the data{CARET}.*Did you mean 'y'"),
    Case("unknown-factor", model("y ~ x + (1 | gg)"), FormulaError,
         rf"column 'gg' is not in the data{CARET}.*Did you mean 'g'"),
    Case("unknown-column-case", model("y ~ X"), FormulaError,
         r"column 'X' is not in the data(.|\n)*Did you mean 'x'"),
    Case("unknown-function", model("y ~ foo(x)"), FormulaError,
         rf"unknown function 'foo'{CARET}.*namespace="),
    # ---- the data frame -------------------------------------------------------------------
    Case("empty-data", model("y ~ x", frame().iloc[:0]), DesignError,
         r"data has no rows; pass a DataFrame with at least one"),
    Case("not-a-dataframe", lambda: Model("y ~ x", {"y": [1.0, 2.0], "x": [1.0, 3.0]}),
         DesignError, r"must be a pandas DataFrame, got dict; wrap it with pandas\.DataFrame"),
    Case("duplicated-column-name",
         model("y ~ x", pd.concat([frame(), frame()[["x"]]], axis=1)), DesignError,
         r"2 columns named 'x'; give them distinct names"),
    Case("dropna-not-bool", model("y ~ x", dropna="yes"), DesignError,
         r"dropna must be True or False, got 'yes'"),
    # ---- wrong column types ---------------------------------------------------------------
    Case("text-in-arithmetic", model("y ~ log(cat)"), DesignError,
         rf"column 'cat' is not numeric.*used in arithmetic{CARET}.*pd\.to_numeric.*C\(cat\)"),
    Case("dates", model("y ~ d", frame(d=pd.date_range("2020-01-01", periods=8))),
         DesignError, r"column 'd' holds dates.*convert it to numbers.*days since the start"),
    Case("numbers-as-objects", model("y ~ w", frame(w=np.arange(8.0).astype(object))),
         DesignError, r"column 'w' holds numbers stored with dtype object.*pd\.to_numeric"),
    Case("mixed-object", model("y ~ w", frame(w=[1, "a", 2, 3, 4, 5, 6, 7])), DesignError,
         r"column 'w' \(dtype object\) mixes values of types number, text.*astype\(str\)"),
    Case("complex", model("y ~ w", frame(w=np.arange(8.0) + 1j)), DesignError,
         r"column 'w' holds complex numbers.*np\.real, np\.abs"),
    Case("text-trials", model("s | trials(cat) ~ x", family="binomial"), DesignError,
         r"trials column 'cat' must be numeric.*pd\.to_numeric"),
    Case("text-offset", model("y ~ x + offset(cat)"), DesignError,
         r"offset column 'cat' must be numeric.*pd\.to_numeric"),
    Case("bad-reference-level", model("y ~ C(g, Treatment('zz'))"), DesignError,
         r"reference level given in .*not a level of its column; use one of the values"),
    # ---- missing and infinite values ------------------------------------------------------
    Case("nan-in-predictor", model("y ~ x", frame(x=[1.0, np.nan, 3, 4, 5, 6, np.nan, 9])),
         DesignError, r"2 rows have missing values .*'x' \(2\); .*pass dropna=True"),
    Case("none-in-factor", model("y ~ x + (1 | g)", frame(g=["a", None, "b", "b", "c", "c",
                                                            "d", "d"])),
         DesignError, r"1 row has missing values .*'g' \(1\); remove or impute"),
    Case("nan-in-response", model("y ~ x", frame(y=[np.nan, 1, 2, 3, 4, 5, 6, 7.0])),
         DesignError, r"1 row has missing values .*'y' \(1\).*dropna=True"),
    Case("nullable-NA", model("y ~ w", frame(w=pd.array([1, 2, None, 4, 5, 6, 7, 8],
                                                         dtype="Int64"))),
         DesignError, r"1 row has missing values .*'w' \(1\)"),
    Case("inf-in-predictor", model("y ~ x", frame(x=[1.0, 2, np.inf, 4, 5, 6, 7, 9])),
         DesignError, r"column 'x' has 1 infinite values \(first at row 2\); replace them"),
    Case("log-of-zero", model("y ~ log(w)", frame(w=[0.0, 1, 2, 3, 4, 5, 6, 7])),
         DesignError, r"'log\(w\)' have non-finite values.*log of 0.*transform the data"),
    # ---- columns the data cannot identify --------------------------------------------------
    Case("constant-column", model("y ~ x + c", frame(c=3.0)), DesignError,
         r"constant predictor column 'c' \(every row is 3\).*Remove it from the formula"),
    Case("duplicated-column", model("y ~ x + x2", frame(x2=frame()["x"])), DesignError,
         r"column 'x2' duplicates 'x'.*Remove one of them"),
    Case("collinear-columns", model("y ~ x + z + w", frame(w=frame()["x"] + frame()["z"])),
         DesignError,
         r"perfectly collinear: 'w' = 1\*'x' \+ 1\*'z' \+ a constant.*Remove 'w' \(or one of"),
    Case("collinear-scaled", model("y ~ x + w", frame(w=2 * frame()["x"] - 1)), DesignError,
         r"perfectly collinear: 'w' = 2\*'x' \+ a constant.*Remove 'w' \(or 'x'\)"),
    Case("collinear-dummies", model("y ~ cat + w", frame(w=(frame()["cat"] == "q") * 2.0)),
         DesignError, r"perfectly collinear: 'w' = 2\*'cat\[q\]'.*Remove 'w'"),
    Case("constant-in-group-term", model("y ~ x + (0 + c | g)", frame(c=1.0)), DesignError,
         r"constant column 'c' in group term \(0 \+ c \| g\); remove it"),
    Case("one-level-factor", model("y ~ x + (1 | g)", frame(g="a")), DesignError,
         r"grouping factor 'g' has only one level \('a'\).*Remove the group term"),
    Case("one-level-categorical", model("y ~ x + cat", frame(cat="p")), DesignError,
         r"categorical column 'cat' has only one level \('p'\).*remove it from the formula"),
    Case("label-collision", model("y ~ cat + `cat[q]`", frame(**{"cat[q]": np.arange(8.0)})),
         FormulaError, r"both named 'cat\[q\]'.*Rename that data column"),
    # ---- family and link ------------------------------------------------------------------
    Case("unknown-family", model("y ~ x", family="gamma"), FamilyError,
         r"unknown family 'gamma'; choose one of gaussian, bernoulli"),
    Case("unknown-link", model("b01 ~ x", family="bernoulli", link="log"), FamilyError,
         r"family 'bernoulli' has no link 'log'; choose one of logit, probit"),
    Case("family-not-string", model("y ~ x", family=3), FamilyError,
         r"family must be a string such as 'poisson', got int"),
    # ---- the response against the family --------------------------------------------------
    Case("non-integer-counts", model("y ~ x", family="poisson"), FamilyError,
         r"'poisson' needs non-negative integer counts.*'y'.*use family='gaussian'"),
    Case("negative-counts", model("k ~ x", frame(k=[0, -1, 2, 3, 1, 0, 4, 2]),
                                  family="negativebinomial"),
         FamilyError, r"non-negative integer counts.*row 1: -1.*family='gaussian'"),
    Case("bernoulli-not-01", model("k ~ x", family="bernoulli"), FamilyError,
         r"0s and 1s.*'k' has 4 other values.*family='binomial' with 'y \| trials\(n\)'"),
    Case("text-response-3-levels", model("cat ~ x", family="bernoulli"), DesignError,
         r"response 'cat' is not numeric and has 3 levels.*exactly two levels"),
    Case("text-response-gaussian", model("h ~ x"), FamilyError,
         r"response 'h' is text with two levels \('x', 'y'\).*Use family='bernoulli'"),
    Case("text-response-poisson", model("h ~ x", family="poisson"), FamilyError,
         r"'h' is text.*family 'poisson' needs numbers"),
    Case("binomial-without-trials", model("k ~ x", family="binomial"), FamilyError,
         r"needs the number of trials: write 'k \| trials\(n\)'"),
    Case("trials-with-gaussian", model("s | trials(n) ~ x"), FamilyError,
         r"has trials, which only binomial models use; use family='binomial'"),
    Case("successes-above-trials", model("s | trials(n) ~ x", frame(s=[1, 2, 3, 4, 5, 1, 1, 0]),
                                         family="binomial"),
         FamilyError, r"exceed trials in 1 row \(first: row 3, 4 successes of 3.*trials\(\)"),
    Case("zero-trials", model("s | trials(n) ~ x", frame(n=[5, 5, 5, 3, 5, 5, 2, 0],
                                                        s=[1, 2, 3, 2, 5, 1, 1, 0]),
                              family="binomial"),
         FamilyError, r"trials must be positive integers.*row 7: 0.*drop rows with zero trials"),
    Case("constant-response", model("y ~ x", frame(y=1.0)), FamilyError,
         r"response 'y' is constant; there is nothing to model"),
    # ---- the prior ------------------------------------------------------------------------
    Case("r2-mean-zero", lambda: R2D2(r2_mean=0.0), PriorSpecError,
         r"r2_mean must lie strictly between 0 and 1, got 0\.0"),
    Case("r2-mean-above-one", lambda: R2D2(r2_mean=1.2), PriorSpecError,
         r"r2_mean must lie strictly between 0 and 1, got 1\.2; the prior mean of R2"),
    Case("r2-precision-negative", lambda: R2D2(r2_precision=-1), PriorSpecError,
         r"r2_precision must be a positive number, got -1; 2 gives a uniform prior"),
    Case("concentration-zero", lambda: R2D2(concentration=0), PriorSpecError,
         r"concentration must be a positive number or a dict of them, got 0"),
    Case("concentration-dict-value", lambda: R2D2(concentration={"x": -1.0}), PriorSpecError,
         r"concentration for 'x' must be a positive number, got -1\.0"),
    Case("concentration-unknown-component", model("y ~ x", prior=R2D2(concentration={"w": 1})),
         PriorSpecError, r"concentration names unknown components \['w'\]; .*components are"),
    Case("bad-kernel", lambda: R2D2(kernel="cauchy"), PriorSpecError,
         r"kernel must be one of \('normal', 'laplace'\), got 'cauchy'"),
    Case("bad-approx", lambda: R2D2(approx="taylor"), PriorSpecError,
         r"approx must be one of \('exact', 'gbp', 'linear'\).*got 'taylor'"),
    Case("prior-not-r2d2", model("y ~ x", prior={"r2_mean": 0.5}), PriorSpecError,
         r"prior must be an R2D2\(\.\.\.\) object, got dict; .*priors=\{'Intercept'"),
    Case("priors-not-a-dict", model("y ~ x", priors=[Prior("Normal")]), PriorSpecError,
         r"priors must be a dict of parameter name to Prior, got list; for example"),
    Case("priors-value-not-prior", model("y ~ x", priors={"sigma": 3}), PriorSpecError,
         r"priors\['sigma'\] must be a Prior\(\.\.\.\), got 3"),
    Case("prior-unknown-key", model("y ~ x", priors={"beta": Prior("Normal")}), PriorSpecError,
         r"cannot set a prior for 'beta'; priors= takes Intercept, sigma, alpha, sd"),
    Case("sigma-prior-real-line", model("y ~ x", priors={"sigma": Prior("Normal", sigma=1)}),
         PriorSpecError, r"'sigma' is positive, so its prior needs positive support"),
    Case("alpha-on-gaussian", model("y ~ x", priors={"alpha": Prior("Gamma", alpha=2, beta=1)}),
         PriorSpecError, r"family 'gaussian' has no parameter 'alpha'"),
    Case("sd-prior-under-r2d2m2", model("y ~ x + (1 | g)", priors={"sd": Prior("HalfNormal")}),
         PriorSpecError, r"priors\['sd'\] applies only to group terms outside.*variant='R2D2'"),
    Case("prior-unknown-distribution", lambda: Prior("Normall"), PriorSpecError,
         r"unknown prior distribution 'Normall'; use one of Normal"),
    Case("prior-unknown-parameter", lambda: Prior("Normal", mean=0), PriorSpecError,
         r"Prior\('Normal'\) takes parameters mu, sigma; got unknown 'mean'"),
    Case("prior-negative-scale", lambda: Prior("HalfNormal", sigma=-2), PriorSpecError,
         r"parameter 'sigma' must be > 0, got -2"),
    Case("unknown-variant", model("y ~ x", variant="R2D3"), PriorSpecError,
         r"unknown variant 'R2D3'; choose one of auto, R2D2"),
    Case("r2d2m2-without-groups", model("y ~ x", variant="R2D2M2"), PriorSpecError,
         r"'R2D2M2' splits variance over group terms, but the formula has none.*'auto'"),
    Case("intercept-only", model("y ~ 1"), PriorSpecError,
         r"no predictors and no group terms.*add a term"),
    # ---- new data at prediction -----------------------------------------------------------
    Case("new-data-missing-column", new_data({"cat": ["p"], "g": ["a"]}), DesignError,
         rf"column 'x' is not in the data{CARET}.*The data has columns 'cat', 'g'"),
    Case("new-data-missing-factor", new_data({"x": [1.0], "cat": ["p"]}), DesignError,
         rf"column 'g' is not in the data{CARET}"),
    Case("new-data-unseen-level", new_data({"x": [1.0], "cat": ["zz"], "g": ["a"]}), DesignError,
         r"column 'cat' has levels not seen in training: zz.*\(p, q, r\)\. Remove or recode"),
    Case("new-data-missing-value", new_data({"x": [np.nan], "cat": ["p"], "g": ["a"]}),
         DesignError, r"1 row has missing values .*'x' \(1\); remove or impute them before"),
    Case("new-data-response-required",
         lambda: new_data_design(_trained().design, pd.DataFrame({"x": [1.0], "cat": ["p"],
                                                                  "g": ["a"]}),
                                 require_response=True),
         DesignError, r"lacks the response column\(s\) \['y'\]; add them"),
    Case("predict-missing-column", predict({"cat": ["p"], "g": ["a"]}), DesignError,
         rf"column 'x' is not in the data{CARET}"),
    Case("predict-unseen-level", predict({"x": [1.0], "cat": ["zz"], "g": ["a"]}), DesignError,
         r"column 'cat' has levels not seen in training: zz.*Remove or recode"),
    Case("predict-unseen-group-level", predict({"x": [1.0], "cat": ["p"], "g": ["new"]},
                                               new_levels="error"),
         DesignError, r"levels not seen in training in grouping factor\(s\) 'g': new; pass "
         r"new_levels='sample'"),
]


def test_catalogue_is_large_and_ids_unique():
    assert len(CASES) >= 45
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_gives_our_error_with_the_fix(case: Case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", R2D2FormulaWarning)
        with pytest.raises(case.error, match=re.compile(case.match, re.DOTALL)) as info:
            case.run()
    # the exact class, not a subclass (FormulaSyntaxError is a FormulaError)
    assert type(info.value) is case.error
    # and the builtin it also derives from, so `except ValueError` keeps working
    assert isinstance(info.value, ValueError)


# ---- warnings rather than errors ----------------------------------------------------------


def test_more_columns_than_rows_is_a_warning_not_an_error():
    """p > n is what shrinkage priors are for: the model builds, with a warning that says so."""
    rng = np.random.default_rng(0)
    data = pd.DataFrame(rng.normal(size=(6, 10)), columns=[f"x{i}" for i in range(10)])
    data["y"] = rng.normal(size=6)
    formula = "y ~ " + " + ".join(f"x{i}" for i in range(10))
    with pytest.warns(R2D2FormulaWarning, match=r"11 population-level columns .* for 6 rows.*"
                      r"R2D2 prior shrinks them") as record:
        m = Model(formula, data)
    assert record[0].filename == __file__  # the warning points at the caller's line
    assert m.design.common.matrix.shape == (6, 10) and len(m.components) == 10


def test_duplicates_are_still_errors_when_columns_outnumber_rows():
    data = frame().iloc[:3].assign(x2=lambda d: d["x"])
    with pytest.raises(DesignError, match="'x2' duplicates 'x'"):
        build_design("y ~ x + z + cat + x2", data)


def test_near_collinear_columns_are_allowed():
    x = frame()["x"]
    data = frame(w=2 * x + 1e-3 * np.sin(np.arange(8)))
    build_design("y ~ x + w", data)  # correlated is fine; only exact collinearity is an error


def test_unused_categories_of_a_categorical_are_ignored():
    """A pandas Categorical keeps categories no row has (after subsetting); they must not
    become all-zero columns or the reference level."""
    cat = pd.Categorical(list("pqrpqrpq"), categories=["absent", "r", "q", "p"], ordered=True)
    d = build_design("y ~ cat", frame(cat=cat))
    assert d.common.labels == ("cat[q]", "cat[p]")  # reference 'r', the first observed


# ---- missing values: an error by default, dropped only with dropna=True --------------------


def _holes() -> pd.DataFrame:
    data = frame()
    data.loc[1, "x"] = np.nan
    data.loc[2, "g"] = None
    data.loc[5, "x"] = np.nan
    data.loc[5, "g"] = None  # one row missing in two columns counts once
    data.loc[3, "z"] = np.nan  # a column the formula does not use
    return data


def test_missing_values_error_lists_rows_and_columns():
    with pytest.raises(DesignError, match=r"3 rows have missing values in the columns the "
                       r"formula uses: 'x' \(2\), 'g' \(2\); remove or impute them, or pass "
                       r"dropna=True"):
        Model("y ~ x + (1 | g)", _holes())


def test_dropna_drops_reports_and_counts():
    with pytest.warns(R2D2FormulaWarning, match=r"dropped 3 of 8 rows with missing values in "
                      r"'x', 'g' \(dropna=True\)") as record:
        m = Model("y ~ x + (1 | g)", _holes(), dropna=True)
    assert record[0].filename == __file__  # points at the user's line, not the library
    assert m.design.n_dropped == 3 and m.design.n_obs == 5
    # row 3 has a missing value only in the unused column 'z': it is kept
    assert m.design.row_index.tolist() == [0, 3, 4, 6, 7]
    np.testing.assert_allclose(m.design.response.values, frame()["y"].iloc[[0, 3, 4, 6, 7]])


def test_nothing_is_dropped_without_dropna():
    data = frame()
    data.loc[3, "z"] = np.nan  # unused column
    m = Model("y ~ x + (1 | g)", data)
    assert m.design.n_dropped == 0 and m.design.n_obs == 8


@pytest.mark.parametrize(("formula", "changes", "family", "message"), [
    # values that are not missing are never dropped, even with dropna=True
    ("y ~ x", {"x": [1.0, 2, np.inf, 4, 5, 6, 7, 9]}, "gaussian", "infinite values"),
    ("y ~ log(x)", {"x": [1.0, -2, 3, 4, 5, 6, 7, 9]}, "gaussian", "non-finite values"),
    ("s | trials(n) ~ x", {"n": [5, 5, 5, 3, 5, 5, 2, 0], "s": [1, 2, 3, 2, 5, 1, 1, 0]},
     "binomial", "zero trials"),
    ("k ~ x", {"k": [0, 1, 2, 3, 1, 0, 4, 2.5]}, "poisson", "integer counts"),
])
def test_dropna_drops_only_missing_values(formula, changes, family, message):
    with pytest.raises(R2D2FormulaError, match=message):
        Model(formula, frame(**changes), family=family, dropna=True)


def test_dropna_with_every_row_missing():
    with pytest.raises(DesignError, match="8 rows have missing values.*no rows are left"):
        Model("y ~ x", frame(x=np.nan), dropna=True)


def test_missing_values_in_new_data_are_an_error():
    with pytest.raises(DesignError, match=r"1 row has missing values.*'g' \(1\).*before "
                       "predicting"):
        new_data_design(_trained().design,
                        pd.DataFrame({"x": [1.0, 2.0], "cat": ["p", "q"], "g": ["a", None]}))
