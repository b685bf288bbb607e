"""The JAX array namespace (imported only where JAX runs: the LogWRoot Op's JAX form)."""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy import special

__all__ = ["JAX"]


def _elementwise_derivative(f: Callable[[Any], Any], x: Any) -> Any:
    """d f(x) / d x for an elementwise ``f`` (forward mode, any shape)."""
    return jax.jvp(f, (x,), (jnp.ones_like(x),))[1]


JAX = SimpleNamespace(
    name="jax",
    exp=jnp.exp,
    expm1=jnp.expm1,
    log=jnp.log,
    log1p=jnp.log1p,
    sqrt=jnp.sqrt,
    square=jnp.square,
    abs=jnp.abs,
    where=jnp.where,
    maximum=jnp.maximum,
    minimum=jnp.minimum,
    clip=jnp.clip,
    sum=jnp.sum,
    asarray=jnp.asarray,
    sigmoid=jax.nn.sigmoid,
    log_sigmoid=jax.nn.log_sigmoid,
    normal_cdf=special.ndtr,
    normal_pdf=lambda x: jnp.exp(-0.5 * jnp.square(x)) / math.sqrt(2.0 * math.pi),
    erfc=special.erfc,
    sin=jnp.sin,
    cos=jnp.cos,
    arctan=jnp.arctan,
    logaddexp=jnp.logaddexp,
    ones_like=jnp.ones_like,
    stop_gradient=jax.lax.stop_gradient,
    elementwise_derivative=_elementwise_derivative,
)
