"""Forward draws of selected prior variables (no observations involved)."""

from __future__ import annotations

import warnings

import numpy as np
import pymc as pm

__all__ = ["draw_prior_variables"]


def draw_prior_variables(
    model: pm.Model, var_names: list[str], *, draws: int, random_seed: int | None
) -> dict[str, np.ndarray]:
    """Draw ``var_names`` from the prior of ``model``; returns arrays with a leading draw axis.

    Only the named variables (and what they depend on) are computed, so the cost does not
    grow with the number of observations.
    """
    present = [name for name in var_names if name in model.named_vars]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        values = pm.draw([model[name] for name in present], draws=draws, random_seed=random_seed)
    if len(present) == 1:
        values = [values]
    return {name: np.asarray(value) for name, value in zip(present, values, strict=True)}
