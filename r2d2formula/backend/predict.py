"""Prediction through the model graph: swap the data with ``pm.set_data`` and sample.

The prediction graph is :func:`~r2d2formula.backend.graph.build_model` with
``predictive=True``, built from the training design (the same parameterisation and the same
names as the fitted graph) plus the linear predictor ``eta``, the mean ``mu`` and effects of
new levels ``r_<f>_new``. Nothing here writes the linear predictor again: new rows go in as data
and :func:`pymc.sample_posterior_predictive` evaluates the graph for every posterior draw.

Rows are processed in chunks so memory stays bounded: the effects of new levels are drawn once
per posterior draw for all rows (as standard normal ``r_<f>_new_z`` that the graph scales and
correlates), so a level that spans two chunks gets the same effect in both.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator

import arviz as az
import numpy as np
import pymc as pm
import xarray as xr

from r2d2formula.backend.graph import (
    GraphInfo,
    graph_data,
    is_observation_level,
    set_graph_data,
)
from r2d2formula.backend.likelihood import NORMALIZER
from r2d2formula.design.types import Design
from r2d2formula.families import Family
from r2d2formula.priors.defaults import ResolvedPriors

__all__ = ["KINDS", "predict_chunks", "reduce_chunks", "observation_data", "default_chunk_size",
           "posterior_predictive"]

#: What a prediction returns: the linear predictor, the mean response, or response draws.
KINDS = ("link", "mean", "response")
_TARGET = {"link": "eta", "mean": "mu"}
#: Bytes of draws a chunk may hold (the output and PyMC's buffer of the same size).
_CHUNK_BYTES = 256 * 2**20


def default_chunk_size(n_samples: int) -> int:
    """Rows per chunk so that one chunk's draws take about 256 MB."""
    return int(max(256, _CHUNK_BYTES // (8 * max(n_samples, 1))))


def observation_data(design: Design, family: Family, priors: ResolvedPriors) -> dict:
    """The observation-level data of ``design`` (X, offset, trials, codes, Z; y as zeros)."""
    values = graph_data(design, family, priors)
    out = {name: value for name, value in values.items() if is_observation_level(name)}
    # the response of new data is unknown; the likelihood node needs a valid value, not NaN
    out["y_observed"] = np.zeros(design.n_obs)
    if NORMALIZER in out:  # its log-density term: -log 0! = log C(n, 0) = 0
        out[NORMALIZER] = np.zeros(design.n_obs)
    return out


def observation_data_names(model: pm.Model) -> list[str]:
    """Names of the graph's observation-level data containers."""
    return [v.name for v in model.data_vars if is_observation_level(v.name)]


def _slice_rows(values: dict, rows: slice) -> dict:
    return {name: value[rows] for name, value in values.items()}


def predict_chunks(
    model: pm.Model,
    info: GraphInfo,
    posterior: xr.Dataset,
    design: Design,
    family: Family,
    priors: ResolvedPriors,
    *,
    kind: str,
    group_effects: bool,
    new_levels: str,
    random_seed: int | None,
    chunk_size: int | None = None,
) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(rows, draws)`` per chunk of ``design``'s rows.

    Parameters
    ----------
    model, info
        The prediction graph (``build_model(..., predictive=True)`` on the training design).
    posterior : xarray.Dataset
        The posterior draws (chain, draw), hidden sampling variables included.
    design : Design
        The rows to predict: the training design or ``new_data_design(...)``.
    kind : {"link", "mean", "response"}
    group_effects : bool
        False sets every group effect to zero (population-level predictions).
    new_levels : {"sample", "zero"}
        Levels not seen in training: a fresh draw from the population distribution per
        posterior draw (independent across levels), or zero.
    random_seed : int, optional
    chunk_size : int, optional
        Rows per chunk (default: about 256 MB of draws per chunk).

    Yields
    ------
    rows : slice
    draws : numpy.ndarray, shape (chain, draw, rows)
    """
    rng = np.random.default_rng(random_seed)
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
    trace = posterior.copy()
    with model:
        for factor, gf in design.factors.items():
            # effects of new levels: standard normal draws the graph scales and correlates,
            # made once for all rows so chunks agree
            n_new = gf.n_new_levels
            new_names = list(gf.levels[gf.n_train_levels:]) or ["(none)"]
            model.set_dim(f"{factor}__new", len(new_names), coord_values=new_names)
            term_dim = info.term_dims[factor]
            q = len(model.coords[term_dim])
            z_new = rng.standard_normal((n_chain, n_draw, len(new_names), q))
            if n_new == 0:
                z_new[:] = 0.0
            trace[f"r_{factor}_new_z"] = xr.DataArray(
                z_new, dims=("chain", "draw", f"{factor}__new", term_dim),
                coords={f"{factor}__new": new_names, term_dim: list(model.coords[term_dim])},
            )
        # the training values of the prior and scaling data: PyMC redraws any variable whose
        # inputs differ from the trace's constant data, so they must be listed as unchanged
        obs_names = set(observation_data_names(model))
        constant = xr.Dataset({
            name: xr.DataArray(np.asarray(var.get_value()),
                               dims=[f"{name}_dim_{i}" for i in range(var.ndim)])
            for name, var in ((v.name, v) for v in model.data_vars)
            if name not in obs_names and name not in ("group_effects_on", "new_levels_on")
        })
        trace = az.InferenceData(posterior=trace, constant_data=constant)
        switches = {"group_effects_on": np.asarray(1.0 if group_effects else 0.0),
                    "new_levels_on": np.asarray(1.0 if new_levels == "sample" else 0.0)}
        values = observation_data(design, family, priors)
        target = info.response if kind == "response" else _TARGET[kind]
        n = design.n_obs
        size = chunk_size or default_chunk_size(n_chain * n_draw)
        for start in range(0, n, size):
            rows = slice(start, min(start + size, n))
            chunk = _slice_rows(values, rows)
            set_graph_data(model, {**chunk, **switches}, n_obs=rows.stop - rows.start)
            seed = int(rng.integers(2**31 - 1))
            with warnings.catch_warnings(), _quiet_pymc():
                warnings.simplefilter("ignore", UserWarning)
                out = pm.sample_posterior_predictive(
                    trace, var_names=[target], predictions=True, random_seed=seed,
                    progressbar=False, return_inferencedata=False,
                )
            yield rows, np.asarray(out[target], dtype=float).reshape(n_chain, n_draw, -1)


def reduce_chunks(chunks: Iterator[tuple[slice, np.ndarray]], n: int, n_chain: int, n_draw: int,
                  reducer: Callable[[np.ndarray], dict] | None = None):
    """Gather chunk draws into one (chain, draw, n) array, or reduce each chunk with
    ``reducer`` (draws -> dict of per-row arrays) and concatenate the results."""
    if reducer is None:
        draws = np.empty((n_chain, n_draw, n))
        for rows, values in chunks:
            draws[:, :, rows] = values
        return draws
    parts: dict[str, list[np.ndarray]] = {}
    for _, values in chunks:
        for key, value in reducer(values).items():
            parts.setdefault(key, []).append(value)
    return {key: np.concatenate(value) for key, value in parts.items()}


def posterior_predictive(model: pm.Model, idata: az.InferenceData, *,
                         random_seed: int | None = None) -> az.InferenceData:
    """One draw of the response per posterior draw, added to ``idata`` (in place)."""
    with warnings.catch_warnings(), _quiet_pymc():
        warnings.simplefilter("ignore", UserWarning)
        pm.sample_posterior_predictive(idata, model=model, extend_inferencedata=True,
                                       random_seed=random_seed, progressbar=False)
    return idata


@contextlib.contextmanager
def _quiet_pymc():
    """Hide PyMC's "Sampling: [...]" note: predictions are not sampling from the user's view."""
    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
