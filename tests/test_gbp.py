"""Tests of the generalized beta prime approximation (r2d2formula.priors.gbp)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from r2d2formula.errors import PriorSpecError
from r2d2formula.families import get_family
from r2d2formula.priors.gbp import fit_gbp, gbp_logpdf, plugin_beta0, w_of_gbp_u
from r2d2formula.priors.r2_maps import r2_of_w


def test_gbp_logpdf_is_the_law_of_the_transform():
    params = (2.0, 3.0, 1.5, 0.7)
    total, _ = integrate.quad(lambda w: np.exp(gbp_logpdf(w, *params)), 0, np.inf)
    assert total == pytest.approx(1.0, abs=1e-8)
    u = np.random.default_rng(0).beta(2.0, 3.0, 4000)
    w = w_of_gbp_u(u, params)
    cdf = np.vectorize(lambda x: integrate.quad(lambda t: np.exp(gbp_logpdf(t, *params)), 0, x)[0])
    assert stats.kstest(w, cdf).pvalue > 0.01


def test_w_of_gbp_u_pytensor_equals_numpy():
    pt = pytest.importorskip("pytensor.tensor")
    from r2d2formula.backend.xp import PYTENSOR

    u = np.array([0.1, 0.5, 0.9])
    params = (1.0, 2.0, 1.3, 0.4)
    got = w_of_gbp_u(pt.as_tensor_variable(u), params, xp=PYTENSOR).eval()
    np.testing.assert_allclose(got, w_of_gbp_u(u, params), rtol=1e-12)


@pytest.mark.parametrize(("name", "link", "aux", "n"), [
    ("poisson", None, {}, 1.0),
    ("bernoulli", "logit", {}, 1.0),
    ("binomial", "probit", {}, 10.0),
    ("negativebinomial", None, {"alpha": 2.0}, 1.0),
])
def test_fit_gbp_reproduces_the_beta_prior_on_r2(name, link, aux, n):
    fam = get_family(name, link)
    for a, b in [(1.0, 1.0), (2.0, 8.0)]:
        params = fit_gbp(fam, a, b, 0.5, n, **aux)
        u = np.random.default_rng(1).beta(params[0], params[1], 4000)
        r2 = r2_of_w(fam, w_of_gbp_u(u, params), 0.5, aux, n)
        assert stats.kstest(r2, stats.beta(a, b).cdf).statistic < 0.05


def test_fit_gbp_is_cached():
    fit_gbp.cache_clear()
    first = fit_gbp("poisson", 1.0, 1.0, 0.3)
    hits = fit_gbp.cache_info().hits
    again = fit_gbp(get_family("poisson"), 1, 1, 0.3 + 1e-15)
    assert again == first and fit_gbp.cache_info().hits == hits + 1


def test_fit_gbp_gaussian_is_exact_and_errors():
    assert fit_gbp("gaussian", 2.0, 3.0, 0.0, sigma=2.0) == (2.0, 3.0, 1.0, 4.0)
    with pytest.raises(PriorSpecError):
        fit_gbp("poisson", 0.0, 1.0, 0.0)


def test_plugin_beta0():
    assert plugin_beta0("poisson", [1, 2, 3]) == pytest.approx(np.log(2.0))
    assert plugin_beta0("poisson", [0, 0]) == pytest.approx(np.log(0.25))
    assert plugin_beta0("bernoulli", [0, 1, 1, 1]) == pytest.approx(np.log(3.0))
    assert plugin_beta0("bernoulli", [1, 1]) == pytest.approx(np.log(3.0))
    assert plugin_beta0(get_family("bernoulli", "probit"), [0, 1]) == pytest.approx(0.0)
    assert plugin_beta0("binomial", [2, 3], trials=[5, 5], offset=[1.0, 1.0]) == pytest.approx(-1.0)
    assert plugin_beta0("gaussian", [1.0, 3.0]) == pytest.approx(2.0)
