"""r2d2formula: Bayesian multilevel regression from lme4-style formulas with R2D2 priors.

>>> from r2d2formula import Model, R2D2, datasets
>>> m = Model("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"),
...           prior=R2D2(r2_mean=0.5, r2_precision=2))
>>> m.variant
'R2D2M2'
"""

from r2d2formula import datasets
from r2d2formula.errors import (
    DesignError,
    DiagnosticsWarning,
    FamilyError,
    FormulaError,
    FormulaSyntaxError,
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
    "R2D2",
    "Prior",
    "datasets",
    "R2D2FormulaError",
    "FormulaError",
    "FormulaSyntaxError",
    "DesignError",
    "FamilyError",
    "PriorSpecError",
    "SamplerError",
    "NotFittedError",
    "R2D2FormulaWarning",
    "DiagnosticsWarning",
    "__version__",
]
