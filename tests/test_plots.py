"""Plots of fits: each returns its axes, draws what it says, sorts, and names bad input."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.collections import LineCollection, PolyCollection  # noqa: E402

from r2d2formula import DesignError, Model, datasets  # noqa: E402
from r2d2formula.design import training_data  # noqa: E402
from r2d2formula.plots import (  # noqa: E402
    plot_conditional,
    plot_group_effects,
    plot_ppc,
    plot_variance_decomposition,
)


@pytest.fixture(scope="module")
def lab():
    """A small laboratory data set and a quick fit (few draws on purpose)."""
    df = datasets.simulate_laboratory(n_mice=6, n_micro_rna=5, n_stress=3, n_replicates=1,
                                      random_seed=2)
    model = Model(df.attrs["formula"], df)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(draws=100, tune=100, chains=2, sampler="pymc", progressbar=False,
                         random_seed=2)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _labels(ax: Axes) -> list[str]:
    return [t.get_text() for t in ax.get_yticklabels()]


def _segments(ax: Axes) -> list[np.ndarray]:
    (lines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    return lines.get_segments()


# ---------------------------------------------------------------------------------------
# variance decomposition
# ---------------------------------------------------------------------------------------


def test_variance_decomposition_sorted_by_posterior_mean(lab):
    ax = lab.plot_variance_decomposition()
    assert isinstance(ax, Axes)
    means = lab.idata.posterior["phi"].mean(("chain", "draw")).to_series()
    expected = list(means.sort_values(kind="stable").index)
    assert _labels(ax) == expected  # smallest at the bottom, largest at the top
    assert sorted(_labels(ax)) == sorted(lab.model.components.index)
    segments = _segments(ax)
    assert len(segments) == len(expected)
    (points,) = ax.get_lines()
    assert np.allclose(points.get_xdata(), means[expected].to_numpy())
    table = lab.variance_decomposition(hdi_prob=0.94)
    for k, name in enumerate(expected):  # the intervals are the table's HDIs
        (x0, _), (x1, _) = segments[k]
        assert x0 == pytest.approx(table.loc[name, "phi_hdi_3%"])
        assert x1 == pytest.approx(table.loc[name, "phi_hdi_97%"])


def test_variance_decomposition_total_scales_by_r2(lab):
    ax = lab.plot_variance_decomposition(total=True, hdi_prob=0.5)
    (points,) = ax.get_lines()
    table = lab.variance_decomposition()
    expected = table["phi_R2_mean"].sort_values(kind="stable")
    assert _labels(ax) == list(expected.index)
    assert np.allclose(points.get_xdata(), expected.to_numpy())
    assert "total" in ax.get_xlabel() and "50% HDI" in ax.get_xlabel()


def test_variance_decomposition_draws_on_given_axes(lab):
    fig, (left, right) = plt.subplots(1, 2)
    assert plot_variance_decomposition(lab, ax=right) is right
    assert not left.has_data()


def test_bad_hdi_prob(lab):
    with pytest.raises(ValueError, match="hdi_prob"):
        lab.plot_variance_decomposition(hdi_prob=1.5)


# ---------------------------------------------------------------------------------------
# group effects
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("factor", ["mouse", "microRNA", "stress"])
def test_group_effects_caterpillar_sorted(lab, factor):
    ax = lab.plot_group_effects(factor)
    r = lab.idata.posterior[f"r_{factor}"].sel({f"{factor}__term": "1"})
    means = r.mean(("chain", "draw")).to_series()
    assert _labels(ax) == list(means.sort_values(kind="stable").index)
    assert len(_segments(ax)) == lab.idata.posterior.sizes[factor]
    zero = [line for line in ax.get_lines() if list(line.get_xdata()) == [0, 0]]
    assert len(zero) == 1  # the reference line at zero
    assert ax.get_ylabel() == factor


def test_group_effects_accepts_component_name(lab):
    ax = plot_group_effects(lab, "mouse", "1|mouse")
    assert ax.get_title() == "group effects: 1|mouse"


def test_group_effects_bad_factor_names_choices(lab):
    with pytest.raises(DesignError, match=r"no grouping factor 'mice'.*'mouse', 'microRNA', "
                                          r"'stress'"):
        lab.plot_group_effects("mice")


def test_group_effects_bad_term_names_choices(lab):
    with pytest.raises(DesignError, match=r"factor 'mouse' has no term 'age'; its terms are "
                                          r"\['1'\]"):
        lab.plot_group_effects("mouse", "age")


# ---------------------------------------------------------------------------------------
# posterior predictive check
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["kde", "hist"])
def test_ppc_lines(lab, kind):
    ax = lab.plot_ppc(kind=kind, num_pp_samples=20, random_seed=1)
    assert isinstance(ax, Axes)
    lines = ax.get_lines()
    assert len(lines) == 20 + 2  # replicates, their mean, the observed data
    observed = lines[-1]
    assert observed.get_label() == "observed"
    x, y = observed.get_data()
    area = np.sum(np.diff(x) * 0.5 * (y[1:] + y[:-1])) if kind == "kde" else \
        np.sum(y * (x[1] - x[0]))
    assert area == pytest.approx(1.0, abs=0.05)  # a density
    assert "posterior_predictive" in lab.idata.groups()


@pytest.fixture(scope="module")
def counts(small_gaussian):
    """A poisson fit whose grouping factor is stored as numbers (codes 0..5)."""
    frame = small_gaussian.assign(g=small_gaussian["g"].str[1:].astype(int))
    model = Model("count ~ x1 + (1 | g)", frame, family="poisson")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(draws=50, tune=100, chains=1, sampler="pymc", progressbar=False,
                         random_seed=1)


def test_ppc_counts_are_histograms(counts):
    ax = plot_ppc(counts, num_pp_samples=5, random_seed=0)
    observed = ax.get_lines()[-1]
    assert observed.get_drawstyle() == "steps-mid"
    x = observed.get_xdata()
    assert np.allclose(np.diff(x), 1.0)  # one bin per count
    assert len(ax.get_lines()) == 5 + 2


def test_ppc_bad_arguments(lab):
    with pytest.raises(ValueError, match="kind must be 'kde' or 'hist'"):
        lab.plot_ppc(kind="ecdf")
    with pytest.raises(ValueError, match="num_pp_samples"):
        lab.plot_ppc(num_pp_samples=0)


# ---------------------------------------------------------------------------------------
# conditional predictions
# ---------------------------------------------------------------------------------------


def test_conditional_one_line_without_by(lab):
    ax = lab.plot_conditional("dose", n_points=12)
    (line,) = ax.get_lines()
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1
    data = training_data(lab.design)
    x, y = line.get_data()
    assert len(x) == 12
    assert x[0] == pytest.approx(data["dose"].min()) and x[-1] == pytest.approx(data["dose"].max())
    # gaussian, population level: a straight line with the posterior mean slope
    slope = float(lab.idata.posterior["b"].sel(coef="dose").mean())
    assert np.allclose(np.diff(y) / np.diff(x), slope, rtol=1e-6)
    assert ax.get_xlabel() == "dose"


def test_conditional_by_grouping_factor(lab):
    ax = lab.plot_conditional("age", by="stress", n_points=5)
    lines = ax.get_lines()
    levels = sorted(training_data(lab.design)["stress"].unique())
    assert [line.get_label() for line in lines] == levels
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == len(levels)
    # the lines differ by the stress effects only
    r = lab.idata.posterior["r_stress"].sel(stress__term="1").mean(("chain", "draw"))
    gaps = [line.get_ydata()[0] - lines[0].get_ydata()[0] for line in lines]
    expected = [float(r.sel(stress=level) - r.sel(stress=levels[0])) for level in levels]
    assert np.allclose(gaps, expected, atol=1e-6)


def test_conditional_levels_subset(lab):
    ax = plot_conditional(lab, "age", by="mouse", levels=["mouse01", "mouse03"], n_points=4)
    assert [line.get_label() for line in ax.get_lines()] == ["mouse01", "mouse03"]


def test_conditional_bad_names(lab):
    with pytest.raises(DesignError, match=r"'weight' is not a numeric predictor.*\['age', "
                                          r"'dose'\]"):
        lab.plot_conditional("weight")
    with pytest.raises(DesignError, match="not a numeric predictor"):
        lab.plot_conditional("mouse")
    with pytest.raises(DesignError, match=r"by='cage' is neither.*'mouse', 'microRNA', "
                                          r"'stress'"):
        lab.plot_conditional("age", by="cage")
    with pytest.raises(DesignError, match=r"levels \['mouse99'\] are not levels"):
        lab.plot_conditional("age", by="mouse", levels=["mouse99"])


def test_conditional_numeric_grouping_codes(counts):
    ax = counts.plot_conditional("x1", by="g", n_points=6)
    assert [line.get_label() for line in ax.get_lines()] == [str(k) for k in range(6)]
    (population,) = counts.plot_conditional("x1", n_points=6).get_lines()
    # poisson mean: exp of a line, so log-means are equally spaced
    assert np.allclose(np.diff(np.log(population.get_ydata()), 2), 0.0, atol=0.05)
