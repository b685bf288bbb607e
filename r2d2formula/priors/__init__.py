"""Priors: the R2D2 specification, defaults, variant choice and the maps between R2 and W.

Public functions: :func:`fit_gbp` (Yanchenko et al.'s generalized beta prime fit),
:func:`r2_of_w` / :func:`w_of_r2` (the R2 <-> W maps), :func:`r2_by_integration`
(an independent check of them) and :func:`plugin_beta0`.
"""

from r2d2formula.priors.gbp import fit_gbp, plugin_beta0
from r2d2formula.priors.r2_maps import r2_by_integration, r2_of_w, w_of_r2
from r2d2formula.priors.spec import R2D2, Prior

__all__ = ["R2D2", "Prior", "fit_gbp", "plugin_beta0", "r2_of_w", "w_of_r2",
           "r2_by_integration"]
