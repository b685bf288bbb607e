"""r2d2formula: Bayesian multilevel regression from lme4-style formulas with R2D2 priors.

>>> from r2d2formula import Model, R2D2, datasets
>>> m = Model("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"),
...           prior=R2D2(r2_mean=0.5, r2_precision=2))
>>> m.variant
'R2D2M2'
"""

from r2d2formula import datasets
from r2d2formula.errors import (
    ArgumentError,
    DesignError,
    DiagnosticsWarning,
    FamilyError,
    FormulaError,
    FormulaSyntaxError,
    LoadError,
    NotFittedError,
    PriorSpecError,
    R2D2FormulaError,
    R2D2FormulaWarning,
    SamplerError,
)
from r2d2formula.model import Model
from r2d2formula.priors.spec import R2D2, Prior

__version__ = "0.1.0"

__all__ = [
    "Model",
    "Fit",
    "Predictions",
    "compare",
    "load",
    "R2D2",
    "Prior",
    "datasets",
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
    "__version__",
]


# results (and arviz behind them) load on first use, so `import r2d2formula` stays quick
_LAZY = {"Fit": "r2d2formula.results", "compare": "r2d2formula.results",
         "load": "r2d2formula.persistence",
         "Predictions": "r2d2formula.predictions"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'r2d2formula' has no attribute {name!r}")
