"""Fast subset of the validation suite (validation/): runs in CI under the `validation` marker.

The full suite is ``python -m validation.run`` (hours); these tests check that its harness
works end to end on a tiny model and that the library still agrees with stored REML numbers.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # validation/ lives next to the package, not inside it
    sys.path.insert(0, str(ROOT))

from validation import agreement, stats  # noqa: E402
from validation.configs import (  # noqa: E402
    GAUSSIAN_PRIORS,
    Config,
    _gaussian_design,
    get_config,
)
from validation.fitting import FitSettings  # noqa: E402
from validation.sbc import (  # noqa: E402
    SBCRun,
    check_prior_free_of_response,
    load_results,
    run_sbc,
    simulate,
)

pytestmark = pytest.mark.validation


def test_uniformity_statistics_detect_non_uniform_ranks():
    rng = np.random.default_rng(0)
    uniform = rng.integers(0, 100, size=200)
    skewed = np.minimum(rng.integers(0, 100, size=200), rng.integers(0, 100, size=200))
    band = stats.ecdf_band(200, 100, n_sims=1000, seed=1)
    assert stats.chisq_uniformity(uniform, 100, 10)[1] > 0.01
    assert stats.ecdf_uniformity(uniform, 100, band)[1] > 0.01
    assert stats.chisq_uniformity(skewed, 100, 10)[1] < 1e-6
    assert stats.ecdf_uniformity(skewed, 100, band)[1] < 0.001
    # the band is simultaneous: about 5% of uniform rank sets leave it somewhere
    outside = [stats.ecdf_uniformity(rng.integers(0, 100, size=200), 100, band)[1] < 0.05
               for _ in range(300)]
    assert 0.02 < np.mean(outside) < 0.09


def test_thinning_keeps_evenly_spaced_draws_from_every_chain():
    draws = np.arange(2 * 500).reshape(2, 500)
    kept = stats.thin_draws(draws, 99)
    assert kept.shape == (99,)
    assert np.sum(kept < 500) == 50 and np.all(np.diff(kept) > 0)


def test_default_priors_read_the_response_and_are_refused():
    """SBC is invalid when the prior reads y; the runner must notice (SPEC section 5)."""
    config = Config(name="defaults", title="", formula="y ~ x1 + x2", family="gaussian",
                    make_data=_gaussian_design(40, 2), response="y", seed=1)
    with pytest.raises(RuntimeError, match="depend on the response"):
        check_prior_free_of_response(config)
    fixed = Config(name="fixed", title="", formula="y ~ x1 + x2", family="gaussian",
                   make_data=_gaussian_design(40, 2), response="y", seed=1,
                   priors=GAUSSIAN_PRIORS)
    check_prior_free_of_response(fixed)


def test_sbc_harness_end_to_end(tmp_path):
    """A few SBC replications of a tiny model: cached records with ranks in range."""
    n_reps = 3
    run = SBCRun(config="ci_gaussian_tiny", n_reps=n_reps,
                 settings=FitSettings(draws=150, tune=200, chains=2, method="pymc"),
                 n_keep=99)
    truths, ys = simulate(get_config(run.config), n_reps)
    assert ys.shape == (n_reps, 40)
    assert set(truths) == {"Intercept", "b[x1]", "b[x2]", "sigma", "R2", "phi[x1]", "phi[x2]"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_sbc([run], workers=1, root=tmp_path, log=lambda _: None)
    records = load_results(run, tmp_path)
    assert [r["rep"] for r in records] == list(range(n_reps))
    for record, rep in zip(records, range(n_reps), strict=True):
        assert set(record["rank"]) == set(truths)
        assert all(0 <= rank <= run.n_keep for rank in record["rank"].values())
        assert record["truth"]["R2"] == pytest.approx(truths["R2"][rep])
        # the posterior moved with the data: its mean of R2 is not the prior's 0.5 everywhere
        assert 0.0 < record["mean"]["R2"] < 1.0
    assert len({r["mean"]["b[x1]"] for r in records}) == n_reps
    # resuming finds everything cached and fits nothing
    messages = []
    run_sbc([run], workers=1, root=tmp_path, log=messages.append)
    assert messages == [f"[sbc] ci_gaussian_tiny: {n_reps} cached, 0 to fit"]


def test_sleepstudy_agrees_with_stored_mixedlm_reference():
    """The library's sleepstudy posterior against stored REML numbers (statsmodels MixedLM)."""
    ref = agreement.load_reference("sleepstudy")
    assert ref["fixed"]["b[Days]"] == pytest.approx(10.467, abs=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = agreement.mixedlm_agreement("sleepstudy", draws=300, tune=400, chains=2,
                                             seed=3, reference=ref)
    table = result["table"].set_index("quantity")
    # fixed effects and variance components, with the full run's tolerances
    assert table.loc[["Intercept", "b[Days]", "sigma"], "ok"].all(), table
    assert table.loc[["sd_Subject[1]", "sd_Subject[Days]"], "ok"].all(), table


def test_stored_reference_reproduces_with_statsmodels():
    pytest.importorskip("statsmodels")
    stored = agreement.load_reference("sleepstudy")
    fresh = agreement.mixedlm_reference("sleepstudy", lme4=False)
    for group in ("fixed", "fixed_se", "sd", "cor"):
        for name, value in fresh[group].items():
            assert stored[group][name] == pytest.approx(value, rel=1e-3, abs=1e-4), name
    assert stored["sigma"] == pytest.approx(fresh["sigma"], rel=1e-4)
