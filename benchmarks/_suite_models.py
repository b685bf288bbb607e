"""The five models of issue 5's benchmark suite, and their data (fixed seeds).

Runs in the parent process of ``benchmarks/suite.py`` (the system python, with r2d2formula).
The data of each model is written once to a parquet file (and a CSV for R) that every
contender reads, so all of them fit exactly the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["BenchModel", "Sizes", "MODELS", "make_data"]


@dataclass(frozen=True, kw_only=True)
class Sizes:
    """Draws and data sizes of one run of the suite (full, or ``--quick``)."""

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    m5_draws: int = 500
    m5_tune: int = 500
    m5_rows: int = 1_000_000
    m5_levels: tuple[int, int, int] = (10_000, 1_000, 50)


@dataclass(frozen=True, kw_only=True)
class BenchModel:
    key: str
    name: str
    formula: str
    family: str
    #: columns every tool must treat as grouping / categorical factors
    factors: tuple[str, ...]
    description: str
    #: brms prior (R code for the ``prior =`` argument), None for brms's defaults
    brms_prior: str | None = None
    scale: bool = False  # model 5: design measured on its own, fits under a time limit
    notes: dict[str, str] = field(default_factory=dict)


_X50 = " + ".join(f"x{j}" for j in range(1, 51))

MODELS: dict[str, BenchModel] = {
    "1": BenchModel(
        key="1", name="gaussian R2D2 (n=500, p=50, sparse)", formula=f"y ~ {_X50}",
        family="gaussian", factors=(),
        description="500 rows, 50 standard-normal predictors, 5 non-zero coefficients "
                    "(1, -0.8, 0.6, -0.4, 0.2), intercept 1, sigma 1; seed 101",
        brms_prior='prior(R2D2(mean_R2 = 0.5, prec_R2 = 2, cons_D2 = 0.5), class = "b")',
        notes={"brms": "R2D2(mean_R2 = 0.5, prec_R2 = 2, cons_D2 = 0.5) on b, brms's "
                       "autoscale (by sigma); r2d2formula's default is the same Beta(1, 1) "
                       "on R2 and concentration 0.5"},
    ),
    "2": BenchModel(
        key="2", name="poisson R2D2M2 (n=2000, 3 predictors, 30 x 12 crossed)",
        formula="y ~ x1 + x2 + x3 + (1 | g1) + (1 | g2)", family="poisson",
        factors=("g1", "g2"),
        description="2,000 rows, x1..x3 standard normal with coefficients (0.3, -0.2, 0.1), "
                    "intercept 0.5, crossed factors g1 (30 levels, sd 0.5) and g2 (12 levels, "
                    "sd 0.3); seed 102",
    ),
    "3": BenchModel(
        key="3", name="bernoulli R2D2M2, chimpanzees",
        formula="pulled_left ~ treatment + (1 | actor) + (1 | block)", family="bernoulli",
        factors=("treatment", "actor", "block"),
        description="r2d2formula.datasets 'chimpanzees' (504 rows; treatment, actor, block "
                    "as categorical)",
    ),
    "4": BenchModel(
        key="4", name="gaussian, correlated varying slope, sleepstudy",
        formula="Reaction ~ Days + (Days | Subject)", family="gaussian",
        factors=("Subject",),
        description="r2d2formula.datasets 'sleepstudy' (180 rows, 18 subjects)",
        notes={"bambi": "Bambi gives (Days | Subject) independent intercepts and slopes (it "
                        "has no correlated group effects); brms and r2d2formula an LKJ "
                        "correlation"},
    ),
    "5": BenchModel(
        key="5", name="scale: poisson, n=1e6, factors 10,000 / 1,000 / 50 levels",
        formula="y ~ x1 + x2 + x3 + (1 | f1) + (1 | f2) + (1 | f3)", family="poisson",
        factors=("f1", "f2", "f3"), scale=True,
        description="1,000,000 rows, x1..x3 standard normal with coefficients (0.2, -0.1, "
                    "0.05), intercept 0.3, factors f1 (10,000 levels, sd 0.3), f2 (1,000, sd "
                    "0.2), f3 (50, sd 0.4), levels as strings; seed 105",
    ),
}


def _levels(prefix: str, n_levels: int, n: int, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray]:
    """Random level codes for ``n`` rows (every level used when n >= n_levels) and names."""
    codes = rng.integers(0, n_levels, size=n)
    if n >= n_levels:  # make sure no level is empty, so every tool sees the same levels
        codes[:n_levels] = rng.permutation(n_levels)
    width = len(str(n_levels - 1))
    names = np.array([f"{prefix}{i:0{width}d}" for i in range(n_levels)], dtype=object)
    return codes, names


def make_data(key: str, sizes: Sizes) -> pd.DataFrame:
    """The data of model ``key`` (deterministic: fixed seeds)."""
    if key == "1":
        rng = np.random.default_rng(101)
        n, p = 500, 50
        x = rng.normal(size=(n, p))
        beta = np.zeros(p)
        beta[:5] = [1.0, -0.8, 0.6, -0.4, 0.2]
        frame = pd.DataFrame(x, columns=[f"x{j}" for j in range(1, p + 1)])
        frame["y"] = 1.0 + x @ beta + rng.normal(size=n)
        return frame
    if key in ("2", "5"):
        if key == "2":
            rng = np.random.default_rng(102)
            n, coef, intercept = 2000, (0.3, -0.2, 0.1), 0.5
            factors = {"g1": (30, 0.5), "g2": (12, 0.3)}
        else:
            rng = np.random.default_rng(105)
            n, coef, intercept = sizes.m5_rows, (0.2, -0.1, 0.05), 0.3
            factors = dict(zip(("f1", "f2", "f3"),
                               zip(sizes.m5_levels, (0.3, 0.2, 0.4), strict=True), strict=True))
        x = rng.normal(size=(n, 3))
        eta = intercept + x @ np.asarray(coef)
        frame = pd.DataFrame(x, columns=["x1", "x2", "x3"])
        for name, (n_levels, sd) in factors.items():
            codes, names = _levels(name + "_", n_levels, n, rng)
            eta = eta + rng.normal(scale=sd, size=n_levels)[codes]
            frame[name] = pd.Series(names[codes], dtype="str")
        frame["y"] = rng.poisson(np.exp(eta))
        return frame
    from r2d2formula import datasets

    if key == "3":
        data = datasets.load("chimpanzees")
        return data[["pulled_left", "treatment", "actor", "block"]].astype(
            {c: "str" for c in ("treatment", "actor", "block")})
    if key == "4":
        data = datasets.load("sleepstudy")
        return data[["Reaction", "Days", "Subject"]].astype({"Subject": "str"})
    raise KeyError(f"unknown model {key!r}; choose from {', '.join(MODELS)}")
