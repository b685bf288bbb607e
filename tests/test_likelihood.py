"""The observation model's log density equals PyMC's, with the data-only term precomputed."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest

from r2d2formula import Model
from r2d2formula.backend.likelihood import NORMALIZER, add_likelihood, log_normalizer
from r2d2formula.families import get_family

RNG = np.random.default_rng(7)
N = 40
ETA = RNG.normal(0.3, 1.5, N)
ETA[:3] = [-25.0, 12.0, 0.0]  # extremes: saturated probabilities, large counts
TRIALS = RNG.integers(1, 12, N).astype(float)

CASES = [
    ("bernoulli", "logit"), ("bernoulli", "probit"), ("binomial", "logit"),
    ("binomial", "probit"), ("poisson", "log"), ("negativebinomial", "log"),
    ("gaussian", "identity"),
]


def _observed(family: str) -> np.ndarray:
    if family == "bernoulli":
        return RNG.integers(0, 2, N).astype(float)
    if family == "binomial":
        return np.floor(TRIALS * RNG.uniform(0, 1, N))
    if family in ("poisson", "negativebinomial"):
        return RNG.poisson(3.0, N).astype(float)
    return RNG.normal(size=N)


def _native(family: str, link: str, eta, y, aux):
    """PyMC's own distribution of the family, the reference."""
    if family == "gaussian":
        return pm.logp(pm.Normal.dist(mu=eta, sigma=aux["sigma"]), y)
    if family == "poisson":
        return pm.logp(pm.Poisson.dist(mu=pt.exp(eta)), y)
    if family == "negativebinomial":
        return pm.logp(pm.NegativeBinomial.dist(mu=pt.exp(eta), alpha=aux["alpha"]), y)
    p = pt.sigmoid(eta) if link == "logit" else 0.5 * pt.erfc(-eta / np.sqrt(2.0))
    if family == "bernoulli":
        return pm.logp(pm.Bernoulli.dist(p=p), y)
    return pm.logp(pm.Binomial.dist(n=TRIALS.astype("int64"), p=p), y)


@pytest.mark.parametrize(("family", "link"), CASES)
def test_log_density_and_gradient_match_pymc(family, link):
    fam = get_family(family, link)
    y = _observed(family)
    eta = pt.vector("eta")
    # float64 constants: pt.constant(2.5) would be float32 (PyTensor's autocast of floats)
    aux = {"sigma": pt.constant(np.float64(1.7), dtype="float64"),
           "alpha": pt.constant(np.float64(2.5), dtype="float64")}
    normalizer = log_normalizer(fam, y, TRIALS)
    with pm.Model(coords={"obs": np.arange(N)}) as model:
        add_likelihood(fam, "y", eta, aux, pt.constant(TRIALS), pt.constant(y),
                       None if normalizer is None else pt.constant(normalizer), dims="obs")
    ours = model.logp(sum=False)[0]
    native = _native(family, link, eta, pt.constant(y), aux)
    # moderate rows only for the reference: PyMC's probit p = Phi(eta) rounds to 0 or 1
    rows = np.abs(ETA) < 8 if link == "probit" else np.ones(N, bool)
    f = pytensor.function([eta], [ours, native, pt.grad(ours[rows].sum(), eta),
                                  pt.grad(native[rows].sum(), eta)])
    lp_ours, lp_native, g_ours, g_native = f(ETA)
    assert np.all(np.isfinite(lp_ours)) and np.all(np.isfinite(g_ours))
    # probit: PyMC's log Phi (normal_lcdf) is accurate to about 1e-8
    tol = 1e-7 if link == "probit" else 1e-9
    np.testing.assert_allclose(lp_ours[rows], lp_native[rows], rtol=tol, atol=tol)
    np.testing.assert_allclose(g_ours[rows], g_native[rows], rtol=100 * tol, atol=tol)


def test_log_normalizer_is_the_data_term():
    y = np.array([0.0, 1.0, 5.0])
    np.testing.assert_allclose(log_normalizer(get_family("poisson"), y, None),
                               -np.log([1.0, 1.0, 120.0]))
    np.testing.assert_allclose(log_normalizer(get_family("binomial"), y, np.array([5.0] * 3)),
                               np.log([1.0, 5.0, 1.0]))
    assert log_normalizer(get_family("bernoulli"), y, None) is None
    assert log_normalizer(get_family("gaussian"), y, None) is None


@pytest.mark.parametrize("family", ["poisson", "negativebinomial", "binomial", "bernoulli"])
def test_draws_follow_the_family(family):
    """Forward draws are PyMC's distribution of the family (prior predictive at fixed eta)."""
    fam = get_family(family)
    eta = np.full(2000, 0.7)
    trials = np.full(2000, 6.0)
    with pm.Model(coords={"obs": np.arange(2000)}):
        normalizer = log_normalizer(fam, np.zeros(2000), trials)
        y = add_likelihood(fam, "y", pt.constant(eta), {"alpha": pt.constant(2.0)},
                           pt.constant(trials), None,
                           None if normalizer is None else pt.constant(normalizer), dims="obs")
        draws = pm.draw(y, random_seed=3)
    mean = {"poisson": np.exp(0.7), "negativebinomial": np.exp(0.7),
            "binomial": 6.0 / (1.0 + np.exp(-0.7)), "bernoulli": 1.0 / (1.0 + np.exp(-0.7))}
    assert np.all(draws == np.round(draws)) and draws.min() >= 0
    assert abs(draws.mean() - mean[family]) < 4 * draws.std() / np.sqrt(2000)
    if family == "negativebinomial":  # NB2 variance mu + mu^2 / alpha, not Poisson's
        assert draws.var() > 1.5 * draws.mean()


def test_graph_holds_the_normalizer_as_row_data():
    data = pd.DataFrame({"y": [0, 1, 4, 2, 7, 3], "x": [0.1, 0.4, 1.2, 0.5, 2.0, 0.9],
                         "g": list("aabbcc")})
    graph = Model("y ~ x + (1|g)", data, family="poisson").build()
    np.testing.assert_allclose(graph[NORMALIZER].get_value(),
                               -np.log([1.0, 1.0, 24.0, 2.0, 5040.0, 6.0]))


@pytest.mark.parametrize("family", ["poisson", "binomial"])
def test_stored_log_likelihood_is_the_family_log_pmf(family):
    """The pointwise log-likelihood of a fit is scipy's log pmf at the posterior mean."""
    from scipy import stats

    rng = np.random.default_rng(5)
    n = 30
    data = pd.DataFrame({"x": rng.normal(size=n), "g": rng.choice(list("abc"), n),
                         "n": rng.integers(1, 9, n)})
    data["y"] = rng.poisson(2.0, n) if family == "poisson" else rng.binomial(data["n"], 0.4)
    formula = "y ~ x + (1|g)" if family == "poisson" else "y | trials(n) ~ x + (1|g)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = Model(formula, data, family=family).fit(
            draws=20, tune=30, chains=1, progressbar=False, sampler="pymc", random_seed=1)
        mu = fit.predict(kind="mean", summary=False)
    mu = mu.values.reshape(-1, n)  # binomial: the mean proportion
    stored = fit.idata.log_likelihood["y"].values.reshape(-1, n)
    y = data["y"].to_numpy()
    expected = (stats.poisson.logpmf(y, mu) if family == "poisson"
                else stats.binom.logpmf(y, data["n"].to_numpy(), mu))
    np.testing.assert_allclose(stored, expected, rtol=1e-8, atol=1e-10)


def test_large_log_likelihood_is_left_out_with_a_warning(monkeypatch):
    import r2d2formula.model as model_module
    from r2d2formula import NotFittedError, R2D2FormulaWarning

    monkeypatch.setattr(model_module, "LOG_LIKELIHOOD_BYTES", 1000)
    data = pd.DataFrame({"y": [0, 1, 4, 2, 7, 3, 1, 0], "x": np.linspace(-1, 1, 8)})
    model = Model("y ~ x", data, family="poisson")
    kwargs = dict(draws=30, tune=30, chains=1, progressbar=False, sampler="pymc",
                  random_seed=1)
    with pytest.warns(R2D2FormulaWarning, match="log-likelihood is not stored"):
        fit = model.fit(**kwargs)
    assert "log_likelihood" not in fit.idata.groups()
    with pytest.raises(NotFittedError, match="log_likelihood=True"):
        fit.loo()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stored = model.fit(log_likelihood=True, **kwargs)
    assert stored.idata.log_likelihood["y"].shape == (1, 30, 8)
