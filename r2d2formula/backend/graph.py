"""Build the PyMC model from a design, a family and resolved priors.

This is the only place the linear predictor is written. Data enter as ``pm.Data`` so that
prediction swaps them with ``pm.set_data`` and samples this same graph.

Names and coordinates follow SPEC section 4: ``Intercept``, ``beta0``, ``b`` (dim ``coef``),
``sigma``/``alpha``, ``R2``, ``W``, ``phi`` (dim ``component``), ``sd_<factor>`` (dim
``<factor>__term``), ``r_<factor>`` (dims ``<factor>``, ``<factor>__term``) and
``cor_<factor>`` (dims ``<factor>__term``, ``<factor>__term_bis``). Raw sampling variables
(``log_V``, ``b_u``, ``r_<f>_u``/``r_<f>_u<k>`` and ``r_<f>_ub``, ``r_<f>_c<k>``, ``r_<f>_z<k>``,
``cor_<f>_packed``) are listed in ``GraphInfo.hidden``.

Parameterisation (sampling geometry)
------------------------------------
The joint prior is exactly SPEC section 2's; only the coordinates NUTS moves in differ.
R2 and phi are sampled as the log variances of the components, ``log V_k = log(phi_k W)``
(:class:`_VarianceSplit`): the data pin a well-measured component's variance, which in
(R2, phi) is a narrow ridge ``log phi_k + log W = const`` and in log V one coordinate.
A coefficient ``b ~ N(0, sd)`` (sd = sqrt(phi_j W) / s_j, or a group SD) whose likelihood
is approximately N(hat, 1 / prec) has, given sd, the posterior mean
``m = hat sd^2 prec / (1 + sd^2 prec)`` and standard deviation ``s = sd / sqrt(1 + sd^2 prec)``.
It is sampled as ``b = m + s u`` with ``u ~ N(-m / s, sd / s)``: an affine map of b for
each sd, so b keeps exactly its prior (:func:`_whitened`), and u is close to standard normal
in the posterior whatever sd is. Where sd is small against the data's standard error
(``sd^2 prec << 1``) this is the non-centered ``b = sd z``; where it is large, the centered
parameterisation standardised by the data; in between, the mix that the current sd calls for
(partial non-centering, Papaspiliopoulos, Roberts & Skold 2007, with the weight a function
of sd instead of a constant).

Why a per-draw weight: the R2D2 shares phi_j of a coefficient that the data measure well
and find near zero span many orders of magnitude in the posterior (1e-7 .. 0.2 in issue 3's
poisson GLMM). A non-centered coefficient then diverges at large phi (z must be tiny: the
likelihood's funnel), a centered one at tiny phi (b must be tiny: the prior's funnel), so no
fixed choice per coefficient (the former pilot |t| > 2 rule) avoids both.

The population parameters that group terms share (the intercept, a varying slope's mean) are
absorbed by the best-informed factor, whose effects also follow the other factors' level
means; those factors' common modes are sampled on their prior's scale
(:func:`_absorbed_shifts`, :class:`CommonModeScale`).

hat and prec come from a pilot fit that needs no sampling
(:func:`r2d2formula.backend.pilot.pilot_fit`: IRLS on the population columns; per-level
weighted least squares for group terms), enter the graph as ``pm.Data`` (``pilot_*``) and
apply to population coefficients (normal or Laplace kernel), group terms of ``||`` and
single-column blocks, and ``|`` blocks of two terms (the pair ``u0``, ``u1 | u0`` written
by its exact bivariate factorisation, u1 whitened again given u0 and the correlation, so that
a correlation near +-1, which shrinks u1's conditional scale to 0, leaves no funnel:
:func:`_whitened_pair`). A ``|`` block of three or more terms is sampled
centered (``r[level] ~ MvNormal(0, S R S)``) when the pilot finds the typical level's
reliability above one half, else non-centered (``r = (diag(sd) L z)'``).

Measured: see benchmarks/README.md, "Divergences at default settings".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.distributions.shape_utils import rv_size_is_none
from pymc.logprob.transforms import Transform
from pymc.pytensorf import convert_observed_data
from pytensor.compile.sharedvalue import SharedVariable
from scipy import special

from r2d2formula.backend import numba_ops  # noqa: F401 (numba implementations of PyMC ops)
from r2d2formula.backend.likelihood import NORMALIZER, add_likelihood, log_normalizer
from r2d2formula.backend.pilot import pilot_data, pilot_fit
from r2d2formula.backend.xp import PYTENSOR
from r2d2formula.design.types import Design
from r2d2formula.families import Family
from r2d2formula.priors.defaults import ResolvedPriors
from r2d2formula.priors.spec import Prior

__all__ = ["build_model", "GraphInfo", "OBS_DIM", "graph_data", "set_graph_data"]

OBS_DIM = "__obs__"
_ROW_VECTORS = ("offset", "trials", "y_observed", NORMALIZER)
#: names of the raw variables that are whitened (b = m + s u) or non-centered (r = sd L z)
_UNIT_SCALE = re.compile(r"b_u|r_.+_(u\d*b?|z\d+)")
#: the raw LKJ correlations of correlated group-level terms (``_correlation_blocks``)
_CORRELATION = re.compile(r"cor_.+_packed\d*")
_RESERVED = {"Intercept", "beta0", "b", "sigma", "alpha", "R2", "W", "phi", "eta", "mu"}


@dataclass(frozen=True, kw_only=True)
class GraphInfo:
    """Names in the built graph that later stages need."""

    response: str
    factor_dims: dict[str, str]
    term_dims: dict[str, str]
    hidden: tuple[str, ...]
    #: raw variables close to standard normal in the posterior (whitened and non-centered
    #: effects): NUTS's initial mass matrix needs no estimate for them
    unit_scale: tuple[str, ...] = ()
    #: where NUTS starts, by free variable (on its own scale), for the variables whose prior
    #: support point is a poor start: expressions of the graph's data (the pilot), so a refit
    #: that sets other data starts from its own (see :func:`_pilot_log_variances`)
    start: dict[str, Any] = field(default_factory=dict)
    #: the raw LKJ correlation variables of correlated group-level terms (``(x | g)``): their
    #: posterior is tied to the group SDs and effects, which a dense mass matrix follows
    #: (:func:`~r2d2formula.backend.sampling.sample_model`)
    correlations: tuple[str, ...] = ()


def _group_z_matrix(design: Design, factor: str) -> np.ndarray | None:
    """The non-intercept Z columns of ``factor`` (intercept columns need no data)."""
    columns = [term.matrix[:, j] for term in design.group_terms if term.factor == factor
               for j, label in enumerate(term.labels) if label != "1"]
    return np.column_stack(columns) if columns else None


def _prior_data_params(tag: str, prior: Prior) -> dict[str, np.ndarray]:
    return {f"prior_{tag}_{key}": np.asarray(float(value)) for key, value in prior.params.items()}


def graph_data(design: Design, family: Family, priors: ResolvedPriors) -> dict[str, np.ndarray]:
    """Every value the graph reads from the data, by ``pm.Data`` name.

    The graph holds no number derived from the data as a constant: observations (``X``,
    ``offset``, ``trials``, ``codes_<f>``, ``Z_<f>``, ``y_observed`` and its log-density term
    ``y_log_normalizer``, :mod:`~r2d2formula.backend.likelihood`), column statistics
    (``X_means``, ``X_scales``, ``Z_scales_<f>``: the s_j of SPEC section 2), the parameters of
    the intercept and auxiliary priors (``prior_<parameter>_<argument>``, data-based by default)
    and the R2-map inputs (``r2map_shift``, the mean offset; ``r2map_trials``; ``gbp_params``).
    A refit on other data of the same structure sets these values (``pm.set_data``, or
    ``with_data`` on a compiled nutpie model) and reuses the compiled graph; prediction sets the
    observation-level ones.
    """
    common = design.common
    p = len(common.labels)
    autoscale = priors.r2d2.autoscale
    values: dict[str, np.ndarray] = {}
    if p:
        values["X"] = np.asarray(common.matrix, dtype=float)
        values["X_means"] = (np.asarray(common.means, dtype=float) if common.intercept
                             else np.zeros(p))
        values["X_scales"] = np.asarray(common.scales, dtype=float) if autoscale else np.ones(p)
    if design.offset is not None:
        values["offset"] = np.asarray(design.offset, dtype=float)
    if design.response.trials is not None:
        values["trials"] = np.asarray(design.response.trials, dtype=float)
    for factor, gf in design.factors.items():
        values[f"codes_{factor}"] = np.asarray(gf.codes, dtype="int64")
        z_matrix = _group_z_matrix(design, factor)
        if z_matrix is not None:
            values[f"Z_{factor}"] = z_matrix
        terms = [t for t in design.group_terms if t.factor == factor]
        q = sum(len(t.labels) for t in terms)
        values[f"Z_scales_{factor}"] = (np.concatenate([t.scales for t in terms]).astype(float)
                                        if autoscale else np.ones(q))
    values["y_observed"] = np.asarray(design.response.values, dtype=float)
    normalizer = log_normalizer(family, values["y_observed"], design.response.trials)
    if normalizer is not None:
        values[NORMALIZER] = normalizer
    if common.intercept:
        values.update(_prior_data_params("beta0", priors.intercept))
    for name, prior in priors.aux.items():
        values.update(_prior_data_params(name, prior))
    if priors.variant.independent_groups and design.factors:
        values.update(_prior_data_params("sd", priors.group_sd))
    if family.name != "gaussian":
        values["r2map_shift"] = np.asarray(float(priors.offset_mean))
        values["r2map_trials"] = np.asarray(float(priors.map_trials))
        if priors.approx == "gbp" and priors.gbp_params is not None:
            values["gbp_params"] = np.asarray(priors.gbp_params, dtype=float)
    return values


def response_name(design: Design) -> str:
    """Name of the observed variable: the response's name unless it clashes with a parameter."""
    name = design.response.name
    taken = _RESERVED | {f"sd_{f}" for f in design.factors} | {f"r_{f}" for f in design.factors}
    return name if name and name not in taken else "y"


def _prior_rv(name: str, prior: Prior, data: dict, tag: str, **kwargs) -> pt.TensorVariable:
    """``prior`` as a PyMC variable whose parameters are the ``prior_<tag>_*`` data."""
    dist = getattr(pm, prior.distribution)
    params = {key: data[f"prior_{tag}_{key}"] for key in prior.params}
    return dist(name, **params, **kwargs)


def _packed_to_corr(packed: pt.TensorVariable, q: int) -> pt.TensorVariable:
    upper = np.triu_indices(q, 1)
    corr = pt.eye(q)
    corr = pt.set_subtensor(corr[upper], packed)
    return pt.set_subtensor(corr[(upper[1], upper[0])], packed)


class _VarianceSplit:
    """The R2D2 split of the linear predictor's variance, sampled as the log component
    variances ``log V_k = log(phi_k W)`` (the raw variable ``log_V``, dim ``component``).

    SPEC section 2's prior is R2 ~ Beta(a, b) (or the GBP's U ~ Beta(a*, b*)), W = W(R2) and
    phi ~ Dirichlet(c) independent of R2. Sampling (R2, phi) puts a narrow ridge in front of
    NUTS wherever the data pin one component's variance ``V_k = phi_k W`` (a factor with many
    well-measured levels pins its SD to about 1 / sqrt(2 levels)) while others stay vague:
    W and phi_k then trade off along ``log phi_k + log W = const``, which a diagonal mass
    matrix cannot follow (measured on issue 5's scale model at 20,000 rows: correlation -0.98
    between log W and log phi, ESS 2-7 for R2 and phi in 200 draws). In ``log V`` each
    component's variance is one coordinate, so the data pin coordinates, not combinations.

    The change of variables is exact: with ``u = log W = logsumexp(log V)``,
    ``phi = exp(log V - u)`` and ``g(u)`` the logit of the Beta-distributed variable at
    ``W = e^u`` (logit R2 for the exact map; :func:`r2d2formula.priors.r2_maps.logit_r2_of_w`),
    the density of ``log V`` is

    ``a log sigmoid(g) + b log sigmoid(-g) - log B(a, b) + log g'(u)
    + sum_k c_k (log V_k - u) + log Gamma(C) - sum_k log Gamma(c_k)``  (C = sum c_k)

    (Beta density of R2 times dR2/dW, Dirichlet density of phi, the Jacobian W^(K-1) of
    (W, phi_1..phi_(K-1)) -> V and that of the exponential). It needs only the forward map
    R2(W) and its derivative, symbolic in the graph (every backend). Forward draws (prior
    predictive) draw R2, W(R2) and phi as the prior states them.
    """

    def __init__(self, family: Family, priors: ResolvedPriors, conc: np.ndarray) -> None:
        self.family = family
        self.priors = priors
        self.conc = conc
        self.gbp = priors.approx == "gbp" and priors.gbp_params is not None
        self.aux_names = tuple(priors.aux)
        self.reads_beta0 = family.name != "gaussian" and not self.gbp

    # parameters of the CustomDist: beta0 where the map reads it (so that, for example, a
    # gaussian's variances do not depend on beta0 in the graph), the auxiliary parameters,
    # then the map's data
    def params(self, beta0, aux: dict, data: dict) -> list:
        head = [beta0] if self.reads_beta0 else []
        return [*head, *(aux[name] for name in self.aux_names), *self._extra(data)]

    def _extra(self, data: dict) -> list:
        if self.gbp:
            return [data["gbp_params"]]
        if self.family.name != "gaussian":
            return [data["r2map_shift"], data["r2map_trials"]]
        return []

    @staticmethod
    def _map_inputs(beta0, extra):
        """(beta0 plus the mean offset, trials) for the R2 map; the gaussian reads neither."""
        if not extra:
            return 0.0, 1.0
        shift, trials = extra
        return beta0 + shift, trials

    def _unpack(self, params):
        beta0, rest = (params[0], params[1:]) if self.reads_beta0 else (None, params)
        aux = dict(zip(self.aux_names, rest[:len(self.aux_names)], strict=True))
        return beta0, aux, list(rest[len(self.aux_names):])

    def beta_parameters(self, extra):
        """(a, b) of the Beta-distributed variable: R2's, or the GBP's U."""
        if self.gbp:
            return extra[0][0], extra[0][1]
        return self.priors.r2_beta

    def logit_beta(self, u, beta0, aux, extra):
        """g(u): the logit of the Beta-distributed variable where log W = u."""
        if self.gbp:
            params = extra[0]
            return params[2] * (u - pt.log(params[3]))
        from r2d2formula.priors import r2_maps

        location, trials = self._map_inputs(beta0, extra)
        if self.priors.approx == "linear":
            return u - pt.log(self.family.linear_s2(location, aux, trials, PYTENSOR))
        return r2_maps.logit_r2_of_w(self.family, pt.exp(u), location, aux, trials=trials,
                                     xp=PYTENSOR)

    def log_w(self, beta_variable, beta0, aux, extra):
        """log W for a draw of the Beta-distributed variable (forward draws, initial point)."""
        if self.gbp:
            from r2d2formula.priors import gbp

            params = extra[0]
            return pt.log(gbp.w_of_gbp_u(beta_variable, [params[i] for i in range(4)],
                                         xp=PYTENSOR))
        from r2d2formula.priors import r2_maps

        location, trials = self._map_inputs(beta0, extra)
        return pt.log(r2_maps.w_of_r2(self.family, beta_variable, location, aux, trials=trials,
                                      method=self.priors.approx, xp=PYTENSOR))

    def logp(self, value, *params):
        beta0, aux, extra = self._unpack(params)
        a, b = self.beta_parameters(extra)
        u = pt.logsumexp(value, axis=-1)
        g = self.logit_beta(u, beta0, aux, extra)
        slope = PYTENSOR.elementwise_derivative(
            lambda x: self.logit_beta(x, beta0, aux, extra), u)
        conc = self.conc
        dirichlet = (pt.sum(conc * (value - u[..., None]), axis=-1)
                     + float(special.gammaln(conc.sum()) - special.gammaln(conc).sum()))
        log_beta = pt.gammaln(a) + pt.gammaln(b) - pt.gammaln(a + b)
        return (-a * pt.softplus(-g) - b * pt.softplus(g) - log_beta
                + pt.log(slope) + dirichlet)

    def draw(self, *params_and_size):
        *params, size = params_and_size
        beta0, aux, extra = self._unpack(params)
        a, b = self.beta_parameters(extra)
        log_w = self.log_w(pm.Beta.dist(a, b, size=size), beta0, aux, extra)
        # log phi from log-gamma draws (G = G' U^(1/c), G' ~ Gamma(c + 1)): no phi_k rounds to
        # 0 however small its concentration
        k = len(self.conc)
        shape = (k,) if rv_size_is_none(size) else pt.concatenate([size, [k]])
        log_g = (pt.log(pm.Gamma.dist(self.conc + 1.0, 1.0, size=shape))
                 + pt.log(pm.Uniform.dist(0.0, 1.0, size=shape)) / self.conc)
        log_phi = log_g - pt.logsumexp(log_g, axis=-1, keepdims=True)
        return log_phi + pt.shape_padright(log_w)

    def support_point(self, rv, size, *params):
        beta0, aux, extra = self._unpack(params)
        a, b = self.beta_parameters(extra)
        log_w = self.log_w(a / (a + b), beta0, aux, extra)
        value = np.log(self.conc / self.conc.sum()) + log_w
        if rv_size_is_none(size):
            return value
        return pt.full(pt.concatenate([size, [len(self.conc)]]), value)

    def r2(self, u, beta0, aux, data):
        """R2 at log W = u: the Beta variable itself, or (GBP) the exact map's R2."""
        if not self.gbp:
            return pt.sigmoid(self.logit_beta(u, beta0, aux, self._extra(data)))
        from r2d2formula.priors import r2_maps

        return r2_maps.r2_of_w(self.family, pt.exp(u), beta0 + data["r2map_shift"], aux,
                               trials=data["r2map_trials"], xp=PYTENSOR)


def _variance_split(family, priors, beta0, aux, data, conc):
    """R2, W, phi and the component variances' log (:class:`_VarianceSplit`)."""
    split = _VarianceSplit(family, priors, conc)
    log_v = pm.CustomDist(
        "log_V", *split.params(beta0, aux, data), dist=split.draw, logp=split.logp,
        support_point=split.support_point, ndim_supp=1, dims="component",
    )
    u = pt.logsumexp(log_v)
    W = pm.Deterministic("W", pt.exp(u))
    R2 = pm.Deterministic("R2", split.r2(u, beta0, aux, data))
    phi = pm.Deterministic("phi", pt.exp(log_v - u), dims="component")
    return R2, W, phi, log_v


def is_observation_level(name: str) -> bool:
    """Whether the data container ``name`` holds one entry per row (X, offset, trials,
    codes_<f>, Z_<f>, y_observed, y_log_normalizer): the containers a prediction or a refit
    with other rows sets."""
    return (name in _ROW_VECTORS or name == "X" or name.startswith("codes_")
            or (name.startswith("Z_") and not name.startswith("Z_scales_")))


def set_graph_data(model: pm.Model, values: dict[str, np.ndarray], *,
                   n_obs: int | None = None) -> None:
    """Set the data containers ``values`` of one of our graphs (and the observation dim to
    ``n_obs`` rows): what ``pm.set_data`` does here, without compiling anything.

    ``pm.set_data`` reads each dim's current length with ``length.eval()``, a compiled
    function; the first compiled function of a process loads PyTensor's whole C module cache
    (5-10 s with a few thousand cached modules), which the JAX samplers never need otherwise
    (the pymc and nutpie paths load it later, for PyMC's initial-point functions). Our dims
    have shared lengths, read here with ``get_value``.
    """
    lengths = model.dim_lengths
    if n_obs is not None and int(lengths[OBS_DIM].get_value()) != n_obs:
        model.set_dim(OBS_DIM, n_obs, coord_values=np.arange(n_obs))
    for name, value in values.items():
        shared = model[name]
        value = convert_observed_data(np.asarray(value))
        dims = model.named_vars_to_dims.get(name) or ()
        if value.ndim != shared.ndim or any(
                not isinstance(lengths[dim], SharedVariable)
                or value.shape[axis] != int(lengths[dim].get_value())
                for axis, dim in enumerate(dims)):
            raise ValueError(
                f"Data container {name!r} of dims {dims} cannot take values of shape "
                f"{value.shape} (dims {[f'{d}={int(lengths[d].eval())}' for d in dims]}); "
                "this is a bug in r2d2formula, please report it.")
        shared.set_value(value)


def _data_dims(name: str) -> tuple[str, ...] | str | None:
    """Dims of a data container: the observation dim for per-row vectors, ``coef`` too for X."""
    if name == "X":
        return (OBS_DIM, "coef")
    if name in _ROW_VECTORS or name.startswith("codes_"):
        return OBS_DIM
    return None


def _coords(design: Design, components: tuple[str, ...], n_obs: int) -> dict:
    coords: dict[str, object] = {
        OBS_DIM: np.arange(n_obs),
        "coef": list(design.common.labels),
        "component": list(components),
    }
    for factor, gf in design.factors.items():
        labels = list(design.factor_labels(factor))
        coords[factor] = list(gf.levels)
        coords[f"{factor}__term"] = labels
        coords[f"{factor}__term_bis"] = labels
    return coords


def build_model(
    design: Design, family: Family, priors: ResolvedPriors, *, predictive: bool = False
) -> tuple[pm.Model, GraphInfo]:
    """Compile (design, family, priors) into a ``pm.Model``.

    Parameters
    ----------
    design : Design
    family : Family
    priors : ResolvedPriors
    predictive : bool
        Build the prediction graph: the same graph plus the linear predictor ``eta`` and the
        mean ``mu`` as deterministics over the observations (off for sampling, where storing
        them would cost draws x n memory), and for each factor effects of levels not seen in
        training, ``r_<f>_new`` (dims ``<f>__new``, ``<f>__term``), drawn from the population
        distribution (SDs and correlations) in each posterior draw, and the switches
        ``new_levels_on`` and ``group_effects_on`` (1 or 0). Rows of a new level carry codes
        ``>= len(levels)`` that index ``r_<f>_new``.

    Returns
    -------
    model : pymc.Model
    info : GraphInfo
    """
    common = design.common
    n_obs = design.n_obs
    p = len(common.labels)
    variant = priors.variant
    components = variant.components
    comp_index = {name: i for i, name in enumerate(components)}
    obs_name = response_name(design)
    hidden: list[str] = []
    coords = _coords(design, components, n_obs)
    if predictive:
        for factor in design.factors:
            coords[f"{factor}__new"] = ["(none)"]

    with pm.Model(coords=coords) as model:
        # ---- data -------------------------------------------------------------------
        data = _known_shapes({name: pm.Data(name, value, dims=_data_dims(name))
                              for name, value in graph_data(design, family, priors).items()})
        if predictive:
            for switch in ("new_levels_on", "group_effects_on"):
                data[switch] = pm.Data(switch, np.asarray(1.0))
        X = data.get("X")
        offset = data.get("offset")
        trials = data.get("trials")
        y_data = data["y_observed"]

        # ---- auxiliary parameters and intercept -------------------------------------
        # the pilot fit behind the sampling coordinates (module docstring), computed once
        pilot = _LazyPilot(design, family)
        informed = bool(p or design.factors)  # whether the graph reads the pilot at all

        start: dict[str, Any] = {}  # GraphInfo.start

        aux = {name: _prior_rv(name, prior, data, name) for name, prior in priors.aux.items()}
        if common.intercept:
            beta0 = _prior_rv("beta0", priors.intercept, data, "beta0")
            if informed:
                start["beta0"] = pilot.containers(("pilot_beta0_hat",))[0]
        else:
            beta0 = pt.constant(0.0)

        # ---- R2, W and the variance split -------------------------------------------
        conc = np.asarray(priors.concentrations, dtype=float)
        R2, W, phi, log_v = _variance_split(family, priors, beta0, aux, data, conc)
        hidden.append("log_V")
        if informed and not variant.independent_groups:
            start["log_V"] = _pilot_log_variances(design, components, data, pilot, conc)

        # ---- population-level coefficients ------------------------------------------
        eta = beta0 + (offset if offset is not None else 0.0)
        if p:
            scales, means = data["X_scales"], data["X_means"]
            idx = [comp_index[label] for label in common.labels]
            laplace = priors.r2d2.kernel == "laplace"
            # b_j ~ N(0, sd_j) (Laplace: scale sd_j / sqrt 2), sampled as b_j = m_j + s_j u_j
            sd_b = pt.exp(0.5 * log_v[idx]) / scales
            b_hat, prec = pilot.containers(("pilot_b_hat", "pilot_b_prec"))
            b = _whitened("b_u", pm.Laplace if laplace else pm.Normal, sd_b,
                          np.sqrt(0.5) if laplace else 1.0, b_hat, prec, dims="coef")
            hidden.append("b_u")
            start["b_u"] = np.zeros(p)
            b = pm.Deterministic("b", b, dims="coef")
            # X b - means b: the centering costs p numbers per gradient, not n x p
            eta = eta + (pt.dot(X, b) - pt.dot(means, b))
            if common.intercept:
                pm.Deterministic("Intercept", beta0 - pt.dot(means, b))
        elif common.intercept:
            pm.Deterministic("Intercept", beta0)

        # ---- group-level effects ----------------------------------------------------
        term_dims: dict[str, str] = {}
        plan = _plan_absorption(design, pilot) if design.factors else None
        beta0_hat = (pilot.containers(("pilot_beta0_hat",))[0]
                     if plan and common.intercept else None)
        tables: dict[str, pt.TensorVariable] = {}
        for factor in (plan.order if plan else ()):
            shifts = _absorbed_shifts(design, plan, beta0, beta0_hat, b if p else None,
                                      b_hat if p else None, tables, factor)
            tables[factor], contribution = _group_effects(
                design, factor, design.factors[factor], priors, log_v, comp_index, data,
                hidden, term_dims, pilot, predictive, shifts=shifts, plan=plan, start=start,
            )
            if predictive:
                contribution = contribution * data["group_effects_on"]
            eta = eta + contribution

        if predictive:
            pm.Deterministic("eta", eta, dims=OBS_DIM)
            pm.Deterministic("mu", family.mean(eta, PYTENSOR), dims=OBS_DIM)
        add_likelihood(family, obs_name, eta, aux, trials, y_data, data.get(NORMALIZER),
                       dims=OBS_DIM)

    info = GraphInfo(response=obs_name, factor_dims={f: f for f in design.factors},
                     term_dims=term_dims, hidden=tuple(hidden),
                     unit_scale=tuple(name for name in hidden if _UNIT_SCALE.fullmatch(name)),
                     start=start,
                     correlations=tuple(name for name in hidden if _CORRELATION.fullmatch(name)))
    return model, info


def _pilot_log_variances(design, components, data, pilot, conc) -> pt.TensorVariable:
    """Where NUTS starts ``log_V``: each component's variance as the pilot measures it.

    A population coefficient's ``V_j = s_j^2 (hat_j^2 + 1 / prec_j)`` (its second moment under
    the pilot's approximation, on the standardised scale); a group term's
    ``V = s^2 tau^2``, with ``tau^2`` the variance of its levels' estimates less their mean
    sampling variance (:attr:`~r2d2formula.backend.pilot.Pilot.tau2`). A component the pilot
    cannot measure (no precision, ``tau^2 <= 0``) starts at its prior share ``c_k / sum(c)``
    of the measured total. Why: the prior's support point can sit hundreds of posterior
    standard deviations from where a large data set pins the variances (0.02 in log V for a
    factor of 10,000 levels at a million rows), and NUTS then spends its early adaptation in
    trees of hundreds of tiny steps. Written in the graph from the ``pilot_*`` containers, so
    a refit that sets them starts from its own data.
    """
    index = {name: k for k, name in enumerate(components)}
    estimates = [None] * len(components)
    if design.common.labels:
        hat, prec = pilot.containers(("pilot_b_hat", "pilot_b_prec"))
        safe = pt.switch(prec > 0, prec, 1.0)
        second = pt.switch(prec > 0, hat**2 + 1.0 / safe, 0.0) * data["X_scales"] ** 2
        for j, label in enumerate(design.common.labels):
            estimates[index[label]] = second[j]
    for factor in design.factors:
        (tau2,) = pilot.containers((f"pilot_tau2_{factor}",))
        scaled = tau2 * data[f"Z_scales_{factor}"] ** 2
        for t, label in enumerate(design.factor_labels(factor)):
            estimates[index[f"{label}|{factor}"]] = scaled[t]
    measured = pt.stack([pt.constant(0.0) if e is None else e for e in estimates])
    ok = measured > 0
    total = pt.switch(ok, measured, 0.0).sum()
    fallback = np.log(conc / conc.sum()) + pt.log(pt.switch(total > 0, total, 1.0))
    return pt.switch(ok, pt.log(pt.switch(ok, measured, 1.0)), fallback)


class _LazyPilot:
    """The pilot fit (:func:`~r2d2formula.backend.pilot.pilot_fit`), computed on first use, and
    its numbers as ``pm.Data`` containers, each made once per model."""

    def __init__(self, design: Design, family: Family) -> None:
        self._args = (design, family)
        self._fit = None
        self._containers: dict[str, pt.TensorVariable] = {}

    def __call__(self):
        if self._fit is None:
            self._fit = pilot_fit(*self._args)
        return self._fit

    def containers(self, names) -> list[pt.TensorVariable]:
        """The containers ``names`` (:func:`~r2d2formula.backend.pilot.pilot_data`)."""
        missing = [name for name in names if name not in self._containers]
        if missing:
            values = pilot_data(self())
            self._containers.update(_known_shapes(
                {name: pm.Data(name, values[name]) for name in missing}))
        return [self._containers[name] for name in names]


def _known_shapes(containers: dict[str, pt.TensorVariable]) -> dict[str, pt.TensorVariable]:
    """The data ``containers`` with every length the model structure fixes stated in the graph.

    Only the number of rows changes between data sets of one structure (prediction sets new
    rows, all row arrays together); columns, levels and every per-coefficient or per-level
    number are fixed by the structure (:func:`~r2d2formula.backend.reuse.structure_key`), and
    every row array has the rows of ``y_observed``. Stating this lets PyTensor drop the run-time
    broadcast checks between these arrays. Why it matters: PyTensor assembles the fused graph
    of those checks with its inputs in an order that changes from process to process, so the
    compiled log density got a new numba cache key in every process and was compiled anew
    each time (10-30 s); with the checks gone the key is the same and the compiled function is
    loaded from the on-disk cache.
    """
    rows = containers["y_observed"].shape[0] if "y_observed" in containers else None
    out = {}
    for name, container in containers.items():
        shape = container.get_value(borrow=True).shape
        if name == "y_observed":
            out[name] = container
        elif is_observation_level(name):
            out[name] = pt.specify_shape(container, (rows, *shape[1:]))
        else:
            out[name] = pt.specify_shape(container, shape)
    return out


@dataclass(frozen=True)
class _Absorption:
    """Which factor absorbs each population parameter (see :func:`_absorbed_shifts`), the
    order the factors are built in, and the columns of the other factors whose level mean the
    absorber follows too."""

    absorber: dict[str, tuple[str, int]]  # label -> (factor, column)
    order: tuple[str, ...]
    coupled: dict[str, list[tuple[str, int]]]  # label -> [(factor, column) built earlier]

    def common_mode_columns(self, factor: str, width_offset: int, width: int) -> np.ndarray:
        """Mask of a block's columns whose level mean an absorber follows."""
        mask = np.zeros(width, dtype=bool)
        for pairs in self.coupled.values():
            for f, t in pairs:
                if f == factor and width_offset <= t < width_offset + width:
                    mask[t - width_offset] = True
        return mask


def _plan_absorption(design: Design, pilot) -> _Absorption:
    """Each population parameter goes to the factor whose levels the data inform best
    (largest pilot shrinkage; none where no factor has the column). Factors that absorb
    nothing are built first, so that an absorber can follow their level means."""
    population = (["1"] if design.common.intercept else []) + list(design.common.labels)
    shrinkage = pilot().shrinkage
    absorber: dict[str, tuple[str, int]] = {}
    for label in population:
        # (score, factor, column) of every factor with this column; the first best one wins
        candidates = [(float(shrinkage[f][design.factor_labels(f).index(label)]), f,
                       design.factor_labels(f).index(label))
                      for f in design.factors if label in design.factor_labels(f)]
        score, factor, t = max(candidates, key=lambda c: c[0], default=(0.0, None, None))
        if score > 0.0:
            absorber[label] = (factor, t)
    absorbing = {f for f, _ in absorber.values()}
    order = tuple([f for f in design.factors if f not in absorbing]
                  + [f for f in design.factors if f in absorbing])
    coupled: dict[str, list[tuple[str, int]]] = {}
    for label, (factor, _) in absorber.items():
        earlier = order[:order.index(factor)]
        coupled[label] = [(f, design.factor_labels(f).index(label)) for f in earlier
                          if label in design.factor_labels(f)]
    return _Absorption(absorber=absorber, order=order, coupled=coupled)


def _absorbed_shifts(design, plan, beta0, beta0_hat, b, b_hat, tables, factor):
    """The shifts of ``factor``'s columns: for each population parameter it absorbs, how far
    the parameter is from its pilot estimate, plus the level means of the same column in the
    factors built before it (``tables``: their effects).

    The data pin down the sums beta0 + r_g[level] + r_h[level'] (b_j + r_j[level] + ... for a
    varying slope), not each part: ridges along which beta0 and the effects' means trade off,
    slow for NUTS. The absorbing factor's effects are whitened around ``hat - shift``
    instead of ``hat``, their conditional posterior mean given beta0 and the other factors'
    effects, so a move of beta0, or of all levels of another factor together, moves the
    absorbing effects the other way and leaves the fit alone (still an exact change of
    variables: beta0 and the other factors come before these effects in the graph). The
    other factors' common modes are then set by their priors alone, on the scale of sd
    rather than of the data: :class:`CommonModeScale` samples them on that scale.
    """
    shifts: dict[int, pt.TensorVariable] = {}
    for label, (absorber, t) in plan.absorber.items():
        if absorber != factor:
            continue
        if label == "1":
            shift = beta0 - beta0_hat
        else:
            j = design.common.labels.index(label)
            shift = b[j] - b_hat[j]
        for other, column in plan.coupled[label]:
            shift = shift + tables[other][:, column].mean()
        shifts[t] = shift
    return shifts


class CommonModeScale(Transform):
    """Sample the common mode of whitened group effects on its own scale.

    Whitened effects ``u`` (levels x terms, :func:`_whitened`) are close to standard normal
    level by level, but where an absorbing factor follows this factor's level mean
    (:func:`_absorbed_shifts`), moving all levels together leaves the fit alone and only the
    prior holds the mean: its posterior standard deviation in u units is then about
    ``root = sd / s`` (5 for a factor whose levels the data measure well), not 1. NUTS's
    diagonal mass matrix cannot rescale a direction shared by all levels, so the sampler
    works in ``v`` with ``u = v + (lambda - 1) mean(v)`` per marked column, lambda the mean
    of the column's ``root`` over levels (the RV's standard deviation): the common mode is
    multiplied by lambda, the contrasts are left alone. The log Jacobian is
    ``log lambda`` per column, spread evenly over the levels' log-density terms.
    """

    name = "commonmode"  # no underscore: PyMC parses value-variable names at "_"

    def __init__(self, columns: np.ndarray) -> None:
        self.columns = np.asarray(columns, dtype=bool)

    def _scale(self, value, inputs):
        sigma = pt.broadcast_to(inputs[-1], value.shape)
        scale = sigma.mean(axis=0)
        if value.ndim == 2 and not self.columns.all():
            scale = pt.where(self.columns, scale, 1.0)
        return scale

    def backward(self, value, *inputs):  # sampler's v -> the RV's u
        return value + (self._scale(value, inputs) - 1.0) * value.mean(axis=0)

    def forward(self, value, *inputs):  # u -> v
        return value + (1.0 / self._scale(value, inputs) - 1.0) * value.mean(axis=0)

    def log_jac_det(self, value, *inputs):
        scale = self._scale(value, inputs)
        return pt.broadcast_to(pt.log(scale) / value.shape[0], value.shape)


def _whitened(name, dist, sd, ratio, hat, prec, **kwargs) -> pt.TensorVariable:
    """``b ~ dist(0, ratio * sd)`` (sd: its standard deviation) sampled as ``b = m + s u``.

    With a Gaussian approximation N(hat, 1 / prec) of the likelihood, b given sd has
    posterior mean ``m = hat sd^2 prec / (1 + sd^2 prec)`` and standard deviation
    ``s = sd / sqrt(1 + sd^2 prec)``. ``u = (b - m) / s`` is an affine function of b for
    each sd, so ``u ~ dist(-m / s, ratio * sd / s)`` gives b exactly the prior
    ``dist(0, ratio * sd)``, in the log density (the Jacobian is that of the declared law)
    and in forward draws alike; u is approximately standard normal in the posterior whatever
    sd is. ``prec = 0`` is the non-centered ``b = sd z``; ``sd^2 prec >> 1`` the centered
    parameterisation, standardised by the data. NUTS starts at ``u = 0`` (``GraphInfo.start``),
    b = m, not at u's support point ``-m / s`` (b = 0), which a large data set puts hundreds
    of posterior standard deviations away.
    """
    root = pt.sqrt(1.0 + sd**2 * prec)  # sd / s, at least 1
    shift = hat * sd * prec / root  # m / s
    u = dist(name, -shift, ratio * root, **kwargs)
    return sd / root * (u + shift)


def _whitened_pair(name, sd, rho, hat, prec, n_levels, hidden,
                   common_mode=(False, False)) -> pt.TensorVariable:
    """A correlated pair ``r[level] ~ N(0, diag(sd) R diag(sd))`` sampled as
    ``r = m + s u`` per term (:func:`_whitened`), u bivariate normal written by its exact
    factorisation: ``u0 ~ N(-shift0, root0)`` and ``u1 | u0 ~ N(mu, tau)`` with
    ``mu = -shift1 + rho root1 / root0 (u0 + shift0)`` and ``tau = root1 sqrt(1 - rho^2)``.

    u1 is itself whitened given u0 and rho: with the Gaussian likelihood of u1 (precision
    ``L = sd1^2 prec1 / root1^2``, ``L x centre = shift1 / root1^2``), its conditional
    posterior has mean ``(mu + tau^2 L centre) / k^2`` and standard deviation ``tau / k``,
    ``k = sqrt(1 + L tau^2)``. NUTS samples ``z`` with ``u1 = (mu + tau^2 L centre) / k^2 +
    tau z / k``, whose declared law ``N(tau (L mu - L centre) / k, k)`` is the image of u1's,
    so the prior is exact. Sampling u1 directly put a funnel in the posterior where the data
    leave the correlation free: as rho nears +-1 u1's conditional scale tau shrinks to 0
    (divergences in simulation-based calibration of ``(1 + x | g)`` with 10 levels). z stays
    close to standard normal whatever rho is: non-centered where the data are weak
    (``L tau^2`` small), centered and standardised by the data where they are strong.
    ``common_mode``: per term, whether its levels' common mode is sampled on the prior's
    scale (:class:`CommonModeScale`)."""
    root = pt.sqrt(1.0 + sd[None, :] ** 2 * prec)
    shift = hat * sd[None, :] * prec / root
    extra = [{"transform": CommonModeScale(np.ones(1, bool))} if on else {}
             for on in common_mode]
    u0 = pm.Normal(name, -shift[:, 0], root[:, 0], shape=n_levels, **extra[0])
    mu = -shift[:, 1] + rho * root[:, 1] / root[:, 0] * (u0 + shift[:, 0])
    tau = root[:, 1] * pt.sqrt(1.0 - rho**2)
    precision = sd[1] ** 2 * prec[:, 1] / root[:, 1] ** 2  # L: the likelihood's, in u1 units
    pulled = shift[:, 1] / root[:, 1] ** 2  # L times the likelihood's centre in u1 units
    k = pt.sqrt(1.0 + precision * tau**2)
    z = pm.Normal(f"{name}b", tau * (precision * mu - pulled) / k, k, shape=n_levels,
                  **extra[1])
    hidden.append(f"{name}b")
    u1 = (mu + tau**2 * pulled) / k**2 + tau / k * z
    return sd[None, :] / root * (pt.stack([u0, u1], axis=1) + shift)


def _center_groups(pilot, factor: str) -> bool:
    """Whether the effects of ``factor``'s correlated blocks of more than two terms are
    sampled centered (reliability rule of :class:`~r2d2formula.backend.pilot.Pilot`)."""
    return pilot().reliable[factor]


def _group_effects(design, factor, gf, priors, log_v, comp_index, data, hidden, term_dims,
                   pilot, predictive, *, shifts, plan, start):
    """r_<factor> (levels x terms) and its contribution to eta for every row."""
    terms = [t for t in design.group_terms if t.factor == factor]
    labels = [label for t in terms for label in t.labels]
    term_dim = f"{factor}__term"
    term_dims[factor] = term_dim
    if priors.variant.independent_groups:
        sd = _prior_rv(f"sd_{factor}", priors.group_sd, data, "sd", dims=term_dim)
    else:
        idx = [comp_index[f"{label}|{factor}"] for label in labels]
        sd = pm.Deterministic(f"sd_{factor}", pt.exp(0.5 * log_v[idx]) / data[f"Z_scales_{factor}"],
                              dims=term_dim)
    blocks, corr_full = _correlation_blocks(factor, terms, hidden, start)

    # per block: whitened coordinates (module docstring); a correlated block of more than
    # two terms is sampled centered or non-centered as a whole (pilot's reliability rule)
    n_levels = len(gf.levels)
    hat, prec = pilot.containers((f"pilot_r_hat_{factor}", f"pilot_r_prec_{factor}"))
    if shifts:  # centre on the conditional mean given the absorbed population parameters
        hat = pt.stack([hat[:, t] - shifts[t] if t in shifts else hat[:, t]
                        for t in range(len(labels))], axis=1)
    parts = []
    for k, (cols, rho, corr) in enumerate(blocks):
        raw = f"r_{factor}_u" if len(blocks) == 1 else f"r_{factor}_u{k}"
        sd_block = sd[cols]
        width = cols.stop - cols.start
        common = plan.common_mode_columns(factor, cols.start, width)
        if corr is None:
            extra = {"transform": CommonModeScale(common)} if common.any() else {}
            parts.append(_whitened(raw, pm.Normal, sd_block, 1.0, hat[:, cols], prec[:, cols],
                                   shape=(n_levels, width), **extra))
            start[raw] = np.zeros((n_levels, width))  # b = m (see _whitened)
        elif rho is not None:
            parts.append(_whitened_pair(raw, sd_block, rho, hat[:, cols], prec[:, cols],
                                        n_levels, hidden, common_mode=tuple(common)))
            start[raw] = start[f"{raw}b"] = np.zeros(n_levels)
        elif _center_groups(pilot, factor):  # r[level] ~ MvNormal(0, S R S)
            raw = f"r_{factor}_c{k}"
            chol = sd_block[:, None] * pt.linalg.cholesky(corr)
            parts.append(pm.MvNormal(raw, mu=pt.zeros(width), chol=chol,
                                     shape=(n_levels, width)))
        else:
            raw = f"r_{factor}_z{k}"
            z = pm.Normal(raw, 0.0, 1.0, shape=(n_levels, width))
            parts.append(_scale_and_correlate(z, [(slice(0, width), rho, corr)], sd_block))
        hidden.append(raw)
    stacked = parts[0] if len(parts) == 1 else pt.concatenate(parts, axis=1)
    r = pm.Deterministic(f"r_{factor}", stacked, dims=(factor, term_dim))
    if corr_full is not None:
        pm.Deterministic(f"cor_{factor}", corr_full, dims=(term_dim, f"{factor}__term_bis"))

    table = r_levels = r
    if predictive:
        # levels not seen in training: fresh draws from the population distribution, the same
        # transformation as the non-centered effects; switched to 0 by new_levels_on = 0
        new_dim = f"{factor}__new"
        z_new = pm.Normal(f"r_{factor}_new_z", 0.0, 1.0, dims=(new_dim, term_dim))
        r_new = pm.Deterministic(
            f"r_{factor}_new", _scale_and_correlate(z_new, blocks, sd) * data["new_levels_on"],
            dims=(new_dim, term_dim),
        )
        table = pt.concatenate([r, r_new], axis=0)

    # contribution: sum_t Z[:, t] * r[codes, t]; intercept columns need no Z data. Columns
    # are taken from the level table before the rows are gathered: a gather of the columns
    # needed only, and a row count PyTensor knows (that of the codes), so no run-time
    # broadcast check between row arrays (see _known_shapes)
    codes = data[f"codes_{factor}"]
    is_intercept = np.array([label == "1" for label in labels])
    contribution = 0.0
    if is_intercept.any():
        contribution = _columns(table, np.flatnonzero(is_intercept)).sum(axis=1)[codes]
    if (~is_intercept).any():
        Z = data[f"Z_{factor}"]
        slopes = _columns(table, np.flatnonzero(~is_intercept))[codes]
        contribution = contribution + (Z * slopes).sum(axis=1)
    return r_levels, contribution


def _columns(table: pt.TensorVariable, cols: np.ndarray) -> pt.TensorVariable:
    """``table[:, cols]``, as a basic slice where the columns are contiguous."""
    if np.array_equal(cols, np.arange(cols[0], cols[0] + len(cols))):
        return table[:, int(cols[0]):int(cols[0]) + len(cols)]
    return table[:, cols]


def _correlation_blocks(factor, terms, hidden, start):
    """Per ``|`` block: (columns, rho for a 2-term block, correlation matrix or None), and the
    full correlation matrix over the factor's terms (None without correlated blocks).

    Each LKJ variable starts at its support point, the identity (packed zeros), given in
    ``start`` as a value: PyMC otherwise learns the support point's shape by drawing the LKJ
    variable, whose sampler (an ``OpFromGraph``) it compiles in C on first use (0.7 s of a
    JAX fit of sleepstudy, where nothing else is compiled in C). The start is the same.
    """
    q = sum(len(t.labels) for t in terms)
    correlated = [t for t in terms if t.correlated]
    blocks = []
    corr_full = None
    first = 0
    for k, term in enumerate(terms):
        width = len(term.labels)
        cols = slice(first, first + width)
        rho = corr = None
        if term.correlated:
            lkj_name = f"cor_{factor}_packed" if len(correlated) == 1 else f"cor_{factor}_packed{k}"
            packed = pm.LKJCorr(lkj_name, n=width, eta=1.0)
            hidden.append(lkj_name)
            start[lkj_name] = np.zeros(width * (width - 1) // 2)
            corr = _packed_to_corr(packed, width)
            if width == 2:
                rho = packed[0]
            if corr_full is None:
                corr_full = pt.eye(q)
            corr_full = pt.set_subtensor(corr_full[cols, cols], corr)
        blocks.append((cols, rho, corr))
        first += width
    return blocks, corr_full


def _scale_and_correlate(z, blocks, sd):
    """r = (diag(sd) L z)' per block for standard normal z (levels x terms)."""
    parts = []
    for cols, rho, corr in blocks:
        z_block = z[:, cols]
        if rho is not None:
            # analytic Cholesky factor [[1, 0], [rho, sqrt(1 - rho^2)]]: no linear algebra
            z_block = pt.stack(
                [z_block[:, 0], rho * z_block[:, 0] + pt.sqrt(1.0 - rho**2) * z_block[:, 1]],
                axis=1,
            )
        elif corr is not None:
            z_block = pt.dot(z_block, pt.linalg.cholesky(corr).T)
        parts.append(z_block * sd[cols])
    return parts[0] if len(parts) == 1 else pt.concatenate(parts, axis=1)
