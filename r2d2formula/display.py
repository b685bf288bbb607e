"""Plain-text descriptions of models and fits (what ``repr`` and the CLI print)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from r2d2formula.model import Model
    from r2d2formula.results import Fit

__all__ = ["model_text", "fit_text"]


def model_text(model: Model) -> str:
    """Formula, family, variant with its reason, components and priors, as text."""
    design = model.design
    lines = [
        f"r2d2formula Model: {design.formula}",
        f"  family: {model.family.name} (link: {model.family.link})",
        f"  observations: {design.n_obs}"
        + (f" ({design.n_dropped} rows with missing values dropped)" if design.n_dropped else ""),
        f"  variant: {model.variant}, because {model.variant_reason}",
        f"  R2 -> W: {model.approx}" + (
            " (GBP a*, b*, c*, d* = " + ", ".join(f"{v:.4g}" for v in model.priors.gbp_params)
            + ")" if model.priors.gbp_params else ""),
        "  components:",
    ]
    for name, row in model.components.iterrows():
        conc = "" if pd.isna(row["concentration"]) else f"concentration {row['concentration']:g}"
        where = "R2D2" if row["in_r2d2"] else "independent prior"
        lines.append(f"    {name:<24} {row['kind']:<7} scale {row['scale']:<10.4g} {conc} [{where}]")
    lines.append("  priors:")
    for parameter, prior in model.priors.table():
        lines.append(f"    {parameter:<28} {prior}")
    return "\n".join(lines)


def fit_text(fit: Fit) -> str:
    """The model description plus sampler diagnostics."""
    diag = fit.diagnostics()
    stats = fit.idata.posterior.sizes
    lines = [
        model_text(fit.model),
        f"  fitted with {fit.sampler}: {stats.get('chain')} chains x {stats.get('draw')} draws",
        f"  divergences: {diag['divergences']}, max R-hat: {diag['max_rhat']:.3f}, "
        f"min ESS (bulk/tail): {diag['min_ess_bulk']:.0f}/{diag['min_ess_tail']:.0f}",
    ]
    for problem in diag["problems"]:
        lines.append(f"  WARNING: {problem}")
    return "\n".join(lines)
