"""Fitted models: the InferenceData with the design's metadata, and what it tells."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import arviz as az
import numpy as np
import pandas as pd

from r2d2formula.errors import DiagnosticsWarning

if TYPE_CHECKING:
    from r2d2formula.model import Model

__all__ = ["Fit"]

_RHAT_MAX = 1.01
_ESS_MIN = 400


class Fit:
    """The result of :meth:`Model.fit`.

    Attributes
    ----------
    idata : arviz.InferenceData
        Posterior, sample stats, observed and constant data and the pointwise log-likelihood;
        names and coordinates as in SPEC section 4.
    model : Model
        The model that was fitted.
    sampler : str
    """

    def __init__(self, *, model: Model, idata: az.InferenceData, sampler: str) -> None:
        self.model = model
        self.idata = idata
        self.sampler = sampler

    # ---- what was fitted -----------------------------------------------------------
    @property
    def variant(self) -> str:
        return self.model.variant

    @property
    def design(self):
        return self.model.design

    def parameter_names(self) -> list[str]:
        """Reported parameters in a fixed order: Intercept, b, aux, R2, phi, sd_*, cor_*."""
        posterior = self.idata.posterior
        names = [n for n in ("Intercept", "b", "sigma", "alpha", "R2", "phi")
                 if n in posterior]
        factors = list(self.design.factors)
        names += [f"sd_{f}" for f in factors if f"sd_{f}" in posterior]
        names += [f"cor_{f}" for f in factors if f"cor_{f}" in posterior]
        return names

    # ---- tables --------------------------------------------------------------------
    def summary(self, var_names: list[str] | None = None, *, hdi_prob: float = 0.94,
                **kwargs) -> pd.DataFrame:
        """ArviZ summary of the reported parameters.

        Correlations are listed once per pair (upper triangle); group-level effects
        ``r_<factor>`` are left out unless named in ``var_names``.
        """
        var_names = var_names or self.parameter_names()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            table = az.summary(self.idata, var_names=var_names, hdi_prob=hdi_prob, **kwargs)
        keep = [not _is_redundant_correlation(label, self.design) for label in table.index]
        return table[keep]

    def variance_decomposition(self, *, hdi_prob: float = 0.94) -> pd.DataFrame:
        """How the explained variance splits over components.

        One row per component with the posterior mean, sd and HDI of its share ``phi`` of
        the explained variance, and of ``phi * R2``, its share of the total variance.

        Returns
        -------
        pandas.DataFrame
            Indexed by component name, sorted as in the model.
        """
        post = self.idata.posterior
        phi = post["phi"].stack(sample=("chain", "draw")).transpose("component", "sample")
        r2 = post["R2"].stack(sample=("chain", "draw")).values
        rows = []
        lo_name, hi_name = _hdi_names(hdi_prob)
        for i, name in enumerate(phi["component"].values):
            share = phi.values[i]
            total = share * r2
            lo, hi = _hdi(share, hdi_prob)
            tlo, thi = _hdi(total, hdi_prob)
            rows.append({
                "component": str(name), "phi_mean": share.mean(), "phi_sd": share.std(ddof=1),
                f"phi_{lo_name}": lo, f"phi_{hi_name}": hi,
                "phi_R2_mean": total.mean(), f"phi_R2_{lo_name}": tlo,
                f"phi_R2_{hi_name}": thi,
            })
        return pd.DataFrame(rows).set_index("component")

    # ---- diagnostics ---------------------------------------------------------------
    def diagnostics(self) -> dict:
        """Sampler diagnostics as data.

        Returns
        -------
        dict
            ``divergences`` (int), ``max_rhat``, ``min_ess_bulk``, ``min_ess_tail`` (float),
            ``treedepth_saturated`` (fraction of draws at the maximum tree depth, or None) and
            ``problems``, a list of sentences with what to do.
        """
        stats = self.idata.sample_stats
        divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
        names = self.parameter_names()
        with warnings.catch_warnings():
            # constant entries (a correlation's diagonal, phi of a single component) have no
            # R-hat or ESS; they come back NaN and are skipped below
            warnings.simplefilter("ignore", RuntimeWarning)
            rhat = az.rhat(self.idata, var_names=names)
            ess_bulk = az.ess(self.idata, var_names=names, method="bulk")
            ess_tail = az.ess(self.idata, var_names=names, method="tail")
        max_rhat = _nanmax(rhat)
        min_bulk = _nanmin(ess_bulk)
        min_tail = _nanmin(ess_tail)
        saturated = None
        if "reached_max_treedepth" in stats:
            saturated = float(stats["reached_max_treedepth"].mean())
        elif "maxdepth_reached" in stats:
            saturated = float(stats["maxdepth_reached"].mean())
        problems = []
        n_draws = stats.sizes.get("chain", 1) * stats.sizes.get("draw", 1)
        if divergences:
            problems.append(
                f"{divergences} divergent transitions of {n_draws}: the posterior has a funnel "
                "the sampler could not follow; raise target_accept (e.g. 0.99), or the "
                "concentration in R2D2(...), or tighten the R2 prior"
            )
        if max_rhat > _RHAT_MAX:
            problems.append(
                f"max R-hat {max_rhat:.3f} > {_RHAT_MAX}: chains disagree; run longer "
                "(more tune and draws) or check the model"
            )
        if min_bulk < _ESS_MIN or min_tail < _ESS_MIN:
            problems.append(
                f"min effective sample size {min(min_bulk, min_tail):.0f} < {_ESS_MIN}: "
                "draw more (draws=, chains=) before trusting tails and intervals"
            )
        if saturated and saturated > 0.01:
            problems.append(
                f"{saturated:.0%} of draws hit the maximum tree depth: the sampler is "
                "inefficient; more tuning (tune=) usually helps"
            )
        return {"divergences": divergences, "max_rhat": max_rhat, "min_ess_bulk": min_bulk,
                "min_ess_tail": min_tail, "treedepth_saturated": saturated,
                "problems": problems}

    def warn_diagnostics(self, stacklevel: int = 2) -> None:
        """Issue a :class:`DiagnosticsWarning` listing problems, if any."""
        problems = self.diagnostics()["problems"]
        if problems:
            warnings.warn("Sampling diagnostics: " + " | ".join(problems), DiagnosticsWarning,
                          stacklevel=stacklevel + 1)

    # ---- plots ---------------------------------------------------------------------
    def plot_r2(self, ax=None, **kwargs):
        """Prior against posterior R2 with the Beta prior drawn over; see
        :func:`r2d2formula.plots.plot_r2`."""
        from r2d2formula.plots import plot_r2

        return plot_r2(self, ax=ax, **kwargs)

    def __repr__(self) -> str:
        from r2d2formula.display import fit_text

        return fit_text(self)


def _is_redundant_correlation(label: str, design) -> bool:
    """True for diagonal and lower-triangle entries of ``cor_<factor>[a, b]``."""
    if not label.startswith("cor_") or "[" not in label:
        return False
    name, inner = label.split("[", 1)
    factor = name[len("cor_"):]
    if factor not in design.factors:
        return False
    terms = list(design.factor_labels(factor))
    parts = inner.rstrip("]").split(", ")
    if len(parts) != 2 or parts[0] not in terms or parts[1] not in terms:
        return False
    return terms.index(parts[0]) >= terms.index(parts[1])


def _hdi(values: np.ndarray, prob: float) -> tuple[float, float]:
    interval = az.hdi(np.asarray(values), hdi_prob=prob)
    return float(interval[0]), float(interval[1])


def _hdi_names(prob: float) -> tuple[str, str]:
    pct = 100 * prob
    lo = f"hdi_{(100 - pct) / 2:g}%"
    hi = f"hdi_{100 - (100 - pct) / 2:g}%"
    return lo, hi


def _nanmax(ds) -> float:
    values = [np.nanmax(v.values) for v in ds.data_vars.values() if np.isfinite(v.values).any()]
    return float(max(values)) if values else float("nan")


def _nanmin(ds) -> float:
    values = [np.nanmin(v.values) for v in ds.data_vars.values() if np.isfinite(v.values).any()]
    return float(min(values)) if values else float("nan")
