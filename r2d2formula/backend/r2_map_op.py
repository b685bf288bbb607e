r"""The exact R2 -> W map as one compiled PyTensor Op with implicit gradients.

:func:`r2d2formula.priors.r2_maps.w_of_r2` (method "exact") needs :math:`u = \log W` with
:math:`g(u) = \operatorname{logit} R^2(e^u) = \operatorname{logit} r`. Written as graph
operations (a grid, three unrolled Newton steps and a final differentiable step) the root cost
about 1,200 nodes in a bernoulli model's log-density and 5,000 in its gradient: most of the
model's compile time and of each gradient evaluation.

Here it is one Op (:class:`LogWOfR2`, elementwise over broadcast inputs) whose gradient is a
second Op (:class:`LogWOfR2Grad`): implicit differentiation at the root,
:math:`\partial u/\partial r = 1/(g'(u)\,r(1-r))` and
:math:`\partial u/\partial\theta = -g_\theta/g'(u)` for :math:`\theta` = beta0, trials, alpha.
The root is a safeguarded Newton iteration in a numba kernel (:func:`solve`), started from the
linearised map and kept inside a bracket, with analytic slopes for the poisson, negative
binomial and logit maps and a central difference for probit. It runs

* in the numba backend (PyMC's NUTS in this library, nutpie) as the kernels themselves;
* in the C backend and in Python through ``perform``, which calls the same compiled kernels;
* in JAX (numpyro, blackjax; GPUs) as the vectorised grid-and-Newton guess plus one implicit
  Newton step of :mod:`r2d2formula.priors.r2_maps` in a JAX namespace, differentiated by JAX,
  so it stays on the device.

The kernels restate the maps of :mod:`r2d2formula.priors.r2_maps` (``_log_parts``) as scalar
loops; tests check that both give the same root, value and gradients.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import math
import sys
from types import SimpleNamespace
from typing import Any

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from r2d2formula.errors import FamilyError
from r2d2formula.families import Family
from r2d2formula.priors import r2_maps

__all__ = ["LogWOfR2", "LogWOfR2Grad", "log_w_of_r2", "solve", "sensitivities", "KINDS"]

#: Kernel codes of the (family, link) pairs whose map is solved numerically.
KINDS = {("poisson", "log"): 0, ("negativebinomial", "log"): 1, ("bernoulli", "logit"): 2,
         ("binomial", "logit"): 2, ("bernoulli", "probit"): 3, ("binomial", "probit"): 3}

_MIX_S, _MIX_C = r2_maps._MIX_S, r2_maps._MIX_C
_GL_X, _GL_W = 0.5 * (r2_maps._GL_X + 1.0), r2_maps._GL_W
_LO, _HI = r2_maps.LOG_W_MIN, r2_maps.LOG_W_MAX
_MIN_SLOPE, _TINY = r2_maps._MIN_SLOPE, r2_maps._TINY
_SQRT2, _LOG_SQRT_2PI = math.sqrt(2.0), 0.5 * math.log(2.0 * math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_MAX_ITER = 200
_KERNEL_MAX_STEP = 8.0  # the bracket guards the iteration; 8 crosses the range in 13 steps


@numba.njit(cache=True)
def _log_normal_cdf(x: float) -> float:
    if x > -30.0:
        return math.log(0.5 * math.erfc(-x / _SQRT2))
    # asymptotic series of Mills' ratio: log Phi(x) = log phi(x) - log(-x) + log(1 - 1/x^2 ...)
    x2 = x * x
    return -0.5 * x2 - _LOG_SQRT_2PI - math.log(-x) + math.log1p(-1.0 / x2 + 3.0 / (x2 * x2))


@numba.njit(cache=True)
def _logit_parts(w: float, b: float, n: float, var_0: float) -> tuple[float, float]:
    """(g, dg/du) of the logit map (the normal scale mixture of r2_maps._logit_log_parts)."""
    m = 0.0
    mbar = 0.0
    e = 0.0
    dm = 0.0
    de = 0.0
    for i in range(_MIX_S.shape[0]):
        c = _MIX_C[i]
        q = 1.0 / math.sqrt(_MIX_S[i] * _MIX_S[i] + w)
        dq = -0.5 * q * q * q  # dq / dW
        h = b * q
        pdf = math.exp(-0.5 * h * h) * _INV_SQRT_2PI
        m += c * 0.5 * math.erfc(-h / _SQRT2)
        mbar += c * 0.5 * math.erfc(h / _SQRT2)
        e += c * q * pdf
        dm += c * pdf * b * dq
        de += c * pdf * dq * (1.0 - h * h)
    var = m * mbar - e - var_0
    if var < _TINY:
        return math.log(_TINY) - math.log(e) + math.log(n), _MIN_SLOPE
    dvar = dm * (mbar - m) - de
    return math.log(var) - math.log(e) + math.log(n), w * (dvar / var - de / e)


@numba.njit(cache=True)
def _logit_var_0(b: float) -> float:
    """The mixture's own Var mu at W = 0 (about 1e-16), subtracted as in r2_maps."""
    m = 0.0
    mbar = 0.0
    e = 0.0
    for i in range(_MIX_S.shape[0]):
        q = 1.0 / _MIX_S[i]
        h = b * q
        m += _MIX_C[i] * 0.5 * math.erfc(-h / _SQRT2)
        mbar += _MIX_C[i] * 0.5 * math.erfc(h / _SQRT2)
        e += _MIX_C[i] * q * math.exp(-0.5 * h * h) * _INV_SQRT_2PI
    return m * mbar - e


@numba.njit(cache=True)
def _probit_g(u: float, b: float, n: float) -> float:
    """g of the probit map (Plackett's angle integrals of r2_maps._probit_log_parts)."""
    w = math.exp(u)
    h2 = b * b / (1.0 + w)
    root = math.sqrt(1.0 + 2.0 * w)
    th1 = math.atan(w / root)
    th2 = math.atan(root / w)
    num = 0.0
    rest = 0.0
    for i in range(_GL_X.shape[0]):
        ta = math.tan(math.pi / 4 - 0.5 * th1 * _GL_X[i])
        tb = math.tan(0.5 * th2 * _GL_X[i])
        num += _GL_W[i] * math.exp(-0.5 * h2 * ta * ta)
        rest += _GL_W[i] * math.exp(-0.5 * h2 * tb * tb)
    return math.log(0.5 * th1 * num) - math.log(0.5 * th2 * rest) + math.log(n)


@numba.njit(cache=True)
def _g_slope(kind: int, u: float, b: float, n: float, alpha: float,
             var_0: float) -> tuple[float, float]:
    """(g(u), g'(u)) for the map ``kind`` (see KINDS)."""
    w = math.exp(u)
    if kind == 2:
        return _logit_parts(w, b, n, var_0)
    if kind == 3:
        h = 1e-5
        g_u = _probit_g(u, b, n)
        return g_u, (_probit_g(u + h, b, n) - _probit_g(u - h, b, n)) / (2.0 * h)
    # log num = log(1 - e^-W): d/du = W / (e^W - 1)
    log_num = math.log(-math.expm1(-w))
    dnum = 1.0 if w < 1e-300 else (0.0 if w > 700.0 else w / math.expm1(w))
    if kind == 0:  # poisson: log rest = -b - 3W/2
        return log_num + b + 1.5 * w, dnum + 1.5 * w
    # negative binomial: log num += log(1 + 1/alpha), log rest = -W + logaddexp(-log a, -b - W/2)
    first, second = -math.log(alpha), -b - 0.5 * w
    top = max(first, second)
    lse = top + math.log(math.exp(first - top) + math.exp(second - top))
    share = math.exp(second - lse)  # d logaddexp / d second
    return (log_num + math.log1p(1.0 / alpha) + w - lse,
            dnum + w * (1.0 + 0.5 * share))


@numba.njit(cache=True)
def _linear_log_s2(kind: int, b: float, n: float, alpha: float) -> float:
    """log s^2 of the linearised map (Family.linear_s2): the iteration's start."""
    if kind == 0:
        return -b
    if kind == 1:
        return math.log(math.exp(-b) + 1.0 / alpha) if b > -700.0 else -b
    if kind == 2:  # 1 / (n p (1 - p)), p = expit(b), on the log scale
        softplus_b = max(b, 0.0) + math.log1p(math.exp(-abs(b)))
        return 2.0 * softplus_b - b - math.log(n)
    log_pdf = -0.5 * b * b - _LOG_SQRT_2PI
    return _log_normal_cdf(b) + _log_normal_cdf(-b) - 2.0 * log_pdf - math.log(n)


@numba.njit(cache=True)
def solve(kind: int, y: float, b: float, n: float, alpha: float) -> float:
    """log W with g(log W) = ``y`` (logit of the relative R2), for one set of inputs.

    Newton on asinh(g(u) - y), u = log W, from the linearised map's root, each step at most
    8, kept inside the bracket the iterates have found (bisection where a step leaves it), u
    in ``[LOG_W_MIN, LOG_W_MAX]``. Stops when the step is below 1e-12 (about 1e-13 in R2).
    """
    if not (math.isfinite(y) and math.isfinite(b) and n > 0.0 and alpha > 0.0):
        return math.nan
    var_0 = _logit_var_0(b) if kind == 2 else 0.0
    lo, hi = _LO, _HI
    u = _linear_log_s2(kind, b, n, alpha) + y
    u = min(max(u, _LO), _HI) if math.isfinite(u) else 0.0
    for _ in range(_MAX_ITER):
        g_u, slope = _g_slope(kind, u, b, n, alpha, var_0)
        f = g_u - y
        if not math.isfinite(slope) or slope < _MIN_SLOPE:
            slope = _MIN_SLOPE
        # Newton on asinh(g - y): the plain step near the root, a step of about log|g - y|
        # far from it (g grows like e^W on the poisson and NB side)
        step = math.asinh(f) * math.sqrt(1.0 + f * f) / slope
        if abs(step) < 1e-12:
            return u - step
        if f < 0.0:
            lo = u
        else:
            hi = u
        if hi - lo < 1e-12 * (1.0 + abs(u)):  # bracketed to rounding (g is noisy where
            return 0.5 * (lo + hi)            # Var mu cancels: tiny W, extreme beta0)
        new = u - min(max(step, -_KERNEL_MAX_STEP), _KERNEL_MAX_STEP)
        if new <= lo or new >= hi:  # outside the bracket found so far: bisect it
            new = 0.5 * (lo + hi)
        u = new
    return u


@numba.njit(cache=True)
def sensitivities(kind: int, r: float, u: float, b: float, n: float,
                  alpha: float) -> tuple[float, float, float, float]:
    """d log W / d (r, beta0, trials, alpha) at the root ``u``, by implicit differentiation.

    With g(u; theta) = logit r: du/dr = 1 / (g'(u) r (1 - r)) and du/dtheta = -g_theta / g'(u),
    g' floored at ``_MIN_SLOPE`` as in the NumPy and JAX step. g_beta0 and g_alpha are central
    differences (relative error about 1e-9); g_trials = 1 / trials (g has log n in it).
    """
    var_0 = _logit_var_0(b) if kind == 2 else 0.0
    _, slope = _g_slope(kind, u, b, n, alpha, var_0)
    if not math.isfinite(slope) or slope < _MIN_SLOPE:
        slope = _MIN_SLOPE
    h = 1e-6 * max(1.0, abs(b))
    var_up = _logit_var_0(b + h) if kind == 2 else 0.0
    var_down = _logit_var_0(b - h) if kind == 2 else 0.0
    g_b = (_g_slope(kind, u, b + h, n, alpha, var_up)[0]
           - _g_slope(kind, u, b - h, n, alpha, var_down)[0]) / (2.0 * h)
    g_a = 0.0
    if kind == 1:
        ha = 1e-6 * alpha
        g_a = (_g_slope(kind, u, b, n, alpha + ha, 0.0)[0]
               - _g_slope(kind, u, b, n, alpha - ha, 0.0)[0]) / (2.0 * ha)
    g_n = 1.0 / n if kind >= 2 else 0.0
    return 1.0 / (slope * r * (1.0 - r)), -g_b / slope, -g_n / slope, -g_a / slope


@numba.njit(cache=True)
def log_w_all(kind: int, r: np.ndarray, beta0: np.ndarray, trials: np.ndarray,
              alpha: np.ndarray) -> np.ndarray:
    """log W at R2 ``r`` over 1-d arrays of one length."""
    out = np.empty(r.shape[0], dtype=np.float64)
    for i in range(r.shape[0]):
        y = math.log(r[i]) - math.log1p(-r[i])
        out[i] = solve(kind, y, beta0[i], trials[i], alpha[i])
    return out


@numba.njit(cache=True)
def sensitivities_all(kind: int, r: np.ndarray, beta0: np.ndarray, trials: np.ndarray,
                      alpha: np.ndarray, u: np.ndarray) -> np.ndarray:
    """:func:`sensitivities` over 1-d arrays of one length: shape (4, length)."""
    out = np.empty((4, r.shape[0]), dtype=np.float64)
    for i in range(r.shape[0]):
        d_r, d_b, d_n, d_a = sensitivities(kind, r[i], u[i], beta0[i], trials[i], alpha[i])
        out[0, i] = d_r
        out[1, i] = d_b
        out[2, i] = d_n
        out[3, i] = d_a
    return out


class LogWOfR2(Op):
    """Op: (r, beta0, trials, alpha), 1-d of one length -> log W with relative R2(W) = r.

    ``kind`` is the map's code in :data:`KINDS`; alpha is used by the negative binomial only,
    trials by the binomial (1 otherwise). Gradients by implicit differentiation
    (:class:`LogWOfR2Grad`). Use :func:`log_w_of_r2`, which broadcasts and reshapes.
    """

    __props__ = ("kind",)

    def __init__(self, kind: int):
        self.kind = int(kind)

    def make_node(self, r, beta0, trials, alpha):
        inputs = [pt.as_tensor_variable(v).astype("float64") for v in (r, beta0, trials, alpha)]
        if any(v.type.ndim != 1 for v in inputs):
            raise ValueError("LogWOfR2 takes 1-d inputs of one length (use log_w_of_r2)")
        return Apply(self, inputs, [pt.dvector()])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = log_w_all(self.kind, *[np.ascontiguousarray(v) for v in inputs])

    def infer_shape(self, fgraph, node, input_shapes):
        return [input_shapes[0]]

    def L_op(self, inputs, outputs, output_gradients):
        sens = LogWOfR2Grad(self.kind)(*inputs, outputs[0])
        return [output_gradients[0] * sens[i] for i in range(4)]


class LogWOfR2Grad(Op):
    """Op: (r, beta0, trials, alpha, log W) -> d log W / d (r, beta0, trials, alpha), (4, n).

    First order only: NUTS never differentiates a gradient.
    """

    __props__ = ("kind",)

    def __init__(self, kind: int):
        self.kind = int(kind)

    def make_node(self, r, beta0, trials, alpha, log_w):
        inputs = [pt.as_tensor_variable(v) for v in (r, beta0, trials, alpha, log_w)]
        return Apply(self, inputs, [pt.dmatrix()])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = sensitivities_all(
            self.kind, *[np.ascontiguousarray(v) for v in inputs])

    def infer_shape(self, fgraph, node, input_shapes):
        return [(4, input_shapes[0][0])]


def log_w_of_r2(family: Family, r: Any, beta0: Any, aux: dict | None, trials: Any) -> Any:
    """log W at relative R2 ``r`` (already clipped into (0, 1)) as a PyTensor graph node.

    Inputs broadcast against each other; the PyTensor namespace
    (``r2d2formula.backend.xp.PYTENSOR.log_w_of_r2``) points here.
    """
    kind = KINDS.get((family.name, family.link))
    if kind is None:
        raise FamilyError(f"no numeric R2 map for family {family.name!r} with link "
                          f"{family.link!r}")
    alpha = (aux or {}).get("alpha", 1.0)
    n = trials if family.name == "binomial" else 1.0
    inputs = pt.broadcast_arrays(*[pt.as_tensor_variable(v).astype("float64")
                                   for v in (r, beta0, n, alpha)])
    shape = inputs[0].shape
    flat = LogWOfR2(kind)(*[v.ravel() for v in inputs])
    return flat.reshape(shape, ndim=inputs[0].type.ndim)


# ---- backends --------------------------------------------------------------------------------
def _register_numba() -> None:
    from r2d2formula.backend.numba_ops import register_numba

    def funcify(op, node=None, **kwargs):
        kind = op.kind
        if isinstance(op, LogWOfR2):
            @numba.njit
            def log_w_of_r2_kernel(r, beta0, trials, alpha):
                return log_w_all(kind, np.ascontiguousarray(r), np.ascontiguousarray(beta0),
                                 np.ascontiguousarray(trials), np.ascontiguousarray(alpha))

            return log_w_of_r2_kernel

        @numba.njit
        def sensitivities_kernel(r, beta0, trials, alpha, log_w):
            return sensitivities_all(kind, np.ascontiguousarray(r),
                                     np.ascontiguousarray(beta0), np.ascontiguousarray(trials),
                                     np.ascontiguousarray(alpha), np.ascontiguousarray(log_w))

        return sensitivities_kernel

    for op_type in (LogWOfR2, LogWOfR2Grad):
        register_numba(op_type, funcify,
                       lambda op: f"r2d2formula.{type(op).__name__}.v1.kind{op.kind}")


def _register_jax() -> None:
    try:
        from pytensor.link.jax.dispatch import jax_funcify
    except ImportError:  # JAX is optional
        return

    def jax_log_w(kind: int):
        """log W(r, beta0, trials, alpha) in JAX: the NumPy path's guess and implicit step."""
        JAX = _jax_namespace()
        family = _family_of(kind)

        def log_w(r, beta0, trials, alpha):
            aux = {"alpha": alpha} if family.name == "negativebinomial" else None
            return r2_maps._solve_log_w(family, r, beta0, aux, trials, JAX)

        return log_w

    @jax_funcify.register(LogWOfR2)
    def funcify(op, node=None, **kwargs):
        return jax_log_w(op.kind)

    @jax_funcify.register(LogWOfR2Grad)
    def funcify_grad(op, node=None, **kwargs):
        import jax
        import jax.numpy as jnp

        log_w = jax_log_w(op.kind)
        # elementwise in every input: the vector-Jacobian product with ones is the gradient
        def sensitivities_jax(r, beta0, trials, alpha, _log_w):
            _, vjp = jax.vjp(log_w, r, beta0, trials, alpha)
            return jnp.stack(vjp(jnp.ones_like(r)))

        return sensitivities_jax


def _jax_namespace() -> SimpleNamespace:
    """The JAX array namespace of r2_maps' functions (JAX is imported only here)."""
    import jax
    import jax.numpy as jnp
    from jax.scipy import special

    def elementwise_derivative(f, x):  # d f(x) / dx for an elementwise f, forward mode
        return jax.jvp(f, (x,), (jnp.ones_like(x),))[1]

    return SimpleNamespace(
        name="jax", exp=jnp.exp, expm1=jnp.expm1, log=jnp.log, log1p=jnp.log1p, sqrt=jnp.sqrt,
        square=jnp.square, abs=jnp.abs, where=jnp.where, maximum=jnp.maximum,
        minimum=jnp.minimum, clip=jnp.clip, sum=jnp.sum, asarray=jnp.asarray,
        sigmoid=jax.nn.sigmoid, log_sigmoid=jax.nn.log_sigmoid, normal_cdf=special.ndtr,
        normal_pdf=lambda x: jnp.exp(-0.5 * jnp.square(x)) / math.sqrt(2.0 * math.pi),
        erfc=special.erfc, sin=jnp.sin, cos=jnp.cos, arctan=jnp.arctan,
        logaddexp=jnp.logaddexp, ones_like=jnp.ones_like, stop_gradient=jax.lax.stop_gradient,
        elementwise_derivative=elementwise_derivative)


def _family_of(kind: int) -> Family:
    from r2d2formula.families import get_family

    name, link = next(pair for pair, code in KINDS.items() if code == kind)
    return get_family("binomial" if kind in (2, 3) else name, link)


def _after_import(module_name: str, callback) -> None:
    """Call ``callback()`` once ``module_name`` has been imported: now if it is, else right
    after its import (a one-shot finder at the head of ``sys.meta_path``).

    The JAX implementation is registered when PyTensor's JAX dispatch is first imported (by
    PyMC's JAX sampling, or a user's ``pytensor.function(..., mode="JAX")``) instead of at our
    import: importing that module imports JAX, about a second of every start with the pymc
    and nutpie samplers, which never use it.
    """
    if module_name in sys.modules:
        callback()
        return

    class _Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path, target=None):
            if fullname != module_name:
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(fullname)
            if spec is None or spec.loader is None:
                return spec
            execute = spec.loader.exec_module

            def exec_module(module):
                execute(module)
                callback()

            spec.loader.exec_module = exec_module  # this spec's own loader instance
            return spec

    sys.meta_path.insert(0, _Finder())


_register_numba()
_after_import("pytensor.link.jax.dispatch", _register_jax)
