"""datasets.simulate_laboratory: the laboratory design with known variance shares."""

from __future__ import annotations

import math
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest

from r2d2formula import DesignError, Model, datasets
from r2d2formula.datasets.simulate import DEFAULT_SHARES, LABORATORY_COMPONENTS


def _contributions(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each component's contribution to the linear predictor, row by row, from the truth."""
    truth = df.attrs["true_parameters"]
    out = {column: truth["b"][column] * df[column].to_numpy() for column in ("age", "dose")}
    for factor in ("mouse", "microRNA", "stress"):
        out[f"1|{factor}"] = df[factor].map(truth["r"][factor]).to_numpy()
    return out


def test_columns_size_and_attrs():
    df = datasets.simulate_laboratory(n_mice=5, n_micro_rna=4, n_stress=3, n_replicates=2,
                                      random_seed=0)
    assert list(df.columns) == ["expression", "age", "dose", "mouse", "microRNA", "stress"]
    assert len(df) == 5 * 4 * 3 * 2
    assert df["mouse"].nunique() == 5 and df["microRNA"].nunique() == 4
    assert df["stress"].nunique() == 3
    assert df.groupby("mouse")["age"].nunique().eq(1).all()  # age is a property of the mouse
    assert set(df["dose"].unique()) <= {0.0, 0.5, 1.0, 2.0, 4.0}
    assert df.attrs["true_shares"] == DEFAULT_SHARES
    assert df.attrs["true_r2"] == 0.6
    assert set(df.attrs["true_parameters"]) == {"Intercept", "b", "sd", "sigma", "r"}
    assert df.attrs["formula"] == datasets.simulate.LABORATORY_FORMULA


def test_component_names_match_the_model():
    df = datasets.simulate_laboratory(random_seed=1)
    model = Model(df.attrs["formula"], df)
    assert tuple(model.components.index) == LABORATORY_COMPONENTS
    assert set(df.attrs["true_shares"]) == set(model.components.index)


@pytest.mark.parametrize("shares", [None, {"age": 0.5, "1|stress": 0.5},
                                    {"dose": 1.0}, dict.fromkeys(LABORATORY_COMPONENTS, 0.2)])
def test_shares_sum_to_one(shares):
    df = datasets.simulate_laboratory(shares=shares, random_seed=2)
    true = df.attrs["true_shares"]
    assert set(true) == set(LABORATORY_COMPONENTS)
    assert math.isclose(sum(true.values()), 1.0, abs_tol=1e-12)
    assert all(v >= 0 for v in true.values())


def test_population_shares_are_on_the_model_phi_scale():
    # phi_j W = b_j^2 s_j^2 with s_j the model's column sd: exactly the declared share of V
    df = datasets.simulate_laboratory(random_seed=3, explained_sd=2.0)
    model = Model(df.attrs["formula"], df)
    truth = df.attrs["true_parameters"]
    variance = 2.0**2
    for column in ("age", "dose"):
        scale = model.components.loc[column, "scale"]
        assert truth["b"][column] ** 2 * scale**2 == pytest.approx(
            df.attrs["true_shares"][column] * variance, rel=1e-10)
    for component, sd in truth["sd"].items():
        assert sd**2 == pytest.approx(df.attrs["true_shares"][component] * variance)
    assert truth["sigma"] ** 2 == pytest.approx(variance * (1 - 0.6) / 0.6)


@pytest.mark.parametrize("large", ["mouse", "microRNA", "stress"])
def test_huge_data_empirical_variances_match_declared_shares(large):
    # one factor with many levels at a time (the design is fully crossed)
    sizes = {"n_mice": 2, "n_micro_rna": 2, "n_stress": 2}
    sizes[{"mouse": "n_mice", "microRNA": "n_micro_rna", "stress": "n_stress"}[large]] = 6000
    shares = {"age": 0.2, "dose": 0.3, f"1|{large}": 0.5}
    df = datasets.simulate_laboratory(**sizes, n_replicates=1, shares=shares, r2=0.5,
                                      random_seed=4)
    parts = _contributions(df)
    variance = 1.0
    # sampling sd of a variance estimate from N normal draws is sqrt(2 / N) relative
    for component in ("age", "dose", f"1|{large}"):
        empirical = parts[component].var()
        assert empirical == pytest.approx(shares[component] * variance, rel=0.08), component
    shares_hat = {c: parts[c].var() for c in ("age", "dose", f"1|{large}")}
    total = sum(shares_hat.values())
    for component, value in shares_hat.items():
        assert value / total == pytest.approx(shares[component], abs=0.03)
    eta = df.attrs["true_parameters"]["Intercept"] + sum(parts.values())
    residual = df["expression"].to_numpy() - eta
    assert residual.var() == pytest.approx(1.0, rel=0.05)  # sigma^2 = V (1 - r2) / r2 = 1
    r2_hat = np.var(eta) / (np.var(eta) + residual.var())
    assert r2_hat == pytest.approx(0.5, abs=0.03)


def test_reproducible_with_seed():
    a = datasets.simulate_laboratory(random_seed=11)
    b = datasets.simulate_laboratory(random_seed=11)
    c = datasets.simulate_laboratory(random_seed=12)
    pd.testing.assert_frame_equal(a, b)
    assert a.attrs == b.attrs
    assert not np.allclose(a["expression"], c["expression"])


def test_generator_is_accepted():
    df = datasets.simulate_laboratory(random_seed=np.random.default_rng(5))
    assert len(df) == 16 * 10 * 3 * 2


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n_mice": 1}, "n_mice must be an integer >= 2"),
    ({"n_stress": 2.5}, "n_stress must be an integer >= 2"),
    ({"n_replicates": 0}, "n_replicates must be an integer >= 1"),
    ({"shares": {"age": 0.5, "weight": 0.5}}, r"unknown components \['weight'\]"),
    ({"shares": {"age": 0.5, "dose": 0.6}}, "must sum to 1"),
    ({"shares": {"age": -0.5, "dose": 1.5}}, "must be a number >= 0"),
    ({"shares": [0.5, 0.5]}, "shares must be a dict"),
    ({"r2": 1.0}, "r2 must lie strictly between 0 and 1"),
    ({"explained_sd": 0}, "explained_sd must be a positive number"),
])
def test_invalid_arguments(kwargs, match):
    with pytest.raises(DesignError, match=match):
        datasets.simulate_laboratory(**kwargs)


@pytest.mark.slow
def test_a_fit_recovers_the_shares_roughly():
    df = datasets.simulate_laboratory(n_mice=30, n_micro_rna=20, n_stress=8, n_replicates=1,
                                      random_seed=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = Model(df.attrs["formula"], df).fit(draws=500, tune=500, chains=2,
                                                  random_seed=7, progressbar=False)
    phi = fit.idata.posterior["phi"]
    for component, share in df.attrs["true_shares"].items():
        draws = phi.sel(component=component).values.ravel()
        low, high = az.hdi(draws, hdi_prob=0.99)
        assert low <= share <= high, (component, share, low, high)
    r2 = fit.idata.posterior["R2"].values.ravel()
    assert abs(r2.mean() - df.attrs["true_r2"]) < 0.05
