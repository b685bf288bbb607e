r"""Maps between R2 and W, the prior variance of the linear predictor.

For a family with mean function :math:`\mu(\eta)` (the inverse link) and conditional variance
:math:`\sigma^2(\eta)`, the prior R2 of a GLM whose linear predictor is
:math:`\eta \sim N(\beta_0, W)` is (SPEC section 2)

.. math::

    R^2(W; \beta_0, \mathrm{aux}) = \frac{\operatorname{Var}\mu(\eta)}
        {\operatorname{Var}\mu(\eta) + E\,\sigma^2(\eta)} \Big/ R^2_{\sup},

measured relative to its supremum over W (1 except for the negative binomial, where it is
:math:`\alpha / (1 + \alpha)`). Every function here is written once over an array namespace
``xp``: :data:`r2d2formula._xp.NUMPY` (default) or ``r2d2formula.backend.xp.PYTENSOR``, so the
same code runs in NumPy (GBP fitting, prior checks) and in the PyMC graph (any backend: C,
numba, JAX). One exception: in the PyMC graph the inverse of the exact map is one compiled Op
(:mod:`r2d2formula.backend.r2_map_op`), whose JAX form runs this module's code.

:func:`r2_by_integration` is an independent brute-force check by adaptive quadrature that
shares no code with :func:`r2_of_w`.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import integrate, special

from r2d2formula._xp import NUMPY
from r2d2formula.errors import FamilyError, PriorSpecError
from r2d2formula.families import Family

__all__ = [
    "R2_EPS",
    "LOG_W_MIN",
    "LOG_W_MAX",
    "r2_of_w",
    "logit_r2_of_w",
    "w_of_r2",
    "log_density_w",
    "density_w",
    "r2_by_integration",
]

R2_EPS = 1e-10
"""R2 targets are clipped into ``[R2_EPS, 1 - R2_EPS]`` before inversion (zero gradient beyond)."""
LOG_W_MIN = math.log(1e-16)
"""Smallest log W the inverse returns."""
LOG_W_MAX = math.log(1e30)
"""Largest log W the inverse returns."""

# Fixed log-W grid for the initial guess of the inverse (two points per decade).
_LOG_W_GRID = np.linspace(LOG_W_MIN, LOG_W_MAX, 93)
_NEWTON_STEPS = 3
_MAX_STEP = 3.0  # largest Newton step on log W
_MIN_SLOPE = 0.05  # floor of d logit(R2) / d log W (the true slope is >= 0.4 everywhere)
_TINY = 1e-300

# Gauss-Legendre rules on [-1, 1] for the probit angle integrals: the exact map, and the
# coarse rule of the root finder's bracketing grid and Newton slopes (see _solve_log_w).
_GL_X, _GL_W = np.polynomial.legendre.leggauss(40)
_GL_X_COARSE, _GL_W_COARSE = np.polynomial.legendre.leggauss(10)


def _kolmogorov_pdf(k: np.ndarray) -> np.ndarray:
    """Density of the Kolmogorov distribution (two series, each where it converges fast)."""
    out = np.empty_like(k)
    j = np.arange(1, 40)[:, None]
    small = k < 1.0
    ks = k[small]
    a = (2 * j - 1) ** 2 * np.pi**2 / 8.0
    out[small] = np.sqrt(2 * np.pi) * np.sum(np.exp(-a / ks**2) * (2 * a / ks**4 - 1 / ks**2), axis=0)
    kl = k[~small]
    out[~small] = 8 * kl * np.sum((-1.0) ** (j + 1) * j**2 * np.exp(-2 * j**2 * kl**2), axis=0)
    return out


def _logistic_scale_mixture(step: float = 0.08) -> tuple[np.ndarray, np.ndarray]:
    """Nodes s_i and weights c_i with expit(x) = sum_i c_i Phi(x / s_i) (Stefanski 1991).

    The logistic law is the normal scale mixture L = 2 K Z, K Kolmogorov-distributed. The
    trapezoidal rule in log k converges geometrically (the density decays double-exponentially
    in log k at both ends); with step 0.08 (60 nodes) the relative error of expit is below
    3e-15 for |x| <= 20, 1e-13 for |x| <= 30 and 1e-9 for |x| <= 40.
    """
    t = np.arange(math.log(0.08), math.log(9.0), step)
    k = np.exp(t)
    c = step * k * _kolmogorov_pdf(k)
    return 2.0 * k, c / c.sum()


_MIX_S, _MIX_C = _logistic_scale_mixture()
# 24 nodes, |error of expit| < 2e-9: only the root finder's guess and slopes use it (coarser
# rules lose the tails: at beta0 = -8 and 16 nodes the guess is off by a factor of e^600).
_MIX_S_COARSE, _MIX_C_COARSE = _logistic_scale_mixture(step=0.2)


def _aux_value(family: Family, aux: dict | None, name: str) -> Any:
    if aux is None or name not in aux:
        raise PriorSpecError(
            f"family {family.name!r} needs the auxiliary parameter {name!r} in aux "
            f"(got {sorted(aux or {})})"
        )
    return aux[name]


def _n_trials(family: Family, trials: Any) -> Any:
    return trials if family.name == "binomial" else 1.0


def _float(x: Any, xp: Any) -> Any:
    """``x`` as a float64 array or tensor.

    PyTensor turns a Python float that is exact in float32 (0.5, 10.0) into a float32 constant,
    and ``log`` or ``exp`` of it would then be computed in single precision.
    """
    return xp.asarray(x).astype("float64")


def _float_aux(aux: dict | None, xp: Any) -> dict:
    return {} if aux is None else {k: _float(v, xp) for k, v in aux.items()}


def _last(x: Any, xp: Any) -> Any:
    """Add a trailing axis (for broadcasting against quadrature nodes or grids)."""
    return xp.asarray(x)[..., None]


def _log_parts(family: Family, w: Any, beta0: Any, aux: dict | None, trials: Any,
               xp: Any, coarse: bool = False) -> tuple[Any, Any]:
    """(log num, log rest) with relative R2 = num / (num + rest), family by family.

    ``coarse`` swaps the quadrature of the bernoulli / binomial maps for a cheaper rule (24
    mixture nodes instead of 60, 10 Gauss-Legendre points instead of 40): the root finder's
    guess and slopes only.
    """
    w = _float(w, xp)
    beta0 = _float(beta0, xp)
    trials = _float(trials, xp)
    aux = _float_aux(aux, xp)
    kind = (family.name, family.link)
    if kind == ("gaussian", "identity"):
        sigma = _aux_value(family, aux, "sigma")
        return xp.log(w), 2.0 * xp.log(sigma) + 0.0 * beta0
    if kind == ("poisson", "log"):
        # num = 1 - e^-W, rest = e^(-b - 3W/2): Var mu / E sigma2 after dividing by e^(2b + 2W)
        return xp.log(-xp.expm1(-w)), -beta0 - 1.5 * w
    if kind == ("negativebinomial", "log"):
        alpha = _aux_value(family, aux, "alpha")
        log_num = xp.log1p(1.0 / alpha) + xp.log(-xp.expm1(-w))
        log_rest = -w + xp.logaddexp(-xp.log(alpha), -beta0 - 0.5 * w)
        return log_num, log_rest
    if family.name in ("bernoulli", "binomial") and family.link == "probit":
        rule = (_GL_X_COARSE, _GL_W_COARSE) if coarse else (_GL_X, _GL_W)
        return _probit_log_parts(w, beta0, _n_trials(family, trials), xp, rule)
    if family.name in ("bernoulli", "binomial") and family.link == "logit":
        rule = (_MIX_S_COARSE, _MIX_C_COARSE) if coarse else (_MIX_S, _MIX_C)
        return _logit_log_parts(w, beta0, _n_trials(family, trials), xp, rule)
    raise FamilyError(f"no R2 map for family {family.name!r} with link {family.link!r}")


def _probit_log_parts(w: Any, beta0: Any, n: Any, xp: Any,
                      rule: tuple[np.ndarray, np.ndarray]) -> tuple[Any, Any]:
    # Var Phi(eta) = (1/2pi) int_0^th1 exp(-h^2/(1 + sin t)) dt,
    # E Phi(1 - Phi) = (1/2pi) int_0^th2 exp(-h^2/(1 + cos t)) dt, common factor e^(-h^2/2) out.
    h2 = xp.square(beta0) / (1.0 + w)
    root = xp.sqrt(1.0 + 2.0 * w)
    th1 = xp.arctan(w / root)
    th2 = xp.arctan(root / w)
    x = xp.asarray(0.5 * (rule[0] + 1.0))
    gw = xp.asarray(rule[1])
    # (1 - sin t)/(1 + sin t) = tan^2(pi/4 - t/2);  (1 - cos t)/(1 + cos t) = tan^2(t/2)
    psi = math.pi / 4 - 0.5 * _last(th1, xp) * x
    tan2_a = xp.square(xp.sin(psi) / xp.cos(psi))
    half = 0.5 * _last(th2, xp) * x
    tan2_b = xp.square(xp.sin(half) / xp.cos(half))
    num = 0.5 * th1 * xp.sum(gw * xp.exp(-0.5 * _last(h2, xp) * tan2_a), axis=-1)
    rest = 0.5 * th2 * xp.sum(gw * xp.exp(-0.5 * _last(h2, xp) * tan2_b), axis=-1)
    return xp.log(num), xp.log(rest) - xp.log(n)


def _logit_log_parts(w: Any, beta0: Any, n: Any, xp: Any,
                     rule: tuple[np.ndarray, np.ndarray]) -> tuple[Any, Any]:
    # expit(x) = sum_i c_i Phi(x / s_i)  =>  with eta ~ N(b, W) and q_i = (s_i^2 + W)^(-1/2):
    #   m = E mu = sum c_i Phi(b q_i),  1 - m = sum c_i Phi(-b q_i),
    #   e = E mu(1 - mu) = E expit'(eta) = sum c_i q_i phi(b q_i),   Var mu = m (1 - m) - e.
    scales, weights = rule
    s2 = xp.asarray(scales**2)
    c = xp.asarray(weights)
    b = _last(beta0, xp)

    def moments(q: Any) -> tuple[Any, Any]:
        h = b * q
        m = xp.sum(c * xp.normal_cdf(h), axis=-1)
        mbar = xp.sum(c * xp.normal_cdf(-h), axis=-1)
        e = xp.sum(c * q * xp.normal_pdf(h), axis=-1)
        return m * mbar - e, e

    var_w, e = moments(1.0 / xp.sqrt(s2 + _last(w, xp)))
    var_0, _ = moments(xp.asarray(1.0 / scales))
    # Subtracting the rule's own (1e-16-sized) defect at W = 0 makes Var mu(0) = 0 exactly.
    var = xp.maximum(var_w - var_0, _TINY)
    return xp.log(var), xp.log(e) - xp.log(n)


def logit_r2_of_w(family: Family, w: ArrayLike, beta0: ArrayLike = 0.0, aux: dict | None = None,
                  trials: ArrayLike = 1.0, xp: Any = NUMPY) -> Any:
    """logit of the relative R2 at prior variance ``w`` (stable where R2 is near 0 or 1).

    See :func:`r2_of_w` for the parameters.

    Examples
    --------
    >>> from r2d2formula.families import get_family
    >>> round(float(logit_r2_of_w(get_family("gaussian"), 2.0, aux={"sigma": 1.0})), 6)
    0.693147
    """
    log_num, log_rest = _log_parts(family, w, beta0, aux, trials, xp)
    return log_num - log_rest


def r2_of_w(family: Family, w: ArrayLike, beta0: ArrayLike = 0.0, aux: dict | None = None,
            trials: ArrayLike = 1.0, xp: Any = NUMPY) -> Any:
    r"""R2, relative to its supremum, of a GLM whose linear predictor has prior variance ``w``.

    Parameters
    ----------
    family : Family
        From :func:`r2d2formula.families.get_family`.
    w : array_like, > 0
        W, the prior *variance* of the linear predictor.
    beta0 : array_like, default 0
        Intercept of the centred design (plus the mean offset), on the link scale.
    aux : dict, optional
        Auxiliary parameters: ``{"sigma": ...}`` (gaussian), ``{"alpha": ...}`` (NB2).
    trials : array_like, default 1
        Effective number of trials (binomial only; the variance is that of the proportion).
    xp : namespace, default NUMPY
        Array namespace; ``r2d2formula.backend.xp.PYTENSOR`` builds a differentiable graph.

    Returns
    -------
    array or tensor
        R2 in [0, 1], broadcast over the inputs.

    Notes
    -----
    With :math:`\eta \sim N(\beta_0, W)`, :math:`R^2 = V / (V + E)`, :math:`V = \operatorname{Var}
    \mu(\eta)`, :math:`E = E\,\sigma^2(\eta)`, divided by the supremum :math:`R^2_{\sup}`.

    * gaussian: :math:`R^2 = W / (W + \sigma^2)`.
    * poisson (log): :math:`R^2 = (1 - e^{-W}) / (1 - e^{-W} + e^{-\beta_0 - 3W/2})`, i.e.
      :math:`(e^W - 1) / (e^W - 1 + e^{-\beta_0 - W/2})` (lognormal moments).
    * negative binomial NB2 (log, :math:`k = 1/\alpha`): :math:`R^2_{\rm raw} = (1 - e^{-W}) /
      (1 - e^{-W} + e^{-\beta_0 - 3W/2} + k)`, supremum :math:`1/(1 + k) = \alpha/(1+\alpha)`.
    * probit (bernoulli, binomial with n trials): with :math:`h^2 = \beta_0^2 / (1 + W)`,
      Plackett's identity gives positive integrals, free of cancellation,
      :math:`V = \frac{1}{2\pi}\int_0^{\theta_1} e^{-h^2/(1+\sin t)}dt`,
      :math:`E\,\mu(1-\mu) = \frac{1}{2\pi}\int_0^{\theta_2} e^{-h^2/(1+\cos t)}dt`,
      :math:`\theta_1 = \arctan(W/\sqrt{1+2W})`, :math:`\theta_2 = \pi/2 - \theta_1`
      (their sum is :math:`\Phi(h)\Phi(-h)`); 40-point Gauss-Legendre on each.
    * logit: the logistic law is a normal scale mixture (Stefanski 1991),
      :math:`\mathrm{expit}(x) = \sum_i c_i \Phi(x/s_i)` (60 nodes, relative error < 3e-15 for
      :math:`|x| \le 20`), so :math:`m = E\mu = \sum_i c_i \Phi(\beta_0 q_i)` and
      :math:`E\mu(1-\mu) = E\,\mathrm{expit}'(\eta) = \sum_i c_i q_i \phi(\beta_0 q_i)` with
      :math:`q_i = (s_i^2 + W)^{-1/2}`: accurate uniformly in W, even where the integrand in
      :math:`\eta` is a step (huge W), unlike Gauss-Hermite. :math:`V = m(1-m) - E\mu(1-\mu)`.

    Absolute error against :func:`r2_by_integration` is below 1e-9 for W in [1e-6, 1e3] and
    beta0 in [-8, 8] (tests).

    References
    ----------
    Yanchenko, E., Bondell, H. D. and Reich, B. J. (2021). The R2D2 prior for generalized linear
    mixed models. arXiv:2111.10718.
    Zhang, Y. D., Naughton, B. P., Bondell, H. D. and Reich, B. J. (2022). Bayesian regression
    using a prior on the model fit: the R2-D2 shrinkage prior. JASA 117, 862-874.
    Stefanski, L. A. (1991). A normal scale mixture representation of the logistic distribution.
    Statistics & Probability Letters 11, 69-70.

    Examples
    --------
    >>> from r2d2formula.families import get_family
    >>> round(float(r2_of_w(get_family("poisson"), 1.0, 0.0)), 6)
    0.739106
    >>> round(float(r2_of_w(get_family("bernoulli", "probit"), 1.0, 0.0)), 6)  # Var = 1/12
    0.333333
    >>> r2_of_w(get_family("negativebinomial"), [0.5, 50.0], 1.0, {"alpha": 2.0}).round(4)
    array([0.553, 1.   ])
    """
    log_num, log_rest = _log_parts(family, w, beta0, aux, trials, xp)
    return xp.sigmoid(log_num - log_rest)


def w_of_r2(family: Family, r2: ArrayLike, beta0: ArrayLike = 0.0, aux: dict | None = None,
            trials: ArrayLike = 1.0, *, method: Literal["exact", "linear"] = "exact",
            xp: Any = NUMPY) -> Any:
    r"""W, the prior variance of the linear predictor, that gives prior R2 ``r2``.

    Parameters
    ----------
    family : Family
        From :func:`r2d2formula.families.get_family`.
    r2 : array_like in (0, 1)
        R2, relative to its supremum (the prior's R2 parameter). Clipped into
        ``[R2_EPS, 1 - R2_EPS]`` (R2_EPS = 1e-10), where the gradient is then zero.
    beta0, aux, trials, xp
        As in :func:`r2_of_w`.
    method : {"exact", "linear"}, default "exact"
        "exact" inverts :func:`r2_of_w` at the given beta0 and aux; "linear" is the
        delta-method approximation of SPEC section 2.

    Returns
    -------
    array or tensor
        W > 0, within ``[exp(LOG_W_MIN), exp(LOG_W_MAX)]`` = [1e-16, 1e30] for "exact".

    Raises
    ------
    PriorSpecError
        For an unknown method, or a missing auxiliary parameter.

    Notes
    -----
    *exact*: with :math:`u = \log W` and :math:`g(u) = \operatorname{logit} R^2(e^u)` (strictly
    increasing), the root of :math:`g(u) = \operatorname{logit} r` is found by

    1. a vectorised initial guess: :math:`g` on a fixed grid of 93 values of u (two per decade of
       W, 1e-16 to 1e30) and the piecewise-linear inverse
       :math:`u_0 = u_{(0)} + \sum_j \Delta u_j\,\mathrm{clip}((y - g_j)/\Delta g_j, 0, 1)`
       (elementwise operations and a sum: no sorting, no indexing); for bernoulli and binomial
       g is evaluated there with a coarser quadrature (24 mixture nodes instead of 60, 10
       Gauss-Legendre points instead of 40);
    2. three unrolled Newton steps on u (step at most 3, u kept in the grid range, slopes
       from the coarse g), inside ``stop_gradient``;
    3. one more Newton step written as
       :math:`u = \bar u - (g(\bar u; \beta_0, \mathrm{aux}) - y) / \overline{g'(\bar u)}`, with
       bars for ``stop_gradient``: its value is the root and its gradients are the exact
       implicit ones, :math:`\partial u/\partial y = 1/g'` and
       :math:`\partial u/\partial\theta = -(\partial g/\partial\theta)/g'`.

    In NumPy g' comes from a central difference, in JAX from forward-mode autodiff. In the
    PyTensor graph the map is one Op (:mod:`r2d2formula.backend.r2_map_op`): a safeguarded
    Newton iteration in numba to the same root, and the same implicit gradients from a second
    Op; tests check that the two paths agree.
    Round trip: :math:`|R^2(W(r)) - r| \le 10^{-8} r` over r in [1e-6, 1 - 1e-6] and beta0 in
    [-8, 8], every family and link (tests). The gaussian inverse is the closed form
    :math:`W = \sigma^2 r / (1 - r)`.

    *linear*: :math:`W = s^2(\beta_0)\, r / (1 - r)` with
    :math:`s^2 = \sigma^2(\mu(\beta_0)) / \mu'(\beta_0)^2` (``Family.linear_s2``). The
    linearised model :math:`\operatorname{Var}\mu \approx \mu'(\beta_0)^2 W`,
    :math:`E\sigma^2 \approx \sigma^2(\mu(\beta_0))` has R2 :math:`W / (W + s^2)`, whose
    supremum is 1, so the prior's R2 is used as is: there is no supremum rescaling (for NB,
    :math:`s^2 = e^{-\beta_0} + 1/\alpha` as in the SPEC table). Rescaling instead
    (:math:`r \to r \alpha/(1+\alpha)`) would cap W at :math:`\alpha s^2`.

    Examples
    --------
    >>> from r2d2formula.families import get_family
    >>> fam = get_family("poisson")
    >>> w = w_of_r2(fam, 0.5, 0.0)
    >>> round(float(w), 6), round(float(r2_of_w(fam, w, 0.0)), 12)
    (0.562399, 0.5)
    >>> float(w_of_r2(fam, 0.5, 0.0, method="linear"))
    1.0
    >>> round(float(w_of_r2(get_family("bernoulli"), 0.5)), 3)
    7.151
    """
    if method not in ("exact", "linear"):
        raise PriorSpecError(f"method must be 'exact' or 'linear', got {method!r}")
    r = xp.clip(_float(r2, xp), R2_EPS, 1.0 - R2_EPS)
    beta0 = _float(beta0, xp)
    trials = _float(trials, xp)
    aux = _float_aux(aux, xp)
    if method == "linear":
        return family.linear_s2(beta0, aux, trials, xp) * r / (1.0 - r)
    if (family.name, family.link) == ("gaussian", "identity"):
        sigma = _aux_value(family, aux, "sigma")
        return xp.square(sigma) * r / (1.0 - r)
    return xp.exp(_solve_log_w(family, r, beta0, aux, trials, xp))


def _solve_log_w(family: Family, r: Any, beta0: Any, aux: dict | None, trials: Any,
                 xp: Any) -> Any:
    # PyTensor: the whole map as one compiled numeric Op with implicit gradients
    # (r2d2formula.backend.r2_map_op); NumPy and JAX: the vectorised guess and one Newton
    # step written so that its gradients are the implicit ones
    if hasattr(xp, "log_w_of_r2"):
        return xp.log_w_of_r2(family, r, beta0, aux, trials)
    y = xp.log(r) - xp.log1p(-r)

    def g(u: Any) -> Any:
        return logit_r2_of_w(family, xp.exp(u), beta0, aux, trials, xp)

    u = xp.stop_gradient(root_log_w_guess(family, y, beta0, aux, trials, xp))
    slope = xp.stop_gradient(xp.maximum(xp.elementwise_derivative(g, u), _MIN_SLOPE))
    # The clip is inactive at a converged root; it only keeps W finite where g is unreliable.
    return u - xp.clip((g(u) - y) / slope, -_MAX_STEP, _MAX_STEP)


def root_log_w_guess(family: Family, y: Any, beta0: Any, aux: dict | None, trials: Any,
                     xp: Any = NUMPY) -> Any:
    """log W with logit R2(W) = ``y``, to about 1e-8, by a grid and three Newton steps.

    Elementwise operations and sums only (no loop, no sorting), so it runs in any array
    namespace: NumPy, and JAX for the PyTensor Op's JAX form. See :func:`w_of_r2`.
    """
    aux = _float_aux(aux, xp)

    def g(u: Any) -> Any:
        return logit_r2_of_w(family, xp.exp(u), beta0, aux, trials, xp)

    def g_coarse(u: Any) -> Any:
        log_num, log_rest = _log_parts(family, xp.exp(u), beta0, aux, trials, xp, coarse=True)
        return log_num - log_rest

    grid = _LOG_W_GRID
    aux_grid = {k: _last(v, xp) for k, v in aux.items()}
    log_num, log_rest = _log_parts(family, xp.asarray(np.exp(grid)), _last(beta0, xp), aux_grid,
                                   _last(trials, xp), xp, coarse=True)
    g_grid = log_num - log_rest
    dg = g_grid[..., 1:] - g_grid[..., :-1]
    frac = xp.clip((_last(y, xp) - g_grid[..., :-1]) / xp.maximum(dg, 1e-12), 0.0, 1.0)
    u = grid[0] + xp.sum(xp.asarray(np.diff(grid)) * frac, axis=-1)
    for _ in range(_NEWTON_STEPS):
        u = xp.stop_gradient(u)
        slope = xp.maximum(xp.elementwise_derivative(g_coarse, u), _MIN_SLOPE)
        step = xp.clip((g(u) - y) / slope, -_MAX_STEP, _MAX_STEP)
        u = xp.clip(u - step, LOG_W_MIN, LOG_W_MAX)
    return u


def log_density_w(family: Family, w: ArrayLike, a: float, b: float, beta0: ArrayLike = 0.0,
                  aux: dict | None = None, trials: ArrayLike = 1.0) -> np.ndarray:
    r"""Log of the density of W induced by R2 ~ Beta(a, b) through the exact map (NumPy).

    See :func:`density_w`.

    Examples
    --------
    >>> from r2d2formula.families import get_family
    >>> round(float(log_density_w(get_family("gaussian"), 1.0, 1.0, 1.0, aux={"sigma": 1.0})), 6)
    -1.386294
    """
    w = np.asarray(w, dtype=float)
    u = np.log(w)

    def g(v: Any) -> Any:
        return logit_r2_of_w(family, np.exp(v), beta0, aux, trials)

    gu = g(u)
    slope = NUMPY.elementwise_derivative(g, u)
    return (a * special.log_expit(gu) + b * special.log_expit(-gu) - special.betaln(a, b)
            + np.log(slope) - u)


def density_w(family: Family, w: ArrayLike, a: float, b: float, beta0: ArrayLike = 0.0,
              aux: dict | None = None, trials: ArrayLike = 1.0) -> np.ndarray:
    r"""Density :math:`\pi_W` of W induced by R2 ~ Beta(a, b) through the exact map (NumPy).

    Parameters
    ----------
    family : Family
    w : array_like, > 0
    a, b : float > 0
        Beta parameters of the prior on (relative) R2.
    beta0, aux, trials
        As in :func:`r2_of_w`.

    Returns
    -------
    ndarray

    Notes
    -----
    :math:`\pi_W(w) = f_{\rm Beta}(R^2(w); a, b)\, dR^2/dw`, computed on the log scale as
    :math:`a \log\sigma(g) + b \log\sigma(-g) - \log B(a, b) + \log g'(u) - u` with
    :math:`u = \log w`, :math:`g = \operatorname{logit} R^2` (stable where R2 is near 1).

    Examples
    --------
    >>> from r2d2formula.families import get_family
    >>> from scipy import integrate
    >>> fam = get_family("poisson")
    >>> total, _ = integrate.quad(lambda w: density_w(fam, w, 2.0, 3.0), 0, np.inf)
    >>> round(total, 6)
    1.0
    """
    return np.exp(log_density_w(family, w, a, b, beta0, aux, trials))


# --------------------------------------------------------------------------------------------
# Independent check by adaptive quadrature (scipy.integrate.quad); shares nothing with the above
# except the family's mean and variance functions, which define R2.


def r2_by_integration(family: Family, w: ArrayLike, beta0: ArrayLike = 0.0,
                      aux: dict | None = None, trials: ArrayLike = 1.0) -> np.ndarray:
    r"""R2 (relative to its supremum) by brute-force adaptive quadrature over eta (NumPy).

    An independent check of :func:`r2_of_w`: it evaluates the definition
    :math:`\operatorname{Var}\mu / (\operatorname{Var}\mu + E\sigma^2)` with
    ``scipy.integrate.quad`` over :math:`d = \eta - \beta_0 \sim N(0, W)`, using the family's own
    mean and variance functions, and no closed form. Slow (milliseconds per point); loops over
    the broadcast inputs.

    Parameters
    ----------
    family : Family
    w, beta0, aux, trials
        As in :func:`r2_of_w`; array inputs broadcast (aux values must be scalars).

    Returns
    -------
    ndarray

    Notes
    -----
    The variance is computed about :math:`c = \mu(\beta_0)`,
    :math:`\operatorname{Var}\mu = E(\mu - c)^2 - (E\mu - c)^2`, which keeps its relative
    accuracy for small W. For the log link every moment is scaled by :math:`e^{-\beta_0 - W}`
    (integrands evaluated on the log scale) so that nothing overflows. Break points are put at
    the step of the inverse link (:math:`\eta = 0`) and the centre of the normal density.

    Examples
    --------
    >>> from r2d2formula.families import get_family
    >>> fam = get_family("bernoulli", "logit")
    >>> round(float(r2_by_integration(fam, 7.15144080, 0.0)), 8)
    0.5
    """
    aux = dict(aux or {})
    names = list(aux)
    # auxiliary parameters broadcast with w and beta0 (one value per prior draw, say)
    arrays = np.broadcast_arrays(np.asarray(w, float), np.asarray(beta0, float),
                                 np.asarray(trials, float),
                                 *(np.asarray(aux[name], float) for name in names))
    w_arr, b_arr, n_arr, aux_arrs = arrays[0], arrays[1], arrays[2], arrays[3:]
    out = np.empty(w_arr.shape)
    for idx in np.ndindex(w_arr.shape):
        aux_here = {name: float(arr[idx]) for name, arr in zip(names, aux_arrs, strict=True)}
        out[idx] = _r2_quad(family, float(w_arr[idx]), float(b_arr[idx]), aux_here,
                            float(n_arr[idx]))
    return out


def _quad(f: Any, points: list[float]) -> float:
    pts = sorted(set(points))
    total = 0.0
    for lo, hi in zip(pts[:-1], pts[1:], strict=True):
        val, _ = integrate.quad(f, lo, hi, epsabs=0.0, epsrel=1e-12, limit=400)
        total += val
    return total


def _r2_quad(family: Family, w: float, b: float, aux: dict, n: float) -> float:
    sd = math.sqrt(w)
    log_norm = -0.5 * math.log(2 * math.pi * w)

    def log_dens(d: float) -> float:
        return log_norm - 0.5 * d * d / w

    supremum = float(family.spec.r2_supremum(aux, NUMPY))
    if family.link == "log":
        # Moments scaled by S = e^(b + W) (mu / S = e^(d - W)), integrands on the log scale.
        def log_abs_expm1(d: float) -> float:
            return (d + math.log(-math.expm1(-d))) if d > 0 else math.log(-math.expm1(d))

        def var_about(d: float) -> float:  # (mu - c)^2 / S^2 * density, c = e^b
            return 0.0 if d == 0.0 else math.exp(2 * (log_abs_expm1(d) - w) + log_dens(d))

        def mean_about(d: float) -> float:  # (mu - c) / S * density
            if d == 0.0:
                return 0.0
            return math.copysign(math.exp(log_abs_expm1(d) - w + log_dens(d)), d)

        def s2(d: float) -> float:  # sigma2(mu) / S^2 * density, sigma2 = mu (+ mu^2 / alpha)
            total = math.exp(d - 2 * w - b + log_dens(d))
            if family.name == "negativebinomial":
                total += math.exp(2 * (d - w) + log_dens(d)) / aux["alpha"]
            return total

        lo, hi = -40 * sd, 2 * w + 40 * sd
        points = [lo, 0.0, w, 2 * w, hi]
        var = _quad(var_about, points) - _quad(mean_about, points) ** 2
        es2 = _quad(s2, points)
    else:
        def mu(d: float) -> float:
            return float(family.mean(b + d))

        c = mu(0.0)

        def var_about(d: float) -> float:
            return (mu(d) - c) ** 2 * math.exp(log_dens(d))

        def mean_about(d: float) -> float:
            return (mu(d) - c) * math.exp(log_dens(d))

        def s2(d: float) -> float:
            return float(family.variance(mu(d), aux, n)) * math.exp(log_dens(d))

        lo, hi = -40 * sd, 40 * sd
        points = [lo, 0.0, hi]
        if family.link != "identity":
            points += [p for p in (-b - 40.0, -b, -b + 40.0) if lo < p < hi]
        var = _quad(var_about, points) - _quad(mean_about, points) ** 2
        es2 = _quad(s2, points)
    return var / (var + es2) / supremum
