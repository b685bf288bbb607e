"""A minimal array namespace, so family and prior maths are written once.

Functions in :mod:`r2d2formula.families` and :mod:`r2d2formula.priors` take ``xp`` and call
``xp.exp``, ``xp.sigmoid``, ... The NumPy namespace lives here; the PyTensor one lives in
:mod:`r2d2formula.backend.xp` (only the backend imports PyTensor).
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
from scipy import special

__all__ = ["NUMPY"]

_FD_STEP = 1e-5


def _elementwise_derivative(f: Callable[[Any], Any], x: Any) -> Any:
    """d f(x) / d x for an elementwise ``f``, by a central difference (NumPy has no autodiff).

    The relative error is about 1e-10 for smooth ``f`` of order-one scale in ``x``.
    """
    x = np.asarray(x, dtype=float)
    return (f(x + _FD_STEP) - f(x - _FD_STEP)) / (2.0 * _FD_STEP)

NUMPY = SimpleNamespace(
    name="numpy",
    exp=np.exp,
    expm1=np.expm1,
    log=np.log,
    log1p=np.log1p,
    sqrt=np.sqrt,
    square=np.square,
    abs=np.abs,
    where=np.where,
    maximum=np.maximum,
    minimum=np.minimum,
    clip=np.clip,
    sum=np.sum,
    asarray=np.asarray,
    sigmoid=special.expit,
    log_sigmoid=special.log_expit,
    normal_cdf=special.ndtr,
    normal_pdf=lambda x: np.exp(-0.5 * np.square(x)) / np.sqrt(2.0 * np.pi),
    erfc=special.erfc,
    sin=np.sin,
    cos=np.cos,
    arctan=np.arctan,
    logaddexp=np.logaddexp,
    ones_like=np.ones_like,
    stop_gradient=lambda x: x,
    elementwise_derivative=_elementwise_derivative,
)
