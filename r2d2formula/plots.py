"""Plots of fitted models. Each function takes a :class:`~r2d2formula.results.Fit`, an
optional Matplotlib ``ax``, returns the axes, and never calls ``plt.show()``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from r2d2formula.results import Fit

__all__ = ["plot_r2"]


def plot_r2(fit: Fit, ax: Axes | None = None, *, prior_draws: int = 4000,
            random_seed: int | None = 0, check_prior: bool = True) -> Axes:
    """Prior against posterior R2, with the chosen Beta density drawn over them.

    Parameters
    ----------
    fit : Fit
    ax : matplotlib Axes, optional
    prior_draws : int
        Prior draws for the histogram of the prior R2 implied by (beta0, W, aux).
    random_seed : int, optional
    check_prior : bool
        Draw the histogram of prior R2 computed by independent integration
        (:meth:`Model.prior_r2`); for non-gaussian families this shows how closely the
        chosen ``approx`` meets the Beta. False shows only the Beta density.

    Returns
    -------
    matplotlib Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    a, b = fit.model.priors.r2_beta
    grid = np.linspace(0.0005, 0.9995, 400)
    bins = np.linspace(0, 1, 51)
    if check_prior:
        prior_r2 = fit.model.prior_r2(draws=prior_draws, random_seed=random_seed)
        ax.hist(prior_r2, bins=bins, density=True, alpha=0.35, color="C0",
                label=f"prior R2 implied by W ({fit.model.approx})")
    posterior = fit.idata.posterior["R2"].values.ravel()
    ax.hist(posterior, bins=bins, density=True, alpha=0.6, color="C1", label="posterior R2")
    ax.plot(grid, stats.beta(a, b).pdf(grid), color="k", lw=1.5,
            label=f"Beta({a:.3g}, {b:.3g}) prior")
    ax.set_xlim(0, 1)
    ax.set_xlabel("R2" + (" (relative to its supremum)" if fit.model.family.name ==
                         "negativebinomial" else ""))
    ax.set_ylabel("density")
    ax.set_title(f"{fit.model.variant}: prior and posterior R2")
    ax.legend(fontsize="small", frameon=False)
    return ax
