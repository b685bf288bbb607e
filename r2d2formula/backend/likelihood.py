"""The observation model: each family's log density with its data-only part computed once.

PyMC's count and binary likelihoods evaluate terms that depend on the response alone
(``log y!`` for Poisson and negative binomial, ``log C(n, y)`` for binomial) and check the
parameters' support in every row, at every gradient. The response is a ``pm.Data`` container
(a refit or a prediction sets new values), so PyTensor cannot fold those terms into constants:
they cost three quarters of a Poisson model's log density at 20,000 rows. Here the response's
own term is computed in NumPy (:func:`log_normalizer`) and enters the graph as the row-level
data ``y_log_normalizer``; the graph keeps only the terms that involve the parameters, written
from the linear predictor (``y * eta - exp(eta)`` instead of ``log(exp(eta))``).

The observed variable is a ``pm.CustomDist`` whose draws are PyMC's own distribution (prior
and posterior predictive, predictions) and whose log density is the same function as PyMC's
at the observed response, term for term (``tests/test_likelihood.py``); it is what the
pointwise log-likelihood (``arviz.loo``) reports. The log density is a function of the
observed response only: at any other value its data term is the observed one, so the graph
must not be asked for ``logp`` at other values (nothing in the package does; a prediction sets
``y_observed`` and ``y_log_normalizer`` together, see
:func:`r2d2formula.backend.predict.observation_data`).

Gaussian keeps ``pm.Normal``, whose only data-free term is a constant.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.distributions.dist_math import normal_lcdf
from scipy.special import gammaln

from r2d2formula.families import Family

__all__ = ["NORMALIZER", "log_normalizer", "add_likelihood"]

#: Name of the row-level data container holding the response's own log-density term.
NORMALIZER = "y_log_normalizer"


def log_normalizer(family: Family, y: np.ndarray, trials: np.ndarray | None) -> np.ndarray | None:
    """The part of log p(y_i | parameters) that depends on the data alone, per row.

    ``-log y!`` for Poisson and negative binomial, ``log C(n, y)`` for binomial, None for the
    families without one (gaussian, bernoulli).

    Examples
    --------
    >>> from r2d2formula.families import get_family
    >>> (log_normalizer(get_family("poisson"), np.array([1.0, 3.0]), None) + 0.0).round(4).tolist()
    [0.0, -1.7918]
    >>> log_normalizer(get_family("binomial"), np.array([1.0]), np.array([4.0])).round(4).tolist()
    [1.3863]
    """
    y = np.asarray(y, dtype=float)
    if family.name in ("poisson", "negativebinomial"):
        return -gammaln(y + 1.0)
    if family.name == "binomial":
        n = np.round(np.asarray(trials, dtype=float))
        return gammaln(n + 1.0) - gammaln(y + 1.0) - gammaln(n - y + 1.0)
    return None


def _logit_p(link: str, eta):
    if link == "logit":
        return eta
    # probit, with a stable log Phi so extreme eta stays finite
    return normal_lcdf(0.0, 1.0, eta) - normal_lcdf(0.0, 1.0, -eta)


def _binary_logp(link: str, successes, trials, eta):
    """log p^y (1 - p)^(n - y) from eta: y eta - n log(1 + e^eta) for logit, y log Phi(eta)
    + (n - y) log Phi(-eta) for probit (a stable log Phi, so extreme eta stays finite)."""
    if link == "logit":
        return successes * eta - trials * pt.log1pexp(eta)
    return (successes * normal_lcdf(0.0, 1.0, eta)
            + (trials - successes) * normal_lcdf(0.0, 1.0, -eta))


def add_likelihood(family: Family, name: str, eta, aux: dict, trials, y_data, normalizer, *,
                   dims: str):
    """The observed variable ``name`` of ``family`` over the linear predictor ``eta``.

    Parameters
    ----------
    family : Family
    name : str
        Name of the observed variable.
    eta : TensorVariable
        Linear predictor, one entry per row.
    aux : dict
        Auxiliary parameters by name (``sigma``, ``alpha``).
    trials, y_data, normalizer : TensorVariable or None
        Row-level data: trials (binomial), the response, and :func:`log_normalizer` of it.
    dims : str
        The observation dim.
    """
    shape = {"dims": dims, "observed": y_data}
    if family.name == "gaussian":
        return pm.Normal(name, mu=eta, sigma=aux["sigma"], **shape)
    link = family.link
    if family.name == "bernoulli":
        def logp(value, eta):
            return _binary_logp(link, value, 1.0, eta)

        def dist(eta, size):
            return pm.Bernoulli.dist(logit_p=_logit_p(link, eta), size=size)

        return pm.CustomDist(name, eta, dist=dist, logp=logp, **shape)
    if family.name == "binomial":
        def logp(value, eta, trials, normalizer):
            return _binary_logp(link, value, trials, eta) + normalizer

        def dist(eta, trials, normalizer, size):
            return pm.Binomial.dist(n=pt.cast(pt.round(trials), "int64"),
                                    logit_p=_logit_p(link, eta), size=size)

        # trials are whole numbers (checked with the response); only the draws need integers
        return pm.CustomDist(name, eta, trials, normalizer, dist=dist, logp=logp, **shape)
    if family.name == "poisson":
        def logp(value, eta, normalizer):
            return value * eta - pt.exp(eta) + normalizer

        def dist(eta, normalizer, size):
            return pm.Poisson.dist(mu=pt.exp(eta), size=size)

        return pm.CustomDist(name, eta, normalizer, dist=dist, logp=logp, **shape)
    if family.name == "negativebinomial":
        def logp(value, eta, alpha, normalizer):
            # log(mu + alpha) without overflow of exp(eta)
            log_alpha = pt.log(alpha)
            log_total = pt.logaddexp(eta, log_alpha)
            return (pt.gammaln(value + alpha) - pt.gammaln(alpha) + normalizer
                    + value * (eta - log_total) + alpha * (log_alpha - log_total))

        def dist(eta, alpha, normalizer, size):
            return pm.NegativeBinomial.dist(mu=pt.exp(eta), alpha=alpha, size=size)

        return pm.CustomDist(name, eta, aux["alpha"], normalizer, dist=dist, logp=logp,
                             **shape)
    raise NotImplementedError(f"no likelihood for family {family.name!r}")  # pragma: no cover
