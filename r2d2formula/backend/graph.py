"""Build the PyMC model from a design, a family and resolved priors.

This is the only place the linear predictor is written. Data enter as ``pm.Data`` so that
prediction swaps them with ``pm.set_data`` and samples this same graph.

Names and coordinates follow SPEC section 4: ``Intercept``, ``beta0``, ``b`` (dim ``coef``),
``sigma``/``alpha``, ``R2``, ``W``, ``phi`` (dim ``component``), ``sd_<factor>`` (dim
``<factor>__term``), ``r_<factor>`` (dims ``<factor>``, ``<factor>__term``) and
``cor_<factor>`` (dims ``<factor>__term``, ``<factor>__term_bis``). Raw non-centered variables
end in ``_z`` and are hidden from summaries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.distributions.dist_math import normal_lcdf

from r2d2formula.backend.xp import PYTENSOR
from r2d2formula.design.types import Design
from r2d2formula.families import Family
from r2d2formula.priors.defaults import ResolvedPriors
from r2d2formula.priors.spec import Prior

__all__ = ["build_model", "GraphInfo", "OBS_DIM", "data_names"]

OBS_DIM = "__obs__"
_RESERVED = {"Intercept", "beta0", "b", "sigma", "alpha", "R2", "W", "phi", "eta", "mu"}


@dataclass(frozen=True, kw_only=True)
class GraphInfo:
    """Names in the built graph that later stages need."""

    response: str
    factor_dims: dict[str, str]
    term_dims: dict[str, str]
    hidden: tuple[str, ...]


def data_names(design: Design) -> dict[str, str]:
    """Names of the ``pm.Data`` containers, by role (``X``, ``codes:<f>``, ``Z:<f>``, ...)."""
    names = {"X": "X", "offset": "offset", "trials": "trials", "y": "y_observed"}
    for factor in design.factors:
        names[f"codes:{factor}"] = f"codes_{factor}"
        names[f"Z:{factor}"] = f"Z_{factor}"
    return names


def response_name(design: Design) -> str:
    """Name of the observed variable: the response's name unless it clashes with a parameter."""
    name = design.response.name
    taken = _RESERVED | {f"sd_{f}" for f in design.factors} | {f"r_{f}" for f in design.factors}
    return name if name and name not in taken else "y"


def _prior_rv(name: str, prior: Prior, **kwargs) -> pt.TensorVariable:
    dist = getattr(pm, prior.distribution)
    return dist(name, **prior.params, **kwargs)


def _packed_to_corr(packed: pt.TensorVariable, q: int) -> pt.TensorVariable:
    upper = np.triu_indices(q, 1)
    corr = pt.eye(q)
    corr = pt.set_subtensor(corr[upper], packed)
    return pt.set_subtensor(corr[(upper[1], upper[0])], packed)


def _effective_trials(design: Design, approx: str) -> float:
    trials = design.response.trials
    if trials is None:
        return 1.0
    trials = np.asarray(trials, dtype=float)
    if approx == "linear":
        return float(np.mean(trials))  # SPEC table: n = mean trials
    # E[mu(1-mu)/n] = E[mu(1-mu)] * mean(1/n): the harmonic mean is exact for the definition
    return float(1.0 / np.mean(1.0 / trials))


def _total_variance(
    design: Design, family: Family, priors: ResolvedPriors, R2: pt.TensorVariable,
    beta0: pt.TensorVariable, aux: dict[str, pt.TensorVariable],
) -> pt.TensorVariable:
    """W, the prior variance of the linear predictor, as a function of R2 (SPEC section 2)."""
    if family.name == "gaussian":
        return aux["sigma"] ** 2 * R2 / (1.0 - R2)
    from r2d2formula.priors import r2_maps

    offset_mean = 0.0 if design.offset is None else float(np.mean(design.offset))
    trials = _effective_trials(design, priors.approx)
    return r2_maps.w_of_r2(
        family, R2, beta0 + offset_mean, aux, trials=trials, method=priors.approx, xp=PYTENSOR
    )


def _r2_and_w(design, family, priors, beta0, aux):
    """R2 (a free Beta variable, or implied by the GBP draw) and W."""
    a, b = priors.r2_beta
    if priors.approx == "gbp" and family.name != "gaussian":
        from r2d2formula.priors import gbp, r2_maps

        offset_mean = 0.0 if design.offset is None else float(np.mean(design.offset))
        trials = _effective_trials(design, "gbp")
        aux_plugin = _aux_plugin(priors)
        params = gbp.fit_gbp(family, a, b, priors.intercept_plugin + offset_mean,
                             trials=trials, **aux_plugin)
        u = pm.Beta("R2_gbp_u", alpha=params[0], beta=params[1])
        W = pm.Deterministic("W", gbp.w_of_gbp_u(u, params, xp=PYTENSOR))
        R2 = pm.Deterministic(
            "R2", r2_maps.r2_of_w(family, W, beta0 + offset_mean, aux, trials=trials,
                                  xp=PYTENSOR))
        return R2, W
    R2 = pm.Beta("R2", alpha=a, beta=b)
    W = pm.Deterministic("W", _total_variance(design, family, priors, R2, beta0, aux))
    return R2, W


def _aux_plugin(priors: ResolvedPriors) -> dict[str, float]:
    """Plug-in values of auxiliary parameters for the GBP fit (prior medians)."""
    plugin = {}
    for name, prior in priors.aux.items():
        if prior.distribution == "LogNormal":
            plugin[name] = float(np.exp(prior.params.get("mu", 0.0)))
        else:
            plugin[name] = 1.0
    return plugin


def _coords(design: Design, components: tuple[str, ...], n_obs: int) -> dict:
    coords: dict[str, object] = {
        OBS_DIM: np.arange(n_obs),
        "coef": list(design.common.labels),
        "component": list(components),
    }
    for factor, gf in design.factors.items():
        labels = list(design.factor_labels(factor))
        coords[factor] = list(gf.levels)
        coords[f"{factor}__term"] = labels
        coords[f"{factor}__term_bis"] = labels
    return coords


def build_model(
    design: Design, family: Family, priors: ResolvedPriors, *, predictive: bool = False
) -> tuple[pm.Model, GraphInfo]:
    """Compile (design, family, priors) into a ``pm.Model``.

    Parameters
    ----------
    design : Design
    family : Family
    priors : ResolvedPriors
    predictive : bool
        Also register the linear predictor ``eta`` and the mean ``mu`` as deterministics over
        the observations (for predictions; off for sampling, where storing them would cost
        draws x n memory).

    Returns
    -------
    model : pymc.Model
    info : GraphInfo
    """
    common = design.common
    n_obs = design.n_obs
    p = len(common.labels)
    variant = priors.variant
    components = variant.components
    comp_index = {name: i for i, name in enumerate(components)}
    names = data_names(design)
    obs_name = response_name(design)
    autoscale = priors.r2d2.autoscale
    hidden: list[str] = []

    with pm.Model(coords=_coords(design, components, n_obs)) as model:
        # ---- data -------------------------------------------------------------------
        X = pm.Data(names["X"], common.matrix, dims=(OBS_DIM, "coef")) if p else None
        offset = (pm.Data(names["offset"], design.offset, dims=OBS_DIM)
                  if design.offset is not None else None)
        trials = (pm.Data(names["trials"], design.response.trials, dims=OBS_DIM)
                  if design.response.trials is not None else None)
        codes = {f: pm.Data(names[f"codes:{f}"], gf.codes.astype("int64"), dims=OBS_DIM)
                 for f, gf in design.factors.items()}
        y_data = pm.Data(names["y"], design.response.values, dims=OBS_DIM)

        # ---- auxiliary parameters and intercept -------------------------------------
        aux = {name: _prior_rv(name, prior) for name, prior in priors.aux.items()}
        if common.intercept:
            beta0 = _prior_rv("beta0", priors.intercept)
        else:
            beta0 = pt.constant(0.0)

        # ---- R2, W and the variance split -------------------------------------------
        R2, W = _r2_and_w(design, family, priors, beta0, aux)
        conc = np.asarray(priors.concentrations, dtype=float)
        if len(components) > 1:
            phi = pm.Dirichlet("phi", a=conc, dims="component")
        else:
            phi = pm.Deterministic("phi", pt.ones(1), dims="component")

        # ---- population-level coefficients ------------------------------------------
        eta = beta0 + (offset if offset is not None else 0.0)
        if p:
            scales = common.scales if autoscale else np.ones(p)
            means = common.means if common.intercept else np.zeros(p)
            idx = [comp_index[label] for label in common.labels]
            if priors.r2d2.kernel == "laplace":
                b_z = pm.Laplace("b_z", mu=0.0, b=1.0, dims="coef")
                b_scale = pt.sqrt(phi[idx] * W / 2.0) / scales
            else:
                b_z = pm.Normal("b_z", 0.0, 1.0, dims="coef")
                b_scale = pt.sqrt(phi[idx] * W) / scales
            hidden.append("b_z")
            b = pm.Deterministic("b", b_z * b_scale, dims="coef")
            eta = eta + pt.dot(X - means, b)
            if common.intercept:
                pm.Deterministic("Intercept", beta0 - pt.dot(means, b))
        elif common.intercept:
            pm.Deterministic("Intercept", beta0)

        # ---- group-level effects ----------------------------------------------------
        term_dims: dict[str, str] = {}
        for factor, gf in design.factors.items():
            eta = eta + _group_effects(
                design, factor, gf, priors, phi, W, comp_index, codes[factor], names,
                autoscale, hidden, term_dims,
            )

        if predictive:
            pm.Deterministic("eta", eta, dims=OBS_DIM)
        _likelihood(family, obs_name, eta, aux, trials, y_data, predictive)

    info = GraphInfo(response=obs_name, factor_dims={f: f for f in design.factors},
                     term_dims=term_dims, hidden=tuple(hidden))
    return model, info


def _group_effects(design, factor, gf, priors, phi, W, comp_index, codes, names, autoscale,
                   hidden, term_dims):
    """r_<factor> (levels x terms) and its contribution to eta for every row."""
    terms = [t for t in design.group_terms if t.factor == factor]
    labels = [label for t in terms for label in t.labels]
    q = len(labels)
    term_dim = f"{factor}__term"
    term_dims[factor] = term_dim
    scales = np.concatenate([t.scales for t in terms]) if autoscale else np.ones(q)
    if priors.variant.independent_groups:
        sd = _prior_rv(f"sd_{factor}", priors.group_sd, dims=term_dim)
    else:
        idx = [comp_index[f"{label}|{factor}"] for label in labels]
        sd = pm.Deterministic(f"sd_{factor}", pt.sqrt(phi[idx] * W) / scales, dims=term_dim)

    z = pm.Normal(f"r_{factor}_z", 0.0, 1.0, dims=(factor, term_dim))
    hidden.append(f"r_{factor}_z")
    # correlate within each '|' block: r = (diag(sd) L z)'
    blocks: list[pt.TensorVariable] = []
    corr_full = None
    start = 0
    correlated = [t for t in terms if t.correlated]
    for k, term in enumerate(terms):
        width = len(term.labels)
        z_block = z[:, start:start + width]
        if term.correlated:
            lkj_name = f"cor_{factor}_packed" if len(correlated) == 1 else f"cor_{factor}_packed{k}"
            packed = pm.LKJCorr(lkj_name, n=width, eta=1.0)
            hidden.append(lkj_name)
            corr = _packed_to_corr(packed, width)
            if width == 2:
                # analytic Cholesky factor [[1, 0], [rho, sqrt(1 - rho^2)]]: no linear algebra
                rho = packed[0]
                z_block = pt.stack(
                    [z_block[:, 0], rho * z_block[:, 0] + pt.sqrt(1.0 - rho**2) * z_block[:, 1]],
                    axis=1,
                )
            else:
                chol = pt.linalg.cholesky(corr)
                z_block = pt.dot(z_block, chol.T)
            if corr_full is None:
                corr_full = pt.eye(q)
            corr_full = pt.set_subtensor(corr_full[start:start + width, start:start + width],
                                         corr)
        blocks.append(z_block)
        start += width
    z_corr = blocks[0] if len(blocks) == 1 else pt.concatenate(blocks, axis=1)
    r = pm.Deterministic(f"r_{factor}", z_corr * sd, dims=(factor, term_dim))
    if corr_full is not None:
        pm.Deterministic(f"cor_{factor}", corr_full, dims=(term_dim, f"{factor}__term_bis"))

    # contribution: sum_t Z[:, t] * r[codes, t]; intercept columns need no Z data
    r_rows = r[codes]
    is_intercept = np.array([label == "1" for label in labels])
    contribution = 0.0
    if is_intercept.any():
        contribution = r_rows[:, np.flatnonzero(is_intercept)].sum(axis=1)
    if (~is_intercept).any():
        z_matrix = np.column_stack(
            [t.matrix[:, j] for t in terms for j in range(len(t.labels)) if t.labels[j] != "1"]
        )
        Z = pm.Data(names[f"Z:{factor}"], z_matrix)
        contribution = contribution + (Z * r_rows[:, np.flatnonzero(~is_intercept)]).sum(axis=1)
    return contribution


def _likelihood(family, name, eta, aux, trials, y_data, predictive):
    link = family.link
    if predictive:
        pm.Deterministic("mu", family.mean(eta, PYTENSOR), dims=OBS_DIM)
    shape = {"dims": OBS_DIM, "observed": y_data}
    if family.name == "gaussian":
        return pm.Normal(name, mu=eta, sigma=aux["sigma"], **shape)
    if family.name in ("bernoulli", "binomial"):
        if link == "logit":
            logit_p = eta
        else:  # probit, with a stable log Phi so extreme eta stays finite
            logit_p = normal_lcdf(0.0, 1.0, eta) - normal_lcdf(0.0, 1.0, -eta)
        if family.name == "bernoulli":
            return pm.Bernoulli(name, logit_p=logit_p, **shape)
        return pm.Binomial(name, n=trials, logit_p=logit_p, **shape)
    if family.name == "poisson":
        return pm.Poisson(name, mu=pt.exp(eta), **shape)
    if family.name == "negativebinomial":
        return pm.NegativeBinomial(name, mu=pt.exp(eta), alpha=aux["alpha"], **shape)
    raise NotImplementedError(f"no likelihood for family {family.name!r}")  # pragma: no cover
