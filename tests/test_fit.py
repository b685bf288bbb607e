"""Fitting: names and coordinates of the InferenceData, tables, samplers."""

from __future__ import annotations

import numpy as np
import pytest

from r2d2formula import Model, SamplerError
from r2d2formula.errors import ArgumentError

FAST = dict(draws=150, tune=150, chains=2, random_seed=3, progressbar=False)


@pytest.fixture(scope="module")
def crossed_fit(small_gaussian):
    model = Model("y ~ x1 + cat + (1 + x1 | g) + (1 | h)", small_gaussian)
    with pytest.warns(Warning):  # too few draws for the diagnostics: a warning is expected
        return model.fit(sampler="pymc", **FAST)


def test_names_and_coords_follow_the_spec(crossed_fit):
    post = crossed_fit.idata.posterior
    for name in ("Intercept", "beta0", "b", "sigma", "R2", "W", "phi", "sd_g", "r_g", "cor_g",
                 "sd_h", "r_h"):
        assert name in post, name
    assert list(post["b"]["coef"].values) == ["x1", "cat[b]", "cat[c]"]
    assert list(post["phi"]["component"].values) == ["x1", "cat[b]", "cat[c]", "1|g", "x1|g",
                                                     "1|h"]
    assert post["sd_g"].dims[-1] == "g__term"
    assert list(post["sd_g"]["g__term"].values) == ["1", "x1"]
    assert post["r_g"].dims[-2:] == ("g", "g__term")
    assert list(post["r_g"]["g"].values) == [f"g{i}" for i in range(6)]
    assert post["cor_g"].dims[-2:] == ("g__term", "g__term_bis")
    assert "cor_h" not in post
    np.testing.assert_allclose(post["phi"].sum("component"), 1.0, atol=1e-8)
    # the reported intercept is on the original predictor scale
    means = crossed_fit.design.common.means
    expected = post["beta0"] - (post["b"] * means).sum("coef")
    np.testing.assert_allclose(post["Intercept"], expected, rtol=1e-8)


def test_log_likelihood_and_data_groups(crossed_fit):
    idata = crossed_fit.idata
    assert "log_likelihood" in idata.groups()
    ll = idata.log_likelihood["y"]
    assert ll.shape[-1] == 60
    assert np.isfinite(ll.values).all()
    assert "observed_data" in idata.groups()


def test_summary_and_variance_decomposition(crossed_fit):
    summary = crossed_fit.summary()
    assert "R2" in summary.index and "phi[1|g]" in summary.index
    assert "cor_g[1, x1]" in summary.index
    assert "cor_g[x1, 1]" not in summary.index and "cor_g[1, 1]" not in summary.index
    assert not any(label.endswith("_z") or "_z[" in label for label in summary.index)
    decomposition = crossed_fit.variance_decomposition()
    assert list(decomposition.index) == ["x1", "cat[b]", "cat[c]", "1|g", "x1|g", "1|h"]
    assert decomposition["phi_mean"].sum() == pytest.approx(1.0, abs=1e-6)
    assert (decomposition["phi_R2_mean"] <= decomposition["phi_mean"]).all()
    assert {"phi_hdi_3%", "phi_hdi_97%"} <= set(decomposition.columns)


def test_diagnostics_report_problems_as_data(crossed_fit):
    diagnostics = crossed_fit.diagnostics()
    assert set(diagnostics) >= {"divergences", "max_rhat", "min_ess_bulk", "problems"}
    # 300 draws in all cannot reach the ESS bar
    assert any("effective sample size" in p for p in diagnostics["problems"])


def test_repr_mentions_variant_and_components(crossed_fit):
    text = repr(crossed_fit)
    assert "R2D2M2" in text and "1|g" in text and "divergences" in text


@pytest.mark.parametrize(
    "formula, family, link",
    [
        ("count ~ x1 + (1 | g)", "poisson", None),
        ("count ~ x1", "negativebinomial", None),
        ("binary ~ x1 + (1 | g)", "bernoulli", "probit"),
    ],
)
def test_glm_families_sample_with_the_exact_map(small_gaussian, formula, family, link):
    model = Model(formula, small_gaussian, family=family, link=link)
    with pytest.warns(Warning):
        fit = model.fit(sampler="pymc", **FAST)
    post = fit.idata.posterior
    assert np.isfinite(post["W"]).all() and np.isfinite(post["R2"]).all()
    assert "log_likelihood" in fit.idata.groups()
    if family == "negativebinomial":
        assert "alpha" in post


def test_unknown_and_missing_samplers(small_gaussian):
    model = Model("y ~ x1", small_gaussian)
    with pytest.raises(SamplerError, match="choose one of"):
        model.fit(sampler="stan")
    import importlib.util

    if importlib.util.find_spec("numpyro") is None:
        with pytest.raises(SamplerError, match="pip install"):
            model.fit(sampler="numpyro")


@pytest.mark.parametrize("bad", [{"draws": 0}, {"chains": -1}, {"target_accept": 1.5}])
def test_bad_fit_arguments(small_gaussian, bad):
    with pytest.raises(ValueError):
        Model("y ~ x1", small_gaussian).fit(**bad)


def test_sampler_kwargs_reach_the_sampler(small_gaussian):
    """fit passes sampler_kwargs on to the sampler (here pm.sample's callback, called once
    per draw and chain) and refuses those that repeat its own arguments."""
    model = Model("y ~ x1", small_gaussian)
    seen = []
    model.fit(sampler="pymc", draws=15, tune=10, chains=1, progressbar=False, random_seed=1,
              log_likelihood=False,
              sampler_kwargs={"callback": lambda trace, draw: seen.append(draw.tuning)})
    assert seen.count(False) == 15 and seen.count(True) == 10
    with pytest.raises(ArgumentError, match="'draws'.*pass them to fit itself"):
        model.fit(sampler_kwargs={"draws": 10})
