"""Which member of the R2D2 family a model gets, and why (SPEC section 3)."""

from __future__ import annotations

from dataclasses import dataclass

from r2d2formula.design.types import Design
from r2d2formula.errors import PriorSpecError
from r2d2formula.families import Family

__all__ = ["VariantChoice", "choose_variant", "VARIANTS"]

VARIANTS = ("auto", "R2D2", "R2D2-GLM", "R2D2M2", "R2D2-GLMM")

_REFERENCES = {
    "R2D2": "Zhang, Naughton, Bondell & Reich (2022)",
    "R2D2-GLM": "Yanchenko, Bondell & Reich (2021)",
    "R2D2M2": "Aguilar & Bürkner (2023)",
    "R2D2-GLMM": "Yanchenko, Bondell & Reich (2021) with Aguilar & Bürkner (2023)",
}


@dataclass(frozen=True, kw_only=True)
class VariantChoice:
    """The chosen variant.

    Attributes
    ----------
    name : str
        "R2D2", "R2D2-GLM", "R2D2M2" or "R2D2-GLMM".
    reason : str
        One sentence saying why.
    components : tuple of str
        Components whose variance the Dirichlet splits.
    independent_groups : bool
        True when group terms exist but sit outside the R2D2 prior (they then get independent
        default priors on their standard deviations).
    reference : str
    """

    name: str
    reason: str
    components: tuple[str, ...]
    independent_groups: bool
    reference: str


def choose_variant(design: Design, family: Family, requested: str = "auto") -> VariantChoice:
    """Choose the R2D2 variant for a design and family.

    Parameters
    ----------
    design : Design
    family : Family
    requested : {"auto", "R2D2", "R2D2-GLM", "R2D2M2", "R2D2-GLMM"}
        "auto" follows SPEC section 3. "R2D2" (or "R2D2-GLM") with group terms puts the R2D2
        prior on the population-level terms only. The GLM suffix is implied by the family, so
        "R2D2" and "R2D2-GLM" ask for the same thing.

    Raises
    ------
    PriorSpecError
        For an unknown variant, R2D2M2 without group terms, or a model with no component.
    """
    if requested not in VARIANTS:
        raise PriorSpecError(f"unknown variant {requested!r}; choose one of {', '.join(VARIANTS)}")
    glm = family.name != "gaussian"
    common = tuple(design.common.labels)
    all_components = design.component_names
    if not all_components:
        raise PriorSpecError(
            "the formula has no predictors and no group terms, so there is no variance for the "
            "R2D2 prior to split; add a term (for example 'y ~ x' or 'y ~ 1 + (1 | g)')"
        )
    base = "R2D2-GLM" if glm else "R2D2"
    multilevel = "R2D2-GLMM" if glm else "R2D2M2"
    family_part = f"the {family.name} family" + (
        " needs the GLM map from R2 to W" if glm else " has an exact R2"
    )
    if requested == "auto":
        if design.has_groups:
            name = multilevel
            reason = (f"the formula has group terms ({', '.join(design.factors)}) and "
                      f"{family_part}")
        else:
            name = base
            reason = f"the formula has no group terms and {family_part}"
        return VariantChoice(name=name, reason=reason, components=all_components,
                             independent_groups=False, reference=_REFERENCES[name])
    if requested in ("R2D2", "R2D2-GLM"):
        if not design.has_groups:
            return VariantChoice(name=base, reason=f"requested; {family_part}",
                                 components=all_components, independent_groups=False,
                                 reference=_REFERENCES[base])
        if not common:
            raise PriorSpecError(
                f"variant {requested!r} puts the R2D2 prior on population-level terms, but the "
                "formula has none; use variant='auto' for the R2D2M2 prior over group terms"
            )
        return VariantChoice(
            name=base,
            reason=(f"requested: R2D2 on the population-level terms only; the group terms "
                    f"({', '.join(design.factors)}) get independent priors on their SDs"),
            components=common, independent_groups=True, reference=_REFERENCES[base])
    # R2D2M2 / R2D2-GLMM
    if not design.has_groups:
        raise PriorSpecError(
            f"variant {requested!r} splits variance over group terms, but the formula has none; "
            f"use variant='auto' (which gives {base})"
        )
    return VariantChoice(name=multilevel, reason=f"requested; {family_part}",
                         components=all_components, independent_groups=False,
                         reference=_REFERENCES[multilevel])
