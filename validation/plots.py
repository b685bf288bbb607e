"""Figures of the validation report: rank histograms, ECDF differences with bands, coverage."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

__all__ = ["plot_rank_histograms", "plot_ecdf_differences", "plot_coverage"]


def _grid(n: int, ncols: int = 5) -> tuple:
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.1 * nrows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def plot_rank_histograms(ranks: dict[str, np.ndarray], n_ranks: int, n_bins: int, title: str,
                         path: Path) -> None:
    """One rank histogram per quantity, with the 99% band of a uniform bin count."""
    fig, axes = _grid(len(ranks))
    for ax, (name, r) in zip(axes, ranks.items(), strict=False):
        n = len(r)
        counts = np.bincount(np.asarray(r) * n_bins // n_ranks, minlength=n_bins)
        lo, hi = stats.binom.ppf([0.005, 0.995], n, 1 / n_bins)
        ax.axhspan(lo, hi, color="0.85", lw=0)
        ax.axhline(n / n_bins, color="0.5", lw=0.8)
        ax.bar(np.arange(n_bins), counts, width=1.0, color="C0", edgecolor="white")
        ax.set_title(name, fontsize=8)
        ax.set_xticks([])
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{title}: rank histograms ({len(next(iter(ranks.values())))} replications; "
                 "grey: 99% interval of a bin count under uniformity)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_ecdf_differences(diffs: dict[str, np.ndarray], band: dict, title: str,
                          path: Path) -> None:
    """ECDF(rank) - uniform CDF per quantity, with the simultaneous 95% band."""
    fig, axes = _grid(len(diffs))
    z = band["z"]
    for ax, (name, d) in zip(axes, diffs.items(), strict=False):
        ax.fill_between(z, band["lower"], band["upper"], step="post", color="0.85", lw=0)
        ax.step(z, d, where="post", color="C3", lw=1.0)
        ax.axhline(0, color="0.5", lw=0.6)
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{title}: ECDF difference of fractional ranks (grey: simultaneous 95% band, "
                 "Säilynoja et al. 2022)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_coverage(rows: list[dict], title: str, path: Path) -> None:
    """Empirical coverage of 50% and 90% intervals per parameter with +-2 MC errors."""
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
    y = np.arange(len(rows))
    for level, color, off in ((50, "C0", -0.12), (90, "C1", 0.12)):
        cov = np.array([r[f"cover{level}"] for r in rows])
        err = np.array([r[f"mcse{level}"] for r in rows])
        ax.errorbar(cov, y + off, xerr=2 * err, fmt="o", color=color, ms=4,
                    label=f"{level}% intervals")
        ax.axvline(level / 100, color=color, lw=0.8, ls="--")
    ax.set_yticks(y)
    ax.set_yticklabels([r["parameter"] for r in rows], fontsize=8)
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("empirical coverage (bars: +-2 Monte Carlo SE)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
