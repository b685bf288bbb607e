"""Build the PyMC model from a design, a family and resolved priors.

This is the only place the linear predictor is written. Data enter as ``pm.Data`` so that
prediction swaps them with ``pm.set_data`` and samples this same graph.

Names and coordinates follow SPEC section 4: ``Intercept``, ``beta0``, ``b`` (dim ``coef``),
``sigma``/``alpha``, ``R2``, ``W``, ``phi`` (dim ``component``), ``sd_<factor>`` (dim
``<factor>__term``), ``r_<factor>`` (dims ``<factor>``, ``<factor>__term``) and
``cor_<factor>`` (dims ``<factor>__term``, ``<factor>__term_bis``). Raw sampling variables
(``b_z``, ``r_<f>_z``, ``r_<f>_c<k>``, ``cor_<f>_packed``) are listed in ``GraphInfo.hidden``.

Parameterisation (sampling geometry)
------------------------------------
The joint prior is exactly SPEC section 2's; only the coordinates NUTS moves in differ.
``b_j = z_j * scale_j`` with ``z_j ~ N(0, 1)`` (non-centered) and ``b_j ~ N(0, scale_j)``
(centered) give the same distribution, and likewise ``r = (diag(sd) L z)'`` and
``r[level] ~ MvNormal(0, diag(sd) R diag(sd))`` (a 2-term block is written as
``x0 ~ N(0, s0)``, ``x1 | x0 ~ N(rho s1 x0 / s0, s1 sqrt(1 - rho^2))``, its exact
factorisation). Non-centered is right where the prior dominates a coefficient (a funnel in
the scale otherwise); centered where the data dominate (non-centered then couples z to the
scale through the likelihood: the long trajectories and the divergences of sleepstudy, and
the poorly mixing ``phi`` of radon). The choice is made once per model, deterministically,
from a pilot least-squares fit that needs no sampling (:func:`_pilot`):

* data are linearised as a GLM at the mean response (working response and weights; the
  gaussian response as is);
* in a model with group terms, population coefficient ``j`` is centered iff its pilot
  |estimate| / standard error exceeds ``T_CENTER`` = 2 (a coefficient clearly away from zero
  cannot sit in the shrinkage funnel). Without group terms (a plain R2D2 regression) every
  ``b`` stays non-centered: on diabetes (correlated predictors) centering the strong
  coefficients gave 6 (nutpie) / 23 (pymc) divergences at the defaults, all of them 84 at
  4 x 500, against 0-1 non-centered;
* group factor ``f`` is centered (all its terms) iff, for every term, the between-level
  variance of the per-level least-squares estimates, minus their mean sampling variance,
  exceeds the median sampling variance: the typical level's reliability is above one half.
  Levels too small to estimate their terms are skipped; fewer than two usable levels gives
  non-centered.

Measured (nutpie, 4 x 500, seed 1): sleepstudy everything non-centered 63 leapfrog steps a
draw, centered 31; radon non-centered 6 divergences and min ESS 89 (``phi``), with ``b``
centered 0 and 621; diabetes all ``b`` centered 84 divergences (weak coefficients in the
funnel). ``CENTER_POPULATION`` and ``CENTER_GROUPS`` override the rule.
"""

from __future__ import annotations

import functools
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


def _total_variance(
    family: Family, priors: ResolvedPriors, R2: pt.TensorVariable,
    beta0: pt.TensorVariable, aux: dict[str, pt.TensorVariable],
) -> pt.TensorVariable:
    """W, the prior variance of the linear predictor, as a function of R2 (SPEC section 2).

    The map's inputs that come from the data (scalar trials, mean offset) are resolved once
    in :func:`r2d2formula.priors.defaults.resolve_priors`.
    """
    if family.name == "gaussian":
        return aux["sigma"] ** 2 * R2 / (1.0 - R2)
    from r2d2formula.priors import r2_maps

    return r2_maps.w_of_r2(
        family, R2, beta0 + priors.offset_mean, aux, trials=priors.map_trials,
        method=priors.approx, xp=PYTENSOR,
    )


def _r2_and_w(family, priors, beta0, aux):
    """R2 (a free Beta variable, or implied by the GBP draw) and W."""
    a, b = priors.r2_beta
    if priors.approx == "gbp" and priors.gbp_params is not None:
        from r2d2formula.priors import gbp, r2_maps

        params = priors.gbp_params
        u = pm.Beta("R2_gbp_u", alpha=params[0], beta=params[1])
        W = pm.Deterministic("W", gbp.w_of_gbp_u(u, params, xp=PYTENSOR))
        R2 = pm.Deterministic(
            "R2", r2_maps.r2_of_w(family, W, beta0 + priors.offset_mean, aux,
                                  trials=priors.map_trials, xp=PYTENSOR))
        return R2, W
    R2 = pm.Beta("R2", alpha=a, beta=b)
    W = pm.Deterministic("W", _total_variance(family, priors, R2, beta0, aux))
    return R2, W


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
        R2, W = _r2_and_w(family, priors, beta0, aux)
        conc = np.asarray(priors.concentrations, dtype=float)
        if len(components) > 1:
            phi = pm.Dirichlet("phi", a=conc, dims="component")
        else:
            phi = pm.Deterministic("phi", pt.ones(1), dims="component")

        # the data pilot behind the centered / non-centered choice, computed at most once
        pilot = functools.cache(lambda: _pilot(design, family))

        # ---- population-level coefficients ------------------------------------------
        eta = beta0 + (offset if offset is not None else 0.0)
        if p:
            scales = common.scales if autoscale else np.ones(p)
            means = common.means if common.intercept else np.zeros(p)
            idx = [comp_index[label] for label in common.labels]
            laplace = priors.r2d2.kernel == "laplace"
            b_scale = pt.sqrt(phi[idx] * W / (2.0 if laplace else 1.0)) / scales
            dist = pm.Laplace if laplace else pm.Normal
            center = _center_population(design, pilot)
            if center.all():
                b = dist("b", 0.0, b_scale, dims="coef")
            elif not center.any():
                b_z = dist("b_z", 0.0, 1.0, dims="coef")
                hidden.append("b_z")
                b = pm.Deterministic("b", b_z * b_scale, dims="coef")
            else:  # centered where the data dominate, non-centered elsewhere
                c_idx, z_idx = np.flatnonzero(center), np.flatnonzero(~center)
                b_c = dist("b_c", 0.0, b_scale[c_idx], shape=len(c_idx))
                b_z = dist("b_z", 0.0, 1.0, shape=len(z_idx))
                hidden.extend(["b_c", "b_z"])
                b = pt.zeros(p)
                b = pt.set_subtensor(b[c_idx], b_c)
                b = pt.set_subtensor(b[z_idx], b_z * b_scale[z_idx])
                b = pm.Deterministic("b", b, dims="coef")
            eta = eta + pt.dot(X - means, b)
            if common.intercept:
                pm.Deterministic("Intercept", beta0 - pt.dot(means, b))
        elif common.intercept:
            pm.Deterministic("Intercept", beta0)

        # ---- group-level effects ----------------------------------------------------
        term_dims: dict[str, str] = {}
        for factor, gf in design.factors.items():
            eta = eta + _group_effects(
                design, family, factor, gf, priors, phi, W, comp_index, codes[factor], names,
                autoscale, hidden, term_dims, pilot,
            )

        if predictive:
            pm.Deterministic("eta", eta, dims=OBS_DIM)
        _likelihood(family, obs_name, eta, aux, trials, y_data, predictive)

    info = GraphInfo(response=obs_name, factor_dims={f: f for f in design.factors},
                     term_dims=term_dims, hidden=tuple(hidden))
    return model, info


#: Parameterisation overrides (None: the automatic rule below). ``CENTER_POPULATION`` is a bool
#: for all population coefficients; ``CENTER_GROUPS`` maps a factor name to a bool.
CENTER_POPULATION: bool | None = None
CENTER_GROUPS: dict[str, bool] = {}
#: The data dominate a parameter when its pilot |estimate| / standard error exceeds this
#: (population) or when the between-level variance exceeds the mean sampling variance
#: (reliability above one half, group terms).
T_CENTER = 2.0


def _working_response(design: Design, family: Family) -> tuple[np.ndarray, np.ndarray, bool]:
    """Working response and weights of a GLM linearised at the mean response (one IRLS step
    from the intercept-only fit), and whether the dispersion is estimated (gaussian)."""
    y = np.asarray(design.response.values, dtype=float)
    trials = design.response.trials
    n = np.ones_like(y) if trials is None else np.asarray(trials, dtype=float)
    if family.name == "gaussian":
        return y, np.ones_like(y), True
    from r2d2formula.families import inverse_link_derivative

    prop = y / n if family.name == "binomial" else y
    mu0 = float(np.clip(np.mean(prop), 0.02, 0.98) if family.link in ("logit", "probit")
                else max(np.mean(prop), 0.1))
    eta0 = {"logit": np.log(mu0 / (1 - mu0)), "log": np.log(mu0)}.get(family.link, 0.0)
    if family.link == "probit":
        from scipy.special import ndtri
        eta0 = float(ndtri(mu0))
    dmu = float(inverse_link_derivative(family.link, np.asarray(eta0)))
    var = mu0 * (1 - mu0) if family.link in ("logit", "probit") else mu0
    z = eta0 + (prop - mu0) / dmu
    w = n * dmu**2 / var if family.name == "binomial" else np.full_like(y, dmu**2 / var)
    return z, w, False


def _pilot(design: Design, family: Family) -> tuple[np.ndarray, dict[str, bool]]:
    """Per-coefficient |t| of the population fit and per-factor 'data dominate' flags."""
    z, w, estimate_dispersion = _working_response(design, family)
    common = design.common
    cols = [np.ones_like(z)] if common.intercept else []
    X = common.matrix - (common.means if common.intercept else 0.0)
    A = np.column_stack(cols + [X[:, j] for j in range(X.shape[1])])
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(A * sw[:, None], z * sw, rcond=None)
    resid = z - A @ coef
    dof = max(len(z) - A.shape[1], 1)
    disp = float(np.sum(w * resid**2) / dof) if estimate_dispersion else 1.0
    cov = disp * np.linalg.pinv((A * w[:, None]).T @ A)
    se = np.sqrt(np.maximum(np.diag(cov), 1e-300))
    t = np.abs(coef / se)[1 if common.intercept else 0:]
    groups = {}
    for factor, gf in design.factors.items():
        terms = [term for term in design.group_terms if term.factor == factor]
        Zf = np.column_stack([term.matrix for term in terms])
        est, var, ssr, dof_within = [], [], 0.0, 0
        order = np.argsort(gf.codes, kind="stable")
        bounds = np.searchsorted(gf.codes[order], np.arange(len(gf.levels) + 1))
        for level in range(len(gf.levels)):
            rows = order[bounds[level]:bounds[level + 1]]
            Zl, wl = Zf[rows], w[rows]
            info = (Zl * wl[:, None]).T @ Zl
            if rows.size <= Zf.shape[1] or np.linalg.cond(info) > 1e10:
                continue
            inv = np.linalg.inv(info)
            est.append(inv @ (Zl * wl[:, None]).T @ resid[rows])
            var.append(np.diag(inv))
            ssr += float(np.sum(wl * (resid[rows] - Zl @ est[-1]) ** 2))
            dof_within += int(rows.size) - Zf.shape[1]
        if len(est) < 2:
            groups[factor] = False
            continue
        # gaussian: the dispersion within levels (the pooled one would include the groups)
        scale = ssr / max(dof_within, 1) if estimate_dispersion else 1.0
        est, var = np.array(est), scale * np.array(var)
        between = est.var(axis=0, ddof=1) - var.mean(axis=0)
        groups[factor] = bool(np.all(between > np.median(var, axis=0)))
    return t, groups


def _center_population(design: Design, pilot) -> np.ndarray:
    """Boolean mask over the population coefficients: which are sampled centered."""
    p = len(design.common.labels)
    if CENTER_POPULATION is not None:
        return np.full(p, CENTER_POPULATION)
    if not design.factors:  # measured on diabetes: centering made divergences (see above)
        return np.zeros(p, dtype=bool)
    return pilot()[0] > T_CENTER


def _center_groups(pilot, factor: str) -> bool:
    """Whether the group effects of ``factor`` are sampled centered."""
    if factor in CENTER_GROUPS:
        return CENTER_GROUPS[factor]
    return pilot()[1][factor]


def _group_effects(design, family, factor, gf, priors, phi, W, comp_index, codes, names, autoscale,
                   hidden, term_dims, pilot):
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

    centered = _center_groups(pilot, factor)
    n_levels = len(gf.levels)
    if not centered:
        z = pm.Normal(f"r_{factor}_z", 0.0, 1.0, dims=(factor, term_dim))
        hidden.append(f"r_{factor}_z")
    # correlate within each '|' block: r = (diag(sd) L z)', or centered r ~ MvNormal(0, S R S)
    blocks: list[pt.TensorVariable] = []
    corr_full = None
    start = 0
    correlated = [t for t in terms if t.correlated]
    single_free = centered and len(terms) == 1 and not terms[0].correlated
    for k, term in enumerate(terms):
        width = len(term.labels)
        cols = slice(start, start + width)
        sd_block = sd[cols]
        rho = corr = None
        if term.correlated:
            lkj_name = f"cor_{factor}_packed" if len(correlated) == 1 else f"cor_{factor}_packed{k}"
            packed = pm.LKJCorr(lkj_name, n=width, eta=1.0)
            hidden.append(lkj_name)
            corr = _packed_to_corr(packed, width)
            if width == 2:
                rho = packed[0]
            if corr_full is None:
                corr_full = pt.eye(q)
            corr_full = pt.set_subtensor(corr_full[cols, cols], corr)
        if single_free:
            block = pm.Normal(f"r_{factor}", 0.0, sd_block, dims=(factor, term_dim))
            r = block
        elif centered:
            raw = f"r_{factor}_c{k}"
            hidden.append(raw)
            if corr is None:
                block = pm.Normal(raw, 0.0, sd_block, shape=(n_levels, width))
            elif width == 2:
                # bivariate normal as x0 ~ N(0, s0), x1 | x0 ~ N(rho s1 x0 / s0, s1 sqrt(1-rho^2))
                x0 = pm.Normal(raw, 0.0, sd_block[0], shape=n_levels)
                x1 = pm.Normal(f"{raw}b", rho * sd_block[1] / sd_block[0] * x0,
                               sd_block[1] * pt.sqrt(1.0 - rho**2), shape=n_levels)
                hidden.append(f"{raw}b")
                block = pt.stack([x0, x1], axis=1)
            else:
                chol = sd_block[:, None] * pt.linalg.cholesky(corr)
                block = pm.MvNormal(raw, mu=pt.zeros(width), chol=chol, shape=(n_levels, width))
        else:
            z_block = z[:, cols]
            if rho is not None:
                # analytic Cholesky factor [[1, 0], [rho, sqrt(1 - rho^2)]]: no linear algebra
                z_block = pt.stack(
                    [z_block[:, 0], rho * z_block[:, 0] + pt.sqrt(1.0 - rho**2) * z_block[:, 1]],
                    axis=1,
                )
            elif corr is not None:
                z_block = pt.dot(z_block, pt.linalg.cholesky(corr).T)
            block = z_block * sd_block
        blocks.append(block)
        start += width
    if not single_free:
        stacked = blocks[0] if len(blocks) == 1 else pt.concatenate(blocks, axis=1)
        r = pm.Deterministic(f"r_{factor}", stacked, dims=(factor, term_dim))
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
        return pm.Binomial(name, n=pt.cast(pt.round(trials), "int64"), logit_p=logit_p, **shape)
    if family.name == "poisson":
        return pm.Poisson(name, mu=pt.exp(eta), **shape)
    if family.name == "negativebinomial":
        return pm.NegativeBinomial(name, mu=pt.exp(eta), alpha=aux["alpha"], **shape)
    raise NotImplementedError(f"no likelihood for family {family.name!r}")  # pragma: no cover
