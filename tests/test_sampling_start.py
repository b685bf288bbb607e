"""Where the samplers start, and PyMC's initial mass matrix.

``GraphInfo.start`` puts NUTS at the pilot fit's estimates instead of the prior's support
point; ``sampling._pymc_nuts`` fits PyMC's initial diagonal mass matrix to the log density's
curvature; ``sampling._one_blas_thread`` keeps BLAS on one thread while chains sample. None
of this changes the model: a start and a mass matrix only decide how fast NUTS adapts.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pymc as pm
import pytest
from threadpoolctl import threadpool_info

from r2d2formula import Model, datasets
from r2d2formula.backend import sampling
from r2d2formula.backend.graph import _UNIT_SCALE


@pytest.fixture(scope="module")
def many_levels() -> pd.DataFrame:
    """6,000 Poisson rows, a factor of 300 levels (SD 0.5) and one of 6 (SD 0.2)."""
    rng = np.random.default_rng(11)
    n = 6000
    frame = pd.DataFrame({"x": rng.normal(size=n),
                          "g": rng.integers(300, size=n), "h": rng.integers(6, size=n)})
    eta = (0.5 + 0.3 * frame.x + rng.normal(0, 0.5, 300)[frame.g]
           + rng.normal(0, 0.2, 6)[frame.h])
    frame["y"] = rng.poisson(np.exp(eta))
    frame["g"] = "g" + frame.g.astype(str)
    frame["h"] = "h" + frame.h.astype(str)
    return frame


def test_start_is_the_pilot_fit_and_beats_the_support_point(many_levels):
    """Whitened effects start at u = 0, log_V near the measured variances; the log density
    there is far above the one at the prior's support point."""
    m = Model("y ~ x + (1|g) + (1|h)", many_levels, family="poisson")
    graph_model, info = m.build(), m.graph_info
    assert set(info.unit_scale) == {"b_u", "r_g_u", "r_h_u"}
    start = sampling._evaluate(info.start)
    assert set(start) == {"beta0", "log_V", "b_u", "r_g_u", "r_h_u"}
    assert np.all(start["r_g_u"] == 0.0) and start["r_g_u"].shape == (300, 1)
    assert np.all(np.isfinite(start["log_V"]))
    components = list(graph_model.coords["component"])
    sd_g = np.exp(0.5 * start["log_V"][components.index("1|g")])  # intercept: Z scale 1
    assert 0.35 < sd_g < 0.7  # simulated 0.5
    logp = graph_model.compile_logp()
    support = graph_model.initial_point()
    pilot = pm.initial_point.make_initial_point_fn(model=graph_model, overrides=start,
                                                   jitter_rvs=set())(0)
    assert logp(pilot) > logp(support) + 1000.0


def test_pymc_nuts_scales_its_start_to_the_curvature():
    """A coordinate of SD 0.01 gets initial variance 1e-4 (PyMC's default: 1) and its jitter
    stays within a standard deviation; unit-scale coordinates keep variance 1, and so does a
    variable too large to measure (past ``_MAX_MEASURED`` coordinates)."""
    big = sampling._MAX_MEASURED + 1
    with pm.Model() as model:
        pm.Normal("wide", 0.0, 0.5, shape=big)
        pm.Normal("narrow", 3.0, 0.01)
        pm.Normal("z", 0.0, 1.0, shape=4)
    initvals, step, _ = sampling._pymc_nuts(model, chains=3, seed=1, target_accept=0.9,
                                         start={"narrow": np.asarray(3.0)}, unit_scale={"z"})
    assert len(initvals) == 3
    for values in initvals:
        assert 0.0 < abs(values["narrow"] - 3.0) <= 0.01  # jittered, by its own SD
        assert np.all(np.abs(values["z"]) <= 1.0)
    var = step.potential._var  # PyMC's diagonal inverse mass matrix
    assert var[:big] == pytest.approx(np.ones(big))  # wide: value variables in model order
    assert var[big] == pytest.approx(1e-4, rel=1e-3)  # narrow
    assert var[big + 1:] == pytest.approx(np.ones(4))  # z
    assert step.target_accept == 0.9


def test_pymc_start_draws_the_posterior(many_levels):
    """Sampled from the pilot start with the fitted mass matrix, the posterior finds the
    simulated SDs, and a given seed gives the same draws."""
    m = Model("y ~ x + (1|g) + (1|h)", many_levels, family="poisson")
    kwargs = dict(chains=2, draws=150, tune=150, random_seed=5, progressbar=False,
                  sampler="pymc")
    first = m.fit(**kwargs)
    assert 0.4 < float(first.idata.posterior["sd_g"].mean()) < 0.6
    assert int(first.idata.sample_stats.diverging.sum()) == 0
    again = m.fit(**kwargs)
    assert np.array_equal(first.idata.posterior["R2"].values, again.idata.posterior["R2"].values)


def test_a_start_without_finite_density_falls_back_to_the_support_points():
    with pm.Model() as model:
        pm.HalfNormal("scale", 1.0)
        pm.Normal("x", 0.0, 1.0)
    initvals, _, _ = sampling._pymc_nuts(model, chains=2, seed=3, target_accept=0.8,
                                      start={"x": np.asarray(np.inf)}, unit_scale=())
    assert all(np.isfinite(values["x"]) and abs(values["x"]) <= 1.0 for values in initvals)


def test_sampling_keeps_blas_on_one_thread():
    """Inside the limit every BLAS library runs one thread; outside, as before."""
    before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    with sampling._one_blas_thread():
        inside = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    after = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert inside and all(n == 1 for n in inside)
    assert after == before


@pytest.mark.parametrize("name,unit", [
    ("b_u", True), ("r_g_u", True), ("r_g_u1", True), ("r_g_ub", True), ("r_g_u0b", True),
    ("r_g_z0", True), ("r_g_c0", False), ("log_V", False), ("cor_g_packed", False),
    ("r_g_z1_c0", False),
])
def test_unit_scale_names(name, unit):
    assert bool(_UNIT_SCALE.fullmatch(name)) is unit


def test_chains_share_one_compiled_trace_function():
    """``pm.sample`` copies the trace it is given for every chain: each copy has draws of
    its own and the one compiled function; a fit's chains differ, as independent chains do."""
    from copy import copy

    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"x": rng.normal(size=50)})
    frame["y"] = 2.0 * frame.x + rng.normal(size=50)
    model = Model("y ~ x", frame)
    graph = model.build()
    trace = sampling._SharedFunctionTrace(model=graph, test_point=graph.initial_point())
    first, second = copy(trace), copy(trace)
    assert first.fn is trace.fn and second.fn is trace.fn
    first.setup(3, 0)
    second.setup(3, 1)
    assert len(first) == len(second) == 0 and first.samples is not second.samples
    assert first.var_shapes == trace.var_shapes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(sampler="pymc", draws=30, tune=30, chains=2, random_seed=2,
                        progressbar=False)
    r2 = fit.idata.posterior["R2"].values
    assert np.all(np.isfinite(r2)) and not np.allclose(r2[0], r2[1])


def test_correlations_start_at_the_identity_without_drawing_the_lkj():
    """A correlated block's LKJ variable starts at its support point (packed zeros: the
    identity), given as a value, so PyMC's initial-point function neither draws the LKJ
    variable (an OpFromGraph it would compile in C) nor moves the start."""
    from pytensor.compile.builders import OpFromGraph
    from pytensor.graph.traversal import applys_between

    m = Model("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))
    graph_model, info = m.build(), m.graph_info
    start = sampling._evaluate(info.start)
    assert info.correlations == ("cor_Subject_packed",)
    np.testing.assert_array_equal(start["cor_Subject_packed"], np.zeros(1))
    support = graph_model.initial_point()
    lkj_value = graph_model.rvs_to_values[graph_model["cor_Subject_packed"]].name
    np.testing.assert_allclose(
        pm.initial_point.make_initial_point_fn(model=graph_model, overrides=start,
                                               jitter_rvs=set())(0)[lkj_value],
        support[lkj_value])
    expressions = pm.initial_point.make_initial_point_expression(
        free_rvs=graph_model.free_RVs, rvs_to_transforms=graph_model.rvs_to_transforms,
        initval_strategies={graph_model[name]: value for name, value in start.items()},
        return_transformed=True)
    assert not any(isinstance(node.op, OpFromGraph) for node in applys_between([], expressions))
