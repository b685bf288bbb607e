"""The user-facing :class:`Model`: formula + data + family + prior, ready to fit.

``Model`` wires the stages together (formula -> design -> priors -> PyMC graph -> sampling)
and holds no maths and no PyMC calls of its own.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from r2d2formula.design import build_design
from r2d2formula.errors import ArgumentError, DesignError, R2D2FormulaWarning
from r2d2formula.families import Family, get_family
from r2d2formula.priors.defaults import resolve_priors
from r2d2formula.priors.spec import R2D2, Prior

if TYPE_CHECKING:
    import arviz as az

    from r2d2formula.results import Fit

__all__ = ["Model"]

SamplerName = Literal["nutpie", "pymc", "numpyro", "blackjax"]


class Model:
    """A Bayesian (multilevel) regression with an R2D2-family prior.

    Parameters
    ----------
    formula : str
        lme4-style formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    data : pandas.DataFrame
        The data; every column the formula names must be present.
    family : str, default "gaussian"
        One of "gaussian", "bernoulli", "binomial", "poisson", "negativebinomial".
    link : str, optional
        The link; the family's default when None ("logit" or "probit" for bernoulli and
        binomial).
    prior : R2D2, optional
        R2D2 hyperparameters (default ``R2D2()``: R2 ~ Beta(1, 1), concentration 0.5).
    priors : dict of str to Prior, optional
        Overrides for ``"Intercept"`` (of the centered design, link scale), ``"sigma"``,
        ``"alpha"`` and ``"sd"``.
    variant : {"auto", "R2D2", "R2D2-GLM", "R2D2M2", "R2D2-GLMM"}, default "auto"
        "auto" chooses by SPEC section 3; "R2D2" on a model with group terms keeps the R2D2
        prior for population-level terms and gives group SDs independent priors.
    dropna : bool, default False
        Drop rows with missing values in the columns the formula uses (and say how many);
        by default missing values are an error.

    Attributes
    ----------
    design : Design
        The parsed design (response, columns, factors, components).
    family : Family
    priors : ResolvedPriors
        Every prior, defaults filled in.

    Examples
    --------
    >>> from r2d2formula import Model, datasets
    >>> m = Model("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))
    >>> m.variant
    'R2D2M2'
    >>> list(m.components.index)
    ['Days', '1|Subject', 'Days|Subject']
    """

    def __init__(
        self,
        formula: str,
        data: pd.DataFrame,
        *,
        family: str | Family = "gaussian",
        link: str | None = None,
        prior: R2D2 | None = None,
        priors: Mapping[str, Prior] | None = None,
        variant: str = "auto",
        dropna: bool = False,
    ) -> None:
        if not isinstance(data, pd.DataFrame):
            raise DesignError(
                f"data must be a pandas DataFrame, got {type(data).__name__}; "
                "wrap it with pandas.DataFrame(...)"
            )
        self.formula = formula
        self.family = get_family(family, link)
        self.design = build_design(formula, data, dropna=dropna)
        self.family.check(self.design.response)
        self.priors = resolve_priors(self.design, self.family, prior, priors, variant)
        #: the constructor's choices, for refits on other data and for saving
        self.options = {"prior": prior, "priors": dict(priors) if priors else None,
                        "variant": variant, "dropna": dropna}
        self._graphs = None  # CompiledGraphs, made on first use (imports PyMC)

    # ---- what the model is ---------------------------------------------------------
    @property
    def variant(self) -> str:
        """The chosen R2D2 variant ("R2D2", "R2D2-GLM", "R2D2M2" or "R2D2-GLMM")."""
        return self.priors.variant.name

    @property
    def variant_reason(self) -> str:
        """Why that variant was chosen."""
        return self.priors.variant.reason

    @property
    def approx(self) -> str:
        """How W follows from R2: "exact" (always for gaussian), "gbp" or "linear"."""
        return self.priors.approx

    @property
    def components(self) -> pd.DataFrame:
        """The variance components: kind, term, factor, column scale and concentration."""
        table = self.design.components.copy()
        conc = dict(zip(self.priors.variant.components, self.priors.concentrations, strict=True))
        table["concentration"] = [conc.get(name) for name in table.index]
        table["in_r2d2"] = [name in conc for name in table.index]
        return table

    def prior_table(self) -> pd.DataFrame:
        """Every prior of the model in words."""
        return pd.DataFrame(self.priors.table(), columns=["parameter", "prior"])

    # ---- the graph -----------------------------------------------------------------
    def build(self):
        """The ``pymc.Model`` (built once and cached; shared with refits on other data of the
        same structure, see :meth:`fit`)."""
        return self._compiled_graphs().sampling_graph(self, self.design, self.family, self.priors)[0]

    @property
    def graph_info(self):
        """Names in the built graph (response, dims, hidden sampling variables)."""
        return self._compiled_graphs().sampling_graph(self, self.design, self.family, self.priors)[1]

    def _compiled_graphs(self):
        if self._graphs is None:
            from r2d2formula.backend.reuse import CompiledGraphs

            self._graphs = CompiledGraphs()
        return self._graphs

    def build_predictive(self):
        """The prediction graph: the model graph plus ``eta``, ``mu`` and effects of new
        levels, with this model's data set in (see :func:`r2d2formula.backend.build_model`).

        Returns
        -------
        (pymc.Model, GraphInfo)
        """
        return self._compiled_graphs().predictive_graph(self, self.design, self.family, self.priors)

    def with_data(self, data: pd.DataFrame) -> Model:
        """The same model (formula, family, priors) on other data.

        Data-based choices (column scales, the intercept prior's location, ...) are made
        anew from ``data``. When the structure agrees (the same columns, the same number of
        levels per factor, ...), the new model shares this one's compiled graphs, so fitting
        it skips building and compiling; otherwise it gets its own (with a warning naming
        the difference).

        Parameters
        ----------
        data : pandas.DataFrame

        Returns
        -------
        Model
        """
        from r2d2formula.backend.reuse import structure_difference, structure_key

        other = Model(self.formula, data, family=self.family, **self.options)
        if self._graphs is None or self._graphs.key is None:
            return other
        reason = structure_difference(
            self._graphs.key, structure_key(other.design, other.family, other.priors))
        if reason is None:
            other._graphs = self._graphs
        else:
            warnings.warn(
                f"the new data cannot reuse the compiled model: {reason}; building anew",
                R2D2FormulaWarning, stacklevel=2,
            )
        return other

    # ---- sampling ------------------------------------------------------------------
    def fit(
        self,
        *,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        sampler: SamplerName | None = None,
        target_accept: float = 0.95,
        random_seed: int | None = None,
        progressbar: bool = True,
        cores: int | None = None,
        data: pd.DataFrame | None = None,
        log_likelihood: bool | None = None,
        sampler_kwargs: Mapping[str, Any] | None = None,
    ) -> Fit:
        """Sample the posterior.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            Fit the same formula, family and priors to other data (``self.with_data(data)``)
            instead of this model's: with the same structure (columns, levels per factor)
            the compiled model is reused, which is what makes simulation studies and
            simulation-based calibration fast. The returned fit's ``model`` is the new one.
        draws, tune, chains : int
            Posterior draws and tuning steps per chain, and the number of chains.
        sampler : {"nutpie", "pymc", "numpyro", "blackjax"}, optional
            The NUTS implementation (default: see ``r2d2formula.backend.DEFAULT_SAMPLER``).
        target_accept : float, default 0.95
            NUTS target acceptance rate. R2D2 posteriors have funnels; 0.95 removed the
            divergences of 0.8 at no loss of effective draws per second (SPEC section 2).
        random_seed : int, optional
            Seed for reproducible draws.
        progressbar : bool
        cores : int, optional
            Parallel chains (default: up to 2).
        log_likelihood : bool, optional
            Store the pointwise log-likelihood (rows x chains x draws numbers), which
            :meth:`Fit.loo` and :meth:`Fit.waic` need. Default: stored when it takes at most
            1 GB, else left out with a warning (a million rows and 4 x 1000 draws would take
            32 GB); ``True`` stores it whatever its size.
        sampler_kwargs : mapping, optional
            Further options of the chosen sampler, passed on as they are: ``pm.sample``'s for
            pymc (``callback``, ``step``, ...), ``nutpie.sample``'s for nutpie
            (``low_rank_modified_mass_matrix``, ...), ``pymc.sampling.jax.sample_jax_nuts``'s
            for numpyro and blackjax (``chain_method``, ``nuts_kwargs={"dense_mass":
            False}``, ``var_names``, ...: ``JAX_SAMPLER_OPTIONS``). See
            :func:`r2d2formula.backend.sample_model`.

        Returns
        -------
        Fit
        """
        from r2d2formula.backend import DEFAULT_SAMPLER, check_sampler, sample_model
        from r2d2formula.results import Fit

        if data is not None:
            return self.with_data(data).fit(
                draws=draws, tune=tune, chains=chains, sampler=sampler,
                target_accept=target_accept, random_seed=random_seed, progressbar=progressbar,
                cores=cores, log_likelihood=log_likelihood, sampler_kwargs=sampler_kwargs,
            )
        sampler = sampler or DEFAULT_SAMPLER
        check_sampler(sampler)
        _check_positive_int(draws=draws, tune=tune, chains=chains)
        if not 0.0 < target_accept < 1.0:
            raise ArgumentError(f"target_accept must lie in (0, 1), got {target_accept!r}")
        if log_likelihood is None:
            log_likelihood = _store_log_likelihood(self.design.n_obs, chains, draws)
        model = self.build()
        compiled = self._compiled_graphs().nutpie_model() if sampler == "nutpie" else None
        idata, compiled = sample_model(
            model, sampler=sampler, draws=draws, tune=tune, chains=chains, cores=cores,
            target_accept=target_accept, random_seed=random_seed, progressbar=progressbar,
            compiled=compiled, log_likelihood=bool(log_likelihood),
            sampler_kwargs=sampler_kwargs, info=self.graph_info,
        )
        if compiled is not None:
            self._graphs.compiled.setdefault(sampler, compiled)
        fit = Fit(model=self, idata=idata, sampler=sampler)
        fit.warn_diagnostics()
        return fit

    def sample_prior_predictive(self, draws: int = 500, *,
                                random_seed: int | None = None) -> az.InferenceData:
        """Draw from the prior and the prior predictive distribution through the model graph.

        Parameters
        ----------
        draws : int
        random_seed : int, optional

        Returns
        -------
        arviz.InferenceData
            Groups ``prior`` (every parameter, named as in the posterior) and
            ``prior_predictive`` (the response, one draw of all rows per prior draw).

        Examples
        --------
        >>> from r2d2formula import Model, datasets
        >>> m = Model("Reaction ~ Days + (1 | Subject)", datasets.load("sleepstudy"))
        >>> prior = m.sample_prior_predictive(draws=100, random_seed=1)
        >>> prior.prior_predictive["Reaction"].shape
        (1, 100, 180)
        """
        from r2d2formula.backend import sample_prior

        _check_positive_int(draws=draws)
        return sample_prior(self.build(), draws=draws, random_seed=random_seed)

    def sample_prior(self, draws: int = 1000, *, random_seed: int | None = None) -> az.InferenceData:
        """Alias of :meth:`sample_prior_predictive` (kept for earlier code)."""
        return self.sample_prior_predictive(draws, random_seed=random_seed)

    def prior_parameters(self) -> dict:
        """The prior's numbers after defaults and data-based choices.

        Returns
        -------
        dict
            ``r2_beta`` (a, b) of the Beta prior on R2; ``concentration`` per component;
            ``approx``; ``intercept_plugin`` (the data-based beta0 location); ``map_trials``
            and ``offset_mean`` (inputs of the R2 map); ``gbp``, Yanchenko et al.'s fitted
            (a*, b*, c*, d*) with W = d* (U / (1 - U))^(1 / c*), U ~ Beta(a*, b*), when
            ``approx="gbp"`` (else None).
        """
        pri = self.priors
        return {
            "r2_beta": pri.r2_beta,
            "concentration": dict(zip(pri.variant.components, pri.concentrations, strict=True)),
            "approx": pri.approx,
            "intercept_plugin": pri.intercept_plugin,
            "map_trials": pri.map_trials,
            "offset_mean": pri.offset_mean,
            "gbp": pri.gbp_params,
        }

    def prior_r2(self, draws: int = 4000, *, random_seed: int | None = None) -> np.ndarray:
        """R2 implied by prior draws of (beta0, W, aux), by independent numerical integration.

        Draws beta0, W and the auxiliary parameters from the model's prior (through the
        model graph, so this checks the graph) and computes, for each draw,
        Var(mu) / (Var(mu) + E[sigma2]) with eta ~ Normal(beta0 + mean offset, W) by adaptive
        quadrature that shares no code with the R2 -> W map the model uses. With
        ``approx="exact"`` the result follows the Beta prior on R2 to numerical precision.

        Returns
        -------
        numpy.ndarray, shape (draws,)
            On the relative scale (R2 divided by its supremum) for the negative binomial.

        Examples
        --------
        >>> from scipy import stats
        >>> from r2d2formula import Model, datasets
        >>> m = Model("count ~ zAge + zBase + (1 | patient)", datasets.load("epilepsy"),
        ...           family="poisson")
        >>> r2 = m.prior_r2(draws=500, random_seed=1)
        >>> bool(stats.kstest(r2, stats.beta(1, 1).cdf).pvalue > 0.01)
        True
        """
        from r2d2formula.backend.prior import draw_prior_variables
        from r2d2formula.priors.r2_maps import r2_by_integration

        names = ["beta0", "W", *self.family.aux]
        values = draw_prior_variables(self.build(), names, draws=draws, random_seed=random_seed)
        beta0 = values.get("beta0", np.zeros(draws)) + self.priors.offset_mean
        aux = {name: values[name] for name in self.family.aux}
        return np.asarray(
            r2_by_integration(self.family, values["W"], beta0, aux, trials=self.priors.map_trials),
            dtype=float,
        )

    def __repr__(self) -> str:
        from r2d2formula.display import model_text

        return model_text(self)

    # ---- display -------------------------------------------------------------------
    def _repr_html_(self) -> str:
        """Jupyter's rich display; see :func:`r2d2formula.display.model_html`."""
        from r2d2formula.display import model_html

        return model_html(self)

    def latex(self, environment: Literal["align*", "aligned"] = "align*") -> str:
        r"""The model written out in LaTeX: likelihood, linear predictor and every prior.

        ``IPython.display.Math(m.latex("aligned"))`` or a Markdown cell shows it; see
        :func:`r2d2formula.display.model_latex`.

        Examples
        --------
        >>> from r2d2formula import Model, datasets
        >>> m = Model("Reaction ~ Days + (1 | Subject)", datasets.load("sleepstudy"))
        >>> print(m.latex().splitlines()[0])
        \begin{align*}
        """
        from r2d2formula.display import model_latex

        return model_latex(self, environment)


#: Largest pointwise log-likelihood :meth:`Model.fit` stores unless asked (bytes).
LOG_LIKELIHOOD_BYTES = 2**30


def _store_log_likelihood(n_obs: int, chains: int, draws: int) -> bool:
    """Whether the default fit stores the pointwise log-likelihood; warns where it does not."""
    size = 8 * n_obs * chains * draws
    if size <= LOG_LIKELIHOOD_BYTES:
        return True
    warnings.warn(
        f"the pointwise log-likelihood is not stored: {n_obs:,} rows x {chains} chains x "
        f"{draws} draws would take {size / 2**30:.1f} GB of memory; loo() and waic() need it. "
        "Pass fit(log_likelihood=True) to store it anyway", R2D2FormulaWarning, stacklevel=3)
    return False


def _check_positive_int(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ArgumentError(f"{name} must be a positive integer, got {value!r}")
