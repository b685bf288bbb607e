"""User-facing prior specifications: :class:`R2D2` and :class:`Prior`.

These are plain, validated, immutable descriptions. The backend turns them into PyMC
variables; nothing here imports PyMC.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from r2d2formula.errors import PriorSpecError

__all__ = ["R2D2", "Prior", "APPROX_METHODS", "KERNELS"]

APPROX_METHODS = ("exact", "gbp", "linear")
KERNELS = ("normal", "laplace")

# Distributions a Prior may name, with the parameters each takes (PyMC's names).
_DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "Normal": ("mu", "sigma"),
    "StudentT": ("nu", "mu", "sigma"),
    "HalfNormal": ("sigma",),
    "HalfStudentT": ("nu", "sigma"),
    "HalfCauchy": ("beta",),
    "Exponential": ("lam",),
    "Gamma": ("alpha", "beta"),
    "InverseGamma": ("alpha", "beta"),
    "LogNormal": ("mu", "sigma"),
    "Uniform": ("lower", "upper"),
    "Cauchy": ("alpha", "beta"),
}
_POSITIVE_SUPPORT = {"HalfNormal", "HalfStudentT", "HalfCauchy", "Exponential", "Gamma",
                     "InverseGamma", "LogNormal"}


@dataclass(frozen=True)
class Prior:
    """A prior distribution for the intercept or an auxiliary parameter.

    Parameters
    ----------
    distribution : str
        A PyMC distribution name: Normal, StudentT, HalfNormal, HalfStudentT, HalfCauchy,
        Exponential, Gamma, InverseGamma, LogNormal, Uniform or Cauchy.
    **params : float
        Its parameters, by PyMC's names.

    Examples
    --------
    >>> Prior("HalfStudentT", nu=3, sigma=10)
    Prior('HalfStudentT', nu=3, sigma=10)
    >>> Prior("Normal", mean=0)
    Traceback (most recent call last):
    ...
    r2d2formula.errors.PriorSpecError: Prior('Normal') takes parameters mu, sigma; got unknown 'mean'
    """

    distribution: str
    params: dict[str, float] = field(default_factory=dict)

    def __init__(self, distribution: str, **params: float) -> None:
        if distribution not in _DISTRIBUTIONS:
            raise PriorSpecError(
                f"unknown prior distribution {distribution!r}; use one of "
                f"{', '.join(_DISTRIBUTIONS)}"
            )
        allowed = _DISTRIBUTIONS[distribution]
        for key, value in params.items():
            if key not in allowed:
                raise PriorSpecError(
                    f"Prior({distribution!r}) takes parameters {', '.join(allowed)}; "
                    f"got unknown {key!r}"
                )
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise PriorSpecError(
                    f"Prior({distribution!r}) parameter {key!r} must be a finite number, "
                    f"got {value!r}"
                )
        for key in ("sigma", "beta", "lam", "alpha", "nu"):
            if key in params and params[key] <= 0 and not (
                distribution == "Cauchy" and key == "alpha"
            ):
                raise PriorSpecError(
                    f"Prior({distribution!r}) parameter {key!r} must be > 0, got {params[key]!r}"
                )
        object.__setattr__(self, "distribution", distribution)
        object.__setattr__(self, "params", dict(params))

    @property
    def positive(self) -> bool:
        """Whether the distribution's support is the positive reals."""
        return self.distribution in _POSITIVE_SUPPORT

    def describe(self) -> str:
        """The prior in words, e.g. ``HalfStudentT(nu=3, sigma=10)``."""
        args = ", ".join(f"{k}={_fmt(v)}" for k, v in self.params.items())
        return f"{self.distribution}({args})"

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"Prior({self.distribution!r}{args})"


def _fmt(value: float) -> str:
    return f"{value:.4g}"


@dataclass(frozen=True, kw_only=True)
class R2D2:
    """The R2D2 family of priors, set on R2 and split over components by a Dirichlet.

    Parameters
    ----------
    r2_mean : float in (0, 1), default 0.5
        Prior mean of R2.
    r2_precision : float > 0, default 2
        Prior precision of R2: R2 ~ Beta(r2_mean * r2_precision, (1 - r2_mean) * r2_precision).
        The defaults give Beta(1, 1), uniform on R2.
    concentration : float > 0 or dict of str to float, default 0.5
        Dirichlet concentration of the variance shares phi, one per component. A dict sets it
        per component name (``{"age": 1.0, "1|mouse": 2.0}``); components it does not name get
        0.5. Smaller values shrink more components towards zero.
    autoscale : bool, default True
        Divide each coefficient's scale by its column's standard deviation, so R2 keeps its
        meaning whatever the predictor units. False reproduces brms.
    kernel : {"normal", "laplace"}, default "normal"
        Distribution of the population-level coefficients given their variance (R2D2 only).
    approx : {"exact", "gbp", "linear"} or None, default None
        How W, the prior variance of the linear predictor, follows from R2 for non-gaussian
        families (gaussian is always exact). None picks the library default.

    Examples
    --------
    >>> prior = R2D2(r2_mean=0.3, r2_precision=10)
    >>> prior.beta_parameters
    (3.0, 7.0)
    >>> R2D2(r2_mean=1.2)
    Traceback (most recent call last):
    ...
    r2d2formula.errors.PriorSpecError: r2_mean must lie strictly between 0 and 1, got 1.2; the prior mean of R2 is a proportion
    """

    r2_mean: float = 0.5
    r2_precision: float = 2.0
    concentration: float | Mapping[str, float] = 0.5
    autoscale: bool = True
    kernel: Literal["normal", "laplace"] = "normal"
    approx: Literal["exact", "gbp", "linear"] | None = None

    def __post_init__(self) -> None:
        if not _is_number(self.r2_mean) or not 0.0 < self.r2_mean < 1.0:
            raise PriorSpecError(
                f"r2_mean must lie strictly between 0 and 1, got {self.r2_mean!r}; the prior "
                "mean of R2 is a proportion"
            )
        if not _is_number(self.r2_precision) or not self.r2_precision > 0:
            raise PriorSpecError(
                f"r2_precision must be a positive number, got {self.r2_precision!r}; "
                "2 gives a uniform prior on R2 at r2_mean=0.5"
            )
        if isinstance(self.concentration, Mapping):
            for key, value in self.concentration.items():
                if not isinstance(key, str):
                    raise PriorSpecError(f"concentration keys must be component names, got {key!r}")
                if not _is_number(value) or not value > 0:
                    raise PriorSpecError(
                        f"concentration for {key!r} must be a positive number, got {value!r}"
                    )
            object.__setattr__(self, "concentration", dict(self.concentration))
        elif not _is_number(self.concentration) or not self.concentration > 0:
            raise PriorSpecError(
                f"concentration must be a positive number or a dict of them, got "
                f"{self.concentration!r}"
            )
        if self.kernel not in KERNELS:
            raise PriorSpecError(f"kernel must be one of {KERNELS}, got {self.kernel!r}")
        if self.approx is not None and self.approx not in APPROX_METHODS:
            raise PriorSpecError(
                f"approx must be one of {APPROX_METHODS} (or None for the default), got "
                f"{self.approx!r}"
            )
        if not isinstance(self.autoscale, bool):
            raise PriorSpecError(f"autoscale must be True or False, got {self.autoscale!r}")

    @property
    def beta_parameters(self) -> tuple[float, float]:
        """(a, b) of the Beta prior on R2."""
        a = self.r2_mean * self.r2_precision
        return (float(a), float(self.r2_precision - a))

    def concentrations(self, components: tuple[str, ...]) -> tuple[float, ...]:
        """Dirichlet concentration per component, in order.

        Raises
        ------
        PriorSpecError
            If a dict names a component the model does not have.
        """
        if not isinstance(self.concentration, Mapping):
            return tuple(float(self.concentration) for _ in components)
        unknown = [key for key in self.concentration if key not in components]
        if unknown:
            raise PriorSpecError(
                f"concentration names unknown components {unknown}; the model's components are "
                f"{list(components)}"
            )
        return tuple(float(self.concentration.get(name, 0.5)) for name in components)

    def describe(self) -> str:
        a, b = self.beta_parameters
        return f"R2 ~ Beta({a:.4g}, {b:.4g}); phi ~ Dirichlet({self.concentration!r})"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
