"""The design: what a formula means for a data set (arrays and labels, no PyMC).

:func:`build_design` evaluates a formula on training data; :func:`new_data_design` evaluates
the same formula on new data with the training state.
"""

from __future__ import annotations

from .builder import build_design, new_data_design, training_data
from .types import CommonDesign, Design, GroupFactor, GroupTerm, ResponseData

__all__ = [
    "build_design",
    "new_data_design",
    "training_data",
    "CommonDesign",
    "Design",
    "GroupFactor",
    "GroupTerm",
    "ResponseData",
]
