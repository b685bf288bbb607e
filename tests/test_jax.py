"""The JAX samplers (numpyro, blackjax) through PyMC's JAX backend, on the CPU.

Skipped when jax, numpyro or blackjax is missing (``pip install 'r2d2formula[jax]'``).
Each fit is tiny; most of its time is XLA compilation.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("numpyro")
pytest.importorskip("blackjax")

from _interpreter import run_python  # noqa: E402

from r2d2formula import Model  # noqa: E402
from r2d2formula.backend import sampling  # noqa: E402
from r2d2formula.errors import ArgumentError, DiagnosticsWarning  # noqa: E402

TINY = dict(draws=40, tune=40, chains=2, progressbar=False, random_seed=3)


def _fit(model: Model, sampler: str):
    with warnings.catch_warnings():
        # 40 draws are too few for clean diagnostics; that is not what is tested here
        warnings.simplefilter("ignore", DiagnosticsWarning)
        warnings.simplefilter("ignore", UserWarning)
        return model.fit(sampler=sampler, **TINY)


def _check_names(fit, expected: set[str]) -> None:
    idata = fit.idata
    assert expected <= set(idata.posterior.data_vars)
    assert idata.posterior.sizes["chain"] == TINY["chains"]
    assert idata.posterior.sizes["draw"] == TINY["draws"]
    assert {"log_likelihood", "sample_stats", "observed_data"} <= set(idata.groups())
    n = fit.idata.observed_data[fit.model.graph_info.response].size
    loglik = idata.log_likelihood[fit.model.graph_info.response]
    assert loglik.shape == (TINY["chains"], TINY["draws"], n)
    assert np.isfinite(loglik.values).all()
    assert "diverging" in idata.sample_stats
    for name in expected:
        assert np.isfinite(idata.posterior[name].values).all(), name


def test_numpyro_poisson_with_the_exact_r2_map(small_gaussian):
    """The exact W map (closed form plus a Newton inverse with an implicit gradient) must
    translate to JAX: every op of the graph needs a JAX implementation."""
    model = Model("count ~ x1 + (1 | g)", small_gaussian, family="poisson")
    assert model.approx == "exact"
    fit = _fit(model, "numpyro")
    assert fit.sampler == "numpyro"
    _check_names(fit, {"Intercept", "beta0", "b", "R2", "W", "phi", "sd_g", "r_g"})
    assert list(fit.idata.posterior["phi"].coords["component"].values) == ["x1", "1|g"]
    # phi is a simplex and W follows from R2: both hold draw by draw
    np.testing.assert_allclose(fit.idata.posterior["phi"].sum("component"), 1.0, rtol=1e-6)
    assert (fit.idata.posterior["W"] > 0).all()


def test_blackjax_gaussian(small_gaussian):
    model = Model("y ~ x1 + x2 + cat", small_gaussian)
    fit = _fit(model, "blackjax")
    assert fit.sampler == "blackjax"
    _check_names(fit, {"Intercept", "b", "sigma", "R2", "W", "phi"})
    assert list(fit.idata.posterior["b"].coords["coef"].values) == [
        "x1", "x2", "cat[b]", "cat[c]",
    ]


@pytest.mark.parametrize("sampler", ["numpyro", "blackjax"])
def test_jax_fits_with_the_progress_bar(small_gaussian, sampler):
    """``fit``'s default ``progressbar=True`` works: blackjax's bar needs fastprogress (the
    ``jax`` extra installs it; without it the first update failed), and blackjax's vectorized
    chains (fewer JAX devices than chains, as here) sample without it (its host callback
    failed under ``jax.vmap``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = Model("y ~ x1", small_gaussian).fit(
            sampler=sampler, **{**TINY, "progressbar": True})
    assert np.isfinite(fit.idata.posterior["R2"].values).all()


def test_chain_method_follows_the_jax_devices():
    import jax

    devices = jax.local_device_count()
    assert sampling._jax_chain_method("numpyro", 1) == "parallel"
    assert sampling._jax_chain_method("blackjax", devices) == "parallel"
    # more chains than devices: PyMC's "parallel" would make numpyro warn and blackjax fail
    assert sampling._jax_chain_method("numpyro", devices + 1) == "sequential"
    assert sampling._jax_chain_method("blackjax", devices + 1) == "vectorized"


def test_jax_is_imported_only_when_pytensor_jax_dispatch_is():
    """Importing r2d2formula must not import JAX (a second of every start for the pymc and
    nutpie samplers); the map Op's JAX implementation is registered when PyTensor's JAX
    dispatch is imported, by PyMC's JAX sampling or by the user."""
    code = (
        "import sys, r2d2formula, r2d2formula.backend\n"
        "assert 'jax' not in sys.modules, 'jax imported'\n"
        "from pytensor.link.jax.dispatch import jax_funcify\n"
        "from r2d2formula.backend.r2_map_op import LogWOfR2, LogWOfR2Grad\n"
        "assert LogWOfR2 in jax_funcify.registry and LogWOfR2Grad in jax_funcify.registry\n"
    )
    run_python(code)


def test_jax_fit_builds_the_log_density_terms_once(monkeypatch, tmp_path, small_gaussian):
    """One ``model.logp`` call gives the sampler's log density and the pointwise
    log-likelihood (PyMC's ``sample_jax_nuts`` derives each from the model anew), and the
    start check runs the log density compiled by ``jax.jit`` (PyMC's runs it op by op)."""
    import pymc as pm
    import pymc.sampling.jax as pymc_jax

    calls = []
    original_logp = pm.Model.logp

    def counted(self, *args, **kwargs):
        calls.append(kwargs)
        return original_logp(self, *args, **kwargs)

    checked = []
    original_starts = pymc_jax._get_batched_jittered_initial_points

    def starts(**kwargs):
        checked.append(kwargs["logp_fn"])
        return original_starts(**kwargs)

    monkeypatch.setattr(pm.Model, "logp", counted)
    monkeypatch.setattr(pymc_jax, "_get_batched_jittered_initial_points", starts)
    # an empty program folder: a fit finding stored programs builds no log density at all
    monkeypatch.setenv("R2D2FORMULA_JAX_CACHE_DIR", str(tmp_path))
    graph = Model("y ~ x1 + x2 + cat", small_gaussian).build()
    calls.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata, _ = sampling.sample_model(graph, sampler="numpyro", **TINY)
    assert calls == [{"sum": False}]
    # a stored program (the test session's JAX cache folder) compiled by jax.jit; without
    # one, PyMC's conversion under jax.jit
    assert isinstance(checked[0], sampling._StoredLogDensity)
    assert hasattr(checked[0]._jitted, "lower")
    monkeypatch.setenv("R2D2FORMULA_JAX_CACHE_DIR", "off")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampling.sample_model(graph, sampler="numpyro", **TINY)
    assert hasattr(checked[1], "lower")
    assert idata.log_likelihood["y"].shape == (2, 40, len(small_gaussian))


@pytest.mark.parametrize("sampler", ["numpyro", "blackjax"])
def test_jax_post_processing_matches_pymc(small_gaussian, sampler):
    """The deterministics and the pointwise log-likelihood, computed as one JAX function of
    the raw draws, equal PyMC's own evaluation of the model at those draws."""
    import pymc as pm

    model = Model("y ~ x1 + x2 + (1 | g)", small_gaussian)
    graph = model.build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata, _ = sampling.sample_model(graph, sampler=sampler, info=model.graph_info, **TINY)
        reference = pm.compute_log_likelihood(idata.copy(), model=graph,
                                              extend_inferencedata=False, progressbar=False)
        free = [v.name for v in graph.free_RVs]
        deterministics = pm.compute_deterministics(idata.posterior[free], model=graph,
                                                   progressbar=False)
    np.testing.assert_allclose(idata.log_likelihood["y"], reference["y"], rtol=1e-8)
    for name in ("R2", "phi", "b", "r_g"):
        np.testing.assert_allclose(idata.posterior[name], deterministics[name], rtol=1e-8,
                                   atol=1e-12, err_msg=name)


@pytest.mark.parametrize("name", ["_sample_numpyro_nuts", "_sample_blackjax_nuts"])
def test_jax_sampling_time_waits_for_the_draws(monkeypatch, tmp_path, small_gaussian, name):
    """``sampling_time`` ends once the draws are computed: JAX dispatches the chains
    asynchronously, and PyMC's clock stopped at the dispatch. The sampler's output is waited
    for (``jax.block_until_ready``, which calls each leaf's ``block_until_ready``) before the
    post-processing starts."""
    import pymc.sampling.jax as pymc_jax

    events = []

    class Pending(np.ndarray):  # a stats leaf that notes when it is waited for
        def block_until_ready(self):
            events.append("waited")
            return self

    original = getattr(pymc_jax, name)

    def sampler(**kwargs):
        draws, stats, library = original(**kwargs)
        probe = np.zeros((kwargs["chains"], kwargs["draws"])).view(Pending)
        return draws, {**stats, "probe": probe}, library

    original_graph = pymc_jax.get_jaxified_graph

    def graph(*args, **kwargs):
        events.append("converted")
        return original_graph(*args, **kwargs)

    monkeypatch.setattr(pymc_jax, name, sampler)
    monkeypatch.setattr(pymc_jax, "get_jaxified_graph", graph)
    # an empty program folder: programs stored by other tests would skip the conversions
    monkeypatch.setenv("R2D2FORMULA_JAX_CACHE_DIR", str(tmp_path))
    model = Model("y ~ x1", small_gaussian)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata, _ = sampling.sample_model(model.build(), sampler=name.split("_")[2],
                                         info=model.graph_info, **TINY)
    # the log density's conversion, the wait, then the post-processing's conversion
    assert events == ["converted", "waited", "converted"]
    assert idata.posterior.attrs["sampling_time"] > 0


def test_jax_sampler_options(small_gaussian):
    """sample_jax_nuts's options reach the JAX fit (``var_names``: only those variables in
    the posterior); one it does not take is refused by name, with the list it takes."""
    model = Model("y ~ x1 + x2", small_gaussian)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata, _ = sampling.sample_model(model.build(), sampler="numpyro", info=model.graph_info,
                                         sampler_kwargs={"var_names": ["R2", "b"]}, **TINY)
    assert set(idata.posterior.data_vars) == {"R2", "b"}
    with pytest.raises(ArgumentError, match="'postprocessing_chunks'.*chain_method"):
        sampling.sample_model(model.build(), sampler="blackjax", info=model.graph_info,
                              sampler_kwargs={"postprocessing_chunks": 2}, **TINY)


_CACHED_FIT = r"""
import json, sys, warnings
warnings.filterwarnings("ignore")
import numpy as np, pandas as pd
import jax.monitoring
from r2d2formula import Model
from r2d2formula.backend.sampling import use_jax_compilation_cache
hits = []
jax.monitoring.register_event_listener(
    lambda event, **kw: hits.append(event) if event.endswith("cache_hits") else None)
rng = np.random.default_rng(0)
frame = pd.DataFrame({"x": rng.normal(size=40)})
frame["y"] = 1.0 + 0.5 * frame.x + rng.normal(size=40)
fit = Model("y ~ x", frame).fit(sampler="numpyro", draws=20, tune=20, chains=1,
                                 random_seed=5, progressbar=False)
print(json.dumps({"hits": len(hits), "folder": str(use_jax_compilation_cache()),
                  "R2": fit.idata.posterior["R2"].values.ravel().tolist()}))
"""


def _run_python(code: str, env: dict) -> dict:
    import json
    import os

    full_env = {k: v for k, v in os.environ.items()
                if k not in ("R2D2FORMULA_JAX_CACHE_DIR", "JAX_COMPILATION_CACHE_DIR",
                             "XDG_CACHE_HOME")}
    full_env.update(env)
    return json.loads(run_python(code, env=full_env).strip().splitlines()[-1])


def test_the_next_process_loads_the_compiled_jax_programs(tmp_path):
    """By default the JAX samplers' XLA programs go to ``$XDG_CACHE_HOME/r2d2formula/jax``; a
    second process fitting the same model to the same data loads them instead of compiling
    (JAX reports cache hits) and draws the same numbers."""
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    first = _run_python(_CACHED_FIT, env)
    folder = tmp_path / "r2d2formula" / "jax"
    assert first["folder"] == str(folder)
    assert first["hits"] == 0
    def compiled() -> set[str]:  # XLA's files (the converted programs are in programs/)
        return {p.name for p in folder.iterdir() if p.is_file()}

    written = compiled()
    assert len(written) >= 3  # the start check, the NUTS loop and the post-processing
    second = _run_python(_CACHED_FIT, env)
    assert compiled() == written  # nothing compiled anew
    assert second["hits"] >= 3
    assert second["R2"] == first["R2"]


def test_the_jax_cache_follows_the_users_settings(tmp_path):
    """A folder the user gave JAX is kept, with JAX's own threshold; ``off`` turns ours off."""
    code = (
        "import json, jax\n"
        "from r2d2formula.backend.sampling import use_jax_compilation_cache\n"
        "folder = use_jax_compilation_cache()\n"
        "print(json.dumps({'folder': None if folder is None else str(folder),\n"
        "                  'jax': jax.config.jax_compilation_cache_dir,\n"
        "                  'min_s': jax.config.jax_persistent_cache_min_compile_time_secs}))\n"
    )
    own = _run_python(code, {"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "mine")})
    assert own == {"folder": str(tmp_path / "mine"), "jax": str(tmp_path / "mine"),
                   "min_s": 1.0}
    off = _run_python(code, {"R2D2FORMULA_JAX_CACHE_DIR": "off"})
    assert off == {"folder": None, "jax": None, "min_s": 1.0}
    chosen = _run_python(code, {"R2D2FORMULA_JAX_CACHE_DIR": str(tmp_path / "ours")})
    assert chosen == {"folder": str(tmp_path / "ours"), "jax": str(tmp_path / "ours"),
                      "min_s": 0.0}


def test_numpyro_adapts_a_dense_mass_matrix_for_correlated_terms(monkeypatch):
    """sleepstudy's (Days | Subject): the LKJ correlation moves with the subject SDs and
    effects; numpyro gets a dense mass matrix there (43 coordinates), a diagonal one for
    independent terms, and the user's own choice wins."""
    import pymc.sampling.jax as pymc_jax

    from r2d2formula import datasets

    seen = []
    original = pymc_jax._sample_numpyro_nuts

    def spy(*args, **kwargs):  # the real sampler runs; only its NUTS arguments are noted
        seen.append(kwargs["nuts_kwargs"])  # as numpyro's NUTS gets them, PyMC's defaults in
        return original(*args, **kwargs)

    monkeypatch.setattr(pymc_jax, "_sample_numpyro_nuts", spy)
    sleep = datasets.load("sleepstudy")
    correlated = Model("Reaction ~ Days + (Days | Subject)", sleep)
    assert correlated.graph_info.correlations == ("cor_Subject_packed",)
    assert sampling._dense_mass_matrix(correlated.build(), correlated.graph_info)
    fit = _fit(correlated, "numpyro")
    assert seen[-1]["dense_mass"] is True
    assert np.isfinite(fit.idata.posterior["cor_Subject"].values).all()

    independent = Model("Reaction ~ Days + (Days || Subject)", sleep)
    assert independent.graph_info.correlations == ()
    assert not sampling._dense_mass_matrix(independent.build(), independent.graph_info)
    _fit(independent, "numpyro")
    assert seen[-1]["dense_mass"] is False  # PyMC's default

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DiagnosticsWarning)
        warnings.simplefilter("ignore", UserWarning)
        sampling.sample_model(correlated.build(), sampler="numpyro", draws=20, tune=20,
                              chains=1, progressbar=False, info=correlated.graph_info,
                              sampler_kwargs={"nuts_kwargs": {"dense_mass": False}})
    assert seen[-1]["dense_mass"] is False


def test_dense_mass_matrix_stops_at_its_coordinate_limit(small_gaussian):
    """Past DENSE_MASS_MAX_COORDINATES a dense matrix costs more per step than it saves."""
    frame = small_gaussian.copy()
    frame["many"] = [f"l{i % 40}" for i in range(len(frame))]  # 40 levels x 2 terms
    model = Model("y ~ x1 + (x1 | many)", frame)
    graph = model.build()
    assert model.graph_info.correlations
    free = {v.name for v in graph.value_vars}
    coordinates = sum(int(np.prod(s)) for n, s in graph.eval_rv_shapes().items() if n in free)
    assert coordinates > sampling.DENSE_MASS_MAX_COORDINATES
    assert not sampling._dense_mass_matrix(graph, model.graph_info)
    assert not sampling._dense_mass_matrix(graph, None)
