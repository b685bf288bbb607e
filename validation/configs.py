"""The models the validation suite checks: SBC configurations and coverage scenarios.

Every configuration has a fixed design (predictors, factors, trials), made from its own seed,
and priors that do not read the response. The library's defaults read y (the intercept's
location is link(mean y), sigma's scale is sd(y); see ``r2d2formula/priors/defaults.py``),
which would make the prior change with each simulated data set and the SBC ranks non-uniform
even for a correct sampler (SPEC section 5), so they are fixed here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from r2d2formula import R2D2, Prior

__all__ = ["Config", "SBC_CONFIGS", "COVERAGE_CONFIGS", "TEST_CONFIGS", "get_config",
           "GAUSSIAN_PRIORS", "GLM_PRIORS"]

#: Priors of the intercept (centered design) and sigma that do not read the response.
GAUSSIAN_PRIORS = {"Intercept": Prior("Normal", mu=0.0, sigma=1.0),
                   "sigma": Prior("HalfNormal", sigma=1.0)}
#: The GLMs' intercept prior on the link scale. The negative binomial's alpha keeps the
#: library default, LogNormal(1, 2), which does not read the response.
GLM_PRIORS = {"Intercept": Prior("Normal", mu=0.0, sigma=1.0)}


@dataclass(frozen=True, kw_only=True)
class Config:
    """One model of the suite.

    Attributes
    ----------
    name : str
    title : str
        A line for the results tables.
    formula, family : str
    make_data : callable
        ``make_data(rng) -> DataFrame`` with the design and a placeholder response column (the
        placeholder only feeds the centering pilot, which picks coordinates, not the prior).
    response : str
        The column the simulated response replaces.
    prior : R2D2
    priors : dict of str to Prior
    seed : int
        Seed of the design and of the simulated data sets.
    truth : dict, optional
        Coverage scenarios only: the fixed known values (``R2``, ``phi`` by component,
        ``Intercept`` on the centered design, ``sigma``/``alpha``, ``b_sign`` by coefficient).
    """

    name: str
    title: str
    formula: str
    family: str
    make_data: Callable[[np.random.Generator], pd.DataFrame]
    response: str
    prior: R2D2 = field(default_factory=R2D2)
    priors: Mapping[str, Prior] = field(default_factory=dict)
    seed: int = 0
    truth: Mapping[str, object] | None = None

    def data(self) -> pd.DataFrame:
        """The fixed design (same every call)."""
        return self.make_data(np.random.default_rng(self.seed))

    def model(self, data: pd.DataFrame | None = None):
        """The r2d2formula Model of this configuration."""
        from r2d2formula import Model

        return Model(self.formula, self.data() if data is None else data, family=self.family,
                     prior=self.prior, priors=dict(self.priors))


# ---- designs -------------------------------------------------------------------------------
def _predictors(rng: np.random.Generator, n: int, p: int) -> pd.DataFrame:
    """p correlated predictors (AR(1), rho 0.4) on unequal scales, one of them binary."""
    z = np.empty((n, p))
    z[:, 0] = rng.normal(size=n)
    for j in range(1, p):
        z[:, j] = 0.4 * z[:, j - 1] + np.sqrt(1 - 0.4**2) * rng.normal(size=n)
    scales = np.array([1.0, 10.0, 0.1, 2.0, 0.5, 1.0, 3.0, 0.3])[:p]
    frame = pd.DataFrame(z * scales + np.arange(p), columns=[f"x{j + 1}" for j in range(p)])
    frame[f"x{p}"] = (z[:, -1] > 0.3).astype(float)  # a binary predictor with mean != 1/2
    return frame


def _gaussian_design(n: int, p: int) -> Callable[[np.random.Generator], pd.DataFrame]:
    def make(rng: np.random.Generator) -> pd.DataFrame:
        frame = _predictors(rng, n, p)
        frame["y"] = rng.normal(size=n)
        return frame
    return make


def _glm_design(n: int, p: int, family: str) -> Callable[[np.random.Generator], pd.DataFrame]:
    def make(rng: np.random.Generator) -> pd.DataFrame:
        frame = _predictors(rng, n, p)
        if family == "binomial":
            frame["n"] = rng.integers(3, 16, size=n)
            frame["y"] = rng.binomial(frame["n"], 0.4)
        elif family == "bernoulli":
            frame["y"] = rng.binomial(1, 0.4, size=n)
        else:
            frame["y"] = rng.poisson(2.0, size=n)
        return frame
    return make


def _crossed_design(n_g: int, n_h: int, reps: int) -> Callable[[np.random.Generator], pd.DataFrame]:
    """Factor g crossed with h, ``reps`` rows per cell, x varying within g, z a covariate."""
    def make(rng: np.random.Generator) -> pd.DataFrame:
        g, h = np.meshgrid(np.arange(n_g), np.arange(n_h), indexing="ij")
        g = np.repeat(g.ravel(), reps)
        h = np.repeat(h.ravel(), reps)
        n = len(g)
        frame = pd.DataFrame({
            "x": rng.normal(size=n) * 2.0 + 1.0,
            "z": rng.normal(size=n) * 0.5,
            "g": [f"g{k:02d}" for k in g],
            "h": [f"h{k:02d}" for k in h],
        })
        frame["y"] = rng.normal(size=n)
        return frame
    return make


def _grouped_design(n_levels: int, per_level: int, family: str
                    ) -> Callable[[np.random.Generator], pd.DataFrame]:
    """One factor g with ``per_level`` rows per level, predictors x (continuous), w (binary)."""
    def make(rng: np.random.Generator) -> pd.DataFrame:
        n = n_levels * per_level
        frame = pd.DataFrame({
            "x": rng.normal(size=n),
            "w": (rng.random(n) < 0.4).astype(float),
            "g": [f"g{k:02d}" for k in np.repeat(np.arange(n_levels), per_level)],
        })
        if family == "bernoulli":
            frame["y"] = rng.binomial(1, 0.4, size=n)
        elif family == "binomial":
            frame["n"] = rng.integers(5, 21, size=n)
            frame["y"] = rng.binomial(frame["n"], 0.4)
        elif family == "gaussian":
            frame["y"] = rng.normal(size=n)
        else:
            frame["y"] = rng.poisson(2.0, size=n)
        return frame
    return make


# ---- SBC configurations --------------------------------------------------------------------
_X6 = "y ~ x1 + x2 + x3 + x4 + x5 + x6"
_X4 = "y ~ x1 + x2 + x3 + x4"

SBC_CONFIGS: dict[str, Config] = {c.name: c for c in [
    Config(name="r2d2_gaussian_normal", title="R2D2 gaussian, normal kernel (n=100, p=6)",
           formula=_X6, family="gaussian", make_data=_gaussian_design(100, 6), response="y",
           priors=GAUSSIAN_PRIORS, seed=101),
    Config(name="r2d2_gaussian_laplace", title="R2D2 gaussian, laplace kernel (n=100, p=6)",
           formula=_X6, family="gaussian", make_data=_gaussian_design(100, 6), response="y",
           prior=R2D2(kernel="laplace"), priors=GAUSSIAN_PRIORS, seed=102),
    Config(name="glm_poisson", title="R2D2-GLM poisson (n=100, p=4)", formula=_X4,
           family="poisson", make_data=_glm_design(100, 4, "poisson"), response="y",
           priors=GLM_PRIORS, seed=103),
    Config(name="glm_bernoulli", title="R2D2-GLM bernoulli (n=200, p=4)", formula=_X4,
           family="bernoulli", make_data=_glm_design(200, 4, "bernoulli"), response="y",
           priors=GLM_PRIORS, seed=104),
    Config(name="glm_binomial", title="R2D2-GLM binomial, 3-15 trials (n=80, p=4)",
           formula="y | trials(n) ~ x1 + x2 + x3 + x4", family="binomial",
           make_data=_glm_design(80, 4, "binomial"), response="y", priors=GLM_PRIORS,
           seed=105),
    Config(name="glm_negativebinomial", title="R2D2-GLM negative binomial (n=100, p=4)",
           formula=_X4, family="negativebinomial",
           make_data=_glm_design(100, 4, "negativebinomial"), response="y",
           priors=GLM_PRIORS, seed=106),
    Config(name="m2_gaussian_crossed",
           title="R2D2M2 gaussian, (1 + x | g) + (1 | h), 10 x 6 crossed, n=120",
           formula="y ~ x + z + (1 + x | g) + (1 | h)", family="gaussian",
           make_data=_crossed_design(10, 6, 2), response="y", priors=GAUSSIAN_PRIORS,
           seed=107),
    Config(name="m2_poisson", title="R2D2-GLMM poisson, (1 | g), 15 levels, n=120",
           formula="y ~ x + w + (1 | g)", family="poisson",
           make_data=_grouped_design(15, 8, "poisson"), response="y", priors=GLM_PRIORS,
           seed=108),
    Config(name="m2_bernoulli", title="R2D2-GLMM bernoulli, (1 | g), 20 levels, n=200",
           formula="y ~ x + w + (1 | g)", family="bernoulli",
           make_data=_grouped_design(20, 10, "bernoulli"), response="y", priors=GLM_PRIORS,
           seed=109),
]}


# ---- coverage scenarios --------------------------------------------------------------------
# Fixed hyperparameters; the coefficients are b_j = sign_j sqrt(phi_j W) / s_j (|z_j| = 1, so
# each coefficient's variance share is exactly its phi) and the group effects are drawn per
# data set from N(0, sd_k) with sd_k = sqrt(phi_k W) / s_k, as the model says they are.
_COVER_FORMULA = "y ~ x + w + (1 | g)"
_COVER_PHI = {"x": 0.5, "w": 0.2, "1|g": 0.3}
_COVER_SIGN = {"x": 1.0, "w": -1.0}

COVERAGE_CONFIGS: dict[str, Config] = {c.name: c for c in [
    Config(name="cover_gaussian", title="gaussian, R2 = 0.5, 30 levels x 8",
           formula=_COVER_FORMULA, family="gaussian",
           make_data=_grouped_design(30, 8, "gaussian"), response="y", priors=GAUSSIAN_PRIORS,
           seed=201, truth={"R2": 0.5, "phi": _COVER_PHI, "beta0": 0.3, "sigma": 0.8,
                            "b_sign": _COVER_SIGN}),
    Config(name="cover_poisson", title="poisson, R2 = 0.5, 30 levels x 8",
           formula=_COVER_FORMULA, family="poisson",
           make_data=_grouped_design(30, 8, "poisson"), response="y", priors=GLM_PRIORS,
           seed=202, truth={"R2": 0.5, "phi": _COVER_PHI, "beta0": 0.5,
                            "b_sign": _COVER_SIGN}),
    Config(name="cover_bernoulli", title="bernoulli, R2 = 0.5, 30 levels x 16",
           formula=_COVER_FORMULA, family="bernoulli",
           make_data=_grouped_design(30, 16, "bernoulli"), response="y", priors=GLM_PRIORS,
           seed=203, truth={"R2": 0.5, "phi": _COVER_PHI, "beta0": -0.3,
                            "b_sign": _COVER_SIGN}),
    Config(name="cover_binomial", title="binomial (5-20 trials), R2 = 0.5, 30 levels x 8",
           formula="y | trials(n) ~ x + w + (1 | g)", family="binomial",
           make_data=_grouped_design(30, 8, "binomial"), response="y", priors=GLM_PRIORS,
           seed=204, truth={"R2": 0.5, "phi": _COVER_PHI, "beta0": -0.3,
                            "b_sign": _COVER_SIGN}),
    Config(name="cover_negativebinomial", title="negative binomial (alpha = 5), R2 = 0.5, "
           "30 levels x 8", formula=_COVER_FORMULA, family="negativebinomial",
           make_data=_grouped_design(30, 8, "negativebinomial"), response="y",
           priors=GLM_PRIORS, seed=205,
           truth={"R2": 0.5, "phi": _COVER_PHI, "beta0": 1.0, "alpha": 5.0,
                  "b_sign": _COVER_SIGN}),
]}


#: A tiny model for the fast CI subset (tests/test_validation.py), not part of the full run.
TEST_CONFIGS: dict[str, Config] = {c.name: c for c in [
    Config(name="ci_gaussian_tiny", title="R2D2 gaussian (n=40, p=2), CI subset",
           formula="y ~ x1 + x2", family="gaussian", make_data=_gaussian_design(40, 2),
           response="y", priors=GAUSSIAN_PRIORS, seed=301),
]}


def get_config(name: str) -> Config:
    """An SBC, coverage or test configuration by name."""
    for table in (SBC_CONFIGS, COVERAGE_CONFIGS, TEST_CONFIGS):
        if name in table:
            return table[name]
    raise KeyError(f"unknown configuration {name!r}; known: "
                   f"{', '.join([*SBC_CONFIGS, *COVERAGE_CONFIGS])}")
