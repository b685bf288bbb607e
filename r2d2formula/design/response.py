"""The response side: ``y``, ``log(y)``, a two-level column, ``p(s, n)``, ``s | trials(n)``,
``cbind(s, f)``. Family-specific checks (counts, 0/1, successes <= trials) live in
:mod:`r2d2formula.families`, not here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DesignError
from ..formula.resolver import Expr, ResponseSpec
from .evaluate import evaluate_new, evaluate_terms, is_numeric
from .types import ResponseData

__all__ = ["NumericExpr", "ResponseEvaluator"]


@dataclass
class NumericExpr:
    """One number per row from a column or a formulae expression; remembers its training
    state (stateful transforms) for new data."""

    expr: Expr
    what: str
    matrix: Any = None
    levels: tuple[str, str] | None = None

    def fit(self, data: pd.DataFrame, namespace: Mapping[str, Any], *,
            allow_two_levels: bool = False) -> np.ndarray:
        if self.expr.column is not None:
            return self._column(data[self.expr.column], allow_two_levels, train=True)
        self.matrix = evaluate_terms(f"0 + {self.expr.formulae}", data, namespace, self.what)
        return self._one_column(np.asarray(self.matrix))

    def apply(self, data: pd.DataFrame) -> np.ndarray:
        if self.expr.column is not None:
            return self._column(data[self.expr.column], True, train=False)
        values = np.asarray(evaluate_new(self.matrix, data, self.expr.source, self.what))
        return self._one_column(values)

    def _one_column(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        if values.ndim == 2 and values.shape[1] != 1:
            raise DesignError(
                f"{self.what} {self.expr.source!r} gives {values.shape[1]} columns; it must "
                "give one number per row (wrap arithmetic in I(...))"
            )
        return values.reshape(-1)

    def _column(self, series: pd.Series, allow_two_levels: bool, train: bool) -> np.ndarray:
        name = self.expr.column
        if is_numeric(series):
            return series.to_numpy(dtype=float)
        if not allow_two_levels:
            raise DesignError(
                f"{self.what} column {name!r} must be numeric, got dtype {series.dtype}; "
                "convert it with pd.to_numeric"
            )
        if train:
            if isinstance(series.dtype, pd.CategoricalDtype):
                levels = [str(c) for c in series.cat.remove_unused_categories().cat.categories]
            else:
                levels = sorted({str(v) for v in series.unique()})
            if len(levels) != 2:
                raise DesignError(
                    f"response {name!r} is not numeric and has {len(levels)} levels "
                    f"({', '.join(levels[:5])}{', ...' if len(levels) > 5 else ''}); a text "
                    "response must have exactly two levels (for family='bernoulli'). Use a "
                    "numeric column, or I(y == 'level') for a 0/1 indicator."
                )
            self.levels = (levels[0], levels[1])
        assert self.levels is not None  # set on the training call
        as_text = series.astype(str)
        unknown = sorted(set(as_text.unique()) - set(self.levels))
        if unknown:
            raise DesignError(
                f"response {name!r} has levels not seen in training: {', '.join(unknown)}; "
                f"expected {self.levels[0]!r} or {self.levels[1]!r}"
            )
        return (as_text == self.levels[1]).to_numpy(dtype=float)


@dataclass
class ResponseEvaluator:
    """Evaluates a :class:`ResponseSpec` on training data and, later, on new data."""

    spec: ResponseSpec
    value: NumericExpr | None = None
    second: NumericExpr | None = None

    def fit(self, data: pd.DataFrame, namespace: Mapping[str, Any]) -> ResponseData:
        spec = self.spec
        what = "response" if spec.kind == "value" else "successes"
        self.value = NumericExpr(spec.value, what)
        values = self.value.fit(data, namespace, allow_two_levels=spec.kind == "value")
        trials = None
        if spec.second is not None:
            second_what = "failures" if spec.kind == "cbind" else "trials"
            self.second = NumericExpr(spec.second, second_what)
            trials = self._trials(values, self.second.fit(data, namespace))
        label = spec.label
        if self.value.levels is not None:
            label = f"{spec.name}[{self.value.levels[1]}]"
        return ResponseData(label=label, name=spec.name, values=values, trials=trials,
                            levels=self.value.levels)

    def _trials(self, values: np.ndarray | None, second: np.ndarray) -> np.ndarray | None:
        if self.spec.kind == "cbind":
            return None if values is None else values + second
        return second

    def apply(self, data: pd.DataFrame, present: bool, second_present: bool) -> ResponseData:
        """Evaluate on new data; without the response columns ``values`` is all NaN."""
        assert self.value is not None
        n = len(data)
        values = self.value.apply(data) if present else np.full(n, np.nan)
        trials = None
        if self.second is not None and second_present:
            trials = self._trials(values if present else None, self.second.apply(data))
        label = self.spec.label
        if self.value.levels is not None:
            label = f"{self.spec.name}[{self.value.levels[1]}]"
        return ResponseData(label=label, name=self.spec.name, values=values, trials=trials,
                            levels=self.value.levels)
