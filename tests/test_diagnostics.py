"""fit.diagnostics() and the DiagnosticsWarning: each problem is found, named, and comes with
what to do (issue 8).

Each branch is triggered deterministically with a posterior built by hand
(``arviz.from_dict``) for a real model; one tiny real fit checks the whole path.
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest

from r2d2formula import Model
from r2d2formula.errors import DiagnosticsWarning
from r2d2formula.results import Fit

CHAINS, DRAWS = 4, 1000


@pytest.fixture(scope="module")
def model() -> Model:
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"x": rng.normal(size=40), "z": rng.normal(size=40),
                         "g": np.repeat(list("abcd"), 10)})
    data["y"] = data["x"] + rng.normal(size=40)
    return Model("y ~ x + z + (1 | g)", data)


def _posterior(rng, **override) -> dict:
    """Independent draws for every reported parameter (a clean posterior)."""
    draws = {
        "Intercept": rng.normal(size=(CHAINS, DRAWS)),
        "b": rng.normal(size=(CHAINS, DRAWS, 2)),
        "sigma": rng.gamma(5.0, size=(CHAINS, DRAWS)),
        "R2": rng.beta(2.0, 2.0, size=(CHAINS, DRAWS)),
        "phi": rng.dirichlet([1.0, 1.0, 1.0], size=(CHAINS, DRAWS)),
        "sd_g": rng.gamma(3.0, size=(CHAINS, DRAWS, 1)),
    }
    draws.update(override)
    return draws


def _fit(model: Model, posterior: dict, sample_stats: dict | None = None) -> Fit:
    idata = az.from_dict(
        posterior=posterior,
        sample_stats=sample_stats,
        coords={"coef": ["x", "z"], "component": ["x", "z", "1|g"], "g__term": ["1"]},
        dims={"b": ["coef"], "phi": ["component"], "sd_g": ["g__term"]},
    )
    return Fit(model=model, idata=idata, sampler="pymc")


def _stats(diverging: int = 0, treedepth: float = 0.0, key: str = "reached_max_treedepth"):
    flat = np.zeros(CHAINS * DRAWS, dtype=bool)
    flat[:diverging] = True
    depth = np.zeros(CHAINS * DRAWS, dtype=bool)
    depth[: int(round(treedepth * CHAINS * DRAWS))] = True
    return {"diverging": flat.reshape(CHAINS, DRAWS), key: depth.reshape(CHAINS, DRAWS)}


def test_clean_posterior_has_no_problems(model):
    fit = _fit(model, _posterior(np.random.default_rng(1)), _stats())
    diag = fit.diagnostics()
    assert diag["problems"] == []
    assert diag["divergences"] == 0
    assert diag["max_rhat"] < 1.01
    assert diag["min_ess_bulk"] > 2000 and diag["min_ess_tail"] > 2000
    assert diag["treedepth_saturated"] == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit.warn_diagnostics()  # nothing to warn about


def test_divergences(model):
    diag = _fit(model, _posterior(np.random.default_rng(2)), _stats(diverging=7)).diagnostics()
    assert diag["divergences"] == 7
    (problem,) = diag["problems"]
    assert problem.startswith("7 divergent transitions in 4000 draws")
    assert "target_accept=0.99" in problem and "concentration" in problem


def test_rhat_names_the_parameter(model):
    rng = np.random.default_rng(3)
    r2 = rng.beta(2.0, 2.0, size=(CHAINS, DRAWS))
    r2[0] = np.clip(r2[0] + 0.3, 0.0, 1.0)  # one chain elsewhere: chains disagree
    diag = _fit(model, _posterior(rng, R2=r2), _stats()).diagnostics()
    assert diag["max_rhat"] > 1.01 and diag["worst_rhat"] == "R2"
    problem = next(p for p in diag["problems"] if "R-hat" in p)
    assert "(at R2)" in problem and "have not converged" in problem and "tune=" in problem


def test_low_ess_bulk_and_tail_name_the_parameter(model):
    rng = np.random.default_rng(4)
    ar = np.zeros((CHAINS, DRAWS))
    for t in range(1, DRAWS):  # AR(1) with coefficient 0.99: few independent draws
        ar[:, t] = 0.99 * ar[:, t - 1] + rng.normal(size=CHAINS)
    b = rng.normal(size=(CHAINS, DRAWS, 2))
    b[..., 1] = ar
    diag = _fit(model, _posterior(rng, b=b), _stats()).diagnostics()
    assert diag["min_ess_bulk"] < 400 and diag["min_ess_tail"] < 400
    assert diag["worst_ess_bulk"] == "b[z]" and diag["worst_ess_tail"] == "b[z]"
    bulk, tail = (p for p in diag["problems"] if "effective sample size" in p)
    assert bulk.startswith("min effective sample size (bulk)") and "means" in bulk
    assert tail.startswith("min effective sample size (tail)") and "intervals" in tail
    assert "at b[z]" in bulk and "draws=" in bulk


@pytest.mark.parametrize("key", ["reached_max_treedepth", "maxdepth_reached"])  # PyMC, nutpie
def test_tree_depth_saturation(model, key):
    fit = _fit(model, _posterior(np.random.default_rng(5)), _stats(treedepth=0.05, key=key))
    diag = fit.diagnostics()
    assert diag["treedepth_saturated"] == pytest.approx(0.05)
    (problem,) = diag["problems"]
    assert problem.startswith("5% of draws hit the maximum tree depth") and "tune=" in problem


def test_tree_depth_of_the_jax_samplers(model):
    """numpyro and blackjax report the depth itself; 10 is their (and our) maximum."""
    depth = np.full((CHAINS, DRAWS), 4)
    depth[0, :400] = 10  # 10% of all draws
    fit = _fit(model, _posterior(np.random.default_rng(9)),
               {"diverging": np.zeros((CHAINS, DRAWS), dtype=bool), "tree_depth": depth})
    diag = fit.diagnostics()
    assert diag["treedepth_saturated"] == pytest.approx(0.1)
    assert any("maximum tree depth" in p for p in diag["problems"])


def test_rare_tree_depth_saturation_is_fine(model):
    fit = _fit(model, _posterior(np.random.default_rng(6)), _stats(treedepth=0.005))
    assert fit.diagnostics()["problems"] == []


def test_without_sample_stats(model):
    diag = _fit(model, _posterior(np.random.default_rng(7))).diagnostics()
    assert diag["divergences"] == 0 and diag["treedepth_saturated"] is None
    assert diag["problems"] == []


def test_warning_lists_every_problem(model):
    rng = np.random.default_rng(8)
    r2 = rng.beta(2.0, 2.0, size=(CHAINS, DRAWS))
    r2[1] = np.clip(r2[1] - 0.3, 0.0, 1.0)
    fit = _fit(model, _posterior(rng, R2=r2), _stats(diverging=3, treedepth=0.2))
    with pytest.warns(DiagnosticsWarning) as record:
        fit.warn_diagnostics()
    (warning,) = record
    message = str(warning.message)
    assert message.startswith("Sampling diagnostics: ")
    for part in ("3 divergent transitions", "R-hat", "maximum tree depth"):
        assert part in message
    assert warning.filename == __file__


def test_real_tiny_fit_warns_and_reports(model):
    small = Model("y ~ x", model.design.builder.data)
    with pytest.warns(DiagnosticsWarning, match="effective sample size") as record:
        fit = small.fit(draws=30, tune=30, chains=2, sampler="pymc", random_seed=1,
                        progressbar=False)
    assert any(w.filename == __file__ for w in record if w.category is DiagnosticsWarning)
    diag = fit.diagnostics()
    assert isinstance(diag["divergences"], int)
    assert diag["min_ess_bulk"] < 400
    assert isinstance(diag["treedepth_saturated"], float)
    assert diag["problems"] and all(isinstance(p, str) for p in diag["problems"])
