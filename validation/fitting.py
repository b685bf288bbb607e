"""Refit one model on many simulated responses without recompiling it.

:func:`fit_replication` is the only place the SBC and coverage runs sample an r2d2formula
model. By default (``FitSettings.method="nutpie"``) it compiles the model's PyMC graph
(``model.build()``) with nutpie once per process and swaps the response in with nutpie's
``with_data``, together with the sampling coordinates tuned to that response (the library's
pilot fit, ``pilot_*`` data): the same graph, coordinates, sampler and target_accept as
``model.fit(sampler="nutpie")`` on that data set.
``method="library"`` goes through the library's own refit, ``model.fit(data=...)``, which
also rebuilds the design, re-resolves the priors and computes the log-likelihood per fit;
the agreement part checks that it gives the same posterior (``agreement.refit_agreement``).
"""

from __future__ import annotations

import inspect
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["FitSettings", "Refitter", "fit_replication", "quantities", "library_refit_available"]


@dataclass(frozen=True, kw_only=True)
class FitSettings:
    """Sampler settings of the validation fits (2 x 500 draws: 99 thinned draws for ranks)."""

    draws: int = 500
    tune: int = 500
    chains: int = 2
    target_accept: float = 0.95
    #: "nutpie": nutpie's ``with_data`` on ``model.build()``; "library": ``model.fit(data=...)``
    #: (the same compiled nutpie model, but it also computes the pointwise log-likelihood,
    #: about doubling the time of a small fit); "pymc": PyMC's NUTS with one step object;
    #: "auto": "library" when the installed r2d2formula has it, else "nutpie".
    method: str = "nutpie"
    sampler: str = "nutpie"  # the library refit's sampler

    def key(self) -> str:
        tag = "" if self.method == "nutpie" else f"-{self.method}-{self.sampler}"
        return f"d{self.draws}t{self.tune}c{self.chains}a{self.target_accept:g}{tag}"


def library_refit_available(model) -> bool:
    """Whether ``model.fit`` takes new data (the prediction issue's refit)."""
    return "data" in inspect.signature(model.fit).parameters


class Refitter:
    """A model plus its design DataFrame, ready to be refitted on new responses.

    Parameters
    ----------
    model : r2d2formula.Model
    data : pandas.DataFrame
        The DataFrame the model was built from.
    response : str
        The column that new responses replace.
    settings : FitSettings
    """

    def __init__(self, model, data: pd.DataFrame, response: str, settings: FitSettings) -> None:
        self.model = model
        self.data = data
        self.response = response
        self.settings = settings
        method = settings.method
        if method == "auto":
            method = "library" if library_refit_available(model) else "nutpie"
        self.method = method
        self._compiled = None
        self._y_name = "y_observed"
        self.compile_seconds = 0.0

    def _compile(self):
        from r2d2formula.backend import compile_nutpie

        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._compiled = compile_nutpie(self.model.build(), self.model.graph_info)
        self.compile_seconds += time.perf_counter() - start
        dtype = self.model.build()[self._y_name].dtype
        self._dtype = np.dtype(dtype)

    def _response_data(self, y: np.ndarray) -> dict[str, np.ndarray]:
        """``y`` and the pilot fit on it, by ``pm.Data`` name.

        The pilot sets the sampler's coordinates (``r2d2formula.backend.graph``); one left
        from another response keeps the posterior exact but can make NUTS diverge.
        """
        from r2d2formula.backend.pilot import pilot_data, pilot_fit

        frame = self.data.copy()
        frame[self.response] = np.asarray(y).astype(frame[self.response].dtype)
        other = self.model.with_data(frame)
        return ({self._y_name: np.asarray(y, dtype=self._dtype)}
                | pilot_data(pilot_fit(other.design, other.family)))

    def fit(self, y: np.ndarray, *, random_seed: int) -> tuple[xr.Dataset, xr.Dataset]:
        """Sample the posterior given response ``y``; returns (posterior, sample_stats)."""
        s = self.settings
        if self.method == "library":
            frame = self.data.copy()
            frame[self.response] = np.asarray(y).astype(frame[self.response].dtype)
            # building first makes the refits share one compiled graph (model.with_data
            # reuses only a graph that exists)
            self.model.build()
            first = self._compiled is None
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = self.model.fit(data=frame, sampler=s.sampler, draws=s.draws, tune=s.tune,
                                     chains=s.chains, target_accept=s.target_accept,
                                     random_seed=random_seed, progressbar=False, cores=1)
            if first:  # the first refit compiles: count it as compilation
                self._compiled = True
                self.compile_seconds += time.perf_counter() - start
            return fit.idata.posterior, fit.idata.sample_stats
        if self.method == "pymc":
            return self._fit_pymc(y, random_seed=random_seed)
        if self.method != "nutpie":
            raise ValueError(f"unknown fitting method {self.method!r}; use 'library', "
                             "'nutpie' or 'pymc'")
        import nutpie

        if self._compiled is None:
            self._compile()
        from r2d2formula.backend.graph import set_graph_data

        values = self._response_data(y)
        # nutpie's start reads the graph's containers (compile_nutpie), its draws the copies
        set_graph_data(self.model.build(), values)
        compiled = self._compiled.with_data(
            **{k: v for k, v in values.items() if k in self._compiled.shared_data})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idata = nutpie.sample(compiled, draws=s.draws, tune=s.tune, chains=s.chains,
                                  cores=1, seed=random_seed, target_accept=s.target_accept,
                                  progress_bar=False, save_warmup=False)
        return idata.posterior, idata.sample_stats


    def _fit_pymc(self, y: np.ndarray, *, random_seed: int) -> tuple[xr.Dataset, xr.Dataset]:
        """PyMC's NUTS with one step object: its compiled gradient sees the new response
        through the shared ``y_observed`` container, and ``pm.sample`` resets its tuning."""
        import pymc as pm

        s = self.settings
        model = self.model.build()
        if self._compiled is None:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._compiled = pm.NUTS(model=model, target_accept=s.target_accept,
                                         compile_kwargs={"mode": "NUMBA"})
            self.compile_seconds += time.perf_counter() - start
            self._dtype = np.dtype(model[self._y_name].dtype)
        pm.set_data({k: v for k, v in self._response_data(y).items() if k in model.named_vars},
                    model=model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idata = pm.sample(draws=s.draws, tune=s.tune, chains=s.chains, cores=1,
                              step=self._compiled, model=model, random_seed=random_seed,
                              progressbar=False, compute_convergence_checks=False)
        return idata.posterior, idata.sample_stats


def fit_replication(refitter: Refitter, y: np.ndarray, *, random_seed: int
                    ) -> tuple[xr.Dataset, xr.Dataset]:
    """Refit ``refitter``'s model on response ``y`` (see :class:`Refitter`)."""
    return refitter.fit(y, random_seed=random_seed)


_REPORTED = ("Intercept", "b", "sigma", "alpha", "R2", "phi")


def quantities(dataset: xr.Dataset, factors: list[str]) -> dict[str, np.ndarray]:
    """The scalar parameters SBC ranks, flattened: name -> array with (chain, draw) leading.

    ``Intercept``, ``b[<coef>]``, ``sigma``/``alpha``, ``R2``, ``phi[<component>]`` (left out
    when there is a single component: phi is then the constant 1), ``sd_<f>[<term>]`` and the
    distinct correlations ``cor_<f>[<a>,<b>]``.
    """
    out: dict[str, np.ndarray] = {}
    names = [n for n in _REPORTED if n in dataset]
    names += [f"sd_{f}" for f in factors if f"sd_{f}" in dataset]
    for name in names:
        var = dataset[name]
        extra = [d for d in var.dims if d not in ("chain", "draw")]
        if not extra:
            out[name] = var.values
            continue
        if name == "phi" and var.sizes[extra[0]] == 1:
            continue
        for label in var[extra[0]].values:
            out[f"{name}[{label}]"] = var.sel({extra[0]: label}).values
    for f in factors:
        name = f"cor_{f}"
        if name not in dataset:
            continue
        var = dataset[name]
        d1, d2 = [d for d in var.dims if d not in ("chain", "draw")]
        labels = list(var[d1].values)
        for i in range(len(labels)):
            for j in range(i + 1, len(labels)):
                out[f"{name}[{labels[i]},{labels[j]}]"] = var.isel({d1: i, d2: j}).values
    return out
