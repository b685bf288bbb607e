r"""The generalized beta prime (GBP) approximation of the prior on W (Yanchenko et al.).

With ``approx="gbp"``, W, the prior variance of the linear predictor, is

.. math::

    W = d \left(\frac{U}{1 - U}\right)^{1/c}, \qquad U \sim \mathrm{Beta}(a^*, b^*),

with :math:`(a^*, b^*, c^*, d^*)` fitted once, before sampling, to the exact density
:math:`\pi_W` induced by R2 ~ Beta(a, b) (:func:`r2d2formula.priors.r2_maps.density_w`) at a
plug-in intercept from the data (:func:`plugin_beta0`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, special, stats

from r2d2formula._xp import NUMPY
from r2d2formula.errors import PriorSpecError
from r2d2formula.families import Family, get_family
from r2d2formula.priors.r2_maps import log_density_w, w_of_r2

__all__ = ["GBP_LEVELS", "fit_gbp", "gbp_logpdf", "w_of_gbp_u", "plugin_beta0"]

GBP_LEVELS = np.linspace(0.01, 0.99, 100)
"""Probability levels of the 100 quantiles of pi_W where the GBP density is matched."""

_PENALTY = 0.25
_KEY_DIGITS = 12


def gbp_logpdf(w: ArrayLike, a: float, b: float, c: float, d: float) -> np.ndarray:
    r"""Log density of the generalized beta prime law GBP(a, b, c, d) (NumPy).

    Parameters
    ----------
    w : array_like, > 0
    a, b, c, d : float > 0
        Shapes a, b (of the Beta variable U), power c and scale d.

    Returns
    -------
    ndarray

    Notes
    -----
    With :math:`z = c \log(w/d)`, :math:`W = d (U/(1-U))^{1/c}` has density

    .. math::

        \log p(w) = \log c - \log w + a z - (a + b) \log(1 + e^z) - \log B(a, b).

    Examples
    --------
    >>> from scipy import integrate
    >>> total, _ = integrate.quad(lambda w: np.exp(gbp_logpdf(w, 2.0, 3.0, 1.5, 0.7)), 0, np.inf)
    >>> round(total, 8)
    1.0
    """
    z = c * (np.log(np.asarray(w, dtype=float)) - math.log(d))
    return (math.log(c) - np.log(w) + a * z - (a + b) * np.logaddexp(0.0, z)
            - special.betaln(a, b))


def w_of_gbp_u(u: ArrayLike, params: Sequence[float], xp: Any = NUMPY) -> Any:
    r"""W = d (u / (1 - u))^(1/c) for u in (0, 1), the GBP transform of a Beta(a*, b*) draw.

    Parameters
    ----------
    u : array_like or tensor in (0, 1)
    params : (a*, b*, c*, d*)
        From :func:`fit_gbp` (only c* and d* are used here).
    xp : namespace, default NUMPY

    Returns
    -------
    array or tensor

    Examples
    --------
    >>> float(w_of_gbp_u(0.5, (1.0, 1.0, 2.0, 3.0)))
    3.0
    """
    _, _, c, d = params
    u = xp.asarray(u)
    return d * xp.exp((xp.log(u) - xp.log1p(-u)) / c)


def _key(x: float) -> float:
    return float(f"{float(x):.{_KEY_DIGITS}g}")


def fit_gbp(family: Family | str, a: float, b: float, beta0: float, trials: float = 1.0,
            **aux: float) -> tuple[float, float, float, float]:
    r"""Fit Yanchenko et al.'s GBP approximation to the exact prior of W.

    Parameters
    ----------
    family : Family or str
        The family (with its link), or a family name for the default link.
    a, b : float > 0
        Beta parameters of the prior on R2 (relative to its supremum).
    beta0 : float
        Plug-in intercept on the link scale (:func:`plugin_beta0`).
    trials : float, default 1
        Effective number of trials (binomial).
    **aux : float
        Auxiliary parameters (``sigma`` for gaussian, ``alpha`` for NB2).

    Returns
    -------
    (a*, b*, c*, d*) : tuple of float
        W = d* (U / (1 - U))^(1/c*), U ~ Beta(a*, b*).

    Raises
    ------
    PriorSpecError
        If a or b is not positive.

    Notes
    -----
    With :math:`w_k` the quantiles of the exact density :math:`\pi_W` at the levels
    0.01, ..., 0.99 (100 of them; :math:`w_k` = ``w_of_r2`` of the Beta quantiles, the map being
    monotone), minimise over :math:`\log(a^*, b^*, c^*, d^*)` by Nelder-Mead from 0

    .. math::

        \sum_k \left(1 - \frac{\mathrm{GBP}(w_k)}{\pi_W(w_k)}\right)^2
        + \frac14\left[(\log a^* - \log a)^2 + (\log b^* - \log b)^2 + (\log c^*)^2
        + (\log d^*)^2\right].

    For the gaussian family the map is exactly GBP: the result is :math:`(a, b, 1, \sigma^2)`.
    Results are cached per (family, link, a, b, beta0, trials, aux), floats rounded to 12
    significant digits (``fit_gbp.cache_info()``, ``fit_gbp.cache_clear()``).

    References
    ----------
    Yanchenko, E., Bondell, H. D. and Reich, B. J. (2021). The R2D2 prior for generalized linear
    mixed models. arXiv:2111.10718.

    Examples
    --------
    >>> params = fit_gbp("poisson", 1.0, 1.0, 0.0)
    >>> [round(p, 2) for p in params]
    [0.5, 1.83, 2.0, 1.45]
    >>> fit_gbp("gaussian", 2.0, 3.0, 0.0, sigma=2.0)
    (2.0, 3.0, 1.0, 4.0)
    """
    fam = get_family(family)
    if not (a > 0 and b > 0):
        raise PriorSpecError(f"Beta parameters of R2 must be positive, got a={a!r}, b={b!r}")
    aux_key = tuple(sorted((k, _key(v)) for k, v in aux.items()))
    return _fit_gbp_cached(fam.name, fam.link, _key(a), _key(b), _key(beta0), _key(trials),
                           aux_key)


@functools.lru_cache(maxsize=512)
def _fit_gbp_cached(name: str, link: str, a: float, b: float, beta0: float, trials: float,
                    aux_items: tuple[tuple[str, float], ...]) -> tuple[float, float, float, float]:
    fam = get_family(name, link)
    aux = dict(aux_items)
    if name == "gaussian":
        return (a, b, 1.0, aux["sigma"] ** 2)
    r2_k = stats.beta.ppf(GBP_LEVELS, a, b)
    w_k = np.asarray(w_of_r2(fam, r2_k, beta0, aux, trials), dtype=float)
    log_pi = log_density_w(fam, w_k, a, b, beta0, aux, trials)
    log_ab = np.array([math.log(a), math.log(b)])

    def objective(theta: np.ndarray) -> float:
        a_s, b_s, c_s, d_s = np.exp(theta)
        log_ratio = gbp_logpdf(w_k, a_s, b_s, c_s, d_s) - log_pi
        ratio = np.exp(np.minimum(log_ratio, 300.0))
        penalty = np.sum((theta[:2] - log_ab) ** 2) + theta[2] ** 2 + theta[3] ** 2
        return float(np.sum((1.0 - ratio) ** 2) + _PENALTY * penalty)

    res = optimize.minimize(objective, np.zeros(4), method="Nelder-Mead",
                            options={"maxiter": 8000, "maxfev": 16000, "xatol": 1e-8,
                                     "fatol": 1e-12})
    a_s, b_s, c_s, d_s = (float(v) for v in np.exp(res.x))
    return (a_s, b_s, c_s, d_s)


fit_gbp.cache_info = _fit_gbp_cached.cache_info  # type: ignore[attr-defined]
fit_gbp.cache_clear = _fit_gbp_cached.cache_clear  # type: ignore[attr-defined]


def plugin_beta0(family: Family | str, y: ArrayLike, trials: ArrayLike | None = None,
                 offset: ArrayLike | None = None) -> float:
    r"""A plug-in intercept on the link scale from the response (for the GBP fit).

    Parameters
    ----------
    family : Family or str
    y : array_like
        Response: values (gaussian), counts (poisson, NB), 0/1 (bernoulli) or successes
        (binomial).
    trials : array_like, optional
        Trials per row (binomial); 1 when None.
    offset : array_like, optional
        Offset on the link scale; its mean is subtracted.

    Returns
    -------
    float

    Notes
    -----
    identity: :math:`\bar y`; log: :math:`\log \bar y`; logit / probit: :math:`\mathrm{logit}\,p`
    or :math:`\Phi^{-1}(p)` with :math:`p = \sum y / \sum n`. Means are clipped into
    :math:`[1/(2N), \infty)` for counts and :math:`[1/(2N), 1 - 1/(2N)]` for proportions,
    with N the number of rows (counts) or of trials, so all-0 or all-1 data give a finite value.

    Examples
    --------
    >>> round(plugin_beta0("poisson", [0, 1, 2, 5]), 4)
    0.6931
    >>> round(plugin_beta0("bernoulli", [0, 0, 0, 0]), 4)
    -1.9459
    >>> round(plugin_beta0("binomial", [3, 5], trials=[10, 10], offset=[0.5, 0.5]), 4)
    -0.9055
    """
    fam = get_family(family)
    y = np.asarray(y, dtype=float)
    shift = 0.0 if offset is None else float(np.mean(offset))
    if fam.link == "identity":
        return float(np.mean(y)) - shift
    if fam.link == "log":
        n_obs = max(y.size, 1)
        return math.log(max(float(np.mean(y)), 0.5 / n_obs)) - shift
    n = np.ones_like(y) if trials is None else np.broadcast_to(np.asarray(trials, float), y.shape)
    total = max(float(np.sum(n)), 1.0)
    p = min(max(float(np.sum(y)) / total, 0.5 / total), 1.0 - 0.5 / total)
    value = math.log(p / (1.0 - p)) if fam.link == "logit" else float(special.ndtri(p))
    return value - shift
