"""Recovery: posterior intervals contain the values data were simulated from."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd

from r2d2formula import Model

SETTINGS = dict(draws=500, tune=500, chains=2, random_seed=11, progressbar=False)


def _interval(fit, name, prob=0.99, **sel):
    draws = fit.idata.posterior[name].sel(**sel).values.ravel()
    return az.hdi(draws, hdi_prob=prob)


def _fit(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(**SETTINGS)


def test_gaussian_r2d2m2_crossed_factors_and_varying_slope():
    rng = np.random.default_rng(2024)
    n_g, n_h, n = 24, 12, 480
    truth = {"x1": 0.8, "x2": -0.5, "sd_g_1": 0.7, "sd_g_x1": 0.4, "sd_h": 0.5, "sigma": 1.0}
    g = rng.integers(n_g, size=n)
    h = rng.integers(n_h, size=n)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    u0 = rng.normal(0, truth["sd_g_1"], n_g)
    u1 = rng.normal(0, truth["sd_g_x1"], n_g)
    v = rng.normal(0, truth["sd_h"], n_h)
    y = (2.0 + truth["x1"] * x1 + truth["x2"] * x2 + u0[g] + u1[g] * x1 + v[h]
         + rng.normal(0, truth["sigma"], n))
    frame = pd.DataFrame({"y": y, "x1": x1, "x2": x2, "g": [f"g{i:02d}" for i in g],
                          "h": [f"h{i:02d}" for i in h]})
    fit = _fit(Model("y ~ x1 + x2 + (1 + x1 || g) + (1 | h)", frame))
    for coef in ("x1", "x2"):
        lo, hi = _interval(fit, "b", coef=coef)
        assert lo < truth[coef] < hi, coef
    for term, key in (("1", "sd_g_1"), ("x1", "sd_g_x1")):
        lo, hi = _interval(fit, "sd_g", g__term=term)
        assert lo < truth[key] < hi, key
    lo, hi = _interval(fit, "sd_h")
    assert lo < truth["sd_h"] < hi
    lo, hi = _interval(fit, "sigma")
    assert lo < truth["sigma"] < hi
    # group effects track the simulated ones
    r_g = fit.idata.posterior["r_g"].mean(("chain", "draw"))
    assert np.corrcoef(r_g.sel(g__term="1").values, u0)[0, 1] > 0.8


def test_poisson_r2d2m2():
    rng = np.random.default_rng(7)
    n_g, n = 30, 600
    truth = {"x1": 0.4, "x2": -0.3, "sd_g": 0.5}
    g = rng.integers(n_g, size=n)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    u = rng.normal(0, truth["sd_g"], n_g)
    count = rng.poisson(np.exp(0.7 + truth["x1"] * x1 + truth["x2"] * x2 + u[g]))
    frame = pd.DataFrame({"count": count, "x1": x1, "x2": x2, "g": [f"g{i}" for i in g]})
    model = Model("count ~ x1 + x2 + (1 | g)", frame, family="poisson")
    assert model.variant == "R2D2-GLMM"
    fit = _fit(model)
    for coef in ("x1", "x2"):
        lo, hi = _interval(fit, "b", coef=coef)
        assert lo < truth[coef] < hi, coef
    lo, hi = _interval(fit, "sd_g")
    assert lo < truth["sd_g"] < hi
    lo, hi = _interval(fit, "Intercept")
    assert lo < 0.7 < hi
