"""Plots of fitted models. Each function takes a :class:`~r2d2formula.results.Fit`, an
optional Matplotlib ``ax``, returns the axes, and never calls ``plt.show()``. Each is also a
method of the fit (``fit.plot_variance_decomposition()`` calls
:func:`plot_variance_decomposition`).

* :func:`plot_variance_decomposition`: which component explains how much (phi, with HDIs).
* :func:`plot_r2`: prior against posterior R2.
* :func:`plot_group_effects`: caterpillar plot of the group effects of one factor.
* :func:`plot_ppc`: posterior predictive check.
* :func:`plot_conditional`: predictions over one predictor, optionally one line per group.

Examples
--------
Fitting takes a while, so these lines are not run as doctests:

>>> from r2d2formula import Model, datasets
>>> df = datasets.simulate_laboratory(random_seed=1)
>>> fit = Model(df.attrs["formula"], df).fit(random_seed=1)  # doctest: +SKIP
>>> ax = fit.plot_variance_decomposition()  # doctest: +SKIP
>>> ax = fit.plot_group_effects("microRNA")  # doctest: +SKIP
>>> ax = fit.plot_conditional("dose", by="stress")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from scipy import stats

from r2d2formula.errors import DesignError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from r2d2formula.results import Fit

__all__ = ["plot_r2", "plot_variance_decomposition", "plot_group_effects", "plot_ppc",
           "plot_conditional"]

# Integer responses are drawn as histograms with one bin per value up to this many values.
_MAX_INTEGER_BINS = 60


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    """``ax``, or the axes of a new figure (marked, so :func:`_finish` may lay it out)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
    fig._r2d2formula_owned = True  # a figure this module made
    return ax


def _finish(ax: Axes) -> Axes:
    """Fit labels into a figure this module made; a caller's figure is left alone."""
    if getattr(ax.figure, "_r2d2formula_owned", False):
        ax.figure.tight_layout()
    return ax


def _hdi(draws: np.ndarray, hdi_prob: float) -> np.ndarray:
    """HDIs of each column of ``draws`` (samples along axis 0), shape (2, columns)."""
    from r2d2formula.predictions import hdi_columns

    low, high = hdi_columns(np.asarray(draws, dtype=float), hdi_prob)
    return np.stack([low, high])


def _check_prob(hdi_prob: float) -> None:
    if not isinstance(hdi_prob, (int, float)) or not 0.0 < hdi_prob < 1.0:
        raise ValueError(f"hdi_prob must lie strictly between 0 and 1, got {hdi_prob!r}")


def _draws(fit: Fit, name: str) -> np.ndarray:
    """Posterior draws of ``name`` with chains and draws stacked first."""
    da = fit.idata.posterior[name]
    return da.stack(sample=("chain", "draw")).transpose("sample", ...).values


def _interval_plot(ax: Axes, labels: Sequence[str], means: np.ndarray, lows: np.ndarray,
                   highs: np.ndarray, color: str = "C0") -> None:
    """Horizontal intervals (one LineCollection) with points at the means, row 0 at the bottom."""
    y = np.arange(len(labels))
    ax.hlines(y, lows, highs, color=color, lw=2)
    ax.plot(means, y, "o", color=color, ms=5, label="posterior mean")
    ax.set_yticks(y)
    ax.set_yticklabels(list(labels))
    ax.set_ylim(-0.7, len(labels) - 0.3)


# ---------------------------------------------------------------------------------------
# variance decomposition
# ---------------------------------------------------------------------------------------


def plot_variance_decomposition(fit: Fit, ax: Axes | None = None, *, hdi_prob: float = 0.94,
                                total: bool = False) -> Axes:
    """Each component's share of the variance, with HDIs, sorted by posterior mean.

    Parameters
    ----------
    fit : Fit
    ax : matplotlib Axes, optional
    hdi_prob : float in (0, 1), default 0.94
        Probability of the highest-density intervals.
    total : bool, default False
        False: phi, the share of the *explained* variance (the shares sum to 1). True:
        phi * R2, the share of the *total* variance of the response.

    Returns
    -------
    matplotlib Axes
        One tick label per component, the largest share at the top; one interval line per
        component (a LineCollection) and one line of points at the means.

    See Also
    --------
    r2d2formula.results.Fit.variance_decomposition : the same numbers as a table.
    """
    _check_prob(hdi_prob)
    phi = _draws(fit, "phi")  # (sample, component)
    names = [str(c) for c in fit.idata.posterior["component"].values]
    if total:
        phi = phi * _draws(fit, "R2")[:, None]
    means = phi.mean(axis=0)
    intervals = _hdi(phi, hdi_prob).T
    order = np.argsort(means, kind="stable")  # smallest first: drawn at the bottom
    ax = _new_axes(ax, (6, max(3.0, 1.0 + 0.35 * len(names))))
    _interval_plot(ax, [names[k] for k in order], means[order], intervals[order, 0],
                   intervals[order, 1])
    what = "phi * R2: share of the total variance" if total else \
        "phi: share of the explained variance"
    ax.set_xlabel(f"{what} ({hdi_prob:.0%} HDI)")
    ax.set_xlim(left=0)
    ax.set_title(f"{fit.model.variant}: variance decomposition")
    return _finish(ax)


# ---------------------------------------------------------------------------------------
# R2
# ---------------------------------------------------------------------------------------


def plot_r2(fit: Fit, ax: Axes | None = None, *, prior_draws: int = 4000,
            random_seed: int | None = 0, check_prior: bool = True) -> Axes:
    """Prior against posterior R2, with the chosen Beta density drawn over them.

    Parameters
    ----------
    fit : Fit
    ax : matplotlib Axes, optional
    prior_draws : int
        Prior draws for the histogram of the prior R2 implied by (beta0, W, aux).
    random_seed : int, optional
    check_prior : bool
        Draw the histogram of prior R2 computed by independent integration
        (:meth:`Model.prior_r2`); for non-gaussian families this shows how closely the
        chosen ``approx`` meets the Beta. False shows only the Beta density.

    Returns
    -------
    matplotlib Axes
    """
    ax = _new_axes(ax, (6, 3.5))
    a, b = fit.model.priors.r2_beta
    grid = np.linspace(0.0005, 0.9995, 400)
    bins = np.linspace(0, 1, 51)
    if check_prior:
        prior_r2 = fit.model.prior_r2(draws=prior_draws, random_seed=random_seed)
        ax.hist(prior_r2, bins=bins, density=True, alpha=0.35, color="C0",
                label=f"prior R2 implied by W ({fit.model.approx})")
    posterior = fit.idata.posterior["R2"].values.ravel()
    ax.hist(posterior, bins=bins, density=True, alpha=0.6, color="C1", label="posterior R2")
    ax.plot(grid, stats.beta(a, b).pdf(grid), color="k", lw=1.5,
            label=f"Beta({a:.3g}, {b:.3g}) prior")
    ax.set_xlim(0, 1)
    ax.set_xlabel("R2" + (" (relative to its supremum)" if fit.model.family.name ==
                         "negativebinomial" else ""))
    ax.set_ylabel("density")
    ax.set_title(f"{fit.model.variant}: prior and posterior R2")
    ax.legend(fontsize="small", frameon=False)
    return _finish(ax)


# ---------------------------------------------------------------------------------------
# group effects
# ---------------------------------------------------------------------------------------


def plot_group_effects(fit: Fit, factor: str, term: str = "1", ax: Axes | None = None, *,
                       hdi_prob: float = 0.94) -> Axes:
    """Caterpillar plot of the group effects ``r_<factor>`` of one term, sorted.

    Parameters
    ----------
    fit : Fit
    factor : str
        A grouping factor of the model (``"Subject"``, ``"g:h"``).
    term : str, default "1"
        The factor's term: ``"1"`` for the group intercepts, or a slope's column label
        (``"Days"``); the component name (``"Days|Subject"``) is accepted too.
    ax : matplotlib Axes, optional
    hdi_prob : float in (0, 1), default 0.94

    Returns
    -------
    matplotlib Axes
        One tick label per level, sorted by posterior mean (largest at the top), one interval
        per level and a vertical line at zero.

    Raises
    ------
    DesignError
        If the model has no such factor or the factor no such term; the message lists the
        valid choices.
    """
    _check_prob(hdi_prob)
    design = fit.design
    if factor not in design.factors:
        valid = list(design.factors)
        raise DesignError(
            f"the model has no grouping factor {factor!r}; "
            + (f"choose one of {valid}" if valid else "its formula has no group terms")
        )
    terms = list(design.factor_labels(factor))
    if term not in terms and term.endswith(f"|{factor}") and term[: -len(factor) - 1] in terms:
        term = term[: -len(factor) - 1]
    if term not in terms:
        raise DesignError(
            f"factor {factor!r} has no term {term!r}; its terms are {terms} "
            f"(components {[f'{t}|{factor}' for t in terms]})"
        )
    r = fit.idata.posterior[f"r_{factor}"].sel({f"{factor}__term": term})
    draws = r.stack(sample=("chain", "draw")).transpose("sample", factor).values
    levels = [str(v) for v in r[factor].values]
    means = draws.mean(axis=0)
    intervals = _hdi(draws, hdi_prob).T
    order = np.argsort(means, kind="stable")
    ax = _new_axes(ax, (6, min(max(3.0, 1.0 + 0.22 * len(levels)), 16)))
    _interval_plot(ax, [levels[k] for k in order], means[order], intervals[order, 0],
                   intervals[order, 1])
    ax.axvline(0.0, color="0.5", lw=1, ls="--")
    if len(levels) > 40:  # keep labels legible
        for label in ax.get_yticklabels():
            label.set_fontsize(max(4, 9 - len(levels) // 40))
    ax.set_xlabel(f"r_{factor}[{term}] ({hdi_prob:.0%} HDI)"
                  + ("" if fit.model.family.link == "identity"
                     else f", {fit.model.family.link} scale"))
    ax.set_ylabel(factor)
    ax.set_title(f"group effects: {term}|{factor}")
    return _finish(ax)


# ---------------------------------------------------------------------------------------
# posterior predictive check
# ---------------------------------------------------------------------------------------


def _observed_name(fit: Fit) -> str:
    observed = set(fit.idata.observed_data.data_vars)
    names = [n for n in fit.idata.posterior_predictive.data_vars if n in observed]
    if not names:
        raise DesignError("the posterior predictive group has no draws of the observed response")
    return str(names[0])


def plot_ppc(fit: Fit, ax: Axes | None = None, *, kind: Literal["kde", "hist"] = "kde",
             num_pp_samples: int = 50, random_seed: int | None = None) -> Axes:
    """Posterior predictive check: the observed response against replicated data sets.

    Draws the posterior predictive distribution first (:meth:`Fit.sample_posterior_predictive`)
    when the fit has none.

    Parameters
    ----------
    fit : Fit
    ax : matplotlib Axes, optional
    kind : {"kde", "hist"}, default "kde"
        "kde": kernel densities for continuous responses. Integer responses (bernoulli,
        poisson, negative binomial) are always drawn as histograms with one bin per value,
        as ArviZ does, since a density of integers misleads. Binomial responses are compared
        as proportions of successes. "hist": histograms on common bins.
    num_pp_samples : int, default 50
        Replicated data sets drawn, each as one thin line.
    random_seed : int, optional
        Chooses the replicated data sets (and seeds the posterior predictive draws when they
        are made here).

    Returns
    -------
    matplotlib Axes
        ``num_pp_samples`` thin lines, the mean of the replicates (dashed) and the observed
        data (thick, black).
    """
    if kind not in ("kde", "hist"):
        raise ValueError(f"kind must be 'kde' or 'hist', got {kind!r}")
    if not isinstance(num_pp_samples, (int, np.integer)) or num_pp_samples < 1:
        raise ValueError(f"num_pp_samples must be a positive integer, got {num_pp_samples!r}")
    if "posterior_predictive" not in fit.idata.groups():
        fit.sample_posterior_predictive(random_seed=random_seed)
    name = _observed_name(fit)
    pp = fit.idata.posterior_predictive[name]
    pp = pp.stack(sample=("chain", "draw")).transpose("sample", ...).values
    pp = pp.reshape(pp.shape[0], -1).astype(float)
    observed = np.asarray(fit.idata.observed_data[name].values, dtype=float).ravel()
    family = fit.model.family.name
    label = name
    if family == "binomial":
        trials = np.asarray(fit.design.response.trials, dtype=float)
        observed, pp = observed / trials, pp / trials
        label = f"{name} (proportion of trials)"
    rng = np.random.default_rng(random_seed)
    picked = rng.choice(pp.shape[0], size=min(num_pp_samples, pp.shape[0]), replace=False)
    ax = _new_axes(ax, (6, 3.5))
    integer = family in ("bernoulli", "poisson", "negativebinomial")
    if integer or kind == "hist":
        edges = _bins(observed, pp[picked], integer)
        curves = [np.histogram(pp[k], bins=edges, density=True)[0] for k in picked]
        obs_curve = np.histogram(observed, bins=edges, density=True)[0]
        x = 0.5 * (edges[:-1] + edges[1:])
        style = {"drawstyle": "steps-mid"}
    else:
        from arviz.stats.density_utils import kde

        lo = min(observed.min(), pp[picked].min())
        hi = max(observed.max(), pp[picked].max())
        margin = 0.1 * (hi - lo) if hi > lo else 1.0
        x = np.linspace(lo - margin, hi + margin, 256)
        curves = [_kde_on(kde, pp[k], x) for k in picked]
        obs_curve = _kde_on(kde, observed, x)
        style = {}
    for i, curve in enumerate(curves):
        ax.plot(x, curve, color="C0", alpha=0.2, lw=0.8,
                label="posterior predictive" if i == 0 else None, **style)
    ax.plot(x, np.mean(curves, axis=0), color="C1", ls="--", lw=1.5,
            label="posterior predictive mean", **style)
    ax.plot(x, obs_curve, color="k", lw=2, label="observed", **style)
    ax.set_xlabel(label)
    ax.set_ylabel("density" if not integer else "proportion")
    ax.set_title("posterior predictive check")
    ax.legend(fontsize="small", frameon=False)
    return _finish(ax)


def _kde_on(kde, values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """ArviZ's KDE of ``values`` interpolated onto ``x`` (zero outside its support)."""
    if np.ptp(values) == 0:
        return np.zeros_like(x)
    # no reflection at the data's range: the density tails off instead of stopping at a wall
    grid, density = kde(values, bound_correction=False, custom_lims=(x[0], x[-1]))
    return np.interp(x, grid, density, left=0.0, right=0.0)


def _bins(observed: np.ndarray, replicates: np.ndarray, integer: bool) -> np.ndarray:
    lo = float(min(observed.min(), replicates.min()))
    hi = float(max(observed.max(), replicates.max()))
    if integer:
        # one bin per value, but never more than _MAX_INTEGER_BINS (long count tails)
        top = min(hi, float(np.quantile(np.concatenate([observed, replicates.ravel()]),
                                        0.99)) if hi - lo > _MAX_INTEGER_BINS else hi)
        step = max(1.0, np.ceil((top - lo + 1) / _MAX_INTEGER_BINS))
        return np.arange(lo - 0.5, top + step + 0.5, step)
    return np.histogram_bin_edges(observed, bins="auto", range=(lo, hi))


# ---------------------------------------------------------------------------------------
# conditional predictions
# ---------------------------------------------------------------------------------------

_NEW_LEVEL = "__r2d2formula_conditional__"


def _training_data(fit: Fit) -> pd.DataFrame:
    """The columns the formula uses, rows with missing values dropped (as the fit did)."""
    from r2d2formula.design import training_data

    return training_data(fit.design).dropna()


def _formula_columns(fit: Fit, data: pd.DataFrame
                     ) -> tuple[list[str], dict[str, tuple[str, ...]], set[str]]:
    """Data columns the formula reads (response excluded), grouping factors' columns, and
    the response's columns."""
    spec = fit.design.builder.spec
    response = {v.name for v in spec.response_variables}
    factor_columns = {g.factor_name: tuple(g.factor) for g in spec.groups}
    columns = [c for c in data.columns if c not in response]
    return columns, factor_columns, response


def _unseen_level(series: pd.Series) -> object:
    """A value of a grouping column that no training row has: a number above the largest for
    numeric columns (kept numeric, as the model expects), else a reserved text."""
    if _is_numeric(series):
        return series.max() + 1
    return _NEW_LEVEL


def _reference(series: pd.Series) -> object:
    """Reference level of a categorical column: the first category, or the smallest value."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.cat.remove_unused_categories().cat.categories[0]
    return sorted(series.dropna().unique(), key=str)[0]


def plot_conditional(fit: Fit, predictor: str, by: str | None = None, ax: Axes | None = None,
                     *, kind: Literal["mean", "link", "response"] = "mean",
                     hdi_prob: float = 0.94, n_points: int = 50,
                     levels: Sequence[object] | None = None,
                     random_seed: int | None = None) -> Axes:
    """Predictions over one numeric predictor, with HDI bands, optionally one line per group.

    The predictor runs over its observed range; every other numeric predictor is held at its
    mean and every other categorical one at its reference level (the first category, or the
    smallest value). Without ``by`` the lines are population-level predictions (no group
    effects). With ``by`` a grouping factor, each line adds that factor's effect for one level
    (other factors' effects are left out); with ``by`` a categorical predictor, each line holds
    it at one of its levels.

    Parameters
    ----------
    fit : Fit
    predictor : str
        A numeric data column the formula uses (not the response).
    by : str, optional
        A grouping factor or a categorical data column the formula uses.
    ax : matplotlib Axes, optional
    kind : {"mean", "link", "response"}, default "mean"
        What :meth:`Fit.predict` returns: the mean response, the linear predictor, or draws
        of the response (prediction intervals).
    hdi_prob : float in (0, 1), default 0.94
    n_points : int, default 50
        Grid points over the predictor's range.
    levels : sequence, optional
        With ``by``, the levels to draw (default all, in their sorted order).
    random_seed : int, optional
        For the draws ``kind="response"`` makes.

    Returns
    -------
    matplotlib Axes
        One line and one HDI band (a PolyCollection) per level of ``by`` (one of each without
        ``by``).

    Raises
    ------
    DesignError
        For a predictor or ``by`` the formula does not use or of the wrong type, or levels not
        in the data; the message lists the valid choices.
    """
    _check_prob(hdi_prob)
    if not isinstance(n_points, (int, np.integer)) or n_points < 2:
        raise ValueError(f"n_points must be an integer >= 2, got {n_points!r}")
    data = _training_data(fit)
    columns, factor_columns, _ = _formula_columns(fit, data)
    numeric = [c for c in columns if c in data and _is_numeric(data[c])
               and not any(c in cols for cols in factor_columns.values())]
    if predictor not in numeric:
        raise DesignError(
            f"{predictor!r} is not a numeric predictor of this model; choose one of {numeric}"
            if numeric else "the model has no numeric predictor to plot over"
        )
    categorical = [c for c in columns if c in data and not _is_numeric(data[c])
                   and not any(c in cols for cols in factor_columns.values())]
    single_factors = {name: cols[0] for name, cols in factor_columns.items() if len(cols) == 1}
    if by is not None and by not in single_factors and by not in categorical:
        raise DesignError(
            f"by={by!r} is neither a grouping factor nor a categorical predictor of this model; "
            f"choose one of {list(single_factors) + categorical}"
        )

    grid = np.linspace(float(data[predictor].min()), float(data[predictor].max()), n_points)
    base = {}
    for column in columns:
        if column == predictor:
            continue
        if any(column in cols for cols in factor_columns.values()):
            base[column] = _unseen_level(data[column])  # its effect is zero (new_levels="zero")
        elif _is_numeric(data[column]):
            base[column] = float(data[column].mean())
        else:
            base[column] = _reference(data[column])
    base.update(_response_placeholders(fit, data))

    if by is None:
        groups: list[tuple[str, object]] = [("", None)]
    else:
        column = single_factors.get(by, by)
        values = sorted(data[column].dropna().unique(), key=_sort_key)
        if levels is not None:
            wanted = [str(v) for v in levels]
            unknown = [v for v in wanted if v not in {str(x) for x in values}]
            if unknown:
                raise DesignError(f"levels {unknown} are not levels of {by!r}; its levels are "
                                  f"{[str(v) for v in values][:20]}"
                                  + (" ..." if len(values) > 20 else ""))
            values = [v for v in values if str(v) in wanted]
        groups = [(str(v), v) for v in values]

    rows = []
    for _, value in groups:
        frame = pd.DataFrame({predictor: grid, **{k: [v] * n_points for k, v in base.items()}})
        if by is not None:
            frame[single_factors.get(by, by)] = [value] * n_points
        rows.append(frame)
    new = pd.concat(rows, ignore_index=True)
    grouping = {c for cols in factor_columns.values() for c in cols}
    for column in new.columns:  # text stays text, and numeric group codes keep their dtype
        if column in data and not _is_numeric(data[column]):
            new[column] = new[column].astype(object)
        elif column in grouping:
            new[column] = new[column].astype(data[column].dtype)
    predictions = fit.predict(new, kind=kind, group_effects=by in single_factors,
                              new_levels="zero", random_seed=random_seed)
    draws = predictions.draws.stack(sample=("chain", "draw")).transpose("sample", ...).values

    ax = _new_axes(ax, (6, 4))
    for k, (name, _) in enumerate(groups):
        block = draws[:, k * n_points:(k + 1) * n_points]
        mean = block.mean(axis=0)
        bands = _hdi(block, hdi_prob).T
        color = f"C{k % 10}"
        ax.plot(grid, mean, color=color, lw=1.8, label=name or "posterior mean")
        ax.fill_between(grid, bands[:, 0], bands[:, 1], color=color, alpha=0.2, lw=0)
    ax.set_xlabel(predictor)
    response = fit.design.response.name
    ax.set_ylabel({"mean": f"E[{response}]", "link": f"linear predictor ({response})",
                   "response": response}[kind])
    ax.set_title(f"conditional {kind} over {predictor}" + (f" by {by}" if by else "")
                 + f" ({hdi_prob:.0%} HDI)")
    if by is not None and len(groups) <= 12:
        ax.legend(title=by, fontsize="small", frameon=False)
    return _finish(ax)


def _response_placeholders(fit: Fit, data: pd.DataFrame) -> dict[str, object]:
    """Binomial responses: 0 successes of 1 trial, so the model predicts per trial (the
    response values themselves are not used)."""
    spec = fit.design.builder.spec
    if spec.response.second is None:
        return {}
    out: dict[str, object] = {v.name: 0 for v in spec.response.value.variables if v.name in data}
    out.update({v.name: 1 for v in spec.response.second.variables if v.name in data})
    return out


def _is_numeric(series: pd.Series) -> bool:
    from r2d2formula.design.evaluate import is_numeric

    return is_numeric(series)


def _sort_key(value: object) -> tuple[int, object]:
    return (0, value) if isinstance(value, (int, float, np.number)) else (1, str(value))
