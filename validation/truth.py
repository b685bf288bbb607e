"""Known true values for the coverage study, computed from SPEC's definitions alone.

Independent of r2d2formula (no import of it): R2 of a GLM is computed by its definition,
Var(mu(eta)) / (Var(mu(eta)) + E sigma2(eta)) with eta ~ N(beta0, W), by Gauss-Hermite
quadrature, and W is found from R2 by root finding; data are simulated with NumPy.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import optimize, special

__all__ = ["glm_r2", "w_for_r2", "true_values", "simulate_response"]

_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(120)  # nodes for E f(Z), Z ~ N(0, 1)
_GH_W = _GH_W / _GH_W.sum()


def glm_r2(family: str, w: float, beta0: float, *, alpha: float | None = None,
           mean_inv_trials: float = 1.0) -> float:
    """R2 of SPEC section 2 at prior variance ``w`` (relative to its supremum for the NB).

    ``mean_inv_trials`` is the mean of 1 / trials over the rows (binomial): E[mu(1-mu)/n] with
    n independent of eta.

    Examples
    --------
    >>> round(glm_r2("poisson", 1.0, 0.0), 4)  # (e - 1) / (e - 1 + e^(-1/2))
    0.7391
    """
    eta = beta0 + np.sqrt(w) * _GH_X
    if family == "gaussian":
        raise ValueError("gaussian R2 is W / (W + sigma^2); no quadrature needed")
    if family in ("bernoulli", "binomial"):
        mu = special.expit(eta)
        s2 = mu * (1 - mu) * (mean_inv_trials if family == "binomial" else 1.0)
    else:
        mu = np.exp(eta)
        s2 = mu + (mu**2 / alpha if family == "negativebinomial" else 0.0)
    mean = np.sum(_GH_W * mu)
    var = np.sum(_GH_W * (mu - mean) ** 2)
    r2 = var / (var + np.sum(_GH_W * s2))
    if family == "negativebinomial":
        r2 /= alpha / (1 + alpha)
    return float(r2)


def w_for_r2(family: str, r2: float, beta0: float, *, sigma: float | None = None,
             alpha: float | None = None, mean_inv_trials: float = 1.0) -> float:
    """W with R2(W) = ``r2`` (root of the monotone map on log W).

    Examples
    --------
    >>> round(w_for_r2("gaussian", 0.5, 0.0, sigma=2.0), 6)
    4.0
    """
    if family == "gaussian":
        return sigma**2 * r2 / (1 - r2)
    def gap(log_w: float) -> float:
        return glm_r2(family, float(np.exp(log_w)), beta0, alpha=alpha,
                      mean_inv_trials=mean_inv_trials) - r2
    return float(np.exp(optimize.brentq(gap, np.log(1e-6), np.log(50.0), xtol=1e-12)))


def true_values(truth: Mapping, data: pd.DataFrame, family: str, predictors: list[str],
                factor: str) -> dict:
    """The known parameters of a coverage scenario: b, sd, phi, R2, Intercept, aux.

    ``b_j = sign_j sqrt(phi_j W) / s_j`` (s_j the ddof-0 sd of the column) and
    ``sd = sqrt(phi_(1|factor) W)``, so each component's variance share is exactly its phi.
    """
    mean_inv_trials = float(np.mean(1.0 / data["n"])) if family == "binomial" else 1.0
    W = w_for_r2(family, truth["R2"], truth["beta0"], sigma=truth.get("sigma"),
                 alpha=truth.get("alpha"), mean_inv_trials=mean_inv_trials)
    phi = truth["phi"]
    X = data[predictors].to_numpy(float)
    means, scales = X.mean(axis=0), X.std(axis=0)
    b = {name: truth["b_sign"][name] * np.sqrt(phi[name] * W) / scales[j]
         for j, name in enumerate(predictors)}
    values = {f"b[{name}]": value for name, value in b.items()}
    values[f"sd_{factor}[1]"] = float(np.sqrt(phi[f"1|{factor}"] * W))
    values.update({f"phi[{name}]": value for name, value in phi.items()})
    values["R2"] = truth["R2"]
    values["Intercept"] = float(truth["beta0"] - means @ np.array(list(b.values())))
    for aux in ("sigma", "alpha"):
        if aux in truth:
            values[aux] = truth[aux]
    values["_W"] = W
    values["_means"] = means
    return values


def simulate_response(values: Mapping, truth: Mapping, data: pd.DataFrame, family: str,
                      predictors: list[str], factor: str, rng: np.random.Generator
                      ) -> np.ndarray:
    """One response drawn from the scenario: fixed b, group effects drawn from N(0, sd)."""
    X = data[predictors].to_numpy(float)
    b = np.array([values[f"b[{name}]"] for name in predictors])
    codes, levels = pd.factorize(data[factor], sort=True)
    r = rng.normal(0.0, values[f"sd_{factor}[1]"], size=len(levels))
    eta = truth["beta0"] + (X - values["_means"]) @ b + r[codes]
    if family == "gaussian":
        return eta + rng.normal(0.0, truth["sigma"], size=len(eta))
    if family == "bernoulli":
        return rng.binomial(1, special.expit(eta)).astype(float)
    if family == "binomial":
        return rng.binomial(data["n"].to_numpy(), special.expit(eta)).astype(float)
    mu = np.exp(eta)
    if family == "poisson":
        return rng.poisson(mu).astype(float)
    alpha = truth["alpha"]  # NB2: variance mu + mu^2 / alpha, a gamma-poisson mixture
    return rng.poisson(rng.gamma(alpha, mu / alpha)).astype(float)
