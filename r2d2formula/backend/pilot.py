"""A pilot fit, without sampling, that tells the graph how well the data measure each effect.

The model graph (:mod:`r2d2formula.backend.graph`) samples each coefficient in coordinates
adapted to how strongly the data inform it (see its module docstring). What it needs is a
Gaussian approximation of the likelihood of every coefficient: an estimate and a precision
(1 / standard error^2) per population column and per group level and term. This module
computes them in plain NumPy, once per model build:

* population columns: a GLM fitted by iteratively reweighted least squares (IRLS; ordinary
  least squares for gaussian), group terms ignored; the precision of coefficient j is
  ``1 / [I^-1]_jj`` for the Fisher information ``I`` (zero for a coefficient the data do not
  identify: a column in the null space of a collinear design);
* group terms: per level, weighted least squares of the IRLS working residuals on that
  level's Z columns, with the IRLS weights (gaussian: the within-level residual variance).

The numbers only choose sampling coordinates; any values keep the prior exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from r2d2formula.design.types import Design
from r2d2formula.families import Family, inverse_link, inverse_link_derivative

__all__ = ["Pilot", "pilot_fit", "pilot_data"]

_MAX_ITER = 25
#: linear predictor bounds during IRLS, per link (keeps weights finite under separation)
_ETA_BOUNDS = {"logit": 15.0, "probit": 6.0, "log": 20.0}
_RCOND = 1e-10


@dataclass(frozen=True, kw_only=True)
class Pilot:
    """Gaussian approximation of the likelihood of each coefficient.

    Attributes
    ----------
    beta0_hat : float
        Estimate of the intercept of the centered design (0 without an intercept); the
        estimates of the group effects are relative to it and to ``b_hat``.
    b_hat, b_prec : ndarray, shape (p,)
        Estimate and precision (1 / se^2) of each population coefficient, on the scale of its
        column; precision 0 where the data do not identify the coefficient.
    r_hat, r_prec : dict of str to ndarray, shape (levels, q)
        Per factor, the same for each level and Z column (0 precision for levels with too
        little data to estimate a column).
    tau2 : dict of str to ndarray, shape (q,)
        Per factor and Z column, ``tau^2``: the between-level variance of the estimates less
        their mean sampling variance, over the levels with a precision (0 where that is not
        positive or fewer than two levels have one).
    shrinkage : dict of str to ndarray, shape (q,)
        Per factor and Z column, the median over levels of ``tau^2 prec / (1 + tau^2 prec)``:
        near 1 where the data pin down each level's effect, near 0 where the prior does.
    reliable : dict of str to bool
        Per factor, whether every term's between-level variance of the estimates, less their
        mean sampling variance, exceeds their median sampling variance (the typical level's
        reliability is above one half); False with fewer than two usable levels.
    """

    beta0_hat: float
    b_hat: np.ndarray
    b_prec: np.ndarray
    r_hat: dict[str, np.ndarray]
    r_prec: dict[str, np.ndarray]
    tau2: dict[str, np.ndarray]
    shrinkage: dict[str, np.ndarray]
    reliable: dict[str, bool]

    @property
    def t(self) -> np.ndarray:
        """|estimate| / standard error of each population coefficient."""
        return np.abs(self.b_hat) * np.sqrt(self.b_prec)


def _marginal_precision(info: np.ndarray) -> np.ndarray:
    """``1 / diag(info^-1)`` over the last two axes, 0 for columns in the null space.

    Examples
    --------
    >>> _marginal_precision(np.array([[2.0, 0.0], [0.0, 4.0]]))
    array([2., 4.])
    >>> _marginal_precision(np.array([[1.0, 1.0], [1.0, 1.0]]))  # collinear: not identified
    array([0., 0.])
    """
    vals, vecs = np.linalg.eigh(info)
    top = np.max(np.abs(vals), axis=-1, keepdims=True)
    null = vals <= _RCOND * np.maximum(top, 1e-300)
    inv_vals = np.where(null, 0.0, 1.0 / np.where(null, 1.0, vals))
    var = np.einsum("...jk,...k,...jk->...j", vecs, inv_vals, vecs)
    # a column that loads on a null direction has unbounded variance
    loads_null = np.einsum("...jk,...k->...j", vecs**2, null.astype(float)) > 1e-12
    return np.where(loads_null | (var <= 0), 0.0, 1.0 / np.where(var > 0, var, 1.0))


def _pinv_solve(info: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``info^+ rhs`` over leading batch axes (least-norm where singular)."""
    vals, vecs = np.linalg.eigh(info)
    top = np.max(np.abs(vals), axis=-1, keepdims=True)
    null = vals <= _RCOND * np.maximum(top, 1e-300)
    inv_vals = np.where(null, 0.0, 1.0 / np.where(null, 1.0, vals))
    proj = np.einsum("...jk,...j->...k", vecs, rhs) * inv_vals
    return np.einsum("...jk,...k->...j", vecs, proj)


def _irls(A: np.ndarray, design: Design, family: Family):
    """Population-only GLM fit: coefficients, IRLS weights, working residuals, dispersion."""
    y = np.asarray(design.response.values, dtype=float)
    offset = 0.0 if design.offset is None else np.asarray(design.offset, dtype=float)
    n_obs = len(y)
    dof = max(n_obs - A.shape[1], 1)
    if family.name == "gaussian":
        coef, *_ = np.linalg.lstsq(A, y - offset, rcond=None)
        resid = y - offset - A @ coef
        return coef, np.ones(n_obs), resid, float(resid @ resid / dof)
    trials = design.response.trials
    n = np.ones(n_obs) if trials is None else np.asarray(trials, dtype=float)
    if family.name == "binomial":
        prop, mu = y / np.maximum(n, 1e-12), (y + 0.5) / (n + 1.0)
    elif family.link in ("logit", "probit"):
        prop, mu = y, (y + 0.5) / 2.0
    else:
        prop, mu = y, y + 0.1
    link, bound = family.link, _ETA_BOUNDS.get(family.link, np.inf)
    eta = {"logit": lambda m: np.log(m / (1 - m)), "log": np.log}.get(link, lambda m: m)(mu)
    if link == "probit":
        from scipy.special import ndtri

        eta = ndtri(mu)
    coef = np.zeros(A.shape[1])
    for _ in range(_MAX_ITER):
        eta = np.clip(eta, -bound, bound)
        mu = inverse_link(link, eta)
        dmu = np.maximum(inverse_link_derivative(link, eta), 1e-300)
        var = mu * (1.0 - mu) / n if link in ("logit", "probit") else mu
        w = dmu**2 / np.maximum(var, 1e-300)
        z = eta - offset + (prop - mu) / dmu
        sw = np.sqrt(w)
        new, *_ = np.linalg.lstsq(A * sw[:, None], z * sw, rcond=None)
        if not np.all(np.isfinite(new)):
            break
        step, coef = np.max(np.abs(new - coef)), new
        eta = A @ coef + offset
        if step < 1e-8:
            break
    eta = np.clip(A @ coef + offset, -bound, bound)
    mu = inverse_link(link, eta)
    dmu = np.maximum(inverse_link_derivative(link, eta), 1e-300)
    var = mu * (1.0 - mu) / n if link in ("logit", "probit") else mu
    w = dmu**2 / np.maximum(var, 1e-300)
    resid = (prop - mu) / dmu
    disp = 1.0
    if family.name == "negativebinomial":  # its extra variance is unknown here: Pearson's
        disp = max(float(np.sum(w * resid**2) / dof), 1.0)
    return coef, w, resid, disp


def _levels(codes: np.ndarray, n_levels: int, Zf: np.ndarray, w: np.ndarray,
            resid: np.ndarray):
    """Per level: information Z'WZ (levels, q, q), Z'W resid (levels, q), row counts."""
    q = Zf.shape[1]
    info = np.empty((n_levels, q, q))
    for a in range(q):
        for b in range(a, q):
            col = np.bincount(codes, weights=w * Zf[:, a] * Zf[:, b], minlength=n_levels)
            info[:, a, b] = info[:, b, a] = col[:n_levels]
    rhs = np.stack([np.bincount(codes, weights=w * Zf[:, a] * resid, minlength=n_levels)
                    [:n_levels] for a in range(q)], axis=1)
    rows = np.bincount(codes, minlength=n_levels)[:n_levels]
    return info, rhs, rows


def pilot_fit(design: Design, family: Family) -> Pilot:
    """Estimates and precisions of every coefficient from a pilot (IRLS) fit.

    Parameters
    ----------
    design : Design
    family : Family

    Returns
    -------
    Pilot

    Examples
    --------
    >>> from r2d2formula import datasets
    >>> from r2d2formula.design import build_design
    >>> from r2d2formula.families import get_family
    >>> design = build_design("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))
    >>> pil = pilot_fit(design, get_family("gaussian"))
    >>> round(float(pil.b_hat[0]), 2)  # lme4: 10.47
    10.47
    >>> pil.r_hat["Subject"].shape
    (18, 2)
    """
    common = design.common
    X = np.asarray(common.matrix, dtype=float)
    if common.intercept:
        X = X - common.means
    A = np.column_stack([np.ones(design.n_obs), X]) if common.intercept else X
    p0 = 1 if common.intercept else 0
    if A.shape[1]:
        coef, w, resid, disp = _irls(A, design, family)
    else:  # no intercept, no columns: the residual is the working response itself
        coef, w, resid, disp = _irls(np.zeros((design.n_obs, 0)), design, family)
    info = (A * w[:, None]).T @ A / disp
    b_hat = np.asarray(coef[p0:], dtype=float)
    b_prec = _marginal_precision(info)[p0:] if A.shape[1] else np.zeros(0)
    b_hat = np.where(b_prec > 0, b_hat, 0.0)

    r_hat, r_prec, tau2, shrinkage, reliable = {}, {}, {}, {}, {}
    for factor, gf in design.factors.items():
        terms = [term for term in design.group_terms if term.factor == factor]
        Zf = np.column_stack([term.matrix for term in terms]).astype(float)
        q, n_levels = Zf.shape[1], len(gf.levels)
        codes = np.asarray(gf.codes, dtype=np.int64)
        level_info, rhs, rows = _levels(codes, n_levels, Zf, w, resid)
        est = _pinv_solve(level_info, rhs)
        prec = _marginal_precision(level_info)
        full = (rows > q) & np.all(prec > 0, axis=1)  # levels that also estimate the noise
        if family.name == "gaussian":
            # the noise variance within levels (the pooled one would include the groups)
            fitted = np.einsum("ij,ij->i", Zf, est[codes])
            ssr = np.bincount(codes, weights=(resid - fitted) ** 2, minlength=n_levels)
            dof_within = int(np.sum(rows[full] - q))
            scale = float(np.sum(ssr[:n_levels][full]) / dof_within) if dof_within > 0 else disp
        else:
            scale = disp
        prec = prec / scale
        r_hat[factor] = np.where(prec > 0, est, 0.0)
        r_prec[factor] = prec
        tau2[factor] = _between_variance(r_hat[factor], prec)
        shrinkage[factor] = _shrinkage(tau2[factor], prec)
        # tau^2 over the levels that estimate every term, against their median sampling
        # variance (a tau^2 clipped at 0 fails the test as the negative difference did)
        reliable[factor] = bool(full.sum() >= 2 and np.all(
            _between_variance(est[full], prec[full]) > np.median(1.0 / prec[full], axis=0)))
    return Pilot(beta0_hat=float(coef[0]) if p0 else 0.0, b_hat=b_hat, b_prec=b_prec,
                 r_hat=r_hat, r_prec=r_prec, tau2=tau2, shrinkage=shrinkage,
                 reliable=reliable)


def _between_variance(est: np.ndarray, prec: np.ndarray) -> np.ndarray:
    """tau^2 per column (levels x q in): the variance of the estimates over the levels with a
    precision, less their mean sampling variance; 0 where negative or under two levels."""
    out = np.zeros(est.shape[1])
    for t in range(est.shape[1]):
        known = prec[:, t] > 0
        if known.sum() >= 2:
            out[t] = max(float(est[known, t].var(ddof=1) - np.mean(1.0 / prec[known, t])), 0.0)
    return out


def _shrinkage(tau2: np.ndarray, prec: np.ndarray) -> np.ndarray:
    """Median over levels of tau^2 prec / (1 + tau^2 prec), per column (0 where tau^2 is)."""
    return np.median(tau2 * prec / (1.0 + tau2 * prec), axis=0)


def pilot_data(pilot: Pilot) -> dict[str, np.ndarray]:
    """The pilot's numbers the graph reads, by ``pm.Data`` name.

    ``pilot_beta0_hat`` (scalar), ``pilot_b_hat`` and ``pilot_b_prec`` (shape (p,)), and per
    factor ``pilot_r_hat_<f>`` and ``pilot_r_prec_<f>`` (shape (levels, q)) and
    ``pilot_tau2_<f>`` (shape (q,)). Setting them from another data set of the same
    structure (``pilot_data(pilot_fit(design, family))``) re-tunes the sampling coordinates
    to that data set; the prior is exact for any values.
    """
    values = {"pilot_beta0_hat": np.asarray(pilot.beta0_hat), "pilot_b_hat": pilot.b_hat,
              "pilot_b_prec": pilot.b_prec}
    for factor in pilot.r_hat:
        values[f"pilot_r_hat_{factor}"] = pilot.r_hat[factor]
        values[f"pilot_r_prec_{factor}"] = pilot.r_prec[factor]
        values[f"pilot_tau2_{factor}"] = pilot.tau2[factor]
    return values
