"""Families described as data: one row per family in :data:`FAMILIES`.

A family knows its links, its likelihood (by PyMC distribution name, resolved in the
backend), its auxiliary parameters, how to check a response, and its mean and conditional
variance functions over an array namespace ``xp`` (NumPy here, PyTensor in the graph).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from r2d2formula._xp import NUMPY
from r2d2formula.errors import FamilyError

__all__ = ["LINKS", "FAMILIES", "FamilySpec", "Family", "get_family", "inverse_link",
           "inverse_link_derivative"]

LINKS = ("identity", "logit", "probit", "log")


def inverse_link(link: str, eta: Any, xp: Any = NUMPY) -> Any:
    """Mean function mu(eta) of ``link``.

    Examples
    --------
    >>> float(inverse_link("logit", 0.0))
    0.5
    >>> float(inverse_link("log", 0.0))
    1.0
    """
    if link == "identity":
        return eta
    if link == "logit":
        return xp.sigmoid(eta)
    if link == "probit":
        return xp.normal_cdf(eta)
    if link == "log":
        return xp.exp(eta)
    raise FamilyError(f"unknown link {link!r}; use one of {', '.join(LINKS)}")


def inverse_link_derivative(link: str, eta: Any, xp: Any = NUMPY) -> Any:
    """d mu / d eta for ``link``.

    Examples
    --------
    >>> float(inverse_link_derivative("logit", 0.0))
    0.25
    """
    if link == "identity":
        return eta * 0.0 + 1.0
    if link == "logit":
        mu = xp.sigmoid(eta)
        return mu * (1.0 - mu)
    if link == "probit":
        return xp.normal_pdf(eta)
    if link == "log":
        return xp.exp(eta)
    raise FamilyError(f"unknown link {link!r}; use one of {', '.join(LINKS)}")


def _check_finite(name: str, y: np.ndarray) -> None:
    if not np.all(np.isfinite(y)):
        raise FamilyError(f"response {name!r} has non-finite values; remove or impute them")


def _check_gaussian(name: str, y: np.ndarray, trials: np.ndarray | None) -> None:
    _check_finite(name, y)
    if trials is not None:
        raise FamilyError(
            f"response {name!r} has trials, which only binomial models use; "
            "use family='binomial' or drop trials()"
        )
    if np.unique(y).size < 2:
        raise FamilyError(f"response {name!r} is constant; there is nothing to model")


def _n_rows(count: int) -> str:
    return "1 row" if count == 1 else f"{count} rows"


def _first_bad(y: np.ndarray, bad: np.ndarray) -> str:
    idx = np.flatnonzero(bad)
    shown = ", ".join(f"row {i}: {y[i]:g}" for i in idx[:3])
    more = f" and {idx.size - 3} more" if idx.size > 3 else ""
    return f"{shown}{more}"


def _check_counts(name: str, y: np.ndarray, trials: np.ndarray | None, family: str) -> None:
    _check_finite(name, y)
    bad = (y < 0) | (y != np.round(y))
    if bad.any():
        raise FamilyError(
            f"family {family!r} needs non-negative integer counts, but response {name!r} has "
            f"{int(bad.sum())} other values ({_first_bad(y, bad)}); use family='gaussian' for "
            "continuous data"
        )
    if trials is not None:
        raise FamilyError(
            f"response {name!r} has trials; use family='binomial' for successes out of trials"
        )


def _check_bernoulli(name: str, y: np.ndarray, trials: np.ndarray | None) -> None:
    _check_finite(name, y)
    bad = (y != 0) & (y != 1)
    if bad.any():
        raise FamilyError(
            f"family 'bernoulli' needs a response of 0s and 1s (or a two-level column), but "
            f"{name!r} has {int(bad.sum())} other values ({_first_bad(y, bad)}); for counts out "
            "of n trials use family='binomial' with 'y | trials(n)'"
        )
    if trials is not None and np.any(trials != 1):
        raise FamilyError(
            f"response {name!r} has trials other than 1; use family='binomial'"
        )


def _check_binomial(name: str, y: np.ndarray, trials: np.ndarray | None) -> None:
    _check_finite(name, y)
    if trials is None:
        raise FamilyError(
            f"family 'binomial' needs the number of trials: write '{name} | trials(n)', "
            f"'cbind({name}, failures)' or 'p({name}, n)' on the left of '~' "
            "(or use family='bernoulli' for 0/1 data)"
        )
    _check_finite("trials", trials)
    bad_n = (trials < 1) | (trials != np.round(trials))
    if bad_n.any():
        raise FamilyError(
            f"trials must be positive integers, found {int(bad_n.sum())} other values "
            f"({_first_bad(trials, bad_n)}); drop rows with zero trials explicitly"
        )
    bad = (y < 0) | (y != np.round(y))
    if bad.any():
        raise FamilyError(
            f"successes {name!r} must be non-negative integers, found {int(bad.sum())} other "
            f"values ({_first_bad(y, bad)})"
        )
    above = y > trials
    if above.any():
        i = int(np.flatnonzero(above)[0])
        raise FamilyError(
            f"successes {name!r} exceed trials in {_n_rows(int(above.sum()))} (first: row {i}, "
            f"{y[i]:g} successes of {trials[i]:g} trials); check the columns in trials()"
        )


def _var_gaussian(mu: Any, aux: dict, trials: Any, xp: Any) -> Any:
    return mu * 0.0 + aux["sigma"] ** 2


def _var_bernoulli(mu: Any, aux: dict, trials: Any, xp: Any) -> Any:
    return mu * (1.0 - mu)


def _var_binomial(mu: Any, aux: dict, trials: Any, xp: Any) -> Any:
    # variance of the observed *proportion* s / n
    return mu * (1.0 - mu) / trials


def _var_poisson(mu: Any, aux: dict, trials: Any, xp: Any) -> Any:
    return mu


def _var_negbinomial(mu: Any, aux: dict, trials: Any, xp: Any) -> Any:
    return mu + mu**2 / aux["alpha"]


@dataclass(frozen=True, kw_only=True)
class FamilySpec:
    """A row of the family table.

    Attributes
    ----------
    name : str
    links : tuple of str
        Allowed links, the default first.
    likelihood : str
        PyMC distribution of the response (resolved by the backend).
    aux : tuple of str
        Auxiliary parameters (``("sigma",)`` for gaussian, ``("alpha",)`` for NB2).
    needs_trials : bool
        Whether the response carries a number of trials.
    check_response : callable
        ``check_response(name, y, trials)`` raises :class:`FamilyError` on bad data.
    variance : callable
        ``variance(mu, aux, trials, xp)``: conditional variance sigma2 of the response
        (of the proportion for binomial) given its mean ``mu``.
    r2_supremum : callable
        ``r2_supremum(aux, xp)``: the supremum of R2 over W (1 unless the variance grows with
        mu^2, as for NB2 where it is alpha / (1 + alpha)).
    """

    name: str
    links: tuple[str, ...]
    likelihood: str
    aux: tuple[str, ...]
    needs_trials: bool
    check_response: Callable[[str, np.ndarray, np.ndarray | None], None]
    variance: Callable[[Any, dict, Any, Any], Any]
    r2_supremum: Callable[[dict, Any], Any]

    def __post_init__(self) -> None:
        unknown = set(self.links) - set(LINKS)
        if unknown:
            raise FamilyError(f"family {self.name!r} lists unknown links {sorted(unknown)}")


def _one(aux: dict, xp: Any) -> float:
    return 1.0


FAMILIES: dict[str, FamilySpec] = {
    "gaussian": FamilySpec(
        name="gaussian", links=("identity",), likelihood="Normal", aux=("sigma",),
        needs_trials=False, check_response=_check_gaussian, variance=_var_gaussian,
        r2_supremum=_one,
    ),
    "bernoulli": FamilySpec(
        name="bernoulli", links=("logit", "probit"), likelihood="Bernoulli", aux=(),
        needs_trials=False, check_response=_check_bernoulli, variance=_var_bernoulli,
        r2_supremum=_one,
    ),
    "binomial": FamilySpec(
        name="binomial", links=("logit", "probit"), likelihood="Binomial", aux=(),
        needs_trials=True, check_response=_check_binomial, variance=_var_binomial,
        r2_supremum=_one,
    ),
    "poisson": FamilySpec(
        name="poisson", links=("log",), likelihood="Poisson", aux=(),
        needs_trials=False,
        check_response=lambda n, y, t: _check_counts(n, y, t, "poisson"),
        variance=_var_poisson, r2_supremum=_one,
    ),
    "negativebinomial": FamilySpec(
        name="negativebinomial", links=("log",), likelihood="NegativeBinomial", aux=("alpha",),
        needs_trials=False,
        check_response=lambda n, y, t: _check_counts(n, y, t, "negativebinomial"),
        variance=_var_negbinomial,
        r2_supremum=lambda aux, xp: aux["alpha"] / (1.0 + aux["alpha"]),
    ),
}

_ALIASES = {"normal": "gaussian", "negative_binomial": "negativebinomial", "nb": "negativebinomial",
            "negbinomial": "negativebinomial", "logistic": "bernoulli"}


@dataclass(frozen=True, kw_only=True)
class Family:
    """A family with its chosen link.

    Examples
    --------
    >>> get_family("bernoulli", "probit")
    Family(bernoulli, link=probit)
    """

    spec: FamilySpec
    link: str

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def aux(self) -> tuple[str, ...]:
        return self.spec.aux

    def check(self, response: Any) -> None:
        """Raise :class:`FamilyError` when the family cannot model ``response``.

        ``response`` is a :class:`~r2d2formula.design.types.ResponseData`. A text or
        categorical response with two levels is coded 0/1 and only makes sense for the
        bernoulli family; the family's own checks (counts, 0/1, trials) follow.
        """
        levels = getattr(response, "levels", None)
        if levels is not None and self.name != "bernoulli":
            raise FamilyError(
                f"response {response.name!r} is text with two levels ({levels[0]!r}, "
                f"{levels[1]!r}), which only family='bernoulli' models (as {levels[1]!r} = 1); "
                f"family {self.name!r} needs numbers. Use family='bernoulli', or convert the "
                "column to numbers"
            )
        self.spec.check_response(response.label, response.values, response.trials)

    def mean(self, eta: Any, xp: Any = NUMPY) -> Any:
        """mu(eta): the inverse link."""
        return inverse_link(self.link, eta, xp)

    def variance(self, mu: Any, aux: dict, trials: Any = 1.0, xp: Any = NUMPY) -> Any:
        """sigma2(mu): the conditional variance (of the proportion for binomial)."""
        return self.spec.variance(mu, aux, trials, xp)

    def linear_s2(self, beta0: Any, aux: dict, trials: Any = 1.0, xp: Any = NUMPY) -> Any:
        """Delta-method scale s2(beta0) = sigma2(mu(beta0)) / mu'(beta0)^2 (SPEC "linear").

        Examples
        --------
        >>> fam = get_family("poisson")
        >>> round(float(fam.linear_s2(0.0, {})), 6)
        1.0
        >>> round(float(get_family("bernoulli").linear_s2(0.0, {})), 6)
        4.0
        """
        mu = self.mean(beta0, xp)
        dmu = inverse_link_derivative(self.link, beta0, xp)
        return self.variance(mu, aux, trials, xp) / dmu**2

    def __repr__(self) -> str:
        return f"Family({self.name}, link={self.link})"


def get_family(name: str | Family, link: str | None = None) -> Family:
    """Look up a family by name and attach a link (the family's default when None).

    Raises
    ------
    FamilyError
        For an unknown family, or a link the family does not offer.
    """
    if isinstance(name, Family):
        if link is not None and link != name.link:
            return get_family(name.name, link)
        return name
    if not isinstance(name, str):
        raise FamilyError(f"family must be a string such as 'poisson', got {type(name).__name__}")
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in FAMILIES:
        raise FamilyError(
            f"unknown family {name!r}; choose one of {', '.join(FAMILIES)}"
        )
    spec = FAMILIES[key]
    link = spec.links[0] if link is None else link
    if link not in spec.links:
        raise FamilyError(
            f"family {spec.name!r} has no link {link!r}; choose one of {', '.join(spec.links)}"
        )
    return Family(spec=spec, link=link)
