"""The design: what a formula means for a data set, with no PyMC in sight.

A :class:`Design` is the hand-over object between the formula layer and the model graph. The
backend reads only these arrays and labels; it never looks at the formula text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ResponseData", "CommonDesign", "GroupFactor", "GroupTerm", "Design"]


@dataclass(frozen=True, kw_only=True)
class ResponseData:
    """The response column(s).

    Attributes
    ----------
    label : str
        The response as written (``"Reaction"``, ``"incidence | trials(size)"``).
    name : str
        Short name used for the observed variable in the model graph (``"Reaction"``,
        ``"incidence"``).
    values : ndarray of float, shape (n,)
        The response; successes for binomial forms.
    trials : ndarray of float, shape (n,), or None
        Number of trials for ``p(s, n)``, ``s | trials(n)`` and ``cbind(s, f)``; else None.
    levels : (str, str) or None
        For a text or categorical response with two levels, the levels coded 0 and 1;
        None for a numeric response.
    """

    label: str
    name: str
    values: np.ndarray
    trials: np.ndarray | None = None
    levels: tuple[str, str] | None = None


@dataclass(frozen=True, kw_only=True)
class CommonDesign:
    """Population-level ("common") columns, intercept excluded.

    Attributes
    ----------
    matrix : ndarray of float, shape (n, p)
        The columns, uncentered, in the order of ``labels``.
    labels : tuple of str
        Column labels (``"age"``, ``"gene[B]"``, ``"x:gene[B]"``); these become the ``coef``
        coordinate and the component names.
    terms : tuple of str
        For each column, the formula term it comes from (``"gene"`` for ``"gene[B]"``).
    intercept : bool
        Whether the model has an intercept (False after ``0 +`` or ``- 1``).
    means, scales : ndarray of float, shape (p,)
        Column means and standard deviations (ddof=0) on the training data.
    """

    matrix: np.ndarray
    labels: tuple[str, ...]
    terms: tuple[str, ...]
    intercept: bool
    means: np.ndarray
    scales: np.ndarray


@dataclass(frozen=True, kw_only=True)
class GroupFactor:
    """A grouping factor: integer codes per row, never a one-hot matrix.

    Attributes
    ----------
    name : str
        ``"Subject"``, or ``"g:h"`` for an interaction of factors.
    codes : ndarray of int64, shape (n,)
        Level index of each row, in ``0 .. len(levels) - 1``.
    levels : tuple of str
        Level names; for ``g:h`` only the combinations that occur, named ``"a:x"``.
    n_train_levels : int
        Number of levels seen in training (default ``len(levels)``). On a design built by
        ``new_data_design`` the levels after the first ``n_train_levels`` are new, and rows with
        ``codes >= n_train_levels`` belong to groups the model has not seen.
    """

    name: str
    codes: np.ndarray
    levels: tuple[str, ...]
    n_train_levels: int = -1

    def __post_init__(self) -> None:
        if self.n_train_levels < 0:
            object.__setattr__(self, "n_train_levels", len(self.levels))

    @property
    def n_new_levels(self) -> int:
        """Number of levels not seen in training (0 on the training design)."""
        return len(self.levels) - self.n_train_levels


@dataclass(frozen=True, kw_only=True)
class GroupTerm:
    """One block ``(expr | factor)`` (or one column of ``(expr || factor)``).

    Attributes
    ----------
    factor : str
        Name of the :class:`GroupFactor` it varies over.
    labels : tuple of str
        Labels of the Z columns: ``"1"`` for the intercept, else the column label (``"Days"``).
        Component names are ``f"{label}|{factor}"``.
    matrix : ndarray of float, shape (n, q)
        The Z columns (a column of ones for the intercept), uncentered.
    correlated : bool
        True for a ``|`` block with q > 1 (LKJ prior on its correlations).
    scales : ndarray of float, shape (q,)
        Standard deviations (ddof=0) of the Z columns; 1 for the intercept column.
    expr : str
        The expression as written (``"1 + Days"``), for display.
    """

    factor: str
    labels: tuple[str, ...]
    matrix: np.ndarray
    correlated: bool
    scales: np.ndarray
    expr: str = ""

    @property
    def component_names(self) -> tuple[str, ...]:
        return tuple(f"{label}|{self.factor}" for label in self.labels)


@dataclass(frozen=True, kw_only=True)
class Design:
    """Everything the model graph needs, as arrays and labels.

    Attributes
    ----------
    formula : str
        The formula as given.
    response : ResponseData
    common : CommonDesign
    factors : dict of str to GroupFactor
        Grouping factors by name, in order of first appearance.
    group_terms : tuple of GroupTerm
        Group blocks in formula order. Several blocks may share a factor
        (``(1 | g) + (0 + x | g)``) but never a column.
    offset : ndarray of float, shape (n,), or None
        Sum of the ``offset(...)`` terms.
    row_index : pandas.Index
        Index labels of the data rows used (the ``obs`` coordinate).
    n_dropped : int
        Rows dropped for missing values (only with ``dropna=True``; otherwise missing values
        raise).
    builder : Any
        Opaque state needed to evaluate the same formula on new data (stateful transforms,
        categorical levels); used by :func:`r2d2formula.design.new_data_design`.
    """

    formula: str
    response: ResponseData
    common: CommonDesign
    factors: dict[str, GroupFactor]
    group_terms: tuple[GroupTerm, ...]
    offset: np.ndarray | None
    row_index: pd.Index
    n_dropped: int = 0
    builder: Any = field(default=None, repr=False, compare=False)

    @property
    def n_obs(self) -> int:
        return int(self.response.values.shape[0])

    @property
    def has_groups(self) -> bool:
        return len(self.group_terms) > 0

    def factor_labels(self, factor: str) -> tuple[str, ...]:
        """Labels of all Z columns of ``factor`` over its blocks, in formula order."""
        return tuple(
            label for term in self.group_terms if term.factor == factor for label in term.labels
        )

    @property
    def component_names(self) -> tuple[str, ...]:
        names = list(self.common.labels)
        for term in self.group_terms:
            names.extend(term.component_names)
        return tuple(names)

    @property
    def components(self) -> pd.DataFrame:
        """One row per variance component: its name, kind, term, factor and scale s_j."""
        rows = []
        for label, term, scale in zip(
            self.common.labels, self.common.terms, self.common.scales, strict=True
        ):
            rows.append(
                {"component": label, "kind": "common", "term": term, "factor": None,
                 "column": label, "scale": float(scale), "n_levels": None}
            )
        for gterm in self.group_terms:
            n_levels = len(self.factors[gterm.factor].levels)
            for label, scale in zip(gterm.labels, gterm.scales, strict=True):
                rows.append(
                    {"component": f"{label}|{gterm.factor}", "kind": "group",
                     "term": f"({gterm.expr} | {gterm.factor})", "factor": gterm.factor,
                     "column": label, "scale": float(scale), "n_levels": n_levels}
                )
        return pd.DataFrame(
            rows, columns=["component", "kind", "term", "factor", "column", "scale", "n_levels"]
        ).set_index("component")
