"""Samplers behind one call: nutpie, PyMC's NUTS, numpyro and blackjax.

Every sampler returns an ``arviz.InferenceData`` with the posterior, sample stats, observed
data and the pointwise log-likelihood (so ``arviz.loo`` works).
"""

from __future__ import annotations

import importlib.util
import warnings

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
) -> tuple[az.InferenceData, object | None]:
    """Sample ``model`` with the chosen sampler.

    Returns
    -------
    idata : arviz.InferenceData
        With ``posterior``, ``sample_stats``, ``observed_data``, ``constant_data`` and
        ``log_likelihood``.
    compiled : object or None
        The compiled nutpie model, reusable for another fit of the same structure.
    """
    check_sampler(sampler)
    seed = _seed(random_seed)
    if sampler == "nutpie":
        import nutpie

        if compiled is None:
            compiled = nutpie.compile_pymc_model(model)
        idata = nutpie.sample(
            compiled, draws=draws, tune=tune, chains=chains, cores=cores, seed=seed,
            target_accept=target_accept, progress_bar=progressbar, save_warmup=False,
        )
        idata = _add_groups(idata, model)
        return idata, compiled
    kwargs = dict(draws=draws, tune=tune, chains=chains, random_seed=seed,
                  target_accept=target_accept, progressbar=progressbar, model=model)
    if sampler == "pymc":
        idata = pm.sample(cores=cores or min(chains, 2), compute_convergence_checks=False,
                          compile_kwargs=_pymc_compile_kwargs(), **kwargs)
    else:
        idata = pm.sample(nuts_sampler=sampler, **kwargs)
    return _add_groups(idata, model), None


def _pymc_compile_kwargs() -> dict:
    """PyMC's NUTS evaluates the gradient through PyTensor's numba backend when numba is
    installed (a dependency of nutpie and of recent PyTensor): several times faster per
    evaluation than the default C/VM backend, and its compiled ops are cached on disk."""
    if importlib.util.find_spec("numba") is None:  # pragma: no cover
        return {}
    return {"mode": "NUMBA"}


def _add_groups(idata: az.InferenceData, model: pm.Model) -> az.InferenceData:
    """Add log-likelihood, observed and constant data where the sampler left them out."""
    from pymc.backends.arviz import find_constants, find_observations

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if "log_likelihood" not in idata.groups():
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
