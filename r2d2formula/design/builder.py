"""Build a :class:`~r2d2formula.design.types.Design` from a formula and a data frame, and
rebuild it on new data with the training state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import (
    DesignError,
    FormulaError,
    R2D2FormulaWarning,
    mark_span,
    warn_user,
)
from ..formula.resolver import FormulaSpec, GroupSpec, parse_formula
from .checks import check_columns_identified, check_factor_names, check_unique_names
from .evaluate import (
    DEFAULT_NAMESPACE,
    check_column_types,
    check_columns,
    check_finite_columns,
    check_numeric_columns,
    evaluate_new,
    evaluate_terms,
    is_numeric,
    missing_rows,
)
from .factors import encode_factor, encode_new_factor
from .response import NumericExpr, ResponseEvaluator
from .types import CommonDesign, Design, GroupFactor, GroupTerm

__all__ = ["build_design", "new_data_design", "training_data"]


@dataclass
class _State:
    """Training state kept in ``Design.builder``."""

    spec: FormulaSpec
    namespace: dict[str, Any]
    response: ResponseEvaluator
    common: Any = None
    z_matrices: dict[int, Any] = field(default_factory=dict)
    offsets: list[NumericExpr] = field(default_factory=list)
    factor_columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    train_levels: dict[str, set[str]] = field(default_factory=dict)
    term_dtypes: dict[str, Any] = field(default_factory=dict)
    #: the columns the formula uses, every row as given (before dropna): what a saved fit
    #: needs to rebuild this design exactly (r2d2formula.persistence)
    data: pd.DataFrame | None = None


def _check_frame(data: Any) -> None:
    if not isinstance(data, pd.DataFrame):
        raise DesignError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if len(data) == 0:
        raise DesignError("data has no rows; pass a DataFrame with at least one observation")


def _missing_message(n_rows: int, counts: dict[str, int], fix: str) -> str:
    per_col = ", ".join(f"{c!r} ({k})" for c, k in counts.items())
    rows = "1 row has" if n_rows == 1 else f"{n_rows} rows have"
    return f"{rows} missing values in the columns the formula uses: {per_col}; {fix}"


def _finite_matrix(matrix: np.ndarray, labels: tuple[str, ...], what: str) -> None:
    if matrix.size and not np.isfinite(matrix).all():
        bad = ~np.isfinite(matrix).all(axis=0)
        names = ", ".join(repr(lbl) for lbl, b in zip(labels, bad, strict=True) if b)
        raise DesignError(
            f"{what} column(s) {names} have non-finite values (for example log of 0 or of a "
            "negative number); transform the data or remove those rows"
        )


def _check_term_widths(cm: Any, text: str, what: str) -> None:
    """formulae mis-labels some categorical terms without an intercept (``0 + x*z*h``: ``h``
    gets full coding but reduced labels, and new data then get fewer columns). Catch it here
    rather than hand on a design whose labels do not match its columns."""
    for name, term in cm.terms.items():
        sl = cm.slices[name]
        if len(term.labels) != sl.stop - sl.start:
            raise DesignError(
                f"formulae, which codes the terms, gives term {name!r} of {what} {text!r} "
                f"{sl.stop - sl.start} columns but {len(term.labels)} labels (a formulae "
                "limitation with '0 +' or '- 1' and interactions of categorical columns); keep "
                "the intercept, or write the interactions out with ':'"
            )


def _common_labels(cm: Any) -> tuple[list[int], list[str], list[str]]:
    """Column indices (intercept dropped), labels and terms of a formulae common matrix."""
    idx: list[int] = []
    labels: list[str] = []
    terms: list[str] = []
    for name, term in cm.terms.items():
        if name == "Intercept":
            continue
        sl = cm.slices[name]
        idx.extend(range(sl.start, sl.stop))
        labels.extend(term.labels)
        terms.extend([name] * (sl.stop - sl.start))
    return idx, labels, terms


def _build_common(spec: FormulaSpec, data: pd.DataFrame, state: _State) -> CommonDesign:
    n = len(data)
    matrix = np.empty((n, 0))
    labels: list[str] = []
    terms: list[str] = []
    if spec.common:
        text = f"{'1' if spec.intercept else '0'} + {spec.common}"
        cm = evaluate_terms(text, data, state.namespace, "population terms")
        if cm is not None:
            _check_term_widths(cm, spec.common, "the population terms")
            state.common = cm
            idx, labels, terms = _common_labels(cm)
            matrix = np.asarray(cm.design_matrix, dtype=float)[:, idx]
    _finite_matrix(matrix, tuple(labels), "population-level")
    means = matrix.mean(axis=0)
    scales = matrix.std(axis=0)
    for label, scale, col in zip(labels, scales, matrix.T, strict=True):
        if scale == 0:
            raise DesignError(
                f"constant predictor column {label!r} (every row is {col[0] + 0.0:g}); its effect "
                "cannot be told apart from the intercept. Remove it from the formula."
            )
    # p > n only warns: R2D2 is a shrinkage prior, made for such regressions
    check_columns_identified(matrix, tuple(labels), intercept=spec.intercept)
    return CommonDesign(matrix=matrix, labels=tuple(labels), terms=tuple(terms),
                        intercept=spec.intercept, means=means, scales=scales)


def _z_block(gspec: GroupSpec, index: int, data: pd.DataFrame, state: _State
             ) -> tuple[np.ndarray, list[str]]:
    n = len(data)
    if gspec.intercept_only:
        return np.ones((n, 1)), ["1"]
    cm = evaluate_terms(gspec.z_formulae, data, state.namespace,
                        f"group term ({gspec.expr} | {gspec.factor_name})")
    if cm is None or not cm.terms:
        raise FormulaError(
            f"group term has no columns\n{mark_span(state.spec.source, gspec.start, gspec.end)}\n"
            "Write (1 | g) for group intercepts or (0 + x | g) for slopes."
        )
    _check_term_widths(cm, gspec.expr, f"group term ({gspec.expr} | {gspec.factor_name})")
    state.z_matrices[index] = cm
    labels = [lbl for t in cm.terms.values() for lbl in t.labels]
    labels = ["1" if lbl == "Intercept" else lbl for lbl in labels]
    return np.asarray(cm.design_matrix, dtype=float), labels


def _group_terms(spec: FormulaSpec, data: pd.DataFrame, state: _State
                 ) -> tuple[dict[str, GroupFactor], tuple[GroupTerm, ...]]:
    factors: dict[str, GroupFactor] = {}
    terms: list[GroupTerm] = []
    seen: dict[tuple[str, str], GroupSpec] = {}
    for k, gspec in enumerate(spec.groups):
        fname = gspec.factor_name
        if fname not in factors:
            factors[fname] = encode_factor(data, gspec.factor)
            state.factor_columns[fname] = gspec.factor
        z, labels = _z_block(gspec, k, data, state)
        _finite_matrix(z, tuple(labels), f"group term ({gspec.expr} | {fname})")
        scales = np.array([1.0 if lbl == "1" else float(z[:, j].std())
                           for j, lbl in enumerate(labels)])
        for label, scale in zip(labels, scales, strict=True):
            if scale == 0:
                raise DesignError(
                    f"constant column {label!r} in group term ({gspec.expr} | {fname}); remove "
                    "it from the group term"
                )
            if (fname, label) in seen:
                raise FormulaError(
                    f"the group-level column '{label}|{fname}' appears twice\n"
                    f"{mark_span(spec.source, gspec.start, gspec.end)}\n"
                    f"Another term already has {label!r} for {fname!r}; drop one, or write "
                    f"(0 + x | {fname}) for a slope without a second intercept."
                )
            seen[(fname, label)] = gspec
        if len(labels) > 1:
            check_columns_identified(
                z, tuple(labels), intercept=False, what=f"group term ({gspec.expr} | {fname})",
                warn_many=False)
        if gspec.correlated:
            terms.append(GroupTerm(factor=fname, labels=tuple(labels), matrix=z,
                                   correlated=len(labels) > 1, scales=scales, expr=gspec.expr))
        else:
            for j, label in enumerate(labels):
                terms.append(GroupTerm(factor=fname, labels=(label,), matrix=z[:, j : j + 1],
                                       correlated=False, scales=scales[j : j + 1], expr=label))
    return factors, tuple(terms)


def _term_variable_names(spec: FormulaSpec) -> set[str]:
    """Columns used by population terms and group-term expressions (not as factors)."""
    names = {v.name for v in spec.common_variables}
    for g in spec.groups:
        names.update(v.name for v in g.variables if v.name not in g.factor)
    return names


def _categorical_levels(spec: FormulaSpec, data: pd.DataFrame) -> dict[str, set[str]]:
    return {c: set(data[c].astype(str).unique()) for c in _term_variable_names(spec)
            if c in data.columns and not is_numeric(data[c])}


def _drop_unused_categories(frame: pd.DataFrame) -> pd.DataFrame:
    """A pandas Categorical keeps categories that no row has (after subsetting, say); formulae
    would code them as all-zero columns, or make an absent level the reference."""
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.CategoricalDtype):
            frame[col] = frame[col].cat.remove_unused_categories()
    return frame


def _check_categorical_levels(spec: FormulaSpec, frame: pd.DataFrame) -> None:
    for col in sorted(_term_variable_names(spec)):
        if col in frame.columns and not is_numeric(frame[col]):
            levels = frame[col].unique()
            if len(levels) < 2:
                raise DesignError(
                    f"categorical column {col!r} has only one level ({str(levels[0])!r}) in the "
                    "rows used, so its effect cannot be told apart from the intercept; remove "
                    "it from the formula or check the data"
                )


def _check_column_names(spec: FormulaSpec) -> None:
    """Column names formulae would misread, silently or with an obscure error.

    A column named ``Intercept`` merges with the intercept (and vanishes); a name with a
    backtick cannot be quoted; a quoted ``a:b`` next to columns ``a`` and ``b`` reads the same
    as their interaction, and formulae would keep only one of the two.
    """
    term_names = [*spec.common_variables,
                  *(v for g in spec.groups for v in g.variables if v.name not in g.factor)]
    for var in spec.variables:
        if "`" in var.name:
            raise FormulaError(
                f"the column name {var.name!r} contains a backtick, which cannot be quoted in "
                f"a formula\n{mark_span(spec.source, var.start, var.end)}\n"
                "Rename the column (for example df.rename(columns={"
                f"{var.name!r}: {var.name.replace('`', '_')!r}}}))."
            )
    for var in term_names:
        if var.name == "Intercept":
            raise FormulaError(
                "a column named 'Intercept' would merge with the model's intercept\n"
                f"{mark_span(spec.source, var.start, var.end)}\n"
                "Rename the column (for example df.rename(columns={'Intercept': "
                "'intercept_value'}))."
            )
    names = {v.name for v in spec.variables}
    for var in spec.variables:
        parts = var.name.split(":")
        if var.quoted and len(parts) > 1 and all(part in names for part in parts):
            raise FormulaError(
                f"the column name {var.name!r} reads the same as the interaction "
                f"{var.name} of columns the formula also uses\n"
                f"{mark_span(spec.source, var.start, var.end)}\n"
                "Rename the column (for example df.rename(columns={"
                f"{var.name!r}: {var.name.replace(':', '_')!r}}}))."
            )


def build_design(
    formula: str,
    data: pd.DataFrame,
    *,
    dropna: bool = False,
    namespace: Mapping[str, Any] | None = None,
) -> Design:
    """Evaluate an lme4-style formula on a data frame.

    Parameters
    ----------
    formula : str
        ``response ~ population terms + (expr | factor) + ...``.
    data : pandas.DataFrame
        One row per observation.
    dropna : bool, default False
        Drop rows with missing values in the columns the formula uses (with a warning) instead
        of raising.
    namespace : mapping, optional
        Extra functions usable in the formula, on top of NumPy's ``log``, ``exp``, ``sqrt``,
        ... and formulae's ``C``, ``I``, ``scale``, ``center``.

    Returns
    -------
    Design

    Raises
    ------
    FormulaSyntaxError
        The formula does not parse (the message marks the span).
    FormulaError
        Unknown column or function, misplaced group term, duplicated group-level column, a
        column name formulae would misread (``Intercept``, a backtick, ``a:b`` next to ``a``
        and ``b``, a grouping factor named like a model dimension).
    DesignError
        Empty data, duplicated column names, missing or infinite values, text, dates or
        objects where numbers are needed, a constant, duplicated or perfectly collinear
        column, a one-level grouping factor or categorical predictor.

    Warns
    -----
    R2D2FormulaWarning
        With ``dropna=True``, how many rows were dropped; and when the population-level
        columns (with the intercept) outnumber the rows, which the R2D2 prior allows.

    Examples
    --------
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 4.0, 3.0], "x": [0.0, 1.0, 2.0, 4.0],
    ...                    "g": ["a", "a", "b", "b"]})
    >>> d = build_design("y ~ x + (1 + x | g)", df)
    >>> d.component_names
    ('x', '1|g', 'x|g')
    >>> d.factors["g"].codes.tolist(), d.factors["g"].levels
    ([0, 0, 1, 1], ('a', 'b'))
    """
    _check_frame(data)
    if not isinstance(dropna, bool | np.bool_):
        raise DesignError(f"dropna must be True or False, got {dropna!r}")
    spec = parse_formula(formula)
    check_factor_names(dict.fromkeys(g.factor_name for g in spec.groups), spec.source)
    _check_column_names(spec)
    ns = {**DEFAULT_NAMESPACE, **(namespace or {})}
    used = check_columns(spec, data.columns, ns)
    check_column_types(data, used)
    given = data[used]
    mask, counts = missing_rows(data, used)
    n_dropped = int(mask.sum())
    if n_dropped:
        if not dropna:
            raise DesignError(_missing_message(
                n_dropped, counts, "remove or impute them, or pass dropna=True to drop them"))
        data = data.loc[~mask]
        if len(data) == 0:
            raise DesignError(_missing_message(n_dropped, counts, "no rows are left"))
        warn_user(
            f"dropped {n_dropped} of {n_dropped + len(data)} rows with missing values in "
            f"{', '.join(repr(c) for c in counts)} (dropna=True); model.design.n_dropped "
            "records the count",
            R2D2FormulaWarning,
        )
    check_finite_columns(data, used)
    check_numeric_columns(spec, data, spec.numeric)
    row_index = data.index
    frame = _drop_unused_categories(data[used].reset_index(drop=True))
    _check_categorical_levels(spec, frame)

    state = _State(spec=spec, namespace=ns, response=ResponseEvaluator(spec.response),
                   data=given)
    response = state.response.fit(frame, ns)
    _finite_matrix(response.values[:, None], (spec.response.label,), "response")
    common = _build_common(spec, frame, state)
    offset = None
    for expr in spec.offsets:
        evaluator = NumericExpr(expr, "offset")
        values = evaluator.fit(frame, ns)
        _finite_matrix(values[:, None], (expr.source,), "offset")
        state.offsets.append(evaluator)
        offset = values if offset is None else offset + values
    factors, group_terms = _group_terms(spec, frame, state)
    check_unique_names(common.labels + tuple(
        name for term in group_terms for name in term.component_names), spec.source)
    state.train_levels = _categorical_levels(spec, frame)
    state.term_dtypes = {c: frame[c].dtype for c in state.train_levels}
    return Design(formula=formula, response=response, common=common, factors=factors,
                  group_terms=group_terms, offset=offset, row_index=row_index,
                  n_dropped=n_dropped if dropna else 0, builder=state)


def new_data_design(design: Design, data: pd.DataFrame, *, require_response: bool = False
                    ) -> Design:
    """Evaluate the formula of a training design on new data.

    Stateful transforms (``scale``, ``center``) use the training mean and sd, categorical
    predictors use the training levels and coding, and ``common.means``/``common.scales`` and
    the group-term ``scales`` are the training ones.

    Parameters
    ----------
    design : Design
        A design returned by :func:`build_design`.
    data : pandas.DataFrame
        New rows. Response columns may be absent.
    require_response : bool, default False
        Raise if the response columns are absent.

    Returns
    -------
    Design
        Grouping factors keep the training codes; levels not seen in training get codes
        ``n_train_levels, n_train_levels + 1, ...`` (sorted) and are appended to ``levels``.
        Without the response columns ``response.values`` is all NaN, and ``response.trials``
        is taken from the data when its column is present (else None).

    Raises
    ------
    DesignError
        Missing columns or values, or a population-level categorical with a level not seen in
        training (named in the message).

    Examples
    --------
    >>> train = pd.DataFrame({"y": [1.0, 2.0, 4.0, 3.0], "x": [0.0, 1.0, 2.0, 5.0],
    ...                       "g": ["a", "a", "b", "b"]})
    >>> d = build_design("y ~ scale(x) + (1 | g)", train)
    >>> new = new_data_design(d, pd.DataFrame({"x": [2.0], "g": ["c"]}))
    >>> new.common.matrix.round(3).tolist(), new.factors["g"].codes.tolist()
    ([[0.0]], [2])
    >>> bool(np.isnan(new.response.values[0]))
    True
    """
    _check_frame(data)
    state = design.builder
    if not isinstance(state, _State):
        raise DesignError("this design has no training state; build it with build_design")
    spec = state.spec
    value_names = {v.name for v in spec.response.value.variables}
    second = spec.response.second
    second_names = {v.name for v in second.variables} if second is not None else set()
    value_present = value_names <= set(data.columns)
    second_present = second_names <= set(data.columns)
    if require_response and not (value_present and second_present):
        absent = sorted((value_names | second_names) - set(data.columns))
        raise DesignError(f"new data lacks the response column(s) {absent}; add them or pass "
                          "require_response=False")
    skip = set()
    if not value_present:
        skip |= value_names
    if not second_present:
        skip |= second_names
    used = check_columns(spec, data.columns, state.namespace, skip=skip, error=DesignError)
    check_column_types(data, used)
    mask, counts = missing_rows(data, used)
    if mask.any():
        raise DesignError(_missing_message(int(mask.sum()), counts,
                                           "remove or impute them before predicting"))
    check_finite_columns(data, used)
    check_numeric_columns(spec, data, [v for v in spec.numeric if v.name in used])
    for col, levels in state.train_levels.items():
        unseen = sorted(set(data[col].astype(str).unique()) - levels)
        if unseen:
            raise DesignError(
                f"column {col!r} has levels not seen in training: {', '.join(unseen)}; "
                "population-level effects exist only for the training levels "
                f"({', '.join(sorted(levels))}). Remove or recode those rows."
            )
    frame = data[used].reset_index(drop=True)
    for col, dtype in state.term_dtypes.items():
        # the training coding, whatever categories or text type the new column has
        frame[col] = frame[col].astype(dtype)
    response = state.response.apply(frame, value_present, second_present)
    train = design.common
    matrix = np.empty((len(frame), 0))
    if state.common is not None:
        new_cm = evaluate_new(state.common, frame, spec.common, "population terms")
        idx, _, _ = _common_labels(state.common)
        matrix = np.asarray(new_cm.design_matrix, dtype=float)
        if matrix.shape[1] != np.asarray(state.common.design_matrix).shape[1]:
            raise DesignError(
                f"the population terms {spec.common!r} give {matrix.shape[1]} columns on the "
                f"new data but {len(train.labels)} in training; keep the intercept, or write "
                "interactions of categorical columns out with ':'"
            )
        matrix = matrix[:, idx]
    _finite_matrix(matrix, train.labels, "new data: population-level")
    common = CommonDesign(matrix=matrix, labels=train.labels, terms=train.terms,
                          intercept=train.intercept, means=train.means, scales=train.scales)
    offset = None
    for evaluator in state.offsets:
        values = evaluator.apply(frame)
        offset = values if offset is None else offset + values
    factors = {name: encode_new_factor(frame, state.factor_columns[name], f)
               for name, f in design.factors.items()}
    z_new: dict[int, np.ndarray] = {}
    for k, gspec in enumerate(spec.groups):
        if gspec.intercept_only:
            z_new[k] = np.ones((len(frame), 1))
        else:
            z_new[k] = np.asarray(
                evaluate_new(state.z_matrices[k], frame, gspec.expr, "group term").design_matrix,
                dtype=float)
            width = np.asarray(state.z_matrices[k].design_matrix).shape[1]
            if z_new[k].shape[1] != width:
                raise DesignError(
                    f"group term ({gspec.expr} | {gspec.factor_name}) gives "
                    f"{z_new[k].shape[1]} columns on the new data but {width} in training; "
                    "write the term with an intercept, or its interactions out with ':'"
                )
    group_terms = _rebuild_group_terms(spec, design.group_terms, z_new)
    for term in group_terms:
        _finite_matrix(term.matrix, term.labels, f"new data: group term ({term.expr} | "
                       f"{term.factor})")
    if offset is not None:
        _finite_matrix(offset[:, None], ("offset",), "new data:")
    return Design(formula=design.formula, response=response, common=common, factors=factors,
                  group_terms=group_terms, offset=offset, row_index=data.index, n_dropped=0,
                  builder=state)


def _rebuild_group_terms(spec: FormulaSpec, train_terms: tuple[GroupTerm, ...],
                         z_new: dict[int, np.ndarray]) -> tuple[GroupTerm, ...]:
    """Training group terms with their matrices swapped for the new-data ones."""
    out: list[GroupTerm] = []
    pos = 0
    for k, gspec in enumerate(spec.groups):
        z = z_new[k]
        if gspec.correlated:
            t = train_terms[pos]
            out.append(GroupTerm(factor=t.factor, labels=t.labels, matrix=z,
                                 correlated=t.correlated, scales=t.scales, expr=t.expr))
            pos += 1
        else:
            for j in range(z.shape[1]):
                t = train_terms[pos]
                out.append(GroupTerm(factor=t.factor, labels=t.labels, matrix=z[:, j : j + 1],
                                     correlated=False, scales=t.scales, expr=t.expr))
                pos += 1
    return tuple(out)


def training_data(design: Design) -> pd.DataFrame:
    """The columns of the training data that the formula uses, every row as given (before
    ``dropna``), with the original index; what rebuilds ``design`` with :func:`build_design`.

    Examples
    --------
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 4.0], "x": [0.0, 1.0, 3.0], "unused": [1, 2, 3]})
    >>> list(training_data(build_design("y ~ x", df)).columns)
    ['y', 'x']
    """
    state = design.builder
    if not isinstance(state, _State) or state.data is None:
        raise DesignError("this design has no training state; build it with build_design")
    return state.data
