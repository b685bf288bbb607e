"""Samplers behind one call: nutpie, PyMC's NUTS, numpyro and blackjax.

Every sampler returns an ``arviz.InferenceData`` with the posterior, sample stats, observed
data and the pointwise log-likelihood (so ``arviz.loo`` works).
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Mapping
from typing import Any

import arviz as az
import numpy as np
import pymc as pm

from r2d2formula.errors import SamplerError

__all__ = ["SAMPLERS", "DEFAULT_SAMPLER", "sample_model", "sample_prior", "check_sampler"]

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
        ``callback``), ``nutpie.sample`` for nutpie, and ``nuts_sampler_kwargs`` of
        ``pm.sample`` for numpyro and blackjax (for example ``chain_method``).

    Notes
    -----
    numpyro and blackjax run through PyMC's JAX backend (``pm.sample(nuts_sampler=...)``)
    on JAX's default device (a GPU where jax finds one). Chains run in parallel when JAX has
    a device for each (``chain_method="parallel"``); on a CPU that means starting Python
    with ``XLA_FLAGS=--xla_force_host_platform_device_count=<chains>`` (set before jax is
    imported). Otherwise numpyro draws the chains one after another and blackjax vectorizes
    them. The log-likelihood is computed in JAX too.

    Returns
    -------
    idata : arviz.InferenceData
        With ``posterior``, ``sample_stats``, ``observed_data``, ``constant_data`` and
        (unless ``log_likelihood=False``) ``log_likelihood``.
    compiled : object or None
        The compiled nutpie model, reusable for another fit of the same structure.
    """
    check_sampler(sampler)
    seed = _seed(random_seed)
    extra = dict(sampler_kwargs or {})
    if sampler == "nutpie":
        import nutpie

        if compiled is None:
            compiled = nutpie.compile_pymc_model(model)
        idata = nutpie.sample(
            compiled, draws=draws, tune=tune, chains=chains, cores=cores, seed=seed,
            target_accept=target_accept, progress_bar=progressbar, save_warmup=False,
            **extra,
        )
        idata = _add_groups(idata, model, log_likelihood)
        return idata, compiled
    kwargs = dict(draws=draws, tune=tune, chains=chains, random_seed=seed,
                  target_accept=target_accept, progressbar=progressbar, model=model)
    if sampler == "pymc":
        idata = pm.sample(cores=cores or min(chains, 2), compute_convergence_checks=False,
                          compile_kwargs=_pymc_compile_kwargs(), **kwargs, **extra)
    else:
        extra.setdefault("chain_method", _jax_chain_method(sampler, chains))
        idata = pm.sample(nuts_sampler=sampler, nuts_sampler_kwargs=extra,
                          idata_kwargs={"log_likelihood": log_likelihood},
                          compute_convergence_checks=False, **kwargs)
    return _add_groups(idata, model, log_likelihood), None


def _jax_chain_method(sampler: str, chains: int) -> str:
    """Chains in parallel over JAX devices when there is one for each; else numpyro's
    sequential chains (faster than vectorized NUTS on a CPU, where vectorized chains wait for
    the longest trajectory) and blackjax's vectorized ones (PyMC offers it no other)."""
    import jax

    if chains <= 1 or jax.local_device_count() >= chains:
        return "parallel"
    return "sequential" if sampler == "numpyro" else "vectorized"


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
