"""Samplers behind one call: nutpie, PyMC's NUTS, numpyro and blackjax.

Every sampler returns an ``arviz.InferenceData`` with the posterior, sample stats, observed
data and the pointwise log-likelihood (so ``arviz.loo`` works).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import time
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import pymc as pm
from pymc.backends.ndarray import NDArray
from pytensor.tensor.variable import TensorVariable

from r2d2formula.backend.graph import GraphInfo
from r2d2formula.backend.jax_programs import (
    exported_program,
    model_fingerprint,
    program_folder,
    program_key,
    run_chains,
    settings_token,
)
from r2d2formula.backend.startup import blas_flags_known, no_node_tracebacks
from r2d2formula.errors import ArgumentError, SamplerError

__all__ = ["SAMPLERS", "DEFAULT_SAMPLER", "sample_model", "sample_prior", "check_sampler",
           "compile_nutpie"]

SAMPLERS = ("nutpie", "pymc", "numpyro", "blackjax")
#: Chosen by measurement, see benchmarks/README.md.
DEFAULT_SAMPLER = "pymc"

_REQUIREMENTS = {
    "nutpie": ("nutpie",),
    "pymc": (),
    "numpyro": ("numpyro", "jax"),
    "blackjax": ("blackjax", "jax"),
}


def check_sampler(sampler: str) -> None:
    """Raise :class:`SamplerError` if ``sampler`` is unknown or its package is missing."""
    if sampler not in SAMPLERS:
        raise SamplerError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    missing = [pkg for pkg in _REQUIREMENTS[sampler] if importlib.util.find_spec(pkg) is None]
    if missing:
        extra = " (or: pip install 'r2d2formula[jax]')" if sampler in ("numpyro", "blackjax") else ""
        raise SamplerError(
            f"sampler {sampler!r} needs {', '.join(missing)}, which is not installed; run "
            f"'pip install {' '.join(missing)}'{extra}, or use sampler='pymc'"
        )


def _seed(random_seed: int | None) -> int:
    if random_seed is None:
        return int(np.random.default_rng().integers(2**31 - 1))
    return int(random_seed)


#: what sample_model sets itself in the samplers' calls (``sampler_kwargs`` may not repeat it)
_OWN_ARGUMENTS = frozenset({
    "draws", "tune", "chains", "cores", "target_accept", "random_seed", "seed",
    "progressbar", "progress_bar", "model", "log_likelihood", "idata_kwargs", "nuts_sampler",
    "compute_convergence_checks", "compile_kwargs",
})


def sample_model(
    model: pm.Model,
    *,
    sampler: str = DEFAULT_SAMPLER,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    cores: int | None = None,
    target_accept: float = 0.95,
    random_seed: int | None = None,
    progressbar: bool = True,
    compiled: object | None = None,
    log_likelihood: bool = True,
    sampler_kwargs: Mapping[str, Any] | None = None,
    info: GraphInfo | None = None,
) -> tuple[az.InferenceData, object | None]:
    """Sample ``model`` with the chosen sampler.

    Parameters
    ----------
    model : pymc.Model
    sampler : {"nutpie", "pymc", "numpyro", "blackjax"}
    draws, tune, chains : int
        Posterior draws and tuning steps per chain, and the number of chains.
    cores : int, optional
        Parallel chains for nutpie and pymc (default: up to 2 for pymc, nutpie's own
        default otherwise). The JAX samplers run chains in parallel over JAX devices: see
        Notes.
    target_accept : float
    random_seed : int, optional
    progressbar : bool
    compiled : object, optional
        A compiled nutpie model of ``model`` from an earlier call (skips compilation).
    log_likelihood : bool, default True
        Add the pointwise log-likelihood group (needed by ``arviz.loo``). It holds
        chains x draws x observations numbers: 16 GB for 2,000 draws of a million rows, so
        large-data fits should turn it off.
    sampler_kwargs : mapping, optional
        Extra keyword arguments for the sampler: ``pm.sample`` for pymc (for example
        ``callback``), ``nutpie.sample`` for nutpie, and
        for numpyro and blackjax the options of ``pymc.sampling.jax.sample_jax_nuts`` listed
        in :data:`JAX_SAMPLER_OPTIONS` (for example ``chain_method``, or
        ``nuts_kwargs={"dense_mass": False}``); another raises an ``ArgumentError``. Passing
        ``step``, ``init`` or ``initvals`` to pymc replaces the start described in Notes. A
        key that repeats one of this function's own arguments raises an ``ArgumentError``.
    info : GraphInfo, optional
        The graph's :class:`~r2d2formula.backend.graph.GraphInfo`, from
        :func:`~r2d2formula.backend.graph.build_model`: where every sampler starts
        (``info.start``) and PyMC's initial mass matrix (``info.unit_scale``). Without it the
        samplers start as PyMC and nutpie do by default.

    Notes
    -----
    Every sampler starts from ``info.start`` (the pilot fit's estimates) instead of the prior's
    support point, and PyMC's NUTS from an initial mass matrix fitted to the model instead of
    the identity (:func:`_pymc_nuts`): the variables of ``info.unit_scale`` get variance 1,
    every other coordinate the inverse of the log density's curvature at the start. On a
    million-row Poisson model the support point and the identity held the first adaptation
    window at steps of 0.0004 to 0.02 and trees of 255 leapfrog steps (the log variance of a
    10,000-level factor has a posterior standard deviation of 0.02); see benchmarks/README.md.

    numpyro and blackjax run through PyMC's JAX backend (the steps of
    ``pymc.sampling.jax.sample_jax_nuts`` with less fixed cost: :func:`_sample_jax`) on JAX's
    default device (a GPU where jax finds one). Chains run in parallel when JAX has
    a device for each (``chain_method="parallel"``); on a CPU that means starting Python
    with ``XLA_FLAGS=--xla_force_host_platform_device_count=<chains>`` (set before jax is
    imported). Otherwise numpyro draws the chains one after another and blackjax vectorizes
    them, without its progress bar (a host callback that ``jax.vmap`` cannot batch). The log-likelihood is computed in JAX too. Their compiled XLA programs are kept on
    disk for the next process (:func:`use_jax_compilation_cache`), and so are the converted
    programs (log density, the sampler's loop over parallel chains, post-processing:
    :mod:`r2d2formula.backend.jax_programs`), which a fit of the same model on the same data
    finds instead of building them again. numpyro adapts a dense mass
    matrix for models with correlated group-level terms of up to
    :data:`DENSE_MASS_MAX_COORDINATES` coordinates (:func:`_dense_mass_matrix`), a diagonal
    one otherwise.

    Returns
    -------
    idata : arviz.InferenceData
        With ``posterior``, ``sample_stats``, ``observed_data``, ``constant_data`` and
        (unless ``log_likelihood=False``) ``log_likelihood``.
    compiled : object or None
        The compiled nutpie model, reusable for another fit of the same structure.
    """
    check_sampler(sampler)
    repeated = sorted(set(sampler_kwargs or {}) & _OWN_ARGUMENTS)
    if repeated:
        raise ArgumentError(
            f"sampler_kwargs repeats fit's own argument(s) {', '.join(map(repr, repeated))}: "
            "pass them to fit itself (or to sample_model)")
    unknown = (sorted(set(sampler_kwargs or {}) - set(JAX_SAMPLER_OPTIONS))
               if sampler in ("numpyro", "blackjax") else [])
    if unknown:
        raise ArgumentError(
            f"sampler_kwargs {', '.join(map(repr, unknown))} not understood by the {sampler} "
            f"sampler; it takes {', '.join(JAX_SAMPLER_OPTIONS)}")
    seed = _seed(random_seed)
    extra = dict(sampler_kwargs or {})
    # compilation's graph rewrites make thousands of variables: no traceback for each
    with no_node_tracebacks():
        if sampler == "nutpie":
            import nutpie

            if compiled is None:
                compiled = compile_nutpie(model, info)
            with _one_blas_thread():
                idata = nutpie.sample(
                    compiled, draws=draws, tune=tune, chains=chains, cores=cores, seed=seed,
                    target_accept=target_accept, progress_bar=progressbar, save_warmup=False,
                    **extra,
                )
            return _add_groups(idata, model, log_likelihood), compiled
        kwargs = dict(draws=draws, tune=tune, chains=chains, random_seed=seed,
                      target_accept=target_accept, progressbar=progressbar, model=model)
        start = _evaluate(info.start) if info is not None else {}
        unit_scale = info.unit_scale if info is not None else ()
        if sampler == "pymc":
            with _one_blas_thread():
                if not {"step", "init", "initvals"} & set(extra):
                    extra["initvals"], extra["step"], first = _pymc_nuts(
                        model, chains=chains, seed=seed, target_accept=target_accept,
                        start=start, unit_scale=unit_scale)
                    del kwargs["target_accept"]  # the step has it; pm.sample refuses both
                    if not {"trace", "var_names"} & set(extra):
                        extra["trace"] = _SharedFunctionTrace(model=model, test_point=first)
                blas_flags_known()  # before the chains fork
                idata = pm.sample(cores=cores or min(chains, 2), compute_convergence_checks=False,
                                  compile_kwargs=_pymc_compile_kwargs(), **kwargs, **extra)
        else:
            extra.setdefault("chain_method", _jax_chain_method(sampler, chains))
            if sampler == "numpyro" and _dense_mass_matrix(model, info):
                extra["nuts_kwargs"] = {"dense_mass": True, **(extra.get("nuts_kwargs") or {})}
            if start:
                extra.setdefault("initvals", start)
            use_jax_compilation_cache()
            idata = _sample_jax(model, sampler=sampler, draws=draws, tune=tune, chains=chains,
                                target_accept=target_accept, random_seed=seed,
                                progressbar=progressbar, log_likelihood=log_likelihood,
                                options=extra)
        return _add_groups(idata, model, log_likelihood), None


#: Most unconstrained coordinates for numpyro's dense mass matrix (see :func:`_dense_mass_matrix`).
DENSE_MASS_MAX_COORDINATES = 64


def _dense_mass_matrix(model: pm.Model, info: GraphInfo | None) -> bool:
    """Whether numpyro adapts a dense mass matrix: for models with correlated group-level
    terms and at most :data:`DENSE_MASS_MAX_COORDINATES` coordinates.

    The LKJ correlation of a ``(x | g)`` term is tied to the term's SDs and standardized
    effects, a posterior correlation a diagonal mass matrix cannot follow. On sleepstudy's
    ``(Days | Subject)`` (43 coordinates) a dense one halved the leapfrog steps per draw (30
    to 15-17) and raised the minimum bulk ESS from 1615-1808 to 2264-2836 (seeds 1-3, 4 x 1000
    draws). Its cost grows as the square of the coordinates: numpyro's steps took 35-38 us per core
    with a diagonal matrix at 43 to 102 coordinates, and 58, 78 and 156 us with a dense one
    at 43, 64 and 102 (``benchmarks/README.md``), so larger models keep the diagonal one.
    blackjax's dense adaptation cost three times as much per step on sleepstudy, which ate
    its gain; it stays diagonal.
    """
    if info is None or not info.correlations:
        return False
    # the free variables' sizes (our transforms keep them), evaluated as the start is:
    # model.eval_rv_shapes compiled a C function, 0.3 s of every such fit
    sizes = _evaluate({rv.name: rv.size for rv in model.free_RVs})
    return sum(int(size) for size in sizes.values()) <= DENSE_MASS_MAX_COORDINATES


class _SharedFunctionTrace(NDArray):
    """PyMC's in-memory trace, with one compiled function for all chains.

    ``pm.sample`` builds a trace per chain, and each ``NDArray`` compiles its own function
    from the value variables to the traced variables (0.8 s each on sleepstudy: 3.4 s of
    set-up for 4 chains). Given a trace, ``pm.sample`` copies it for every chain instead;
    this copy is a fresh ``NDArray`` (empty draws of its own) that reuses the compiled
    function, the shapes and the dtypes.
    """

    def __copy__(self) -> NDArray:
        return NDArray(model=self.model, vars=self.vars, fn=self.fn,
                       var_shapes=self.var_shapes, var_dtypes=self.var_dtypes)


def _one_blas_thread():
    """BLAS on one thread while chains sample (each chain is a process or a thread of its own).

    OpenBLAS (NumPy's and SciPy's) otherwise starts a thread per core for every vector
    operation past a size, in every chain: measured on a 200,000-row model of 11,060
    parameters, PyMC's leapfrog step took 27 ms instead of 6.5 ms. PyMC's own limit
    (``blas_cores``) is switched off where chains fork (pymc#7354), Linux's default; a limit
    set here, before the fork, is inherited by the chains.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def compile_nutpie(model: pm.Model, info: GraphInfo | None = None):
    """nutpie's compiled model of ``model``, starting where ``info.start`` says (see
    :func:`sample_model`); reusable for refits of the same structure (``with_data``).

    The start's expressions of the graph's data (the intercept and ``log_V`` from the pilot
    containers) stay symbolic: nutpie evaluates them through PyMC's initial-point function,
    which reads the graph's data containers at each fit, so a refit whose data are set into
    the graph starts at its own pilot fit rather than the first data set's.
    """
    import nutpie

    start = dict(info.start) if info is not None else {}
    with no_node_tracebacks():
        return nutpie.compile_pymc_model(model, initial_points=start or None)


def _evaluate(start: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The start values, expressions of the graph's data evaluated at the data set now in.

    Evaluated by PyTensor's Python linker: these are a few small array expressions, and
    ``FAST_COMPILE`` still linked C code, whose module cache it loaded first (0.37 s of every
    fit of sleepstudy against 0.035 s; the JAX samplers compile nothing else in C).
    """
    import pytensor
    from pytensor.compile.mode import Mode
    from pytensor.graph.basic import Variable

    values = {name: value for name, value in start.items() if not isinstance(value, Variable)}
    symbolic = {name: value for name, value in start.items() if isinstance(value, Variable)}
    if symbolic:
        out = pytensor.function([], list(symbolic.values()),
                                mode=Mode(linker="py", optimizer="fast_compile"))()
        values.update(zip(symbolic, out, strict=True))
    return {name: np.asarray(value, dtype=float) for name, value in values.items()}


#: at most this many coordinates outside ``unit_scale`` get a measured initial variance
_MAX_MEASURED = 256


def _pymc_nuts(model: pm.Model, *, chains: int, seed: int, target_accept: float,
               start: Mapping[str, np.ndarray],
               unit_scale: Collection[str]) -> tuple[list[dict], pm.NUTS, dict]:
    """Per-chain initial values and a NUTS step whose initial diagonal mass matrix fits the
    model (PyMC's own ``jitter+adapt_diag`` starts from the identity), and the first chain's
    start on the value variables' (transformed) scale.

    The start is the model's initial point with ``start`` (:attr:`GraphInfo.start`) in place
    of those variables' support points. The initial variance of a coordinate is 1 for the
    variables of ``unit_scale`` (NUTS coordinates built to be close to standard normal) and
    ``1 / H_ii`` elsewhere, ``H_ii`` the curvature of the negative log density at the start
    (central differences of the gradient, two gradients per coordinate; 1 where it is not
    positive; variables are measured smallest first up to ``_MAX_MEASURED`` coordinates in
    all, larger ones such as centered effects of many levels keep 1). Each chain starts at
    the start jittered by ``U(-1, 1)`` standard deviations of that mass matrix (PyMC jitters by
    ``U(-1, 1)`` whatever the scale, which throws a coordinate with standard deviation 0.02
    fifty deviations away). The mass matrix then adapts as PyMC's always does
    (``QuadPotentialDiagAdapt``, initial weight 10).
    """
    import pytensor
    from pymc.blocking import DictToArrayBijection, RaveledVars
    from pymc.initial_point import make_initial_point_fn
    from pymc.step_methods.hmc.quadpotential import QuadPotentialDiagAdapt

    def initial(overrides):
        point = make_initial_point_fn(model=model, overrides=overrides, jitter_rvs=set())(seed)
        return {v.name: point[v.name] for v in model.value_vars}

    point = initial(dict(start))
    # the start gives the shapes (PyMC would evaluate the model's initial point again for them)
    func = model.logp_dlogp_function(ravel_inputs=True, initial_point=point,
                                     **_pymc_compile_kwargs())
    func.trust_input = True
    q0, layout = DictToArrayBijection.map(point)
    if start and not _finite(func, q0):  # a pilot gone wrong: the support points, as PyMC
        q0, layout = DictToArrayBijection.map(initial({}))
    var = np.ones(q0.size)
    rv_of_value = {model.rvs_to_values[rv].name: rv.name for rv in model.free_RVs}
    blocks, offset = [], 0  # (size, coordinates) of each variable outside unit_scale
    for name, _, size, _ in layout:
        if rv_of_value[name] not in unit_scale:
            blocks.append((size, list(range(offset, offset + size))))
        offset += size
    measured: list[int] = []
    for size, coords in sorted(blocks, key=lambda block: block[0]):  # smallest first
        if len(measured) + size <= _MAX_MEASURED:
            measured.extend(coords)
    var[measured] = _inverse_curvature(func, q0, measured)
    rng = np.random.default_rng(seed)
    points = [_jittered(func, q0, np.sqrt(var), rng) for _ in range(chains)]
    potential = QuadPotentialDiagAdapt(q0.size, np.mean(points, axis=0), var, 10,
                                       rng=np.random.default_rng(rng.integers(2**31)))
    by_value = [DictToArrayBijection.rmap(RaveledVars(q, layout)) for q in points]
    step = pm.NUTS(potential=potential, model=model, target_accept=target_accept,
                   rng=np.random.default_rng(rng.integers(2**31)), initial_point=by_value[0],
                   logp_dlogp_func=func)
    # pm.sample takes initial values on the variables' own scale: map the sampler's
    # (transformed) coordinates back through the model's transforms
    constrained = pytensor.function(model.value_vars, model.replace_rvs_by_values(model.free_RVs),
                                    on_unused_input="ignore", mode="FAST_COMPILE")
    initvals = []
    for values in by_value:
        out = constrained(*[values[v.name] for v in model.value_vars])
        initvals.append({rv.name: value for rv, value in zip(model.free_RVs, out, strict=True)})
    return initvals, step, by_value[0]


def _inverse_curvature(func, start: np.ndarray, coords: list[int]) -> np.ndarray:
    """``1 / H_ii`` for the negative log density's curvature at ``start``, clipped to
    [1e-8, 100] (1 where the curvature is not positive and finite)."""
    out = np.ones(len(coords))
    for k, i in enumerate(coords):
        step = 1e-4 * max(1.0, abs(start[i]))
        grads = []
        for sign in (1.0, -1.0):
            q = start.copy()
            q[i] += sign * step
            grads.append(func([q], extra_vars={})[1][i])
        curvature = -(grads[0] - grads[1]) / (2.0 * step)
        if np.isfinite(curvature) and curvature > 0:
            out[k] = np.clip(1.0 / curvature, 1e-8, 100.0)
    return out


def _finite(func, q: np.ndarray) -> bool:
    """Whether the log density and its gradient are finite at ``q``."""
    logp, grad = func([q], extra_vars={})
    return bool(np.isfinite(logp) and np.all(np.isfinite(grad)))


def _jittered(func, start: np.ndarray, sd: np.ndarray, rng: np.random.Generator,
              retries: int = 10) -> np.ndarray:
    """``start + U(-1, 1) sd`` at a point where the log density and its gradient are finite
    (``start`` itself after ``retries`` failures, as PyMC's jitter)."""
    for _ in range(retries):
        q = start + rng.uniform(-1.0, 1.0, size=start.size) * sd
        if _finite(func, q):
            return q
    return start.copy()


def _jax_chain_method(sampler: str, chains: int) -> str:
    """Chains in parallel over JAX devices when there is one for each; else numpyro's
    sequential chains (faster than vectorized NUTS on a CPU, where vectorized chains wait for
    the longest trajectory) and blackjax's vectorized ones (PyMC offers it no other)."""
    import jax

    if chains <= 1 or jax.local_device_count() >= chains:
        return "parallel"
    return "sequential" if sampler == "numpyro" else "vectorized"


#: Environment variable: where JAX's compiled programs are kept between processes, or ``off``.
JAX_CACHE_ENV = "R2D2FORMULA_JAX_CACHE_DIR"


def jax_cache_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """The folder r2d2formula gives JAX's persistent compilation cache, or None for none.

    ``$R2D2FORMULA_JAX_CACHE_DIR`` when set (``off`` turns the cache off), else
    ``r2d2formula/jax`` under ``$XDG_CACHE_HOME`` (default ``~/.cache``).

    Examples
    --------
    >>> from r2d2formula.backend.sampling import jax_cache_dir
    >>> jax_cache_dir({"XDG_CACHE_HOME": "/tmp/cache"}).as_posix()
    '/tmp/cache/r2d2formula/jax'
    >>> jax_cache_dir({"R2D2FORMULA_JAX_CACHE_DIR": "off"}) is None
    True
    """
    environ = os.environ if environ is None else environ
    chosen = environ.get(JAX_CACHE_ENV)
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "off") else Path(chosen)
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "r2d2formula" / "jax"


def use_jax_compilation_cache() -> Path | None:
    """Keep the JAX samplers' compiled XLA programs on disk, for the next process.

    PyMC's JAX samplers compile the log density, numpyro's or blackjax's NUTS loop and the
    post-processing with XLA in every process: 5 to 6 s of a 17 s fit of benchmark model 1
    (500 x 50) on a CPU. JAX can keep compiled programs on disk (its persistent compilation
    cache), which PyTensor's and numba's caches already do for the pymc and nutpie samplers.
    Where JAX has no cache folder of its own (``jax_compilation_cache_dir``, or
    ``$JAX_COMPILATION_CACHE_DIR``), this gives it :func:`jax_cache_dir` and caches every
    program (``jax_persistent_cache_min_compile_time_secs = 0``; JAX's default of 1 s would
    skip the start check and the post-processing). JAX's settings are global: the user's own
    ``jax.jit`` programs in this process are cached there too. A folder the user gave JAX is
    left as it is, with its settings.

    PyMC writes the data into the JAX program as constants, so a later fit finds its
    programs only for the same model on the same data (a re-run notebook, a benchmark); other
    data compile again.

    Returns
    -------
    pathlib.Path or None
        The cache folder JAX uses, or None when the cache is off.
    """
    import jax

    configured = jax.config.jax_compilation_cache_dir
    if configured:
        return Path(configured)
    folder = jax_cache_dir()
    if folder is None:
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return folder


#: ``sampler_kwargs`` the numpyro and blackjax fits understand (those of PyMC's
#: ``sample_jax_nuts`` that :func:`sample_model` does not set itself)
JAX_SAMPLER_OPTIONS = ("chain_method", "nuts_kwargs", "jitter", "initvals", "var_names",
                       "keep_untransformed", "postprocessing_backend", "quiet")


def _sample_jax(model: pm.Model, *, sampler: str, draws: int, tune: int, chains: int,
                target_accept: float, random_seed: int, progressbar: bool,
                log_likelihood: bool, options: Mapping[str, Any]) -> az.InferenceData:
    """numpyro's or blackjax's NUTS through PyMC's JAX backend.

    The steps of ``pymc.sampling.jax.sample_jax_nuts`` (its JAX log density, its jittered
    starts, its sampler calls and its post-processing; same arguments, same draws), with
    less fixed cost. Measured on sleepstudy (``benchmarks/jax_stages.py``):

    * The model's log-density terms are built once (``model.logp(sum=False)``) and give both
      the log density and the pointwise log-likelihood; PyMC derives each from the model
      anew (0.3-0.4 s each).
    * The log density is compiled once by ``jax.jit``. PyMC checks each chain's jittered
      start with the un-jitted JAX function, which JAX runs op by op, compiling every
      primitive apart (2.8 s of a 19 s fit of benchmark model 1, 500 x 50, against 1.0 s).
      The samplers call it inside their own ``jit``, where XLA may round differently in the
      last bits, which NUTS trajectories amplify (other draws of the same posterior).
    * The deterministics and the pointwise log-likelihood are one JAX function of the raw
      draws, converted and compiled once (PyMC converts and compiles two).
    * ``sampling_time`` ends when the draws are computed. JAX dispatches the chains
      asynchronously, so PyMC's stopped at the dispatch and the sampling itself was counted
      in the post-processing that waited for it (blackjax reported 1 s for a 3 s sampling
      of model 1).
    * The log density with its gradient, the sampler's loop over parallel chains and the
      post-processing are programs stored on disk (:mod:`~r2d2formula.backend.jax_programs`,
      keyed by the model's fingerprint). A fit that finds them builds no log density, converts
      nothing and traces no sampler: sleepstudy with numpyro, 7.9 s to 4.8 s of
      ``sample_model``; the same draws.

    ``options`` are :data:`JAX_SAMPLER_OPTIONS` (checked by :func:`sample_model`), as
    ``sample_jax_nuts`` takes them.
    """
    import jax
    import pymc.sampling.jax as pymc_jax
    from arviz.data.base import make_attrs
    from pymc.backends.arviz import coords_and_dims_for_inferencedata
    from pymc.util import _get_seeds_per_chain, get_default_varnames

    var_names = options.get("var_names")
    values = (model.unobserved_value_vars if var_names is None else
              [v for v in model.unobserved_value_vars if v.name in var_names])
    traced = list(get_default_varnames(values, include_transformed=options.get(
        "keep_untransformed", False)))

    chain_method = options.get("chain_method", "parallel")
    # programs on disk, keyed by the model's definition (an exported program cannot be
    # batched by vmap: vectorized chains convert theirs in every process)
    folder = None if chain_method == "vectorized" else program_folder()
    fingerprint = None if folder is None else model_fingerprint(model)
    terms = _LogDensityTerms(model)
    logp_fn = _jax_log_density(terms, sampler=sampler, fingerprint=fingerprint, folder=folder)

    (seed,) = _get_seeds_per_chain(random_seed, 1)
    initial_points = pymc_jax._get_batched_jittered_initial_points(
        model=model, chains=chains, initvals=options.get("initvals"), random_seed=seed,
        jitter=options.get("jitter", True), logp_fn=logp_fn)
    if isinstance(logp_fn, _StoredLogDensity):  # with jitter, the start check prepared it
        logp_fn.prepare(initial_points if chains == 1 else [v[0] for v in initial_points])
    # blackjax's bar is a host callback inside lax.cond, which vmap cannot batch: vectorized
    # chains fail on it ("IO effect not supported in vmap-of-cond"), so they sample without
    progressbar = (progressbar and not options.get("quiet", False)
                   and not (sampler == "blackjax" and chain_method == "vectorized"))
    nuts_kwargs = dict(options.get("nuts_kwargs") or {})
    chains_program = _chains_program(
        logp_fn, sampler=sampler, chains=chains, chain_method=chain_method,
        progressbar=progressbar, folder=folder, tune=tune, draws=draws,
        target_accept=target_accept, nuts_kwargs=nuts_kwargs)
    started = time.perf_counter()
    if chains_program is not None and sampler == "blackjax":
        raw_draws, stats, library = _sample_blackjax_chains(
            chains_program, target_accept=target_accept, tune=tune, draws=draws,
            chains=chains, random_seed=seed, initial_points=initial_points,
            nuts_kwargs=nuts_kwargs)
    else:
        sample = (pymc_jax._sample_numpyro_nuts if sampler == "numpyro"
                  else pymc_jax._sample_blackjax_nuts)
        raw_draws, stats, library = sample(
            model=model, target_accept=target_accept, tune=tune, draws=draws, chains=chains,
            # numpyro runs a callable chain method in place of its jax.pmap
            chain_method=chain_method if chains_program is None else chains_program,
            progressbar=progressbar, random_seed=seed, initial_points=initial_points,
            nuts_kwargs=nuts_kwargs, logp_fn=logp_fn)
    raw_draws, stats = jax.block_until_ready((raw_draws, stats))
    sampling_time = time.perf_counter() - started

    def outputs() -> list:
        return traced + (terms.observed if log_likelihood else [])

    specs = [jax.ShapeDtypeStruct(draws.shape, draws.dtype) for draws in raw_draws]
    stored = (isinstance(logp_fn, _StoredLogDensity)
              and options.get("postprocessing_backend") is None)
    if not stored:
        postprocess = pymc_jax.get_jaxified_graph(inputs=model.value_vars, outputs=outputs())
        results = pymc_jax._postprocess_samples(
            postprocess, raw_draws, options.get("postprocessing_backend"),
            postprocessing_vectorize="vmap", donate_samples=True)
    else:
        def build_postprocess() -> Callable:
            graph = pymc_jax.get_jaxified_graph(inputs=model.value_vars, outputs=outputs())
            return lambda *draws: jax.vmap(jax.vmap(graph))(*draws)

        settings = settings_token(traced=[v.name for v in traced],
                                  log_likelihood=[rv.name for rv in model.observed_RVs]
                                  if log_likelihood else None)
        results = exported_program(logp_fn.key("postprocess", specs, settings),
                                   build_postprocess, specs, logp_fn.folder)(*raw_draws)
    del raw_draws
    posterior = {v.name: r for v, r in zip(traced, results[:len(traced)], strict=True)}
    pointwise = ({rv.name: r for rv, r in zip(model.observed_RVs, results[len(traced):],
                                              strict=True)}
                 if log_likelihood else None)
    attrs = make_attrs({"sampling_time": sampling_time, "tuning_steps": tune},
                       library=library)
    coords, dims = coords_and_dims_for_inferencedata(model)
    # observed and constant data: sample_model's _add_groups, as for every sampler
    return az.from_dict(posterior=posterior, log_likelihood=pointwise, sample_stats=stats,
                        coords=coords, dims=dims, attrs=attrs, posterior_attrs=attrs)


class _LogDensityTerms:
    """The model's log-density terms (``model.logp(sum=False)``), built once, on first use:
    a fit whose programs are all on disk never builds them."""

    def __init__(self, model: pm.Model) -> None:
        self.model = model

    @functools.cached_property
    def terms(self) -> list:
        # free variables' terms, then the observed variables', then potentials (PyMC's order)
        return self.model.logp(sum=False)

    @property
    def observed(self) -> list:
        """The observed variables' pointwise terms (the log-likelihood)."""
        free, observed = len(self.model.free_RVs), len(self.model.observed_RVs)
        return self.terms[free:free + observed]

    def density(self, sampler: str) -> TensorVariable:
        """numpyro's potential energy or blackjax's log density."""
        from pytensor.tensor.math import variadic_add

        logp = variadic_add(*(term.sum() for term in self.terms))
        return -logp if sampler == "numpyro" else logp


def _jax_log_density(terms: _LogDensityTerms, *, sampler: str, fingerprint: str | None,
                     folder: Path | None) -> Callable:
    """The sampler's log density (blackjax) or potential energy (numpyro) as a JAX function
    of the list of the model's value variables.

    With a program ``folder``, a :class:`_StoredLogDensity`; without, PyMC's conversion of the
    graph under ``jax.jit``, which the sampler differentiates itself.
    """
    import jax
    import pymc.sampling.jax as pymc_jax

    if folder is None or fingerprint is None:
        graph = pymc_jax.get_jaxified_graph(inputs=terms.model.value_vars,
                                            outputs=[terms.density(sampler)])
        return jax.jit(lambda x: graph(*x)[0])
    return _StoredLogDensity(terms, sampler=sampler, fingerprint=fingerprint, folder=folder)


class _StoredLogDensity:
    """A log density whose value and gradient are one program of
    :mod:`r2d2formula.backend.jax_programs`: found on disk when a fit of the same model
    (:func:`~r2d2formula.backend.jax_programs.model_fingerprint`) stored it, else converted,
    exported and stored.

    The sampler differentiates through it by a custom VJP that returns the program's gradient,
    so its trace holds one call where it held the whole converted graph. The program is made
    by :meth:`prepare` from a point's shapes, outside any trace (JAX exports only there): at the
    first call on concrete arrays (PyMC's check of the jittered starts) or explicitly before
    sampling.
    """

    def __init__(self, terms: _LogDensityTerms, *, sampler: str, fingerprint: str,
                 folder: Path) -> None:
        import jax

        self._terms = terms
        #: the sampler, the model's fingerprint and the program folder: those of every
        #: program of the fit (:meth:`key`)
        self.sampler, self.fingerprint, self.folder = sampler, fingerprint, folder
        self._program: Callable | None = None

        @jax.custom_vjp
        def log_density(values: list) -> jax.Array:
            return self._program(*values)[0]

        def forward(values: list) -> tuple:
            return self._program(*values)

        def backward(gradient: list, cotangent: jax.Array) -> tuple:
            return ([cotangent * g for g in gradient],)

        log_density.defvjp(forward, backward)
        self._jitted = jax.jit(lambda values: log_density(list(values)))

    def prepare(self, point: Sequence[Any]) -> None:
        """Find or make the program for value arrays shaped as ``point`` (once)."""
        if self._program is not None:
            return
        import jax
        import pymc.sampling.jax as pymc_jax

        specs = [jax.ShapeDtypeStruct(np.shape(v), np.asarray(v).dtype) for v in point]

        def build() -> Callable:
            graph = pymc_jax.get_jaxified_graph(inputs=self._terms.model.value_vars,
                                                outputs=[self._terms.density(self.sampler)])
            return lambda *x: jax.value_and_grad(lambda x: graph(*x)[0])(list(x))

        role = "potential" if self.sampler == "numpyro" else "logp"
        self._program = exported_program(self.key(role, specs), build, specs, self.folder)

    def key(self, role: str, arg_specs: Sequence[Any], settings: str = "") -> str:
        """The key of the fit's program ``role`` (:func:`jax_programs.program_key`)."""
        return program_key(role, self.fingerprint, arg_specs, sampler=self.sampler,
                           settings=settings)

    def __call__(self, values: Sequence[Any]) -> Any:
        self.prepare(values)
        return self._jitted(values)


class _ChainsProgram:
    """The chains of a JAX fit as one stored program (:func:`jax_programs.run_chains`): the
    sampler's whole warm-up and sampling loop for every chain, found on disk by a fit of the
    same graph with the same settings, so that such a fit does not trace it again.

    Called as numpyro's ``chain_method`` (numpyro hands it the function that runs one chain,
    and runs what it returns in place of ``jax.pmap``), or by :func:`_sample_blackjax_chains`.
    """

    def __init__(self, density: _StoredLogDensity, settings: str) -> None:
        #: the log density the chains sample (its key and folder are the program's)
        self.density = density
        self._settings = settings

    def run(self, one_chain: Callable, arrays: Sequence[Any]) -> Any:
        key = self.density.key(f"{self.density.sampler}-chains", arrays, self._settings)
        return run_chains(key, one_chain, arrays, self.density.folder)

    def __call__(self, single_chain_mcmc: Callable) -> Callable:
        import jax

        def run(map_args: tuple) -> tuple:
            keys, init_state, params = map_args
            if init_state is not None:  # numpyro resuming a run: as numpyro would
                return jax.pmap(single_chain_mcmc)(map_args)
            states = self.run(lambda key, *p: single_chain_mcmc((key, None, list(p)))[0],
                              [keys, *params])
            return states, None  # the last state is for numpyro's own resumed runs

        return run


def _chains_program(logp_fn: Callable, *, sampler: str, chains: int, chain_method: str,
                    progressbar: bool, folder: Path | None, **settings: Any
                    ) -> _ChainsProgram | None:
    """A :class:`_ChainsProgram` where the chains can be one stored program: chains in
    parallel, one device each, a stored log density, no progress bar (its host callbacks
    cannot be stored), settings that can be spelled out."""
    import jax

    if (folder is None or chains <= 1 or chain_method != "parallel" or progressbar
            or not isinstance(logp_fn, _StoredLogDensity)
            # a device for each chain (numpyro otherwise falls back to sequential chains);
            # jax.shard_map is JAX >= 0.6's
            or jax.local_device_count() < chains or not hasattr(jax, "shard_map")):
        return None
    token = settings_token(chains=chains, **settings)
    if token is None:
        return None
    return _ChainsProgram(logp_fn, token)


def _sample_blackjax_chains(program: _ChainsProgram, *, target_accept: float, tune: int,
                            draws: int, chains: int, random_seed: int, initial_points: list,
                            nuts_kwargs: dict) -> tuple:
    """PyMC's ``_sample_blackjax_nuts`` for chains in parallel (its keys, its per-chain
    inference loop), with the chains run by a stored program instead of ``jax.pmap``."""
    import blackjax
    import jax
    import pymc.sampling.jax as pymc_jax

    keys = jax.random.split(jax.random.PRNGKey(random_seed), chains)
    one_chain = functools.partial(pymc_jax._blackjax_inference_loop, logp_fn=program.density,
                                  tune=tune, draws=draws, target_accept=target_accept,
                                  **{**nuts_kwargs, "progress_bar": False})
    raw_draws, stats = program.run(lambda key, *p: one_chain(key, list(p)),
                                   [keys, *initial_points])
    return raw_draws, stats, blackjax


def _pymc_compile_kwargs() -> dict:
    """PyMC's NUTS evaluates the gradient through PyTensor's numba backend when numba is
    installed (a dependency of nutpie and of recent PyTensor): several times faster per
    evaluation than the default C/VM backend, and its compiled ops are cached on disk."""
    if importlib.util.find_spec("numba") is None:  # pragma: no cover
        return {}
    return {"mode": "NUMBA"}


def _add_groups(idata: az.InferenceData, model: pm.Model,
                log_likelihood: bool = True) -> az.InferenceData:
    """Add log-likelihood, observed and constant data where the sampler left them out."""
    from pymc.backends.arviz import find_constants, find_observations

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if log_likelihood and "log_likelihood" not in idata.groups():
            pm.compute_log_likelihood(idata, model=model, extend_inferencedata=True,
                                      progressbar=False)
    missing = {}
    coords = {name: np.asarray(values) for name, values in model.coords.items()
              if values is not None}
    dims = {name: list(d) for name, d in model.named_vars_to_dims.items()}
    if "observed_data" not in idata.groups():
        missing["observed_data"] = find_observations(model)
    if "constant_data" not in idata.groups():
        missing["constant_data"] = find_constants(model)
    if missing:
        extra = az.from_dict(coords=coords, dims=dims, **missing)
        idata.extend(extra)
    return idata


def sample_prior(model: pm.Model, *, draws: int = 1000,
                 random_seed: int | None = None) -> az.InferenceData:
    """Forward-sample the prior and prior predictive of ``model``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return pm.sample_prior_predictive(draws=draws, model=model,
                                          random_seed=_seed(random_seed))
