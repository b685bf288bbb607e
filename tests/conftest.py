"""Shared fixtures: small simulated data sets with known structure."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import pymc  # noqa: F401  (see below)
import pytest

warnings.filterwarnings("ignore", message=".*BLAS.*")

# PyMC's rich progress bar binds ``sys.stderr`` when PyMC is imported
# (pymc/progress_bar/rich_progress.py: ``from sys import stderr``). Imported for the first
# time inside a test whose output pytest captures, it would keep that test's capture file and
# fail with "I/O operation on closed file" in the next test that shows a progress bar; so
# PyMC is imported here, at collection, while the session-wide streams are in place.


@pytest.fixture(scope="session", autouse=True)
def _jax_cache_in_a_temporary_folder(tmp_path_factory):
    """The JAX fits of the tests keep their compiled programs in a temporary folder, not in
    the user's cache (``backend.sampling.use_jax_compilation_cache``)."""
    os.environ.setdefault("R2D2FORMULA_JAX_CACHE_DIR", str(tmp_path_factory.mktemp("jax")))


@pytest.fixture(scope="session")
def small_gaussian() -> pd.DataFrame:
    """60 rows, two numeric predictors, a 3-level categorical and two crossed factors."""
    rng = np.random.default_rng(42)
    n = 60
    frame = pd.DataFrame({
        "x1": rng.normal(size=n),
        "x2": rng.normal(scale=10.0, size=n),
        "cat": rng.choice(["a", "b", "c"], size=n),
        "g": np.repeat([f"g{i}" for i in range(6)], n // 6),
        "h": np.tile([f"h{i}" for i in range(5)], n // 5),
    })
    frame["y"] = 1.0 + 0.5 * frame.x1 - 0.03 * frame.x2 + rng.normal(size=n)
    frame["count"] = rng.poisson(np.exp(0.5 + 0.3 * frame.x1))
    frame["binary"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-frame.x1))).astype(int)
    return frame
