"""Refitting one formula on new data of the same shape: the second fit's set-up overhead
against the first's, side by side in one run.

A simulation study (or simulation-based calibration, or a class with one data set per
student) fits ``Model(formula, df_k).fit()`` for k = 1, 2, ... ``model.fit(data=df_k)``
reuses the graph and the compiled sampler of the first fit (every data-derived number is a
``pm.Data`` container, see ``r2d2formula/backend/reuse.py``).

Set-up is measured as the wall time of a fit with so few draws (``draws=tune=5``, one chain)
that sampling is negligible: data -> design -> priors -> graph -> compilation -> the first
draw. Three ways, each on fresh simulated data (same shape, another seed):

* ``new Model``: ``Model(formula, df).fit()`` every time (what a user writes without this);
* ``refit``: ``first_model.fit(data=df)``.

Run: ``python benchmarks/refit.py [--repeats 3]``; prints a markdown table.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from r2d2formula import Model

FORMULA = "y ~ x1 + x2 + x3 + (1 | g) + (1 | h)"


def simulate(seed: int, family: str, n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g, h = rng.integers(0, 20, n), rng.integers(0, 8, n)
    x = rng.normal(size=(n, 3))
    eta = 0.3 + x @ np.array([0.5, 0.0, -0.3]) + rng.normal(0, 0.5, 20)[g] + rng.normal(0, 0.3, 8)[h]
    y = eta + rng.normal(size=n) if family == "gaussian" else rng.poisson(np.exp(eta))
    return pd.DataFrame({"y": y, "x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2],
                         "g": [f"g{k}" for k in g], "h": [f"h{k}" for k in h]})


def timed_fit(call) -> float:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        call()
    return time.perf_counter() - start


def run(repeats: int) -> list[dict]:
    settings = dict(draws=5, tune=5, chains=1, progressbar=False, random_seed=1)
    rows = []
    for family in ("gaussian", "poisson"):
        for sampler in ("pymc", "nutpie"):
            first_model = Model(FORMULA, simulate(0, family), family=family)
            first = timed_fit(lambda m=first_model, s=sampler: m.fit(sampler=s, **settings))
            new_model, refit = [], []
            for k in range(1, repeats + 1):
                data = simulate(k, family)
                new_model.append(timed_fit(
                    lambda d=data, s=sampler, f=family: Model(FORMULA, d, family=f).fit(
                        sampler=s, **settings)))
                refit.append(timed_fit(
                    lambda d=data, s=sampler, m=first_model: m.fit(data=d, sampler=s,
                                                                    **settings)))
            rows.append({
                "family": family, "sampler": sampler, "first fit s": first,
                "new Model s (median)": float(np.median(new_model)),
                "refit s (median)": float(np.median(refit)),
            })
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = run(args.repeats)
    print("\n| family | sampler | first fit s | new Model s | refit s | new Model / refit |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ratio = r["new Model s (median)"] / r["refit s (median)"]
        print(f"| {r['family']} | {r['sampler']} | {r['first fit s']:.1f} | "
              f"{r['new Model s (median)']:.1f} | {r['refit s (median)']:.2f} | {ratio:.1f}x |")


if __name__ == "__main__":
    main()
