"""Bad formulas and data give one clear error each (issue 2's list)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from r2d2formula import DesignError, FamilyError, FormulaError, FormulaSyntaxError, Model


@pytest.fixture()
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "y": [0.5, 1.2, 2.2, 3.1, 2.0, 1.1],
        "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "g": list("aabbcc"),
        "k": [0, 1, 2, 3, 1, 0],
        "s": [1, 2, 3, 4, 5, 6],
        "n": [5, 5, 5, 3, 5, 5],
    })


def test_unknown_column_names_it_and_suggests(frame):
    with pytest.raises(FormulaError, match="(?s)'xx'.*Did you mean 'x'"):
        Model("y ~ xx + (1 | g)", frame)


def test_unbalanced_parentheses_marks_the_position(frame):
    with pytest.raises(FormulaSyntaxError) as info:
        Model("y ~ x + (1 | g", frame)
    assert "^" in str(info.value)


def test_unsupported_operator(frame):
    with pytest.raises(FormulaSyntaxError):
        Model("y ~ x % g", frame)


def test_non_integer_counts_for_poisson(frame):
    with pytest.raises(FamilyError, match="non-negative integer counts"):
        Model("y ~ x", frame, family="poisson")


def test_negative_counts_for_negative_binomial(frame):
    frame["k"] = [0, -1, 2, 3, 1, 0]
    with pytest.raises(FamilyError, match="non-negative integer"):
        Model("k ~ x", frame, family="negativebinomial")


def test_bernoulli_needs_zero_one(frame):
    with pytest.raises(FamilyError, match="0s and 1s"):
        Model("k ~ x", frame, family="bernoulli")


def test_successes_above_trials(frame):
    with pytest.raises(FamilyError, match="exceed trials.*row 3"):
        Model("s | trials(n) ~ x", frame, family="binomial")


def test_binomial_without_trials(frame):
    with pytest.raises(FamilyError, match="trials"):
        Model("k ~ x", frame, family="binomial")


def test_unknown_family_and_link(frame):
    with pytest.raises(FamilyError, match="unknown family 'gamma'"):
        Model("y ~ x", frame, family="gamma")
    with pytest.raises(FamilyError, match="no link 'log'"):
        Model("k ~ x", frame, family="bernoulli", link="log")


def test_missing_values_are_an_error_unless_dropped(frame):
    frame.loc[2, "x"] = np.nan
    with pytest.raises(DesignError, match="1 row"):
        Model("y ~ x", frame)
    with pytest.warns(UserWarning, match="dropped 1 of 6 rows"):
        model = Model("y ~ x", frame, dropna=True)
    assert model.design.n_obs == 5 and model.design.n_dropped == 1


def test_data_must_be_a_dataframe():
    with pytest.raises(DesignError, match="DataFrame"):
        Model("y ~ x", {"y": [1, 2], "x": [1, 2]})


def test_intercept_only_model_has_no_components(frame):
    with pytest.raises(ValueError, match="no predictors"):
        Model("y ~ 1", frame)
