"""Checks of the data against a formula, and the single door to formulae.

Every call into formulae goes through :func:`evaluate_terms`, which turns formulae's, pandas'
and NumPy's exceptions into :class:`~r2d2formula.errors.FormulaError` or
:class:`~r2d2formula.errors.DesignError` with a message that says what to fix.
"""

from __future__ import annotations

import builtins
import contextlib
import difflib
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import formulae
import numpy as np
import pandas as pd
from formulae import categorical as _fm_categorical
from formulae import transforms as _fm_transforms

from ..errors import DesignError, FormulaError, mark_span
from ..formula.parser import Name
from ..formula.resolver import NAMESPACE_ROOTS, FormulaSpec

__all__ = [
    "DEFAULT_NAMESPACE",
    "check_columns",
    "check_column_types",
    "check_finite_columns",
    "check_numeric_columns",
    "evaluate_terms",
    "evaluate_new",
    "missing_rows",
    "is_numeric",
]

#: Functions available in formulas besides formulae's own (``C``, ``I``, ``scale``, ...).
DEFAULT_NAMESPACE: dict[str, Any] = {
    "np": np,
    "numpy": np,
    "log": np.log,
    "log2": np.log2,
    "log10": np.log10,
    "log1p": np.log1p,
    "exp": np.exp,
    "expm1": np.expm1,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "square": np.square,
    "sin": np.sin,
    "cos": np.cos,
    "tanh": np.tanh,
}

_KNOWN = (
    set(_fm_transforms.TRANSFORMS)
    | {n for n in dir(_fm_categorical) if n[:1].isupper()}
    | set(dir(builtins))
    | {"Q"}
)


def is_numeric(series: pd.Series) -> bool:
    """Whether a column holds numbers or booleans (not text, not categorical)."""
    dtype = series.dtype
    return bool(
        (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))
        and not isinstance(dtype, pd.CategoricalDtype)
    )


def _known(name: str, namespace: Mapping[str, Any]) -> bool:
    root = name.split(".")[0]
    return name in namespace or name in _KNOWN or root in NAMESPACE_ROOTS or root in namespace


def check_columns(
    spec: FormulaSpec,
    columns: pd.Index,
    namespace: Mapping[str, Any],
    *,
    skip: Iterable[str] = (),
    error: type[Exception] = FormulaError,
) -> list[str]:
    """Check that every name the formula uses is a column (or a known function).

    Returns the used column names, in order of first use. Raises ``error`` naming the first
    unknown column, with close matches from ``columns``.
    """
    skip = set(skip)
    present = {c for c in columns if isinstance(c, str)}
    used: dict[str, None] = {}
    for name in spec.variables:
        if name.name in present:
            used.setdefault(name.name, None)
        elif name.name in skip:
            continue
        elif not (not name.quoted and _known(name.name, namespace)):
            raise _unknown_column(spec.source, name, present, error)
    for func in spec.functions:
        if not _known(func.name, namespace):
            raise FormulaError(
                f"unknown function {func.name!r}\n{mark_span(spec.source, func.start, func.end)}\n"
                "Use a NumPy function (np.log, log, exp, sqrt), a formulae transform (C, I, "
                "scale, center) or pass your own with namespace={'name': function}."
            )
    return list(used)


def _unknown_column(source: str, name: Name, present: set[str], error: type[Exception]) -> Exception:
    close = difflib.get_close_matches(name.name, sorted(present), n=3, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in present}
        close = [lowered[name.name.lower()]] if name.name.lower() in lowered else []
    # 'a' of a column named 'a:b' or 'body mass': the name needs quoting
    quoted = [c for c in sorted(present) if name.name in c and not c.isidentifier()][:3]
    if quoted and not name.quoted:
        hint = ("Did you mean " + " or ".join(f"`{c}`" for c in quoted) + "? Quote column "
                "names with spaces or symbols in backticks, or write Q(\"name\").")
    elif close:
        hint = "Did you mean " + " or ".join(repr(c) for c in close) + "?"
    else:
        shown = ", ".join(repr(c) for c in sorted(present)[:12])
        hint = f"The data has columns {shown}{', ...' if len(present) > 12 else ''}."
    return error(
        f"column {name.name!r} is not in the data\n{mark_span(source, name.start, name.end)}\n"
        f"{hint}"
    )


def _object_kinds(series: pd.Series) -> set[str]:
    kinds = set()
    values = series.dropna().to_numpy(dtype=object)
    try:
        values = pd.unique(values)
    except TypeError:  # unhashable values (lists, dicts): look at every one
        pass
    for value in values:
        if isinstance(value, str):
            kinds.add("text")
        elif isinstance(value, bool | np.bool_):
            kinds.add("bool")
        elif isinstance(value, int | float | np.integer | np.floating):
            kinds.add("number")
        else:
            kinds.add(type(value).__name__)
    return kinds


def check_column_types(data: pd.DataFrame, columns: list[str]) -> None:
    """Raise DesignError for a used column that is duplicated or of a type formulas cannot use.

    Usable: numbers, booleans, text (``str`` or ``object`` holding only strings) and pandas
    categoricals. Not usable: dates and durations, complex numbers, numbers or mixed values
    stored with dtype ``object``, other Python objects.
    """
    counts = pd.Index(data.columns).value_counts()
    for col in columns:
        if counts.get(col, 0) > 1:
            raise DesignError(
                f"the data has {counts[col]} columns named {col!r}; give them distinct names "
                "(for example with df.columns = [...]) so the formula can tell them apart"
            )
    for col in columns:
        series = data[col]
        dtype = series.dtype
        if isinstance(dtype, pd.CategoricalDtype) or is_numeric(series):
            if pd.api.types.is_complex_dtype(dtype):
                raise DesignError(
                    f"column {col!r} holds complex numbers (dtype {dtype}); use its real part "
                    "or its modulus (np.real, np.abs) as a column of real numbers"
                )
            continue
        if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
            continue
        if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(
                dtype) or isinstance(dtype, pd.PeriodDtype):
            raise DesignError(
                f"column {col!r} holds dates or durations (dtype {dtype}); convert it to numbers "
                "(for example days since the start: (d - d.min()).dt.days) or to text for a "
                "categorical predictor (d.astype(str))"
            )
        if pd.api.types.is_object_dtype(dtype):
            kinds = _object_kinds(series)
            if kinds <= {"text"}:
                continue
            if kinds <= {"number", "bool"}:
                raise DesignError(
                    f"column {col!r} holds numbers stored with dtype object; convert it with "
                    f"df[{col!r}] = pd.to_numeric(df[{col!r}])"
                )
            raise DesignError(
                f"column {col!r} (dtype object) mixes values of types {', '.join(sorted(kinds))}; "
                f"make it one type: df[{col!r}].astype(str) for a categorical column, or "
                f"pd.to_numeric(df[{col!r}]) for numbers"
            )
        raise DesignError(
            f"column {col!r} has dtype {dtype}, which a formula cannot use; convert it to "
            "numbers, text or a pandas Categorical"
        )


def missing_rows(data: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, dict[str, int]]:
    """Rows with a missing value in ``columns`` and the count per column that has any."""
    if not columns:
        return np.zeros(len(data), dtype=bool), {}
    na = data[columns].isna()
    counts = {c: int(v) for c, v in na.sum().items() if v}
    return na.to_numpy().any(axis=1), counts


def check_finite_columns(data: pd.DataFrame, columns: list[str]) -> None:
    """Raise DesignError on infinite values in numeric ``columns``."""
    for col in columns:
        series = data[col]
        if pd.api.types.is_float_dtype(series.dtype):
            values = series.to_numpy(dtype=float, na_value=np.nan)
            bad = np.isinf(values)
            if bad.any():
                first = data.index[int(np.argmax(bad))]
                raise DesignError(
                    f"column {col!r} has {int(bad.sum())} infinite values (first at row "
                    f"{first!r}); replace them with finite numbers or remove those rows"
                )


def check_numeric_columns(spec: FormulaSpec, data: pd.DataFrame, names: Iterable[Name]) -> None:
    """Raise DesignError when a column used in arithmetic (``log(x)``, ``I(x**2)``) is text."""
    for name in names:
        if name.name in data.columns and not is_numeric(data[name.name]):
            raise DesignError(
                f"column {name.name!r} is not numeric (dtype {data[name.name].dtype}) but is "
                f"used in arithmetic\n{mark_span(spec.source, name.start, name.end)}\n"
                f"Convert it with pd.to_numeric, or write C({name.name}) for a categorical "
                "predictor."
            )


@contextlib.contextmanager
def _recursion_room(text: str) -> Iterator[None]:
    """Let formulae recurse once per term: its resolver visits ``a + b + ...`` recursively
    (about two frames per term), so 500 terms overflow Python's default limit of 1000.

    The limit is raised only while formulae runs and restored afterwards. Python 3.11+ keeps
    Python-to-Python calls off the C stack, so the higher limit is safe.
    """
    old = sys.getrecursionlimit()
    needed = 1000 + 8 * len(text)
    if needed > old:
        sys.setrecursionlimit(needed)
    try:
        yield
    finally:
        if needed > old:
            sys.setrecursionlimit(old)


def evaluate_terms(text: str, data: pd.DataFrame, namespace: Mapping[str, Any], what: str) -> Any:
    """Evaluate a formulae right-hand side; return its common-effects matrix (or None).

    ``what`` names the part of the formula for error messages.
    """
    try:
        with np.errstate(divide="ignore", invalid="ignore"), _recursion_room(text):
            design = formulae.design_matrices(
                text, data, na_action="pass", extra_namespace=dict(namespace)
            )
    except (FormulaError, DesignError):
        raise
    except Exception as exc:  # noqa: BLE001 - every formulae failure becomes one of ours
        raise translate_error(exc, text, what) from exc
    return design.common


def evaluate_new(matrix: Any, data: pd.DataFrame, text: str, what: str) -> Any:
    """``matrix.evaluate_new_data(data)`` for a matrix from :func:`evaluate_terms`, with
    formulae's errors translated as there."""
    try:
        with np.errstate(divide="ignore", invalid="ignore"), _recursion_room(text):
            return matrix.evaluate_new_data(data)
    except (FormulaError, DesignError):
        raise
    except Exception as exc:  # noqa: BLE001 - every formulae failure becomes one of ours
        raise translate_error(exc, text, what) from exc


def translate_error(exc: Exception, text: str, what: str) -> Exception:
    """Turn an exception from formulae/pandas/NumPy into a FormulaError or DesignError."""
    kind = type(exc).__name__
    message = str(exc).strip("'\"")
    if kind in ("ParseError", "ScanError", "ResolverError"):
        return FormulaError(
            f"formulae cannot read {what} {text!r}: {message}. List arguments such as "
            "levels=[...] are not supported; use C(x, Treatment('b')) to set a reference level."
        )
    if isinstance(exc, KeyError):
        return FormulaError(
            f"unknown name {message!r} in {what} {text!r}; check the spelling, or pass the "
            "function with namespace={...}"
        )
    if message == "reference not in levels":
        return DesignError(
            f"a reference level given in {what} {text!r} is not a level of its column; use "
            "one of the values the column holds, for example C(g, Treatment('a'))"
        )
    if "not present in the original data" in message:
        return DesignError(f"{message} ({what} {text!r}); new data may only hold levels seen "
                           "in training")
    return DesignError(
        f"could not evaluate {what} {text!r} ({kind}: {message}); check that the columns it "
        "uses have the right type (numbers for arithmetic and functions such as log). If they "
        "do, formulae, which codes the terms, cannot handle this form: write the terms "
        "differently (for example keep the intercept, or spell interactions out with ':')"
    )
