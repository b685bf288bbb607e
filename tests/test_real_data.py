"""Real data at default settings: no divergences, and close to lme4 where the data dominate.

Reference values (maximum likelihood / REML fits):

* sleepstudy, ``lmer(Reaction ~ Days + (Days | Subject))``, REML (lme4 documentation,
  ``?sleepstudy`` and Bates et al. 2015, J. Stat. Softw. 67(1), section 1): Intercept 251.41,
  Days 10.47, sd(Intercept) 24.74, sd(Days) 5.92, residual sd 25.59.
* radon, ``lmer(y ~ x + (1 | county))`` (Gelman & Hill 2007, section 12.4): Intercept 1.46,
  floor -0.69, sd(county) 0.33, residual sd 0.76.
* cbpp, ``glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), binomial)``
  (lme4 documentation, ``?cbpp``): Intercept -1.40, period2 -0.99, period3 -1.13,
  period4 -1.58, sd(herd) 0.64.

Posterior means under the R2D2 prior are compared with a tolerance of about one posterior sd
for coefficients and 35% for SDs (the Bayesian estimates of a few-level SD are larger than
the REML ones by design: they average over its uncertainty).
"""

from __future__ import annotations

import warnings

import pytest

from r2d2formula import Model, datasets

# each fit runs the library defaults (4 chains x 1000 draws): minutes on 2 cores
pytestmark = pytest.mark.slow

DEFAULTS = dict(random_seed=1, progressbar=False)


def _fit(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(**DEFAULTS)


def _mean(fit, name, **sel):
    return float(fit.idata.posterior[name].sel(**sel).mean())


def _sd(fit, name, **sel):
    return float(fit.idata.posterior[name].sel(**sel).std())


def _close(fit, name, reference, **sel):
    mean, sd = _mean(fit, name, **sel), _sd(fit, name, **sel)
    assert abs(mean - reference) < max(1.2 * sd, 0.05 * abs(reference)), (name, sel, mean, sd)


def test_sleepstudy():
    fit = _fit(Model("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy")))
    assert fit.diagnostics()["divergences"] == 0
    _close(fit, "Intercept", 251.41)
    _close(fit, "b", 10.47, coef="Days")
    assert _mean(fit, "sd_Subject", Subject__term="1") == pytest.approx(24.74, rel=0.35)
    assert _mean(fit, "sd_Subject", Subject__term="Days") == pytest.approx(5.92, rel=0.35)
    assert _mean(fit, "sigma") == pytest.approx(25.59, rel=0.1)


def test_radon():
    fit = _fit(Model("log_radon ~ floor + (1 | county)", datasets.load("radon")))
    assert fit.diagnostics()["divergences"] == 0
    _close(fit, "Intercept", 1.46)
    _close(fit, "b", -0.69, coef="floor")
    assert _mean(fit, "sd_county") == pytest.approx(0.33, rel=0.35)
    assert _mean(fit, "sigma") == pytest.approx(0.76, rel=0.1)


@pytest.fixture(scope="module")
def cbpp_fit():
    return _fit(Model("incidence | trials(size) ~ period + (1 | herd)", datasets.load("cbpp"),
                      family="binomial"))


def test_cbpp_binomial_with_trials(cbpp_fit):
    fit = cbpp_fit
    assert fit.variant == "R2D2-GLMM"
    _close(fit, "Intercept", -1.40)
    for coef, value in (("period[2]", -0.99), ("period[3]", -1.13), ("period[4]", -1.58)):
        _close(fit, "b", value, coef=coef)
    assert _mean(fit, "sd_herd") == pytest.approx(0.64, rel=0.35)


def test_cbpp_has_no_divergences(cbpp_fit):
    assert cbpp_fit.diagnostics()["divergences"] == 0
