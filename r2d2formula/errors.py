"""Exceptions and warnings raised by r2d2formula.

Every exception derives from :class:`R2D2FormulaError` *and* the builtin that fits the
problem, so ``except ValueError`` in user code keeps working.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

__all__ = [
    "R2D2FormulaError",
    "ArgumentError",
    "FormulaError",
    "FormulaSyntaxError",
    "DesignError",
    "FamilyError",
    "PriorSpecError",
    "SamplerError",
    "NotFittedError",
    "LoadError",
    "R2D2FormulaWarning",
    "DiagnosticsWarning",
    "mark_span",
    "warn_user",
]

_PACKAGE_DIR = str(Path(__file__).resolve().parent) + os.sep


class R2D2FormulaError(Exception):
    """Base class of every error raised by r2d2formula."""


class FormulaError(R2D2FormulaError, ValueError):
    """The formula cannot be turned into a design (unknown column, bad term, ...)."""


class FormulaSyntaxError(FormulaError):
    """The formula text does not parse; the message marks the offending span."""


class DesignError(R2D2FormulaError, ValueError):
    """The data do not fit the formula (missing values, bad response, wrong types, ...)."""


class FamilyError(R2D2FormulaError, ValueError):
    """Unknown family or link, or a response that the family cannot model."""


class PriorSpecError(R2D2FormulaError, ValueError):
    """Invalid prior hyperparameters or prior overrides."""


class SamplerError(R2D2FormulaError, RuntimeError):
    """The requested sampler is unknown or not installed."""


class NotFittedError(R2D2FormulaError, ValueError, AttributeError):
    """A result was asked of a model that has not been fitted."""


class LoadError(R2D2FormulaError, ValueError):
    """A file given to :func:`r2d2formula.load` is not a fit saved by r2d2formula."""


class ArgumentError(R2D2FormulaError, ValueError):
    """An argument value outside its allowed set (``kind=``, ``draws=``, ...)."""


class R2D2FormulaWarning(UserWarning):
    """Base class of warnings issued by r2d2formula."""


class DiagnosticsWarning(R2D2FormulaWarning):
    """Sampling diagnostics (divergences, R-hat, ESS) suggest the posterior is unreliable."""


def mark_span(source: str, start: int, end: int | None = None) -> str:
    """Return ``source`` with a caret line under the characters ``start:end``.

    Parameters
    ----------
    source : str
        The formula text.
    start, end : int
        Character offsets of the span to mark (``end`` exclusive, default ``start + 1``).

    Examples
    --------
    >>> print(mark_span("y ~ x + (1 | g", 8, 9))
      y ~ x + (1 | g
              ^
    """
    end = start + 1 if end is None else max(end, start + 1)
    return f"  {source}\n  {' ' * start}{'^' * (end - start)}"


def warn_user(message: str, category: type[Warning] = R2D2FormulaWarning) -> None:
    """Issue a warning that points at the first caller outside r2d2formula.

    The same check runs under ``Model(...)`` and under ``build_design(...)``, at different
    depths; a fixed ``stacklevel`` would point inside the library for one of them.
    """
    level = 2  # stacklevel 1 is this function, 2 its caller
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
