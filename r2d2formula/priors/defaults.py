"""Every prior of a model, resolved in one place (as brms's ``get_prior`` does).

:func:`resolve_priors` combines the R2D2 specification, the user's overrides and the defaults
that read the data. Default priors:

=============  ==============================================================================
parameter      default
=============  ==============================================================================
``R2``         Beta(r2_mean * r2_precision, (1 - r2_mean) * r2_precision); Beta(1, 1)
``phi``        Dirichlet(0.5, ..., 0.5), one entry per component
``beta0``      Normal(location, scale), the intercept of the centered design: gaussian
               location mean(y), scale 2.5 sd(y); other families the link of the mean response
               (log(mean y), logit(mean y), probit(mean y), clipped away from 0 and 1) and scale
               2.5; minus the mean offset. Override with key ``"Intercept"``.
``sigma``      HalfStudentT(nu=3, sigma=sd(y)) (gaussian)
``alpha``      LogNormal(mu=1, sigma=2) (negative binomial NB2 dispersion; median 2.7,
               95% between 0.05 and 137, so from strong overdispersion to nearly Poisson)
``sd``         HalfStudentT(nu=3, sigma=2.5 * sd(y)) for gaussian, HalfStudentT(nu=3, sigma=2.5)
               otherwise; used only for group terms left outside the R2D2 prior
               (``variant="R2D2"`` on a model with group terms)
=============  ==============================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from r2d2formula.design.types import Design
from r2d2formula.errors import PriorSpecError
from r2d2formula.families import Family
from r2d2formula.priors.spec import R2D2, Prior
from r2d2formula.priors.variant import VariantChoice, choose_variant

__all__ = ["ResolvedPriors", "resolve_priors", "intercept_location", "DEFAULT_APPROX"]

#: W method for non-gaussian families when R2D2(approx=None).
DEFAULT_APPROX = "exact"

_OVERRIDABLE = ("Intercept", "sigma", "alpha", "sd")


@dataclass(frozen=True, kw_only=True)
class ResolvedPriors:
    """All priors of a model, defaults filled in.

    Attributes
    ----------
    r2d2 : R2D2
    variant : VariantChoice
    approx : str
        "exact" (gaussian always), "gbp" or "linear".
    r2_beta : (float, float)
        Beta parameters of R2.
    concentrations : tuple of float
        Dirichlet concentration per component of ``variant.components``.
    intercept : Prior
        Prior of beta0 (centered-design intercept, link scale).
    aux : dict of str to Prior
        Priors of the family's auxiliary parameters.
    group_sd : Prior or None
        Prior of group SDs outside the R2D2 prior (``variant.independent_groups``).
    intercept_plugin : float
        The data-based intercept location (also the GBP plug-in beta0).
    map_trials : float
        Scalar number of trials in the R2 map (binomial; 1 otherwise): the mean trials for
        "linear" (SPEC table), the harmonic mean for "exact" and "gbp", which makes
        E[mu(1 - mu) / n] exact when n does not depend on eta.
    offset_mean : float
        Mean offset; the R2 map is evaluated at beta0 + offset_mean.
    gbp_params : (float, float, float, float) or None
        Yanchenko et al.'s fitted (a*, b*, c*, d*) when ``approx == "gbp"``.
    has_intercept : bool
        Whether the model has beta0 (False for ``0 +`` / ``- 1`` formulas, where
        ``intercept`` is kept only as the unused default).
    """

    r2d2: R2D2
    variant: VariantChoice
    approx: str
    r2_beta: tuple[float, float]
    concentrations: tuple[float, ...]
    intercept: Prior
    aux: dict[str, Prior]
    group_sd: Prior | None
    intercept_plugin: float
    map_trials: float = 1.0
    offset_mean: float = 0.0
    gbp_params: tuple[float, float, float, float] | None = None
    has_intercept: bool = True

    def table(self) -> list[tuple[str, str]]:
        """(parameter, prior in words) rows for display."""
        a, b = self.r2_beta
        conc = sorted(set(self.concentrations))
        conc_text = f"{conc[0]:g}" if len(conc) == 1 else "per component"
        rows = [
            ("R2", f"Beta({a:.4g}, {b:.4g})"),
            ("phi", f"Dirichlet({conc_text}) over {len(self.concentrations)} components"),
        ]
        if self.has_intercept:
            rows.append(("beta0 (centered intercept)", self.intercept.describe()))
        rows += [(name, prior.describe()) for name, prior in self.aux.items()]
        if self.group_sd is not None:
            rows.append(("sd_* (independent)", self.group_sd.describe()))
        return rows


def intercept_location(design: Design, family: Family) -> float:
    """Data-based location of the centered intercept on the link scale.

    Examples
    --------
    The mean response of a poisson model on the log scale:

    >>> import numpy as np, pandas as pd
    >>> from r2d2formula.design.types import CommonDesign, Design, ResponseData
    >>> from r2d2formula.families import get_family
    >>> y = np.array([1.0, 2.0, 3.0, 6.0])
    >>> d = Design(formula="y ~ 1", response=ResponseData(label="y", name="y", values=y),
    ...     common=CommonDesign(matrix=np.zeros((4, 0)), labels=(), terms=(), intercept=True,
    ...     means=np.zeros(0), scales=np.zeros(0)), factors={}, group_terms=(), offset=None,
    ...     row_index=pd.RangeIndex(4))
    >>> round(intercept_location(d, get_family("poisson")), 4)
    1.0986
    """
    from r2d2formula.priors.gbp import plugin_beta0

    return plugin_beta0(family, design.response.values, trials=design.response.trials,
                        offset=design.offset)


def _default_priors(design: Design, family: Family, location: float) -> dict[str, Prior]:
    y = np.asarray(design.response.values, dtype=float)
    if family.name == "gaussian":
        sd_y = float(np.std(y))
        sd_y = sd_y if sd_y > 0 else 1.0
        return {
            "Intercept": Prior("Normal", mu=location, sigma=2.5 * sd_y),
            "sigma": Prior("HalfStudentT", nu=3, sigma=sd_y),
            "sd": Prior("HalfStudentT", nu=3, sigma=2.5 * sd_y),
        }
    defaults = {
        "Intercept": Prior("Normal", mu=location, sigma=2.5),
        "sd": Prior("HalfStudentT", nu=3, sigma=2.5),
    }
    if "alpha" in family.aux:
        defaults["alpha"] = Prior("LogNormal", mu=1.0, sigma=2.0)
    return defaults


def resolve_priors(
    design: Design,
    family: Family,
    r2d2: R2D2 | None = None,
    priors: Mapping[str, Prior] | None = None,
    variant: str = "auto",
) -> ResolvedPriors:
    """Resolve every prior of the model.

    Parameters
    ----------
    design : Design
    family : Family
    r2d2 : R2D2, optional
        The R2D2 hyperparameters (default ``R2D2()``).
    priors : dict of str to Prior, optional
        Overrides for ``"Intercept"`` (beta0, link scale), ``"sigma"``, ``"alpha"`` and
        ``"sd"`` (group SDs outside the R2D2 prior).
    variant : str
        See :func:`r2d2formula.priors.variant.choose_variant`.

    Raises
    ------
    PriorSpecError
        Unknown override keys, an override for a parameter the family lacks (or an
        ``"Intercept"`` prior for a formula without one), a prior with
        negative support for a positive parameter, or a concentration dict naming an unknown
        component.
    """
    r2d2 = R2D2() if r2d2 is None else r2d2
    if not isinstance(r2d2, R2D2):
        raise PriorSpecError(
            f"prior must be an R2D2(...) object, got {type(r2d2).__name__}; for the intercept "
            "or sigma use priors={'Intercept': Prior(...)}"
        )
    if priors is not None and not isinstance(priors, Mapping):
        raise PriorSpecError(
            f"priors must be a dict of parameter name to Prior, got {type(priors).__name__}; "
            "for example priors={'sigma': Prior('HalfNormal', sigma=2)}"
        )
    overrides = dict(priors or {})
    for key, value in overrides.items():
        if key not in _OVERRIDABLE:
            raise PriorSpecError(
                f"cannot set a prior for {key!r}; priors= takes {', '.join(_OVERRIDABLE)} "
                "(R2 and phi are set through R2D2(...))"
            )
        if not isinstance(value, Prior):
            raise PriorSpecError(f"priors[{key!r}] must be a Prior(...), got {value!r}")
        if key in ("sigma", "alpha") and key not in family.aux:
            raise PriorSpecError(
                f"family {family.name!r} has no parameter {key!r}; its auxiliary parameters are "
                f"{list(family.aux) or 'none'}"
            )
        if key in ("sigma", "alpha", "sd") and not value.positive:
            raise PriorSpecError(
                f"{key!r} is positive, so its prior needs positive support (HalfNormal, "
                f"HalfStudentT, Exponential, Gamma, LogNormal, ...), got {value.describe()}"
            )
    if "Intercept" in overrides and not design.common.intercept:
        raise PriorSpecError(
            f"priors['Intercept'] was given, but the formula {design.formula!r} has no intercept "
            "('0 +' or '- 1'); drop the Intercept prior or the '0 +'"
        )
    choice = choose_variant(design, family, variant)
    if "sd" in overrides and not choice.independent_groups:
        raise PriorSpecError(
            "priors['sd'] applies only to group terms outside the R2D2 prior "
            "(variant='R2D2' with group terms); under R2D2M2 the group SDs follow from R2 and phi"
        )
    location = intercept_location(design, family)
    defaults = _default_priors(design, family, location)
    defaults.update(overrides)
    if family.name == "gaussian":
        approx = "exact"
    else:
        approx = r2d2.approx or DEFAULT_APPROX
    offset_mean = 0.0 if design.offset is None else float(np.mean(design.offset))
    map_trials = _map_trials(design, approx)
    gbp_params = None
    if approx == "gbp" and family.name != "gaussian":
        from r2d2formula.priors.gbp import fit_gbp

        aux_plugin = {name: _prior_median(prior) for name, prior in defaults.items()
                      if name in family.aux}
        gbp_params = fit_gbp(family, *r2d2.beta_parameters, location + offset_mean,
                             trials=map_trials, **aux_plugin)
    return ResolvedPriors(
        r2d2=r2d2,
        variant=choice,
        approx=approx,
        r2_beta=r2d2.beta_parameters,
        concentrations=r2d2.concentrations(choice.components),
        intercept=defaults["Intercept"],
        aux={name: defaults[name] for name in family.aux},
        group_sd=defaults["sd"] if choice.independent_groups else None,
        intercept_plugin=location,
        map_trials=map_trials,
        offset_mean=offset_mean,
        gbp_params=gbp_params,
        has_intercept=bool(design.common.intercept),
    )


def _map_trials(design: Design, approx: str) -> float:
    trials = design.response.trials
    if trials is None:
        return 1.0
    trials = np.asarray(trials, dtype=float)
    if approx == "linear":
        return float(np.mean(trials))
    return float(1.0 / np.mean(1.0 / trials))


def _prior_median(prior: Prior) -> float:
    """Median of a positive prior, the plug-in value of an auxiliary parameter for GBP."""
    from scipy import stats

    params = prior.params
    frozen = {
        "LogNormal": lambda: stats.lognorm(s=params.get("sigma", 1.0),
                                           scale=np.exp(params.get("mu", 0.0))),
        "Gamma": lambda: stats.gamma(a=params["alpha"], scale=1.0 / params["beta"]),
        "InverseGamma": lambda: stats.invgamma(a=params["alpha"], scale=params["beta"]),
        "Exponential": lambda: stats.expon(scale=1.0 / params["lam"]),
        "HalfNormal": lambda: stats.halfnorm(scale=params.get("sigma", 1.0)),
        "HalfCauchy": lambda: stats.halfcauchy(scale=params.get("beta", 1.0)),
        "HalfStudentT": lambda: stats.t(df=params.get("nu", 1.0), scale=params.get("sigma", 1.0)),
    }[prior.distribution]()
    if prior.distribution == "HalfStudentT":
        return float(frozen.ppf(0.75))  # the median of |T|
    return float(frozen.median())
