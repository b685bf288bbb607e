"""Posterior predictions for a set of rows, and their summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["Predictions", "summarize_draws", "hdi_columns"]


def hdi_columns(samples: np.ndarray, prob: float) -> tuple[np.ndarray, np.ndarray]:
    """Highest-density intervals of each column of ``samples`` (draws x columns).

    The narrowest interval holding ``floor(prob * draws)`` sorted draws, as
    :func:`arviz.hdi` computes it, vectorised over columns.

    Examples
    --------
    >>> lo, hi = hdi_columns(np.arange(100.0)[:, None], 0.9)
    >>> float(lo[0]), float(hi[0])
    (0.0, 90.0)
    """
    x = np.sort(np.asarray(samples, dtype=float), axis=0)
    n = x.shape[0]
    width = int(np.floor(prob * n))
    if width < 1 or width >= n:
        return x[0], x[-1]
    widths = x[width:] - x[: n - width]
    start = np.argmin(widths, axis=0)
    cols = np.arange(x.shape[1])
    return x[start, cols], x[start + width, cols]


def _hdi_labels(prob: float) -> tuple[str, str]:
    tail = 100 * (1 - prob) / 2
    return f"hdi_{tail:g}%", f"hdi_{100 - tail:g}%"


def summarize_draws(draws: np.ndarray, hdi_prob: float = 0.94) -> dict[str, np.ndarray]:
    """Per-row mean, sd and HDI of ``draws`` with shape (chain, draw, rows)."""
    flat = np.asarray(draws, dtype=float).reshape(-1, draws.shape[-1])
    lo, hi = hdi_columns(flat, hdi_prob)
    lo_name, hi_name = _hdi_labels(hdi_prob)
    return {"mean": flat.mean(axis=0), "sd": flat.std(axis=0, ddof=1), lo_name: lo,
            hi_name: hi}


class Predictions:
    """Posterior draws of predictions, one column per row of the data predicted.

    Returned by :meth:`r2d2formula.results.Fit.predict`.

    Attributes
    ----------
    draws : xarray.DataArray
        Dims ``("chain", "draw", "obs")``; the ``obs`` coordinate is the predicted data's
        index.
    kind : str
        "link", "mean" or "response".
    """

    def __init__(self, draws: xr.DataArray, kind: str, index: pd.Index | None = None) -> None:
        self.draws = draws
        self.kind = kind
        self._index = draws["obs"].to_index() if index is None else index

    @property
    def index(self) -> pd.Index:
        """The predicted rows' index."""
        return self._index

    @property
    def values(self) -> np.ndarray:
        """The draws as an array of shape (chain, draw, rows)."""
        return self.draws.values

    def mean(self) -> pd.Series:
        """Posterior mean per row."""
        return pd.Series(self.draws.mean(("chain", "draw")).values, index=self.index,
                         name=f"{self.kind}_mean")

    def summary(self, hdi_prob: float = 0.94) -> pd.DataFrame:
        """Mean, sd and the highest-density interval per row.

        Parameters
        ----------
        hdi_prob : float, default 0.94

        Returns
        -------
        pandas.DataFrame
            Indexed by the predicted data's index.
        """
        table = summarize_draws(self.draws.values, hdi_prob)
        return pd.DataFrame(table, index=self.index)

    def __repr__(self) -> str:
        chains, draws, rows = self.draws.shape
        return (f"Predictions(kind={self.kind!r}: {rows} rows x {chains} chains x {draws} "
                "draws; .summary() for a table, .draws for the draws)")
