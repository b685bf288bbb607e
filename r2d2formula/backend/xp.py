"""The PyTensor array namespace (the NumPy one is :data:`r2d2formula._xp.NUMPY`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytensor.tensor as pt
from pytensor.gradient import disconnected_grad, grad

from r2d2formula.backend.r2_map_op import log_w_of_r2

__all__ = ["PYTENSOR"]

_SQRT2 = math.sqrt(2.0)


def _elementwise_derivative(f: Callable[[Any], Any], x: Any) -> Any:
    """d f(x) / d x for an elementwise ``f`` (symbolic; ``x`` must have the output's shape)."""
    x = pt.as_tensor_variable(x)
    return grad(pt.sum(f(x)), x)

PYTENSOR = SimpleNamespace(
    name="pytensor",
    exp=pt.exp,
    expm1=pt.expm1,
    log=pt.log,
    log1p=pt.log1p,
    sqrt=pt.sqrt,
    square=pt.sqr,
    abs=pt.abs,
    where=pt.switch,
    maximum=pt.maximum,
    minimum=pt.minimum,
    clip=pt.clip,
    sum=pt.sum,
    asarray=pt.as_tensor_variable,
    sigmoid=pt.sigmoid,
    log_sigmoid=lambda x: -pt.softplus(-x),
    normal_cdf=lambda x: 0.5 * pt.erfc(-x / _SQRT2),
    normal_pdf=lambda x: pt.exp(-0.5 * pt.sqr(x)) / math.sqrt(2.0 * math.pi),
    erfc=pt.erfc,
    sin=pt.sin,
    cos=pt.cos,
    arctan=pt.arctan,
    logaddexp=pt.logaddexp,
    ones_like=pt.ones_like,
    stop_gradient=disconnected_grad,
    elementwise_derivative=_elementwise_derivative,
    log_w_of_r2=log_w_of_r2,
)
