"""Grouping factors as integer codes (never one-hot), with lme4's level order.

Levels are the sorted unique values (numbers numerically, text lexicographically, a pandas
categorical in its category order), named by ``str()`` (integral floats without ``.0``). For
``g:h`` only the combinations that occur are levels, ordered by ``g`` then ``h`` and named
``"a:x"``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DesignError
from .types import GroupFactor

__all__ = ["level_name", "encode_factor", "encode_new_factor"]


def level_name(value: object) -> str:
    """Name of a level: ``str(value)``, with integral floats written as integers.

    Examples
    --------
    >>> level_name(3.0), level_name(2.5), level_name("a")
    ('3', '2.5', 'a')
    """
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _factorize(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    if isinstance(series.dtype, pd.CategoricalDtype):
        cat = series.cat.remove_unused_categories()
        return cat.cat.codes.to_numpy().astype(np.int64), [level_name(v) for v in cat.cat.categories]
    codes, uniques = pd.factorize(series, sort=True)
    return codes.astype(np.int64, copy=False), [level_name(v) for v in uniques]


def _combine(data: pd.DataFrame, columns: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
    """Codes and names of the observed combinations of ``columns``, in lexicographic order."""
    codes, names = _factorize(data[columns[0]])
    for col in columns[1:]:
        codes2, names2 = _factorize(data[col])
        key = codes * len(names2) + codes2
        uniq, inverse = np.unique(key, return_inverse=True)
        names = [f"{names[k // len(names2)]}:{names2[k % len(names2)]}" for k in uniq.tolist()]
        codes = inverse.astype(np.int64).reshape(-1)
    return codes, names


def encode_factor(data: pd.DataFrame, columns: tuple[str, ...]) -> GroupFactor:
    """Integer codes and level names of the grouping factor ``g`` or ``g:h:...``.

    Parameters
    ----------
    data : DataFrame
        Data without missing values in ``columns``.
    columns : tuple of str
        The columns whose interaction is the factor.

    Returns
    -------
    GroupFactor

    Raises
    ------
    DesignError
        When the factor has only one level.

    Examples
    --------
    >>> df = pd.DataFrame({"g": ["b", "a", "b", "a"], "h": [2, 1, 1, 1]})
    >>> f = encode_factor(df, ("g", "h"))
    >>> f.name, f.levels, f.codes.tolist()
    ('g:h', ('a:1', 'b:1', 'b:2'), [2, 0, 1, 0])
    """
    codes, names = _combine(data, columns)
    name = ":".join(columns)
    if len(names) < 2:
        raise DesignError(
            f"grouping factor {name!r} has only one level ({names[0]!r}); group-level effects "
            "need at least two groups. Remove the group term or check the column."
        )
    return GroupFactor(name=name, codes=codes, levels=tuple(names))


def encode_new_factor(
    data: pd.DataFrame, columns: tuple[str, ...], train: GroupFactor
) -> GroupFactor:
    """Codes of a training factor on new data.

    Levels seen in training keep their training codes; each new level gets the next code
    (``len(train.levels)``, ``+1``, ... in sorted order) and is appended to ``levels``.
    ``n_train_levels`` of the result is the number of training levels.

    Examples
    --------
    >>> train = encode_factor(pd.DataFrame({"g": ["a", "b"]}), ("g",))
    >>> f = encode_new_factor(pd.DataFrame({"g": ["c", "b", "z", "c"]}), ("g",), train)
    >>> f.codes.tolist(), f.levels, f.n_train_levels
    ([2, 1, 3, 2], ('a', 'b', 'c', 'z'), 2)
    """
    codes, names = _combine(data, columns)
    n_train = train.n_train_levels
    train_levels = train.levels[:n_train]
    lookup = pd.Index(train_levels).get_indexer(pd.Index(names, dtype=object))
    new = sorted({n for n, k in zip(names, lookup, strict=True) if k < 0})
    new_code = {n: n_train + i for i, n in enumerate(new)}
    mapping = np.array(
        [k if k >= 0 else new_code[n] for n, k in zip(names, lookup, strict=True)], dtype=np.int64
    )
    return GroupFactor(
        name=train.name,
        codes=mapping[codes] if len(mapping) else codes,
        levels=tuple(train_levels) + tuple(new),
        n_train_levels=n_train,
    )
