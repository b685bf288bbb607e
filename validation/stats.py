"""Statistics of the validation suite: SBC ranks, uniformity tests, ECDF bands, coverage.

Pure NumPy/SciPy; nothing here knows about r2d2formula.

References
----------
Talts, S., Betancourt, M., Simpson, D., Vehtari, A. and Gelman, A. (2018). Validating Bayesian
inference algorithms with simulation-based calibration. arXiv:1804.06788.
Säilynoja, T., Bürkner, P.-C. and Vehtari, A. (2022). Graphical test for discrete uniformity and
its applications in goodness-of-fit evaluation and multiple sample comparison. Statistics and
Computing 32, 32.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

__all__ = [
    "thin_draws",
    "sbc_rank",
    "chisq_uniformity",
    "ecdf_band",
    "ecdf_uniformity",
    "binomial_mc_error",
]


def thin_draws(draws: np.ndarray, n_keep: int) -> np.ndarray:
    """Keep ``n_keep`` draws spread evenly over a (chain, draw, ...) array, chains in turn.

    Each chain contributes ``ceil(n_keep / chains)`` equally spaced draws (the last chain
    fewer if needed), so the kept draws are as far apart as the run allows.

    Parameters
    ----------
    draws : ndarray, shape (chains, draws, ...)
    n_keep : int
        Number of draws to keep; at most chains * draws.

    Returns
    -------
    ndarray, shape (n_keep, ...)

    Examples
    --------
    >>> thin_draws(np.arange(20).reshape(2, 10), 4)
    array([ 2,  7, 12, 17])
    """
    chains, n_draws = draws.shape[:2]
    if n_keep > chains * n_draws:
        raise ValueError(f"cannot keep {n_keep} draws of {chains} x {n_draws}")
    per_chain = math.ceil(n_keep / chains)
    step = n_draws / per_chain
    idx = (np.floor(step * np.arange(per_chain) + step / 2)).astype(int)
    kept = np.concatenate([draws[c, idx] for c in range(chains)], axis=0)
    return kept[:n_keep]


def sbc_rank(truth: float, draws: ArrayLike, rng: np.random.Generator) -> int:
    """Rank of ``truth`` among ``draws``: the number of draws below it, ties broken at random.

    Returns an integer in 0..len(draws); under a calibrated posterior it is uniform there.

    Examples
    --------
    >>> sbc_rank(0.5, [0.1, 0.7, 0.3], np.random.default_rng(0))
    2
    """
    draws = np.asarray(draws, dtype=float)
    below = int(np.sum(draws < truth))
    ties = int(np.sum(draws == truth))
    return below + (int(rng.integers(0, ties + 1)) if ties else 0)


def chisq_uniformity(ranks: ArrayLike, n_ranks: int, n_bins: int) -> tuple[float, float]:
    """Pearson chi-square test that ranks in 0..n_ranks-1 are uniform, over equal-width bins.

    Parameters
    ----------
    ranks : array_like of int
    n_ranks : int
        Number of possible rank values (draws kept + 1); must be a multiple of ``n_bins``.
    n_bins : int

    Returns
    -------
    statistic, p_value : float

    Examples
    --------
    >>> ranks = np.tile(np.arange(100), 3)
    >>> chisq_uniformity(ranks, 100, 10)
    (0.0, 1.0)
    """
    if n_ranks % n_bins:
        raise ValueError(f"{n_ranks} rank values do not split into {n_bins} equal bins")
    ranks = np.asarray(ranks, dtype=int)
    counts = np.bincount(ranks * n_bins // n_ranks, minlength=n_bins)
    expected = len(ranks) / n_bins
    statistic = float(np.sum((counts - expected) ** 2 / expected))
    return statistic, float(stats.chi2.sf(statistic, n_bins - 1))


def _ecdf_at(fractions: np.ndarray, z: np.ndarray) -> np.ndarray:
    """ECDF of each row of ``fractions`` (shape (sims, N)) at the points ``z``, as counts."""
    sorted_ = np.sort(fractions, axis=-1)
    return np.stack([np.searchsorted(row, z, side="right") for row in sorted_])


def _min_tail(counts: np.ndarray, n: int, z: np.ndarray) -> np.ndarray:
    """Smallest two-sided binomial tail probability over z, per row of counts."""
    lower = stats.binom.cdf(counts, n, z)
    upper = stats.binom.sf(counts - 1, n, z)
    return np.min(2.0 * np.minimum(lower, upper), axis=-1)


def ecdf_band(
    n: int, n_ranks: int, *, prob: float = 0.95, n_sims: int = 2000, seed: int = 0
) -> dict[str, np.ndarray | float]:
    """Simultaneous band for the ECDF difference of ``n`` uniform ranks in 0..n_ranks-1.

    The simulation method of Säilynoja et al. (2022): draw ``n_sims`` sets of ``n`` uniform
    ranks, find the pointwise level gamma at which ``prob`` of the simulated ECDFs lie inside
    the pointwise binomial intervals at every evaluation point, and return those intervals.

    Parameters
    ----------
    n : int
        Number of SBC replications.
    n_ranks : int
        Number of possible rank values.
    prob : float
        Simultaneous coverage of the band.
    n_sims : int
        Simulated rank sets.
    seed : int

    Returns
    -------
    dict
        ``z`` (evaluation points, the fractional ranks (k + 1) / n_ranks), ``lower``, ``upper``
        (band of ECDF(z) - z), ``gamma`` (the pointwise level) and ``null_min_tail`` (the
        simulated minimum tail probabilities, for p-values).

    Examples
    --------
    >>> band = ecdf_band(100, 100, n_sims=500)
    >>> bool(np.all(band["lower"] <= 0) and np.all(band["upper"] >= 0))
    True
    """
    rng = np.random.default_rng(seed)
    z = np.arange(1, n_ranks) / n_ranks
    sims = (rng.integers(0, n_ranks, size=(n_sims, n)) + 1) / n_ranks
    null_min = _min_tail(_ecdf_at(sims, z), n, z)
    gamma = float(np.quantile(null_min, 1.0 - prob))
    lower = stats.binom.ppf(gamma / 2, n, z) / n - z
    upper = stats.binom.ppf(1 - gamma / 2, n, z) / n - z
    return {"z": z, "lower": lower, "upper": upper, "gamma": gamma, "null_min_tail": null_min}


def ecdf_uniformity(ranks: ArrayLike, n_ranks: int, band: dict) -> tuple[np.ndarray, float]:
    """ECDF difference of ``ranks`` at the band's points and the p-value of the band test.

    The p-value is the share of simulated uniform rank sets whose smallest pointwise tail
    probability is at most the observed one: the test that rejects when the ECDF leaves the
    simultaneous band of level 1 - alpha rejects exactly when this p-value is below alpha.

    Examples
    --------
    >>> band = ecdf_band(200, 100, n_sims=500)
    >>> _, p = ecdf_uniformity(np.tile(np.arange(100), 2), 100, band)
    >>> p > 0.5
    True
    """
    ranks = np.asarray(ranks, dtype=int)
    n = len(ranks)
    z = band["z"]
    fractions = ((ranks + 1) / n_ranks)[None, :]
    counts = _ecdf_at(fractions, z)
    observed = float(_min_tail(counts, n, z)[0])
    p_value = float(np.mean(band["null_min_tail"] <= observed))
    return counts[0] / n - z, p_value


def binomial_mc_error(hits: int, n: int) -> float:
    """Monte Carlo standard error of an empirical coverage ``hits / n``.

    Examples
    --------
    >>> round(binomial_mc_error(90, 100), 3)
    0.03
    """
    p = hits / n
    return math.sqrt(p * (1 - p) / n)
