"""Numba implementations, with cache keys, of the PyMC ops our graphs use that lack one.

PyTensor's numba backend caches a compiled function on disk only when every op in it has a
cache key; one op without (it falls back to object mode) makes the whole log-density be
compiled anew in every process, 10-30 s for our models. PyMC's ``PosDefMatrix`` (the
positive-definiteness check ``LKJCorr``'s log-density puts on a correlation matrix, used by
every correlated block of three or more terms) is such an op in PyMC 5.28.

Importing this module registers the implementations; :mod:`r2d2formula.backend.graph` does.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["is_positive_definite", "register_numba"]

_CACHE_VERSION = "v1"


def register_numba(op_type: type, funcify, cache_key) -> None:
    """Register ``funcify(op, node)`` as the numba implementation of ``op_type``, cached on
    disk under ``cache_key(op)`` (a string that changes whenever the generated code does)."""
    from pytensor.link.numba.dispatch import basic as numba_basic

    register = getattr(numba_basic, "register_funcify_and_cache_key", None)
    if register is None:  # PyTensor before the numba cache keys: an implementation at least
        numba_basic.numba_funcify.register(op_type)(funcify)
        return

    def funcify_with_key(op, node=None, **kwargs):
        return funcify(op, node), cache_key(op)

    register(op_type)(funcify_with_key)


@numba.njit(cache=True)
def is_positive_definite(x: np.ndarray) -> bool:
    """Whether the square matrix ``x`` is positive definite, by a Cholesky factorisation of
    its lower triangle (as ``numpy.linalg.cholesky``, which PyMC's check calls), stopping at
    the first pivot that is not positive (NaN included) instead of raising."""
    n = x.shape[0]
    if x.shape[1] != n:
        return False
    chol = np.zeros((n, n))
    for j in range(n):
        pivot = x[j, j]
        for k in range(j):
            pivot -= chol[j, k] * chol[j, k]
        if not pivot > 0.0:
            return False
        chol[j, j] = np.sqrt(pivot)
        for i in range(j + 1, n):
            value = x[i, j]
            for k in range(j):
                value -= chol[i, k] * chol[j, k]
            chol[i, j] = value / chol[j, j]
    return True


def _register() -> None:
    from pymc.distributions.multivariate import PosDefMatrix

    def funcify(op, node=None, **kwargs):
        @numba.njit
        def posdef_check(x):
            return np.array(is_positive_definite(np.ascontiguousarray(x)))

        return posdef_check

    register_numba(PosDefMatrix, funcify, lambda op: f"r2d2formula.PosDefMatrix.{_CACHE_VERSION}")


_register()
