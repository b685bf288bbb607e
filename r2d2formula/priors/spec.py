"""User-facing prior specifications: :class:`R2D2` and :class:`Prior`.

These are plain, validated, immutable descriptions. The backend turns them into PyMC
variables; nothing here imports PyMC.
"""

from __future__ import annotations

import dataclasses
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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description; :meth:`from_dict` reads it back.

        Examples
        --------
        >>> Prior.from_dict(Prior("Normal", mu=1, sigma=2).to_dict())
        Prior('Normal', mu=1, sigma=2)
        """
        return {"distribution": self.distribution, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Prior:
        """The Prior described by :meth:`to_dict`'s output (validated as usual)."""
        if not isinstance(data, Mapping) or "distribution" not in data:
            raise PriorSpecError(
                f"a Prior description needs a 'distribution' entry, got {data!r}")
        return cls(data["distribution"], **dict(data.get("params") or {}))


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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description; :meth:`from_dict` reads it back.

        Examples
        --------
        >>> prior = R2D2(r2_mean=0.3, concentration={"x": 2.0})
        >>> R2D2.from_dict(prior.to_dict()) == prior
        True
        """
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if isinstance(out["concentration"], Mapping):
            out["concentration"] = dict(out["concentration"])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> R2D2:
        """The R2D2 prior described by :meth:`to_dict`'s output (validated as usual)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known) if isinstance(data, Mapping) else None
        if unknown is None or unknown:
            raise PriorSpecError(
                f"an R2D2 description takes the entries {sorted(known)}; got {data!r}")
        return cls(**data)

    @classmethod
    def from_interval(cls, low: float, high: float, mass: float = 0.9, **kwargs: Any) -> R2D2:
        """The R2D2 prior whose Beta puts ``mass`` of R2 on ``[low, high]``, equal tails.

        A Beta has two parameters and "mass on [low, high]" is one condition, so one more is
        needed. The rule here is equal tails: ``P(R2 < low) = P(R2 > high) = (1 - mass) / 2``,
        so ``[low, high]`` is the central (equal-tailed) ``mass`` interval of the prior. Two
        quantiles fix a Beta uniquely; the solution is found by nested one-dimensional root
        finding on the Beta's CDF (``scipy.special.betainc``), exact to about 1e-12.

        Parameters
        ----------
        low, high : float
            The interval, with ``0 < low < high < 1``.
        mass : float in (0, 1), default 0.9
            Prior probability of ``low <= R2 <= high``.
        **kwargs
            Any other :class:`R2D2` argument (``concentration``, ``autoscale``, ``kernel``,
            ``approx``); not ``r2_mean`` or ``r2_precision``, which are solved for.

        Returns
        -------
        R2D2
            With ``r2_mean = a / (a + b)`` and ``r2_precision = a + b``.

        Raises
        ------
        PriorSpecError
            If ``low >= high``, either end lies outside (0, 1), ``mass`` is not in (0, 1),
            kwargs set r2_mean or r2_precision, or the interval is too narrow for the mass
            (it would need a Beta with a or b above about 1e9).

        Notes
        -----
        A wide interval with a small mass can give a U-shaped Beta (a, b < 1): for example
        ``mass=0.5`` on ``[0.1, 0.9]`` leaves a quarter of the prior in each corner. Use
        :meth:`plot` or :meth:`describe` to look at the result.

        Examples
        --------
        "R2 is probably, say 90%, between 0.2 and 0.6":

        >>> prior = R2D2.from_interval(0.2, 0.6, mass=0.9)
        >>> round(prior.r2_mean, 4), round(prior.r2_precision, 3)
        (0.3916, 15.156)
        >>> [round(x, 6) for x in prior.r2_interval(0.9)]
        [0.2, 0.6]
        >>> R2D2.from_interval(0.2, 0.6, concentration=1.0).concentration
        1.0
        """
        for name, value in (("low", low), ("high", high), ("mass", mass)):
            if not _is_number(value) or not 0.0 < value < 1.0:
                raise PriorSpecError(
                    f"{name} must lie strictly between 0 and 1, got {value!r}; "
                    + ("R2 is a proportion" if name != "mass" else
                       "mass is the prior probability of the interval, e.g. 0.9")
                )
        if not low < high:
            raise PriorSpecError(
                f"low must be smaller than high, got low={low!r}, high={high!r}; "
                "swap them or widen the interval"
            )
        taken = sorted({"r2_mean", "r2_precision"} & set(kwargs))
        if taken:
            raise PriorSpecError(
                f"from_interval solves for r2_mean and r2_precision; do not pass {taken}"
            )
        a, b = _beta_from_quantiles(low, high, mass)
        return cls(r2_mean=a / (a + b), r2_precision=a + b, **kwargs)

    def r2_interval(self, mass: float = 0.9) -> tuple[float, float]:
        """The central (equal-tailed) interval holding ``mass`` of the prior on R2.

        Examples
        --------
        >>> [round(x, 4) for x in R2D2().r2_interval(0.9)]  # uniform R2
        [0.05, 0.95]
        """
        from scipy import special

        if not _is_number(mass) or not 0.0 < mass < 1.0:
            raise PriorSpecError(f"mass must lie strictly between 0 and 1, got {mass!r}")
        a, b = self.beta_parameters
        tail = (1.0 - mass) / 2.0
        return (float(special.betaincinv(a, b, tail)), float(special.betaincinv(a, b, 1 - tail)))

    def describe(self, mass: float = 0.9) -> str:
        """The prior in words: the Beta on R2, its mean and central interval, and phi.

        Examples
        --------
        >>> print(R2D2(r2_mean=0.3, r2_precision=10).describe())
        R2 ~ Beta(3, 7): mean 0.3, 90% of the prior mass in [0.0977, 0.5496] (equal tails); phi ~ Dirichlet(0.5)
        """
        a, b = self.beta_parameters
        lo, hi = self.r2_interval(mass)
        return (f"R2 ~ Beta({a:.4g}, {b:.4g}): mean {self.r2_mean:.4g}, {mass:.0%} of the prior "
                f"mass in [{lo:.4f}, {hi:.4f}] (equal tails); "
                f"phi ~ Dirichlet({self.concentration!r})")

    def plot(self, ax: Any = None, *, mass: float = 0.9) -> Any:
        """Draw the Beta density of R2 with its central ``mass`` interval shaded.

        For a prior made by :meth:`from_interval`, the shaded interval is the one asked for.

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Drawn on a new figure when None.
        mass : float in (0, 1), default 0.9

        Returns
        -------
        matplotlib Axes

        Examples
        --------
        >>> ax = R2D2.from_interval(0.2, 0.6).plot()
        >>> ax.get_xlabel()
        'R2'
        """
        import matplotlib.pyplot as plt
        import numpy as np
        from scipy import stats

        own_figure = ax is None
        if own_figure:
            _, ax = plt.subplots(figsize=(5, 3))
        a, b = self.beta_parameters
        lo, hi = self.r2_interval(mass)
        dist = stats.beta(a, b)
        # dense grid near 0 and 1, where a or b below 1 makes the density steep
        grid = np.unique(np.concatenate([np.linspace(0, 1, 801)[1:-1],
                                         np.geomspace(1e-6, 1e-3, 50),
                                         1 - np.geomspace(1e-6, 1e-3, 50)]))
        density = dist.pdf(grid)
        ax.plot(grid, density, color="k", lw=1.5, label=f"Beta({a:.3g}, {b:.3g})")
        inside = (grid >= lo) & (grid <= hi)
        ax.fill_between(grid[inside], density[inside], color="C0", alpha=0.35,
                        label=f"{mass:.0%}: [{lo:.3g}, {hi:.3g}]")
        ax.set_xlim(0, 1)
        top = float(np.quantile(density, 0.98))  # keep an infinite density at 0 or 1 in view
        ax.set_ylim(0, max(top, float(density[inside].max())) * 1.1)
        ax.set_xlabel("R2")
        ax.set_ylabel("prior density")
        ax.set_title(f"prior on R2: mean {self.r2_mean:.3g}, precision {self.r2_precision:.3g}")
        ax.legend(fontsize="small", frameon=False)
        if own_figure:  # a caller's figure keeps its layout
            ax.figure.tight_layout()
        return ax


# Search ranges of log a and log b: a from 6e-6 to 3.6e9, b from 1e-11 to 7e10. Beyond them
# the Beta is a point mass (or an atom at 0 or 1) for any practical purpose.
_LOG_A_GRID = (-12.0, 22.0)
_LOG_B_BOUND = 25.0


def _b_given_a(a: float, low: float, lower_tail: float) -> float | None:
    """The b with P(R2 < low) = lower_tail under Beta(a, b); that CDF increases with b."""
    from scipy import optimize, special

    def f(log_b: float) -> float:
        return float(special.betainc(a, math.exp(log_b), low)) - lower_tail

    if not f(-_LOG_B_BOUND) < 0.0 < f(_LOG_B_BOUND):
        return None
    root = optimize.brentq(f, -_LOG_B_BOUND, _LOG_B_BOUND, xtol=1e-14, rtol=1e-15, maxiter=500)
    return math.exp(root)


def _beta_from_quantiles(low: float, high: float, mass: float) -> tuple[float, float]:
    """(a, b) of the Beta with P(X < low) = P(X > high) = (1 - mass) / 2.

    For each a, b(a) matches the lower tail; a is then found where the upper tail matches,
    by a sign change on a grid of log a and Brent's method.

    Examples
    --------
    >>> a, b = _beta_from_quantiles(0.25, 0.75, 0.5)  # quartiles 1/4, 3/4: symmetric
    >>> round(a, 6) == round(b, 6)
    True
    """
    import numpy as np
    from scipy import optimize, special

    tail = (1.0 - mass) / 2.0

    def upper_gap(log_a: float) -> float:
        a = math.exp(log_a)
        b = _b_given_a(a, low, tail)
        if b is None:
            return float("nan")
        return float(special.betainc(a, b, high)) - (1.0 - tail)

    grid = np.linspace(*_LOG_A_GRID, 69)
    values = [upper_gap(x) for x in grid]
    for left, right, v_left, v_right in zip(grid[:-1], grid[1:], values[:-1], values[1:],
                                            strict=True):
        if math.isfinite(v_left) and math.isfinite(v_right) and v_left * v_right <= 0.0:
            log_a = optimize.brentq(upper_gap, left, right, xtol=1e-14, rtol=1e-15,
                                    maxiter=500)
            a = math.exp(log_a)
            b = _b_given_a(a, low, tail)
            if b is not None:
                return a, b
    raise PriorSpecError(
        f"no Beta prior puts {mass:g} of its mass on [{low:g}, {high:g}] with equal tails "
        "within a, b < 3.6e9: the interval is too narrow for that mass; widen the interval "
        "or lower mass"
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
