r"""Simulated data with known variance shares: the laboratory design used in the docs.

Gene expression is measured for every combination of mouse, microRNA and stress condition,
with replicates. Each mouse has an age; each sample gets a dose. The true model is

.. math::

    \mathrm{expression}_i = \beta_0 + b_{\mathrm{age}}\,\mathrm{age}_i
        + b_{\mathrm{dose}}\,\mathrm{dose}_i + r_{\mathrm{mouse}[i]}
        + r_{\mathrm{microRNA}[i]} + r_{\mathrm{stress}[i]} + \varepsilon_i,
    \qquad \varepsilon_i \sim N(0, \sigma^2),

which is what ``expression ~ age + dose + (1|mouse) + (1|microRNA) + (1|stress)`` fits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from r2d2formula.errors import DesignError

__all__ = ["simulate_laboratory", "LABORATORY_FORMULA", "LABORATORY_COMPONENTS",
           "DEFAULT_SHARES"]

#: The model that matches :func:`simulate_laboratory`.
LABORATORY_FORMULA = "expression ~ age + dose + (1|mouse) + (1|microRNA) + (1|stress)"
#: Component names, as the model names them.
LABORATORY_COMPONENTS = ("age", "dose", "1|mouse", "1|microRNA", "1|stress")
#: Default true shares of the explained variance.
DEFAULT_SHARES: dict[str, float] = {
    "age": 0.10, "dose": 0.30, "1|mouse": 0.15, "1|microRNA": 0.35, "1|stress": 0.10,
}
_STRESS_NAMES = ("none", "heat", "cold", "restraint", "hypoxia", "starvation")
_DOSES = np.array([0.0, 0.5, 1.0, 2.0, 4.0])  # mg/kg


def simulate_laboratory(
    n_mice: int = 16,
    n_micro_rna: int = 10,
    n_stress: int = 3,
    n_replicates: int = 2,
    *,
    shares: Mapping[str, float] | None = None,
    r2: float = 0.6,
    explained_sd: float = 1.0,
    intercept: float = 8.0,
    random_seed: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    """Simulate gene expression in a crossed laboratory design with known variance shares.

    Every mouse is measured for every microRNA under every stress condition, ``n_replicates``
    times, so the data have ``n_mice * n_micro_rna * n_stress * n_replicates`` rows. Age
    (weeks, uniform on 8-52) is a property of the mouse; the dose (0, 0.5, 1, 2 or 4 mg/kg) is
    drawn for each sample.

    Parameters
    ----------
    n_mice, n_micro_rna, n_stress, n_replicates : int
        Levels of each factor (at least 2 for the grouping factors) and replicates (>= 1).
    shares : dict of str to float, optional
        True shares of the explained variance by component name: ``"age"``, ``"dose"``,
        ``"1|mouse"``, ``"1|microRNA"``, ``"1|stress"``. Components left out get 0. The shares
        must be non-negative and sum to 1. Default :data:`DEFAULT_SHARES`.
    r2 : float in (0, 1), default 0.6
        True R2: explained variance / (explained variance + sigma^2).
    explained_sd : float > 0, default 1
        Standard deviation of the linear predictor (the explained variance is its square).
    intercept : float, default 8
        Mean expression at age 0 and dose 0 (before group effects).
    random_seed : int or numpy Generator, optional
        The same seed gives the same data.

    Returns
    -------
    pandas.DataFrame
        Columns ``expression``, ``age``, ``dose``, ``mouse``, ``microRNA``, ``stress``. The
        truth is in ``df.attrs``:

        * ``"true_shares"``: dict of component name to share (sums to 1), on the scale of the
          model's ``phi``;
        * ``"true_r2"``: the R2;
        * ``"true_parameters"``: ``Intercept``, ``b`` (dict by column), ``sd`` (dict by group
          component), ``sigma``, and ``r`` (dict by factor of the drawn effects per level);
        * ``"formula"``: :data:`LABORATORY_FORMULA`.

    Raises
    ------
    DesignError
        For level counts below their minimum, shares that name unknown components, are
        negative or do not sum to 1, or r2 outside (0, 1).

    Notes
    -----
    The shares are defined as the model's ``phi`` is (SPEC section 2): with ``V`` the explained
    variance, a population component contributes ``b_j^2 s_j^2 = phi_j V``, where ``s_j`` is
    the column's standard deviation (ddof 0) in *these* data, and a group component has
    ``sd_k^2 = phi_k V``. So the population coefficients are set from the realised column
    sds (``b_j = sqrt(phi_j V) / s_j``, positive) and the group effects are drawn as
    ``r ~ N(0, sd_k^2)``; their realised variance differs from ``sd_k^2`` by sampling error,
    as it does in a real experiment. The residual sd is ``sigma = sqrt(V (1 - r2) / r2)``.

    Examples
    --------
    >>> from r2d2formula.datasets import simulate_laboratory
    >>> df = simulate_laboratory(n_mice=4, n_micro_rna=3, n_stress=2, n_replicates=1,
    ...                          random_seed=1)
    >>> df.shape
    (24, 6)
    >>> list(df.columns)
    ['expression', 'age', 'dose', 'mouse', 'microRNA', 'stress']
    >>> df.attrs["true_shares"]["1|microRNA"], df.attrs["true_r2"]
    (0.35, 0.6)
    """
    counts = {"n_mice": n_mice, "n_micro_rna": n_micro_rna, "n_stress": n_stress}
    for name, value in {**counts, "n_replicates": n_replicates}.items():
        minimum = 1 if name == "n_replicates" else 2
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
            raise DesignError(
                f"{name} must be an integer >= {minimum}, got {value!r}"
                + ("; a grouping factor needs at least two levels" if minimum == 2 else "")
            )
    share = _check_shares(shares)
    if not isinstance(r2, (int, float)) or not 0.0 < r2 < 1.0:
        raise DesignError(f"r2 must lie strictly between 0 and 1, got {r2!r}")
    if not isinstance(explained_sd, (int, float)) or not explained_sd > 0:
        raise DesignError(f"explained_sd must be a positive number, got {explained_sd!r}")
    rng = np.random.default_rng(random_seed)

    mice = [f"mouse{i + 1:02d}" for i in range(n_mice)]
    rnas = [f"miR-{i + 1}" for i in range(n_micro_rna)]
    stress = [_STRESS_NAMES[i] if i < len(_STRESS_NAMES) else f"stress{i + 1}"
              for i in range(n_stress)]
    grid = pd.MultiIndex.from_product(
        [range(n_mice), range(n_micro_rna), range(n_stress), range(n_replicates)],
        names=["mouse", "microRNA", "stress", "replicate"],
    ).to_frame(index=False)
    n = len(grid)
    mouse_age = np.round(rng.uniform(8.0, 52.0, size=n_mice), 1)
    age = mouse_age[grid["mouse"].to_numpy()]
    dose = rng.choice(_DOSES, size=n)

    variance = explained_sd**2
    sigma = math.sqrt(variance * (1.0 - r2) / r2)
    b = {}
    for column, values in (("age", age), ("dose", dose)):
        sd = float(np.std(values))
        if sd == 0.0:  # possible only with absurdly few rows; the share cannot be realised
            raise DesignError(f"the simulated {column} is constant; use more mice or samples")
        b[column] = math.sqrt(share[column] * variance) / sd
    eta = intercept + b["age"] * age + b["dose"] * dose
    sds, effects = {}, {}
    for factor, levels in (("mouse", mice), ("microRNA", rnas), ("stress", stress)):
        component = f"1|{factor}"
        sds[component] = math.sqrt(share[component] * variance)
        r = rng.normal(0.0, sds[component], size=len(levels))
        effects[factor] = dict(zip(levels, r.tolist(), strict=True))
        eta = eta + r[grid[factor].to_numpy()]
    expression = eta + rng.normal(0.0, sigma, size=n)

    frame = pd.DataFrame({
        "expression": expression,
        "age": age,
        "dose": dose,
        "mouse": np.asarray(mice, dtype=object)[grid["mouse"].to_numpy()],
        "microRNA": np.asarray(rnas, dtype=object)[grid["microRNA"].to_numpy()],
        "stress": np.asarray(stress, dtype=object)[grid["stress"].to_numpy()],
    })
    frame.attrs["true_shares"] = dict(share)
    frame.attrs["true_r2"] = float(r2)
    frame.attrs["true_parameters"] = {
        "Intercept": float(intercept), "b": b, "sd": sds, "sigma": sigma, "r": effects,
    }
    frame.attrs["formula"] = LABORATORY_FORMULA
    return frame


def _check_shares(shares: Mapping[str, float] | None) -> dict[str, float]:
    if shares is None:
        return dict(DEFAULT_SHARES)
    if not isinstance(shares, Mapping):
        raise DesignError(
            f"shares must be a dict by component name, got {type(shares).__name__}; for "
            f"example {DEFAULT_SHARES}"
        )
    unknown = [key for key in shares if key not in LABORATORY_COMPONENTS]
    if unknown:
        raise DesignError(
            f"shares names unknown components {unknown}; the components are "
            f"{list(LABORATORY_COMPONENTS)}"
        )
    out = {}
    for name in LABORATORY_COMPONENTS:
        value = shares.get(name, 0.0)
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise DesignError(f"share of {name!r} must be a number >= 0, got {value!r}")
        out[name] = float(value)
    total = sum(out.values())
    if abs(total - 1.0) > 1e-8:
        raise DesignError(
            f"shares must sum to 1, they sum to {total:.6g}; divide each by {total:.6g}"
        )
    return out
