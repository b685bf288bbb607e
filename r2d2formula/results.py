"""Fitted models: the InferenceData with the design's metadata, and what it tells."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import arviz as az
import numpy as np
import pandas as pd

from r2d2formula.errors import ArgumentError, DiagnosticsWarning, NotFittedError, warn_user

if TYPE_CHECKING:
    from r2d2formula.model import Model
    from r2d2formula.predictions import Predictions

__all__ = ["Fit", "compare"]

_RHAT_MAX = 1.01
_ESS_MIN = 400
_TREEDEPTH_MAX_FRACTION = 0.01
# numpyro's max_tree_depth and blackjax's max_num_doublings, left at their default by
# r2d2formula.backend; their "tree_depth" stat reaches it when the trajectory is cut short
_JAX_MAX_TREEDEPTH = 10


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

    # ---- predictions ---------------------------------------------------------------
    def predict(
        self,
        data: pd.DataFrame | None = None,
        *,
        kind: str = "mean",
        group_effects: bool = True,
        new_levels: str = "sample",
        random_seed: int | None = None,
        summary: bool = False,
        hdi_prob: float = 0.94,
        chunk_size: int | None = None,
    ) -> Predictions | pd.DataFrame:
        """Posterior predictions for new (or the training) rows, through the model graph.

        The rows go into the fitted PyMC graph as data (``pm.set_data``) and the graph is
        evaluated for every posterior draw: stateful transforms (``scale(x)``, ``center(x)``)
        and categorical codings use the training values.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            Rows to predict (response columns may be absent); the training data when None.
        kind : {"mean", "link", "response"}
            The mean response (``mu``), the linear predictor (``eta``), or draws of the
            response itself (posterior predictive).
        group_effects : bool, default True
            False predicts for the population (every group effect zero).
        new_levels : {"sample", "zero", "error"}
            Levels of a grouping factor not seen in training: ``"sample"`` gives each
            distinct new level its own independent draw from the population distribution
            (the group SDs and, within a ``|`` block, the correlations) in every posterior
            draw; ``"zero"`` sets its effect to zero (the population average); ``"error"``
            raises.
        random_seed : int, optional
            Makes new-level effects and response draws reproducible.
        summary : bool, default False
            Return the per-row table (mean, sd, HDI) instead of the draws; computed chunk by
            chunk, so memory stays bounded whatever the number of rows.
        hdi_prob : float, default 0.94
            HDI mass of the summary.
        chunk_size : int, optional
            Rows per chunk (default: about 256 MB of draws per chunk).

        Returns
        -------
        Predictions or pandas.DataFrame
            Draws with dims (chain, draw, obs), ``obs`` being the data's index; or their
            summary when ``summary=True``.

        Raises
        ------
        DesignError
            A missing column, missing values, a population-level categorical with a level
            not seen in training, or (``new_levels="error"``) an unseen group level.

        Examples
        --------
        >>> import pandas as pd
        >>> from r2d2formula import Model, datasets
        >>> fit = Model("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy")).fit(
        ...     draws=100, tune=200, chains=2, random_seed=1, progressbar=False)  # doctest: +SKIP
        >>> new = pd.DataFrame({"Days": [0, 9], "Subject": ["308", "a new subject"]})
        >>> fit.predict(new, random_seed=1).summary().shape  # doctest: +SKIP
        (2, 4)
        """
        import xarray as xr

        from r2d2formula.backend.predict import KINDS, predict_chunks, reduce_chunks
        from r2d2formula.predictions import Predictions, summarize_draws

        if kind not in KINDS:
            raise ArgumentError(f"kind must be one of {', '.join(map(repr, KINDS))}, got {kind!r}")
        if new_levels not in ("sample", "zero", "error"):
            raise ArgumentError(
                f"new_levels must be 'sample', 'zero' or 'error', got {new_levels!r}")
        if not 0.0 < hdi_prob < 1.0:
            raise ArgumentError(f"hdi_prob must lie in (0, 1), got {hdi_prob!r}")
        design = self._prediction_design(data, new_levels, kind)
        model = self.model
        graph, info = model.build_predictive()
        posterior = self.idata.posterior
        n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
        chunks = predict_chunks(
            graph, info, posterior, design, model.family, model.priors, kind=kind,
            group_effects=group_effects, new_levels=new_levels, random_seed=random_seed,
            chunk_size=chunk_size,
        )
        if summary:
            table = reduce_chunks(chunks, design.n_obs, n_chain, n_draw,
                                  reducer=lambda draws: summarize_draws(draws, hdi_prob))
            return pd.DataFrame(table, index=design.row_index)
        draws = reduce_chunks(chunks, design.n_obs, n_chain, n_draw)
        array = xr.DataArray(
            draws, dims=("chain", "draw", "obs"),
            coords={"chain": posterior["chain"].values, "draw": posterior["draw"].values,
                    "obs": design.row_index}, name=kind,
        )
        return Predictions(array, kind, index=design.row_index)

    def _prediction_design(self, data: pd.DataFrame | None, new_levels: str, kind: str):
        """The design of the rows to predict, checked for unseen levels and trials."""
        import dataclasses

        from r2d2formula.design import new_data_design
        from r2d2formula.errors import DesignError, R2D2FormulaWarning

        if data is None:
            return self.design
        design = new_data_design(self.design, data)
        if new_levels == "error":
            unseen = {f: gf.levels[gf.n_train_levels:] for f, gf in design.factors.items()
                      if gf.n_new_levels}
            if unseen:
                detail = "; ".join(f"{f!r}: {', '.join(map(str, levels))}"
                                   for f, levels in unseen.items())
                raise DesignError(
                    f"levels not seen in training in grouping factor(s) {detail}; pass "
                    "new_levels='sample' (draw their effects from the population "
                    "distribution) or new_levels='zero' (population average)"
                )
        if self.model.family.name == "binomial" and design.response.trials is None:
            if kind != "link":
                warnings.warn(
                    "the new data have no trials column for the binomial response; "
                    "predicting with 1 trial per row (add the trials column to predict counts)",
                    R2D2FormulaWarning, stacklevel=3,
                )
            response = dataclasses.replace(design.response, trials=np.ones(design.n_obs))
            design = dataclasses.replace(design, response=response)
        return design

    def sample_posterior_predictive(self, *, random_seed: int | None = None
                                    ) -> az.InferenceData:
        """One draw of the response per posterior draw, stored in ``idata``.

        Adds (or replaces) the ``posterior_predictive`` group of :attr:`idata`, named after
        the response, and returns the InferenceData.

        Parameters
        ----------
        random_seed : int, optional
        """
        from r2d2formula.backend.predict import posterior_predictive

        if "posterior_predictive" in self.idata.groups():
            del self.idata.posterior_predictive
        return posterior_predictive(self.model.build(), self.idata, random_seed=random_seed)

    # ---- model comparison and fit --------------------------------------------------
    def loo(self, *, pointwise: bool = True, **kwargs) -> az.ELPDData:
        """PSIS leave-one-out cross-validation (:func:`arviz.loo`) from the stored pointwise
        log-likelihood.

        Returns ``elpd_loo``, its ``se``, ``p_loo``, the pointwise ``loo_i`` and the Pareto k
        diagnostics (``pareto_k``).
        """
        self._require_log_likelihood("loo")
        return az.loo(self.idata, pointwise=pointwise, **kwargs)

    def waic(self, *, pointwise: bool = True, **kwargs) -> az.ELPDData:
        """The widely applicable information criterion (:func:`arviz.waic`): ``elpd_waic``,
        ``se``, ``p_waic`` and the pointwise ``waic_i``.

        (Pointwise by default: arviz 0.23 labels the total ``waic`` instead of ``elpd_waic``
        when ``pointwise=False``.)
        """
        self._require_log_likelihood("waic")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return az.waic(self.idata, pointwise=pointwise, **kwargs)

    def _require_log_likelihood(self, method: str) -> None:
        if "log_likelihood" not in self.idata.groups():
            raise NotFittedError(
                f"{method}() needs the pointwise log-likelihood, which this fit did not store "
                "(fit() leaves it out when it would exceed 1 GB); refit with "
                "fit(log_likelihood=True)")

    def bayes_r2(self, *, summary: bool = False, hdi_prob: float = 0.94,
                 chunk_size: int | None = None):
        r"""Bayesian R2 of Gelman, Goodrich, Gabry and Vehtari (2019), per posterior draw.

        For each draw, :math:`R^2 = V_\mu / (V_\mu + \bar\sigma^2)` with
        :math:`V_\mu` the variance over the training rows of the fitted means and
        :math:`\bar\sigma^2` the mean of the model's conditional variances (sigma^2; mu for
        poisson; mu + mu^2 / alpha for the negative binomial; mu (1 - mu) for bernoulli and,
        on the proportion scale, mu (1 - mu) / trials for the binomial). The means come from
        the model graph (:meth:`predict` with ``kind="mean"``), chunk by chunk.

        Unlike the ``R2`` parameter of the prior (the variance the linear predictor explains
        under the prior's distribution of eta, SPEC section 2), this R2 is computed from the
        fitted values of the observed design; comparing the two shows how the prior's R2
        relates to the sample's. For the negative binomial it is the plain ratio, not the
        ratio relative to its supremum.

        Parameters
        ----------
        summary : bool, default False
            Return a table with the mean, sd and HDI of ``bayes_R2`` next to those of the
            model's ``R2`` parameter.
        hdi_prob : float
        chunk_size : int, optional

        Returns
        -------
        xarray.DataArray (chain, draw) or pandas.DataFrame
        """
        import xarray as xr

        from r2d2formula._xp import NUMPY
        from r2d2formula.backend.predict import predict_chunks
        from r2d2formula.predictions import summarize_draws

        model = self.model
        graph, info = model.build_predictive()
        posterior = self.idata.posterior
        aux = {name: posterior[name].values[..., None] for name in model.family.aux}
        trials = model.design.response.trials
        n = model.design.n_obs
        total = np.zeros((posterior.sizes["chain"], posterior.sizes["draw"]))
        total_sq = np.zeros_like(total)
        residual = np.zeros_like(total)
        for rows, mu in predict_chunks(
            graph, info, posterior, model.design, model.family, model.priors, kind="mean",
            group_effects=True, new_levels="zero", random_seed=0, chunk_size=chunk_size,
        ):
            n_trials = 1.0 if trials is None else np.asarray(trials[rows], dtype=float)
            total += mu.sum(axis=-1)
            total_sq += np.square(mu).sum(axis=-1)
            residual += np.asarray(
                model.family.variance(mu, aux, n_trials, NUMPY) * np.ones_like(mu)
            ).sum(axis=-1)
        var_mu = np.maximum(total_sq / n - np.square(total / n), 0.0) * n / max(n - 1, 1)
        r2 = var_mu / (var_mu + residual / n)
        draws = xr.DataArray(r2, dims=("chain", "draw"),
                             coords={"chain": posterior["chain"].values,
                                     "draw": posterior["draw"].values}, name="bayes_R2")
        if not summary:
            return draws
        rows = {"bayes_R2": r2, "R2": posterior["R2"].values}
        table = {name: {k: float(v[0]) for k, v in
                        summarize_draws(values.reshape(-1, 1)[None], hdi_prob).items()}
                 for name, values in rows.items()}
        return pd.DataFrame(table).T

    # ---- diagnostics ---------------------------------------------------------------
    def diagnostics(self) -> dict:
        """Sampler diagnostics as data, with what to do about each problem.

        The checks: divergent transitions (any), R-hat above 1.01, bulk or tail effective
        sample size below 400 (Vehtari et al. 2021) and draws that hit the sampler's maximum
        tree depth (more than 1%). R-hat and ESS are taken over the reported parameters
        (:meth:`parameter_names`).

        Returns
        -------
        dict
            ``divergences`` (int), ``max_rhat``, ``min_ess_bulk``, ``min_ess_tail`` (float;
            NaN when there is nothing to measure), ``worst_rhat``, ``worst_ess_bulk``,
            ``worst_ess_tail`` (the parameter, e.g. ``"sd_Subject[Days]"``, or None),
            ``treedepth_saturated`` (fraction of draws at the maximum tree depth, or None when
            the sampler does not report it) and ``problems``, one sentence per problem saying
            what it means and what to do.

        Examples
        --------
        >>> import numpy as np, arviz as az
        >>> from r2d2formula import Model, datasets
        >>> from r2d2formula.results import Fit
        >>> m = Model("Reaction ~ Days", datasets.load("sleepstudy"))
        >>> rng = np.random.default_rng(1)
        >>> idata = az.from_dict(
        ...     posterior={"R2": rng.uniform(size=(4, 500))},
        ...     sample_stats={"diverging": np.arange(2000).reshape(4, 500) < 3})
        >>> diag = Fit(model=m, idata=idata, sampler="pymc").diagnostics()
        >>> diag["divergences"], diag["problems"][0][:41]
        (3, '3 divergent transitions in 2000 draws: th')
        """
        stats = getattr(self.idata, "sample_stats", None)
        stats_vars = stats.data_vars if stats is not None else {}
        divergences = int(stats["diverging"].sum()) if "diverging" in stats_vars else 0
        posterior = self.idata.posterior
        names = [n for n in self.parameter_names() if n in posterior]
        with warnings.catch_warnings():
            # constant entries (a correlation's diagonal, phi of a single component) have no
            # R-hat or ESS; they come back NaN and are skipped below
            warnings.simplefilter("ignore", RuntimeWarning)
            rhat = az.rhat(self.idata, var_names=names) if names else None
            ess_bulk = az.ess(self.idata, var_names=names, method="bulk") if names else None
            ess_tail = az.ess(self.idata, var_names=names, method="tail") if names else None
        max_rhat, worst_rhat = _extreme(rhat, largest=True)
        min_bulk, worst_bulk = _extreme(ess_bulk, largest=False)
        min_tail, worst_tail = _extreme(ess_tail, largest=False)
        saturated = None
        for key in ("reached_max_treedepth", "maxdepth_reached"):  # PyMC, nutpie
            if key in stats_vars:
                saturated = float(stats[key].mean())
                break
        else:
            if "tree_depth" in stats_vars:  # numpyro and blackjax, through PyMC
                saturated = float((stats["tree_depth"] >= _JAX_MAX_TREEDEPTH).mean())
        n_draws = posterior.sizes.get("chain", 1) * posterior.sizes.get("draw", 1)
        problems = []
        if divergences:
            problems.append(
                f"{divergences} divergent transitions in {n_draws} draws: the sampler could "
                "not follow the posterior's funnel, so the draws may be biased; refit with a "
                "higher target_accept (e.g. fit(target_accept=0.99)), and if that is not "
                "enough raise the concentration in R2D2(concentration=...) or tighten the R2 "
                "prior (a larger r2_precision)"
            )
        if max_rhat > _RHAT_MAX:
            problems.append(
                f"max R-hat {max_rhat:.3f} > {_RHAT_MAX} (at {worst_rhat}): the chains "
                "disagree, so they have not converged; refit with more tuning and draws "
                "(e.g. tune=2000, draws=2000), and if it persists look for a multimodal or "
                "badly identified parameter"
            )
        for label, value, where, use in (
                ("bulk", min_bulk, worst_bulk, "means and sds"),
                ("tail", min_tail, worst_tail, "intervals and tail quantiles")):
            if value < _ESS_MIN:
                problems.append(
                    f"min effective sample size ({label}) {value:.0f} < {_ESS_MIN} at "
                    f"{where}: too few independent draws for reliable {use}; refit with more "
                    "draws or chains (draws=, chains=)"
                )
        if saturated is not None and saturated > _TREEDEPTH_MAX_FRACTION:
            problems.append(
                f"{saturated:.0%} of draws hit the maximum tree depth: the sampler took very "
                "long trajectories, so it is slow and may not explore the posterior; refit "
                "with a longer tuning phase (tune=), and if it persists tighten the R2 prior "
                "or raise the concentration in R2D2(...)"
            )
        return {"divergences": divergences, "max_rhat": max_rhat, "min_ess_bulk": min_bulk,
                "min_ess_tail": min_tail, "worst_rhat": worst_rhat, "worst_ess_bulk": worst_bulk,
                "worst_ess_tail": worst_tail, "treedepth_saturated": saturated,
                "problems": problems}

    def warn_diagnostics(self, stacklevel: int | None = None) -> None:
        """Issue one :class:`DiagnosticsWarning` listing the problems of :meth:`diagnostics`,
        if there are any (:meth:`Model.fit` calls it after sampling).

        Parameters
        ----------
        stacklevel : int, optional
            As for :func:`warnings.warn`, counted from this method (2 is its caller). By
            default the warning points at the first caller outside r2d2formula.
        """
        problems = self.diagnostics()["problems"]
        if not problems:
            return
        message = "Sampling diagnostics: " + " | ".join(problems)
        if stacklevel is None:
            warn_user(message, DiagnosticsWarning)
        else:
            warnings.warn(message, DiagnosticsWarning, stacklevel=stacklevel)

    def save(self, path: str | os.PathLike) -> Path:
        """Save the fit to one netCDF file; :func:`r2d2formula.load` reads it back.

        The file holds the InferenceData, the model (formula, family, link, variant, priors,
        dropna, sampler) and the training columns the formula uses, so the loaded fit prints
        its summary and predicts on new data without the original data frame. See
        :mod:`r2d2formula.persistence`.

        Returns
        -------
        pathlib.Path
        """
        from r2d2formula.persistence import save_fit

        return save_fit(self, path)

    # ---- plots ---------------------------------------------------------------------
    def plot_r2(self, ax=None, **kwargs):
        """Prior against posterior R2 with the Beta prior drawn over; see
        :func:`r2d2formula.plots.plot_r2`."""
        from r2d2formula.plots import plot_r2

        return plot_r2(self, ax=ax, **kwargs)

    def __repr__(self) -> str:
        from r2d2formula.display import fit_text

        return fit_text(self)

    # ---- display and more plots (thin wrappers over display.py and plots.py) ------------
    def _repr_html_(self) -> str:
        """Jupyter's rich display; see :func:`r2d2formula.display.fit_html`."""
        from r2d2formula.display import fit_html

        return fit_html(self)

    def plot_variance_decomposition(self, ax=None, *, hdi_prob: float = 0.94,
                                    total: bool = False):
        """phi per component with HDIs, sorted; see
        :func:`r2d2formula.plots.plot_variance_decomposition`."""
        from r2d2formula.plots import plot_variance_decomposition

        return plot_variance_decomposition(self, ax=ax, hdi_prob=hdi_prob, total=total)

    def plot_group_effects(self, factor: str, term: str = "1", ax=None, *,
                           hdi_prob: float = 0.94):
        """Caterpillar plot of ``r_<factor>``; see :func:`r2d2formula.plots.plot_group_effects`."""
        from r2d2formula.plots import plot_group_effects

        return plot_group_effects(self, factor, term, ax=ax, hdi_prob=hdi_prob)

    def plot_ppc(self, ax=None, **kwargs):
        """Posterior predictive check; see :func:`r2d2formula.plots.plot_ppc`."""
        from r2d2formula.plots import plot_ppc

        return plot_ppc(self, ax=ax, **kwargs)

    def plot_conditional(self, predictor: str, by: str | None = None, ax=None, **kwargs):
        """Predictions over one predictor, by group; see
        :func:`r2d2formula.plots.plot_conditional`."""
        from r2d2formula.plots import plot_conditional

        return plot_conditional(self, predictor, by, ax=ax, **kwargs)


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


def _extreme(ds, *, largest: bool) -> tuple[float, str | None]:
    """The largest (or smallest) finite value over a Dataset of diagnostics and where it is,
    as ``"name[coord, ...]"``; (NaN, None) when nothing is finite."""
    best, where = float("nan"), None
    if ds is None:
        return best, where
    for name, var in ds.data_vars.items():
        values = np.asarray(var.values, dtype=float)
        if not np.isfinite(values).any():
            continue
        flat = np.where(np.isfinite(values), values, -np.inf if largest else np.inf)
        idx = np.unravel_index(int(np.argmax(flat) if largest else np.argmin(flat)),
                               values.shape)
        value = float(values[idx])
        if np.isnan(best) or (value > best if largest else value < best):
            labels = [str(var[dim].values[i]) for dim, i in zip(var.dims, idx, strict=True)]
            best, where = value, f"{name}[{', '.join(labels)}]" if labels else name
    return best, where


def compare(fits: dict[str, Fit], *, ic: str = "loo", **kwargs) -> pd.DataFrame:
    """Rank fitted models by expected log predictive density (:func:`arviz.compare`).

    Parameters
    ----------
    fits : dict of str to Fit
        Fits of the same response on the same rows, by name.
    ic : {"loo", "waic"}
    **kwargs
        Passed to :func:`arviz.compare` (``method``, ``scale``, ...).

    Returns
    -------
    pandas.DataFrame
        One row per model, best first: elpd, its standard error, the difference to the best
        and its standard error, the effective number of parameters and the stacking weight.
    """
    if not isinstance(fits, dict) or len(fits) < 2:
        raise ArgumentError("compare needs a dict of at least two fits, e.g. {'a': fit_a, 'b': fit_b}")
    for name, fit in fits.items():
        if not isinstance(fit, Fit):
            raise ArgumentError(f"compare: {name!r} is a {type(fit).__name__}, not a Fit")
    sizes = {name: fit.design.n_obs for name, fit in fits.items()}
    if len(set(sizes.values())) > 1:
        raise ArgumentError(
            f"compare needs fits to the same rows; the numbers of observations differ: {sizes}")
    with warnings.catch_warnings():
        # arviz's own notes (Pareto k, pandas deprecations inside arviz) are not the user's
        for category in (UserWarning, FutureWarning, DeprecationWarning):
            warnings.simplefilter("ignore", category)
        return az.compare({name: fit.idata for name, fit in fits.items()}, ic=ic, **kwargs)
