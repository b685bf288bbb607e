"""Memory and time of predicting a million rows through the model graph.

Fits a poisson GLMM on 2,000 simulated rows (4 chains x 250 draws: 1,000 posterior draws),
then predicts 1,000,000 new rows (1% of them in levels not seen in training) with
``fit.predict(new, summary=True)``, which processes rows in chunks and keeps only the per-row
summary. Peak resident memory is read from the kernel (``ru_maxrss``) before and after.

The draws themselves (1,000 x 1,000,000 doubles) would take 8 GB: ask for ``summary=True``
(or predict a subset of rows) at that size.

Run: ``python benchmarks/predict_memory.py [--rows 1000000]``.
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings

import numpy as np
import pandas as pd

from r2d2formula import Model


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def simulate(n: int, seed: int, n_levels: int = 200, new_fraction: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_levels, n)
    x = rng.normal(size=(n, 3))
    effects = np.random.default_rng(0).normal(0, 0.5, n_levels)
    eta = 0.2 + x @ np.array([0.4, 0.0, -0.2]) + effects[g]
    names = np.array([f"g{k}" for k in range(n_levels)], dtype=object)[g]
    if new_fraction:
        new = rng.random(n) < new_fraction
        names[new] = [f"new{k}" for k in rng.integers(0, 50, new.sum())]
    return pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x1": x[:, 0], "x2": x[:, 1],
                         "x3": x[:, 2], "g": names})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    model = Model("y ~ x1 + x2 + x3 + (1 | g)", simulate(2000, 1), family="poisson")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(draws=250, tune=500, chains=4, random_seed=1, progressbar=False)
    new = simulate(args.rows, 2, new_fraction=0.01).drop(columns="y")
    before = peak_rss_gb()
    start = time.perf_counter()
    table = fit.predict(new, summary=True, random_seed=1)
    seconds = time.perf_counter() - start
    after = peak_rss_gb()
    print(f"rows predicted: {len(table):,}; posterior draws: 1,000")
    print(f"time: {seconds:.1f} s ({len(table) / seconds:,.0f} rows/s)")
    print(f"peak RSS before predict: {before:.2f} GB, after: {after:.2f} GB "
          f"(increase {after - before:.2f} GB)")
    print(table.head())


if __name__ == "__main__":
    main()
