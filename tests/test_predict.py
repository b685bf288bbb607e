"""Predictions, predictive checks, model comparison and refits, all through the model graph."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from r2d2formula import (
    R2D2,
    DesignError,
    Model,
    Predictions,
    R2D2FormulaWarning,
    compare,
    datasets,
)
from r2d2formula.backend.pilot import pilot_data, pilot_fit

FIT = dict(draws=300, tune=300, chains=2, progressbar=False, sampler="pymc")


def _quiet_fit(model: Model, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(**{**FIT, **kwargs})


@pytest.fixture(scope="module")
def sleep_fit():
    model = Model("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))
    return _quiet_fit(model, random_seed=1)


@pytest.fixture(scope="module")
def count_data():
    rng = np.random.default_rng(3)
    n = 240
    g = rng.integers(0, 12, n)
    dose = rng.choice(["low", "mid", "high"], n)
    x = rng.normal(size=n)
    eta = 0.5 + 0.4 * x + np.where(dose == "high", 0.5, 0.0) + rng.normal(0, 0.6, 12)[g]
    return pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x": x, "dose": dose,
                         "g": [f"g{k}" for k in g]})


@pytest.fixture(scope="module")
def count_fit(count_data):
    model = Model("y ~ scale(x) + dose + (1 | g)", count_data, family="poisson")
    return _quiet_fit(model, random_seed=2)


def _stack(values: np.ndarray) -> np.ndarray:
    return values.reshape(-1, *values.shape[2:])


# ---- in-sample predictions are the posterior of mu ----------------------------------------
def test_training_predictions_equal_posterior_mu(sleep_fit):
    post = sleep_fit.idata.posterior
    design = sleep_fit.design
    days = design.common.matrix[:, 0]
    codes = design.factors["Subject"].codes
    r = post["r_Subject"].values
    mu = (post["Intercept"].values[..., None] + post["b"].values[..., 0][..., None] * days
          + r[:, :, codes, 0] + r[:, :, codes, 1] * days)
    pred = sleep_fit.predict()
    assert isinstance(pred, Predictions)
    assert pred.draws.dims == ("chain", "draw", "obs")
    np.testing.assert_allclose(pred.values, mu, rtol=1e-10, atol=1e-8)
    link = sleep_fit.predict(kind="link")
    np.testing.assert_allclose(link.values, mu, rtol=1e-10, atol=1e-8)


def test_poisson_training_predictions_and_stateful_transforms(count_fit, count_data):
    post = count_fit.idata.posterior
    design = count_fit.design
    X = design.common.matrix
    codes = design.factors["g"].codes
    eta = (post["Intercept"].values[..., None] + np.einsum("cdp,np->cdn", post["b"].values, X)
           + post["r_g"].values[:, :, codes, 0])
    np.testing.assert_allclose(count_fit.predict(kind="link").values, eta, atol=1e-8)
    np.testing.assert_allclose(count_fit.predict().values, np.exp(eta), rtol=1e-8)
    # new rows: scale(x) uses the training mean and sd, dose the training coding
    new = count_data.iloc[[5, 17, 30]].drop(columns="y").set_index(pd.Index(["a", "b", "c"]))
    pred = count_fit.predict(new, kind="link")
    assert list(pred.draws["obs"].values) == ["a", "b", "c"]
    np.testing.assert_allclose(pred.values, eta[:, :, [5, 17, 30]], atol=1e-8)


# ---- new levels -----------------------------------------------------------------------------
def _new_level_effects(fit, new, factor_sd):
    """Effects of the new levels: predictions minus population predictions (link scale)."""
    with_levels = fit.predict(new, kind="link", random_seed=11).values
    population = fit.predict(new, kind="link", group_effects=False).values
    return _stack(with_levels - population), _stack(factor_sd)


def test_new_level_sample_has_group_sd_spread(count_fit):
    new = pd.DataFrame({"x": [0.0, 0.0], "dose": ["low", "low"], "g": ["new A", "new B"]})
    effects, sd = _new_level_effects(count_fit, new, count_fit.idata.posterior["sd_g"].values)
    standardized = effects / sd[:, :1]
    # each new level's effect divided by that draw's group SD is standard normal
    for column in standardized.T:
        assert stats.kstest(column, "norm").pvalue > 0.001
    # two distinct new levels: different and independent draws
    assert not np.allclose(effects[:, 0], effects[:, 1])
    assert abs(np.corrcoef(standardized.T)[0, 1]) < 0.15


def test_new_level_rows_share_one_effect_across_chunks(count_fit):
    new = pd.DataFrame({"x": [0.1, -0.3, 1.2, 0.5], "dose": ["low", "mid", "high", "low"],
                        "g": ["new", "g1", "new", "new"]})
    whole = count_fit.predict(new, kind="link", random_seed=5).values
    chunked = count_fit.predict(new, kind="link", random_seed=5, chunk_size=1).values
    np.testing.assert_allclose(whole, chunked)
    population = count_fit.predict(new, kind="link", group_effects=False).values
    effect = whole - population
    np.testing.assert_allclose(effect[..., 0], effect[..., 2])
    np.testing.assert_allclose(effect[..., 0], effect[..., 3])


def test_new_levels_respect_block_correlation(sleep_fit):
    post = sleep_fit.idata.posterior
    new = pd.DataFrame({"Days": [0.0, 1.0], "Subject": ["new", "new"]})
    pred = sleep_fit.predict(new, kind="link", random_seed=3).values
    base = sleep_fit.predict(new, kind="link", group_effects=False).values
    effect = _stack(pred - base)
    intercept, slope = effect[:, 0], effect[:, 1] - effect[:, 0]
    sd = _stack(post["sd_Subject"].values)
    rho = _stack(post["cor_Subject"].values)[:, 0, 1]
    z0, z1 = intercept / sd[:, 0], slope / sd[:, 1]
    # the standardized pair has the posterior correlation: z1 = rho z0 + sqrt(1 - rho^2) e
    e = (z1 - rho * z0) / np.sqrt(1 - rho**2)
    assert stats.kstest(z0, "norm").pvalue > 0.001
    assert stats.kstest(e, "norm").pvalue > 0.001
    assert abs(np.corrcoef(z0, e)[0, 1]) < 0.12


def test_new_levels_zero_and_error(count_fit):
    new = pd.DataFrame({"x": [0.0], "dose": ["mid"], "g": ["unseen"]})
    zero = count_fit.predict(new, kind="link", new_levels="zero").values
    population = count_fit.predict(new, kind="link", group_effects=False).values
    np.testing.assert_allclose(zero, population)
    with pytest.raises(DesignError, match=r"'g': unseen.*new_levels='sample'"):
        count_fit.predict(new, new_levels="error")


def test_unseen_population_level_raises(count_fit):
    new = pd.DataFrame({"x": [0.0, 1.0], "dose": ["mid", "extreme"], "g": ["g1", "g2"]})
    with pytest.raises(DesignError, match=r"'dose' has levels not seen in training: extreme"):
        count_fit.predict(new)


def test_missing_column_raises(count_fit):
    with pytest.raises(DesignError, match="dose"):
        count_fit.predict(pd.DataFrame({"x": [0.0], "g": ["g1"]}))


def test_bad_arguments(count_fit):
    with pytest.raises(ValueError, match="kind must be one of"):
        count_fit.predict(kind="probability")
    with pytest.raises(ValueError, match="new_levels must be"):
        count_fit.predict(new_levels="drop")


# ---- summaries, chunks, seeds ---------------------------------------------------------------
def test_summary_and_chunked_summary_agree(count_fit, count_data):
    new = count_data.drop(columns="y").iloc[:50]
    table = count_fit.predict(new, random_seed=1).summary()
    assert list(table.columns) == ["mean", "sd", "hdi_3%", "hdi_97%"]
    assert table.index.equals(new.index)
    chunked = count_fit.predict(new, random_seed=1, summary=True, chunk_size=7)
    pd.testing.assert_frame_equal(table, chunked)
    assert (table["hdi_3%"] < table["mean"]).all() and (table["mean"] < table["hdi_97%"]).all()


def test_response_draws_reproducible(count_fit):
    new = pd.DataFrame({"x": [0.0, 2.0], "dose": ["low", "high"], "g": ["g3", "fresh"]})
    a = count_fit.predict(new, kind="response", random_seed=42).values
    b = count_fit.predict(new, kind="response", random_seed=42).values
    c = count_fit.predict(new, kind="response", random_seed=43).values
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all(a >= 0) and np.allclose(a, np.round(a))


def test_binomial_trials_from_new_data_or_one():
    cbpp = datasets.load("cbpp")
    model = Model("incidence | trials(size) ~ period + (1 | herd)", cbpp, family="binomial")
    fit = _quiet_fit(model, draws=100, tune=200, random_seed=1)
    new = cbpp.iloc[:3].drop(columns="incidence")
    with_trials = fit.predict(new, kind="response", random_seed=1).values
    assert with_trials.max() > 1
    assert np.all(with_trials <= new["size"].to_numpy())
    with pytest.warns(R2D2FormulaWarning, match="1 trial per row"):
        one = fit.predict(new.drop(columns="size"), kind="response", random_seed=1).values
    assert set(np.unique(one)) <= {0.0, 1.0}
    # the mean is the probability whatever the trials
    with pytest.warns(R2D2FormulaWarning):
        without = fit.predict(new.drop(columns="size")).values
    np.testing.assert_allclose(fit.predict(new).values, without)


# ---- predictive checks, LOO, R2 ------------------------------------------------------------
def test_posterior_and_prior_predictive(sleep_fit):
    idata = sleep_fit.sample_posterior_predictive(random_seed=1)
    ppc = idata.posterior_predictive["Reaction"]
    assert ppc.shape == (2, 300, 180)
    observed = sleep_fit.idata.observed_data["Reaction"].values
    assert abs(float(ppc.mean()) - observed.mean()) < 10
    prior = sleep_fit.model.sample_prior_predictive(draws=50, random_seed=1)
    assert prior.prior_predictive["Reaction"].shape == (1, 50, 180)
    assert {"R2", "phi", "b", "sd_Subject"} <= set(prior.prior.data_vars)


def test_bayes_r2_matches_definition(sleep_fit):
    draws = sleep_fit.bayes_r2()
    mu = _stack(sleep_fit.predict().values)
    sigma = _stack(sleep_fit.idata.posterior["sigma"].values)
    expected = mu.var(axis=1, ddof=1) / (mu.var(axis=1, ddof=1) + sigma**2)
    np.testing.assert_allclose(_stack(draws.values), expected, rtol=1e-10)
    table = sleep_fit.bayes_r2(summary=True)
    assert list(table.index) == ["bayes_R2", "R2"]
    assert 0.5 < table.loc["bayes_R2", "mean"] < 1


def test_compare_and_waic(sleep_fit):
    simpler = _quiet_fit(Model("Reaction ~ Days + (1 | Subject)", datasets.load("sleepstudy")),
                         random_seed=1)
    table = compare({"slopes": sleep_fit, "intercepts": simpler})
    assert list(table.index)[0] == "slopes"  # varying slopes fit sleepstudy far better
    waic = sleep_fit.waic()
    assert np.isfinite(waic["elpd_waic"]), list(waic.index)
    with pytest.raises(ValueError, match="at least two"):
        compare({"one": sleep_fit})


@pytest.mark.parametrize(("family", "formula"), [
    ("gaussian", "y ~ x + (1 | g)"),
    ("bernoulli", "b ~ x + (1 | g)"),
    ("binomial", "s | trials(n) ~ x + (1 | g)"),
    ("poisson", "c ~ x + (1 | g)"),
    ("negativebinomial", "c ~ x + (1 | g)"),
])
def test_loo_finite_for_every_family(family, formula):
    rng = np.random.default_rng(7)
    n, g = 80, rng.integers(0, 6, 80)
    x = rng.normal(size=n)
    eta = 0.3 * x + rng.normal(0, 0.4, 6)[g]
    data = pd.DataFrame({"x": x, "g": g.astype(str), "y": eta + rng.normal(size=n),
                         "b": rng.binomial(1, 1 / (1 + np.exp(-eta))),
                         "n": np.full(n, 5), "s": rng.binomial(5, 1 / (1 + np.exp(-eta))),
                         "c": rng.poisson(np.exp(eta + 0.5))})
    # approx="linear": a smaller graph to compile; LOO does not depend on the R2 -> W map
    prior = R2D2(approx="linear") if family != "gaussian" else None
    fit = _quiet_fit(Model(formula, data, family=family, prior=prior), draws=150, tune=200,
                     chains=1, random_seed=1)
    loo = fit.loo()
    assert np.isfinite(loo["elpd_loo"]) and np.isfinite(loo["se"])
    r2 = fit.bayes_r2().values
    assert np.all((r2 > 0) & (r2 < 1))


# ---- refits reuse the compiled model -------------------------------------------------------
def test_refit_on_new_data_reuses_graph_and_updates_data(count_data):
    model = Model("y ~ scale(x) + dose + (1 | g)", count_data, family="poisson")
    first = _quiet_fit(model, draws=150, random_seed=1)
    rng = np.random.default_rng(9)
    other = count_data.assign(x=count_data["x"] * 3 + 1, y=rng.poisson(2.0, len(count_data)))
    second = _quiet_fit(model, draws=150, random_seed=1, data=other)
    assert second.model is not model and second.model._graphs is model._graphs
    graph = second.model.build()
    np.testing.assert_allclose(graph["y_observed"].get_value(), other["y"].to_numpy())
    np.testing.assert_allclose(graph["X_scales"].get_value(), second.design.common.scales)
    # the sampling coordinates are re-tuned to the new data (its own pilot fit)
    pilot_second = pilot_data(pilot_fit(second.design, second.model.family))
    pilot_first = pilot_data(pilot_fit(first.design, first.model.family))
    assert not np.allclose(pilot_second["pilot_b_hat"], pilot_first["pilot_b_hat"])
    for name in ("pilot_b_hat", "pilot_b_prec", "pilot_r_hat_g", "pilot_beta0_hat"):
        np.testing.assert_allclose(graph[name].get_value(), pilot_second[name])
    # the new outcome has no x effect: the refit's coefficient is near zero, the first's not
    assert abs(float(second.idata.posterior["b"].sel(coef="scale(x)").mean())) < 0.15
    assert float(first.idata.posterior["b"].sel(coef="scale(x)").mean()) > 0.2
    # each fit predicts from its own data, whichever set the graph last
    np.testing.assert_allclose(first.predict().values.mean(axis=(0, 1)).sum(),
                               np.exp(first.predict(kind="link").values).mean(axis=(0, 1)).sum())
    in_sample = first.predict(kind="link").values
    post = first.idata.posterior
    codes = first.design.factors["g"].codes
    eta = (post["Intercept"].values[..., None]
           + np.einsum("cdp,np->cdn", post["b"].values, first.design.common.matrix)
           + post["r_g"].values[:, :, codes, 0])
    np.testing.assert_allclose(in_sample, eta, atol=1e-8)


def test_refit_with_other_structure_warns_and_builds_anew(count_data):
    model = Model("y ~ x + (1 | g)", count_data, family="poisson")
    model.build()
    fewer = count_data[count_data["g"] != "g0"]
    with pytest.warns(R2D2FormulaWarning, match="cannot reuse the compiled model"):
        other = model.with_data(fewer)
    assert other._graphs is not model._graphs


def test_nutpie_refit_reuses_the_compiled_model():
    pytest.importorskip("nutpie")

    def simulate(seed: int, n: int, slope: float) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        g = rng.integers(0, 5, n)
        x = rng.normal(size=n)
        return pd.DataFrame({"y": slope * x + rng.normal(0, 0.5, 5)[g] + rng.normal(size=n),
                             "x": x, "g": [f"g{k}" for k in g]})

    model = Model("y ~ x + (1 | g)", simulate(1, 100, 2.0))
    first = _quiet_fit(model, sampler="nutpie", draws=200, tune=200, random_seed=1)
    compiled = model._graphs.compiled["nutpie"]
    second = _quiet_fit(model, sampler="nutpie", draws=200, tune=200, random_seed=1,
                        data=simulate(2, 130, -1.0))
    assert second.model._graphs.compiled["nutpie"] is compiled
    # with_data hands nutpie the second data set's pilot too (its sampling coordinates)
    assert "pilot_b_hat" in compiled.shared_data
    np.testing.assert_allclose(second.model._graphs.values["pilot_b_hat"],
                               pilot_data(pilot_fit(second.design, second.model.family))["pilot_b_hat"])
    assert float(first.idata.posterior["b"].mean()) > 1.5
    assert float(second.idata.posterior["b"].mean()) < -0.5
    assert second.idata.observed_data["y"].shape == (130,)
    # and nutpie starts at the second data set's pilot fit: its initial point is the start
    # evaluated on the second data set, not the first (beta0 and log_V read the containers)
    from r2d2formula.backend.sampling import _evaluate

    shifted = simulate(3, 130, -1.0).assign(y=lambda f: f["y"] + 50.0)
    third = model.with_data(shifted)
    third.build()
    nutpie_start = third._graphs.nutpie_model().initial_point_func(0)
    expected = _evaluate(third.graph_info.start)
    assert abs(expected["beta0"] - _evaluate(model.graph_info.start)["beta0"]) > 40.0
    # nutpie jitters every coordinate by U(-1, 1); the first data set's beta0 is 40+ away
    flat = np.asarray(nutpie_start, dtype=float)
    for name in ("beta0", "log_V"):
        value = np.atleast_1d(expected[name])
        windows = np.lib.stride_tricks.sliding_window_view(flat, value.size)
        assert (np.abs(windows - value) <= 1.0).all(axis=1).any(), name
