"""Checks of the design's columns: constant, duplicated and collinear columns, more columns
than rows, and names that would clash in the model's coordinates.

Everything here works on the arrays of the design and raises
:class:`~r2d2formula.errors.DesignError` (or :class:`~r2d2formula.errors.FormulaError` for
names) with the columns named and the fix, before any model is built.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import scipy.linalg

from ..errors import DesignError, FormulaError, R2D2FormulaWarning, warn_user

__all__ = ["check_columns_identified", "check_unique_names", "check_factor_names",
           "RESERVED_DIMS"]

#: Dimension names the model and ArviZ use; a grouping factor may not take them.
RESERVED_DIMS = frozenset({"coef", "component", "chain", "draw", "__sample__", "__obs__"})

# A column counts as a linear combination of earlier ones when less than this fraction of its
# (standardized) variance is left after projecting it on them. Exact collinearity leaves
# rounding noise (about 1e-15); a correlation of 0.99999 still leaves 2e-5.
_COLLINEAR_TOL = 1e-9


def _describe_combination(label: str, coefs: dict[str, float], centered: bool) -> str:
    parts = [f"{'-' if c < 0 else '+'} {abs(c):.4g}*{name!r}" for name, c in coefs.items()]
    terms = " ".join(parts)
    terms = terms[2:] if terms.startswith("+ ") else "-" + terms[2:]
    const = " + a constant" if centered else ""
    return f"{label!r} = {terms}{const}"


def _duplicates(matrix: np.ndarray) -> list[tuple[int, int]]:
    """(later, earlier) index pairs of columns with identical values."""
    if matrix.shape[1] < 2:
        return []
    _, first, inverse = np.unique(matrix.T, axis=0, return_index=True, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    return [(j, int(first[inverse[j]])) for j in range(matrix.shape[1])
            if first[inverse[j]] != j]


def check_columns_identified(
    matrix: np.ndarray,
    labels: tuple[str, ...],
    *,
    intercept: bool,
    what: str = "population-level",
    fix_many: str = "use fewer predictors or more data",
    warn_many: bool = True,
) -> None:
    """Raise if columns duplicate each other or are perfectly collinear; warn if p > n.

    Parameters
    ----------
    matrix : ndarray, shape (n, p)
        The columns (without the intercept column), none of them constant.
    labels : tuple of str
        Their labels, for the messages.
    intercept : bool
        Whether the model also has an intercept (then collinearity is checked after
        centering: ``x2 = 2 * x + 1`` counts as collinear with ``x``).
    what : str
        Which columns, for the messages ("population-level", "group term (x | g)").
    warn_many : bool
        Warn (instead of staying silent) when there are more columns than rows.

    Raises
    ------
    DesignError
        Naming the duplicated column and its twin, or the collinear column and the columns it
        is a combination of, with the fix (remove one).

    Warns
    -----
    R2D2FormulaWarning
        When the columns (with the intercept) outnumber the rows. That is allowed: the R2D2
        prior is a shrinkage prior and regularizes such a regression. Only exact duplicates are
        then checked, since any p > n columns are linearly dependent.

    Examples
    --------
    >>> x = np.array([1.0, 2.0, 4.0, 3.0])
    >>> check_columns_identified(np.column_stack([x, x ** 2]), ("x", "x2"), intercept=True)
    >>> check_columns_identified(np.column_stack([x, 2 * x + 1]), ("x", "w"), intercept=True)
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    r2d2formula.errors.DesignError: ... perfectly collinear: 'w' = 2*'x' + a constant; ...
    """
    n, p = matrix.shape
    for later, earlier in _duplicates(matrix):
        raise DesignError(
            f"{what} column {labels[later]!r} duplicates {labels[earlier]!r} (the same value in "
            "every row); the data cannot tell their effects apart. Remove one of them from the "
            "formula."
        )
    if p + int(intercept) > n:
        if warn_many:
            warn_user(
                f"the formula gives {p + int(intercept)} {what} columns (with the intercept) "
                f"for {n} rows, so the data alone do not determine the coefficients; the R2D2 "
                "prior shrinks them, which is what it is for, but expect wide posteriors. "
                f"If that is not what you want, {fix_many}.",
                R2D2FormulaWarning,
            )
        return
    dependent = _first_dependent(matrix, intercept)
    if dependent is not None:
        k, coefs = dependent
        named = {labels[j]: c for j, c in coefs.items()}
        others = ", ".join(repr(name) for name in named)
        others = f"one of {others}" if len(named) > 1 else others
        raise DesignError(
            f"{what} columns are perfectly collinear: "
            f"{_describe_combination(labels[k], named, intercept)}; the data cannot tell their "
            f"effects apart. Remove {labels[k]!r} (or {others}) from the formula."
        )


def _first_dependent(matrix: np.ndarray, centered: bool) -> tuple[int, dict[int, float]] | None:
    """The first column that is a linear combination of earlier ones, with the combination.

    Greedy Cholesky on the Gram matrix of standardized columns: O(n p^2 + p^3), so 500
    columns take a fraction of a second.
    """
    x = matrix - matrix.mean(axis=0) if centered else matrix
    norms = np.sqrt((x * x).mean(axis=0))
    norms[norms == 0] = 1.0
    xs = x / norms
    gram = xs.T @ xs / x.shape[0]
    kept: list[int] = []
    chol = np.zeros((0, 0))
    for k in range(gram.shape[0]):
        g = gram[kept, k]
        if kept:
            proj = scipy.linalg.solve_triangular(chol, g, lower=True)
        else:
            proj = np.zeros(0)
        resid = gram[k, k] - proj @ proj
        if resid <= _COLLINEAR_TOL * gram[k, k]:
            coef = scipy.linalg.solve_triangular(chol.T, proj, lower=False) if kept else proj
            # back to the unstandardized columns: x_k = sum_j c_j x_j
            coefs = {j: float(c * norms[k] / norms[j]) for j, c in zip(kept, coef, strict=True)
                     if abs(c) > 1e-8}
            return k, coefs
        new = np.zeros((len(kept) + 1, len(kept) + 1))
        new[: len(kept), : len(kept)] = chol
        new[len(kept), : len(kept)] = proj
        new[len(kept), len(kept)] = np.sqrt(resid)
        chol = new
        kept.append(k)
    return None


def check_unique_names(names: Iterable[str], source: str) -> None:
    """Raise FormulaError when two columns or components of the design share a name.

    That happens when a column's own name looks like a label the formula makes, for example
    a column called ``gene[B]`` next to the dummy column of ``gene``.
    """
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise FormulaError(
                f"two columns of the design are both named {name!r} in the formula {source!r}; "
                "a data column's name looks like a label the formula makes. Rename that data "
                "column (for example with df.rename(columns=...))."
            )
        seen.add(name)


def check_factor_names(factors: Iterable[str], source: str) -> None:
    """Raise FormulaError when a grouping factor's name clashes with the model's dimensions.

    The model uses ``coef``, ``component`` and, per factor ``g``, the dimensions ``g``,
    ``g__term`` and ``g__term_bis`` (SPEC section 4); ArviZ reserves ``chain`` and ``draw``.
    """
    dims: dict[str, str] = {name: "the model" for name in RESERVED_DIMS}
    for factor in factors:
        for dim in (factor, f"{factor}__term", f"{factor}__term_bis"):
            if dim in dims:
                owner = dims[dim]
                raise FormulaError(
                    f"grouping factor {factor!r} gives the dimension name {dim!r}, which "
                    f"{owner if owner == 'the model' else f'factor {owner!r}'} already uses; "
                    f"rename the column (for example df.rename(columns={{{factor!r}: "
                    f"{factor + '_group'!r}}})) and the formula with it."
                )
            dims[dim] = factor
