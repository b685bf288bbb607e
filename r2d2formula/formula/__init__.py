"""lme4-style formula text -> :class:`FormulaSpec` (scanner -> parser -> resolver).

Imports only the standard library (no NumPy, no PyMC); the data are first seen in
:mod:`r2d2formula.design`.
"""

from __future__ import annotations

from .parser import BINARY_OPERATORS, parse
from .resolver import Expr, FormulaSpec, GroupSpec, ResponseSpec, parse_formula, resolve
from .scanner import Token, TokenKind, scan

__all__ = [
    "BINARY_OPERATORS",
    "Expr",
    "FormulaSpec",
    "GroupSpec",
    "ResponseSpec",
    "Token",
    "TokenKind",
    "parse",
    "parse_formula",
    "resolve",
    "scan",
]
