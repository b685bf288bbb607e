"""The same random_seed gives identical draws, for every sampler; another seed does not
(issue 8).

PyMC's and nutpie's NUTS run in the regular suite. numpyro and blackjax compile through XLA,
which takes minutes on a small machine, so they are marked ``slow``; they are skipped, with
the reason, where the ``jax`` extra is not installed.
"""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pandas as pd
import pytest

from r2d2formula import Model
from r2d2formula.errors import DiagnosticsWarning

TINY = dict(draws=30, tune=30, chains=2, progressbar=False)


@pytest.fixture(scope="module")
def model() -> Model:
    rng = np.random.default_rng(0)
    n = 40
    data = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n)})
    data["y"] = 1 + data["x"] + rng.normal(size=n)
    return Model("y ~ x + z", data)  # small, so that compiling is quick


_FITS: dict = {}


def _fit(model: Model, sampler: str, seed: int, *, again: bool = False):
    """A fit per (sampler, seed), made once per module; ``again`` makes a fresh one."""
    key = (id(model), sampler, seed)
    if again or key not in _FITS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DiagnosticsWarning)  # 30 draws, on purpose
            warnings.simplefilter("ignore", UserWarning)
            fit = model.fit(sampler=sampler, random_seed=seed, **TINY)
        if again:
            return fit
        _FITS[key] = fit
    return _FITS[key]


def _assert_same_draws(a, b) -> None:
    for group in ("posterior", "sample_stats"):
        first, second = a.idata[group], b.idata[group]
        assert set(first.data_vars) == set(second.data_vars)
        for name in first.data_vars:
            if np.issubdtype(first[name].dtype, np.number) or first[name].dtype == bool:
                if name in ("step_size_bar", "process_time_diff", "perf_counter_diff",
                            "perf_counter_start", "sampling_time", "time"):
                    continue  # wall-clock measurements, not draws
                np.testing.assert_array_equal(first[name].values, second[name].values,
                                              err_msg=f"{group}.{name}")


def _jax_missing(*modules: str) -> str | None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    return f"{', '.join(missing)} not installed (pip install '.[jax]')" if missing else None


SAMPLERS = [
    pytest.param("pymc", id="pymc"),
    pytest.param("nutpie", id="nutpie"),
    pytest.param("numpyro", id="numpyro", marks=[
        pytest.mark.slow,
        pytest.mark.skipif(_jax_missing("jax", "numpyro") is not None,
                           reason=str(_jax_missing("jax", "numpyro")))]),
    pytest.param("blackjax", id="blackjax", marks=[
        pytest.mark.slow,
        pytest.mark.skipif(_jax_missing("jax", "blackjax") is not None,
                           reason=str(_jax_missing("jax", "blackjax")))]),
]


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_same_seed_same_draws_other_seed_other_draws(model, sampler):
    first = _fit(model, sampler, seed=123)
    again = _fit(model, sampler, seed=123, again=True)
    other = _fit(model, sampler, seed=124)
    assert again is not first
    _assert_same_draws(first, again)
    for name in ("b", "R2", "sigma"):
        assert not np.array_equal(first.idata.posterior[name].values,
                                  other.idata.posterior[name].values), name


def test_prior_predictive_and_predictions_follow_the_seed(model):
    a = model.sample_prior_predictive(draws=50, random_seed=9)
    b = model.sample_prior_predictive(draws=50, random_seed=9)
    c = model.sample_prior_predictive(draws=50, random_seed=10)
    np.testing.assert_array_equal(a.prior["R2"].values, b.prior["R2"].values)
    assert not np.array_equal(a.prior["R2"].values, c.prior["R2"].values)

    fit = _fit(model, "pymc", seed=123)
    new = pd.DataFrame({"x": [0.0, 1.0], "z": [0.5, -0.5]})
    one = fit.predict(new, kind="response", random_seed=3).draws.values
    two = fit.predict(new, kind="response", random_seed=3).draws.values
    three = fit.predict(new, kind="response", random_seed=4).draws.values
    np.testing.assert_array_equal(one, two)
    assert not np.array_equal(one, three)
