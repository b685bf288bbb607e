"""Compiled graphs shared by fits of one model structure on different data.

A simulation study or a class refits the same formula on many data sets of the same shape.
Everything the graph reads from the data is a ``pm.Data`` container
(:func:`~r2d2formula.backend.graph.graph_data`), so such a refit sets new values into the graph
already built (and into nutpie's compiled model with ``with_data``) instead of building and
compiling again.

The sampling coordinates follow each data set: its pilot fit (``pilot_*`` data, see
:mod:`r2d2formula.backend.graph`) is set in with the data. The structural choices behind them
(which factor absorbs the intercept, centered or non-centered blocks of three or more terms)
are made once, from the first data set; they change the sampler's coordinates, never the prior
or the posterior.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pymc as pm

from r2d2formula.backend.graph import (
    GraphInfo,
    build_model,
    graph_data,
    is_observation_level,
    set_graph_data,
)
from r2d2formula.backend.pilot import pilot_data, pilot_fit
from r2d2formula.design.types import Design
from r2d2formula.families import Family
from r2d2formula.priors.defaults import ResolvedPriors

__all__ = ["CompiledGraphs", "structure_key", "structure_difference"]


def structure_key(design: Design, family: Family, priors: ResolvedPriors) -> dict[str, Any]:
    """What must agree for two data sets to share one compiled graph (everything but values
    and level names)."""
    factors = {}
    for factor, gf in design.factors.items():
        terms = [(t.labels, t.correlated) for t in design.group_terms if t.factor == factor]
        factors[factor] = (len(gf.levels), tuple(terms))
    return {
        "family": (family.name, family.link),
        "population columns": (design.common.labels, design.common.intercept),
        "grouping factors (levels, terms)": factors,
        "offset": design.offset is not None,
        "trials": design.response.trials is not None,
        "components": priors.variant.components,
        "variant": priors.variant.name,
        "R2 -> W method": (priors.approx, priors.gbp_params is not None),
        "priors": (priors.intercept.distribution, tuple(priors.intercept.params),
                   tuple((k, v.distribution, tuple(v.params)) for k, v in priors.aux.items()),
                   None if priors.group_sd is None else priors.group_sd.distribution),
        "R2D2": (priors.r2_beta, priors.concentrations, priors.r2d2.kernel,
                 priors.r2d2.autoscale),
    }


def structure_difference(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """A sentence naming what differs between two :func:`structure_key` results, or None."""
    for key, value in a.items():
        if b.get(key) != value:
            return f"{key} differ ({value!r} vs {b.get(key)!r})"
    return None


@dataclass
class CompiledGraphs:
    """The sampling graph, the prediction graph and compiled sampler state of one structure.

    Both graphs are built from the first data set (``origin``), so they share one
    parameterisation; ``owner`` is the model whose data are currently set in them, and
    :meth:`activate` swaps them when another model of the same structure uses the graphs.
    """

    origin: tuple[Design, Family, ResolvedPriors] | None = None
    key: dict[str, Any] | None = None
    sampling: tuple[pm.Model, GraphInfo] | None = None
    predictive: tuple[pm.Model, GraphInfo] | None = None
    compiled: dict[str, Any] = field(default_factory=dict)
    owner: Any = None
    values: dict[str, np.ndarray] = field(default_factory=dict)

    def _start(self, owner: Any, design: Design, family: Family, priors: ResolvedPriors) -> None:
        if self.origin is None:
            self.origin = (design, family, priors)
            self.key = structure_key(design, family, priors)
            self.owner, self.values = owner, graph_data(design, family, priors)

    def sampling_graph(self, owner: Any, design: Design, family: Family,
                       priors: ResolvedPriors) -> tuple[pm.Model, GraphInfo]:
        """The sampling graph with ``owner``'s data set in."""
        self._start(owner, design, family, priors)
        if self.sampling is None:
            self.sampling = build_model(*self.origin)
            self._set(self.sampling[0], self.values, observations=True)
        self.activate(owner, design, family, priors)
        return self.sampling

    def predictive_graph(self, owner: Any, design: Design, family: Family,
                         priors: ResolvedPriors) -> tuple[pm.Model, GraphInfo]:
        """The prediction graph (``build_model(..., predictive=True)``) with ``owner``'s
        prior and scaling data set in (observation-level data are set per prediction)."""
        self._start(owner, design, family, priors)
        if self.predictive is None:
            self.predictive = build_model(*self.origin, predictive=True)
            self._set(self.predictive[0], self.values, observations=False)
        self.activate(owner, design, family, priors)
        return self.predictive

    def nutpie_model(self) -> Any:
        """The compiled nutpie model with the current data, or None before the first fit."""
        compiled = self.compiled.get("nutpie")
        if compiled is None:
            return None
        usable = {k: v for k, v in self.values.items() if k in compiled.shared_data}
        return compiled.with_data(**usable)

    def activate(self, owner: Any, design: Design, family: Family,
                 priors: ResolvedPriors) -> None:
        """Set ``owner``'s data (and factor level names) into the graphs."""
        if self.owner is owner:
            return
        # the pilot re-tunes the sampling coordinates to this data set (a stale pilot from
        # another data set keeps the prior exact but can make NUTS diverge)
        self.values = graph_data(design, family, priors) | pilot_data(pilot_fit(design, family))
        self.owner = owner
        for graph, observations in ((self.sampling, True), (self.predictive, False)):
            if graph is not None:
                self._set(graph[0], self.values, observations=observations)

    def _set(self, model: pm.Model, values: dict[str, np.ndarray], *,
             observations: bool) -> None:
        design = self.owner.design
        for factor, gf in design.factors.items():
            levels = list(gf.levels[: gf.n_train_levels])
            if list(model.coords[factor]) != levels:
                model.set_dim(factor, len(levels), coord_values=levels)
        values = {k: v for k, v in values.items() if k in model.named_vars}
        if observations:
            set_graph_data(model, values, n_obs=design.n_obs)
        else:  # observation-level data are set per prediction
            set_graph_data(model, {k: v for k, v in values.items()
                                   if not is_observation_level(k)})

