"""R2D2.from_interval: a Beta prior on R2 from "mass on [low, high]", with equal tails."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from scipy import stats  # noqa: E402

from r2d2formula import R2D2, PriorSpecError  # noqa: E402

CASES = [
    (0.2, 0.6, 0.9),
    (0.01, 0.2, 0.9),
    (0.8, 0.99, 0.9),
    (0.001, 0.999, 0.9),  # U-shaped Beta, a = b < 1
    (0.1, 0.9, 0.5),
    (0.3, 0.31, 0.9),  # narrow: a, b in the thousands
    (0.45, 0.55, 0.99),
    (0.0001, 0.5, 0.99),
    (0.2, 0.6, 0.1),
]


def _beta(prior: R2D2):
    return stats.beta(*prior.beta_parameters)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize(("low", "high", "mass"), CASES)
def test_mass_on_interval_and_equal_tails(low, high, mass):
    prior = R2D2.from_interval(low, high, mass=mass)
    dist = _beta(prior)
    assert dist.cdf(high) - dist.cdf(low) == pytest.approx(mass, abs=1e-6)
    assert dist.cdf(low) == pytest.approx((1 - mass) / 2, abs=1e-6)
    assert dist.sf(high) == pytest.approx((1 - mass) / 2, abs=1e-6)
    a, b = prior.beta_parameters
    assert prior.r2_mean == pytest.approx(a / (a + b))
    assert prior.r2_precision == pytest.approx(a + b)


def test_symmetric_interval_gives_mean_one_half():
    prior = R2D2.from_interval(0.3, 0.7, mass=0.8)
    assert prior.r2_mean == pytest.approx(0.5, abs=1e-9)


def test_known_solution_uniform():
    # Beta(1, 1) puts 90% on [0.05, 0.95] with 5% in each tail
    prior = R2D2.from_interval(0.05, 0.95, mass=0.9)
    assert prior.beta_parameters == pytest.approx((1.0, 1.0), rel=1e-7)


@pytest.mark.parametrize(("mean", "precision"), [(0.5, 2.0), (0.3, 10.0), (0.8, 3.0),
                                                 (0.1, 50.0), (0.5, 0.5)])
def test_round_trip_from_parameters(mean, precision):
    prior = R2D2(r2_mean=mean, r2_precision=precision)
    low, high = prior.r2_interval(0.9)
    again = R2D2.from_interval(low, high, mass=0.9)
    assert again.r2_mean == pytest.approx(mean, rel=1e-6)
    assert again.r2_precision == pytest.approx(precision, rel=1e-6)


@pytest.mark.parametrize(("low", "high", "mass"), CASES)
def test_round_trip_from_interval(low, high, mass):
    prior = R2D2.from_interval(low, high, mass=mass)
    assert prior.r2_interval(mass) == pytest.approx((low, high), abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(low=st.floats(0.005, 0.9), width=st.floats(0.02, 0.9), mass=st.floats(0.05, 0.99))
def test_equal_tails_property(low, width, mass):
    high = min(low + width, 0.995)
    prior = R2D2.from_interval(low, high, mass=mass)
    dist = _beta(prior)
    assert dist.cdf(low) == pytest.approx((1 - mass) / 2, abs=1e-6)
    assert dist.sf(high) == pytest.approx((1 - mass) / 2, abs=1e-6)


def test_other_arguments_pass_through():
    prior = R2D2.from_interval(0.2, 0.6, concentration={"x": 1.0}, approx="gbp",
                               autoscale=False)
    assert prior.concentration == {"x": 1.0}
    assert prior.approx == "gbp"
    assert prior.autoscale is False


@pytest.mark.parametrize(("args", "kwargs", "match"), [
    ((0.6, 0.2), {}, "low must be smaller than high"),
    ((0.3, 0.3), {}, "low must be smaller than high"),
    ((0.0, 0.5), {}, "low must lie strictly between 0 and 1"),
    ((-0.1, 0.5), {}, "low must lie strictly between 0 and 1"),
    ((0.2, 1.0), {}, "high must lie strictly between 0 and 1"),
    ((0.2, 0.6), {"mass": 1.0}, "mass must lie strictly between 0 and 1"),
    ((0.2, 0.6), {"mass": 0.0}, "mass must lie strictly between 0 and 1"),
    ((0.2, 0.6), {"mass": True}, "mass must lie strictly between 0 and 1"),
    (("0.2", 0.6), {}, "low must lie strictly between 0 and 1"),
    ((0.2, 0.6), {"r2_mean": 0.4}, "solves for r2_mean and r2_precision"),
    ((0.5, 0.500001), {"mass": 0.9}, "too narrow"),
    ((0.2, 0.6), {"concentration": -1.0}, "concentration"),
])
def test_invalid_input_is_a_prior_spec_error(args, kwargs, match):
    with pytest.raises(PriorSpecError, match=match):
        R2D2.from_interval(*args, **kwargs)


def test_prior_spec_error_is_a_value_error():
    with pytest.raises(ValueError):
        R2D2.from_interval(0.7, 0.2)


def test_describe_states_the_interval():
    text = R2D2.from_interval(0.2, 0.6, mass=0.9).describe()
    assert text.startswith("R2 ~ Beta(")
    assert "90% of the prior mass in [0.2000, 0.6000]" in text
    assert "phi ~ Dirichlet(0.5)" in text


def test_r2_interval_rejects_bad_mass():
    with pytest.raises(PriorSpecError, match="mass"):
        R2D2().r2_interval(1.5)


def test_plot_shades_the_interval():
    prior = R2D2.from_interval(0.2, 0.6, mass=0.9)
    ax = prior.plot()
    shaded = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(shaded) == 1
    xs = shaded[0].get_paths()[0].vertices[:, 0]
    assert xs.min() == pytest.approx(0.2, abs=2e-3)
    assert xs.max() == pytest.approx(0.6, abs=2e-3)
    (line,) = ax.get_lines()
    x, y = line.get_data()
    a, b = prior.beta_parameters
    assert np.allclose(y, stats.beta(a, b).pdf(x))
    assert ax.get_xlim() == (0.0, 1.0)


def test_plot_uses_given_axes_and_handles_u_shape():
    _, ax = plt.subplots()
    out = R2D2.from_interval(0.001, 0.999, mass=0.9).plot(ax, mass=0.5)
    assert out is ax
    low, high = ax.get_ylim()
    assert np.isfinite(high) and high > low
