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

from r2d2formula import Model  # noqa: E402
from r2d2formula.backend import sampling  # noqa: E402
from r2d2formula.errors import DiagnosticsWarning  # noqa: E402

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
    import subprocess
    import sys

    code = (
        "import sys, r2d2formula, r2d2formula.backend\n"
        "assert 'jax' not in sys.modules, 'jax imported'\n"
        "from pytensor.link.jax.dispatch import jax_funcify\n"
        "from r2d2formula.backend.r2_map_op import LogWOfR2, LogWOfR2Grad\n"
        "assert LogWOfR2 in jax_funcify.registry and LogWOfR2Grad in jax_funcify.registry\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_jax_start_check_uses_one_jitted_log_density(small_gaussian):
    """Inside ``_adjusted_pymc_jax`` PyMC's JAX log density is compiled once by ``jax.jit``
    (same values as PyMC's op-by-op one); outside it, and after an error, PyMC's own is back."""
    import jax
    import pymc.sampling.jax as pymc_jax

    graph = Model("y ~ x1 + x2 + cat", small_gaussian).build()
    original = pymc_jax.get_jaxified_logp
    point = [np.asarray(v) for v in graph.initial_point().values()]
    with sampling._adjusted_pymc_jax():
        jitted = pymc_jax.get_jaxified_logp(graph, negative_logp=False)
        assert pymc_jax.get_jaxified_logp is not original
    assert pymc_jax.get_jaxified_logp is original
    assert hasattr(jitted, "lower")  # a jax.jit-wrapped function
    np.testing.assert_allclose(float(jitted(point)), float(original(graph, False)(point)),
                               rtol=1e-10)
    with pytest.raises(RuntimeError, match="inside"):
        with sampling._adjusted_pymc_jax():
            raise RuntimeError("inside")
    assert pymc_jax.get_jaxified_logp is original
    assert isinstance(jitted(point), jax.Array)


@pytest.mark.parametrize("name", ["_sample_numpyro_nuts", "_sample_blackjax_nuts"])
def test_jax_sampler_call_returns_computed_draws(monkeypatch, name):
    """Inside ``_adjusted_pymc_jax`` PyMC's sampler functions return their draws and stats
    unchanged, computed (JAX dispatches asynchronously, and PyMC's ``sampling_time`` ends
    when the call returns), and PyMC's own functions are back afterwards."""
    import jax
    import jax.numpy as jnp
    import pymc.sampling.jax as pymc_jax

    @jax.jit
    def slow(x):
        return jax.lax.fori_loop(0, 2000, lambda i, v: jnp.sin(v) + 1.0, x)

    def fake_sampler(**kwargs):
        return {"b": slow(jnp.ones(4))}, {"diverging": jnp.zeros(4, bool), "note": "x"}, "lib"

    monkeypatch.setattr(pymc_jax, name, fake_sampler)
    with sampling._adjusted_pymc_jax():
        wrapped = getattr(pymc_jax, name)
        assert wrapped is not fake_sampler
        draws, stats, library = wrapped(model=None)
    assert getattr(pymc_jax, name) is fake_sampler
    assert draws["b"].is_ready() and stats["diverging"].is_ready()
    np.testing.assert_allclose(draws["b"], fake_sampler()[0]["b"])
    assert stats["note"] == "x" and library == "lib"


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
    import subprocess
    import sys

    full_env = {k: v for k, v in os.environ.items()
                if k not in ("R2D2FORMULA_JAX_CACHE_DIR", "JAX_COMPILATION_CACHE_DIR",
                             "XDG_CACHE_HOME")}
    full_env.update(env)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=full_env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_next_process_loads_the_compiled_jax_programs(tmp_path):
    """By default the JAX samplers' XLA programs go to ``$XDG_CACHE_HOME/r2d2formula/jax``; a
    second process fitting the same model to the same data loads them instead of compiling
    (JAX reports cache hits) and draws the same numbers."""
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    first = _run_python(_CACHED_FIT, env)
    folder = tmp_path / "r2d2formula" / "jax"
    assert first["folder"] == str(folder)
    assert first["hits"] == 0
    written = list(folder.iterdir())
    assert len(written) >= 3  # the start check, the NUTS loop and the post-processing
    second = _run_python(_CACHED_FIT, env)
    assert second["hits"] >= len(written)
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
