"""Real data sets bundled with r2d2formula (see ``SOURCES.md`` for where each comes from),
and :func:`simulate_laboratory`, simulated data with known variance shares.

Examples
--------
>>> from r2d2formula import datasets
>>> datasets.load("sleepstudy").shape
(180, 3)
>>> "radon" in datasets.names()
True
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from r2d2formula.datasets.simulate import simulate_laboratory

__all__ = ["load", "names", "describe", "simulate_laboratory"]

_FILES = {
    "sleepstudy": "sleepstudy.csv",
    "radon": "radon_mn_gelman_hill.csv",
    "reedfrogs": "reedfrogs.csv",
    "chimpanzees": "chimpanzees.csv",
    "epilepsy": "epilepsy.csv",
    "cbpp": "cbpp.csv",
    "gambia": "gambia.csv",
    "diabetes": "diabetes_lars_x10_standardized.csv",
    "diabetes64": "diabetes_lars_x64_standardized.csv",
    "diabetes_raw": "diabetes_sklearn_raw.csv",
}

_DESCRIPTIONS = {
    "sleepstudy": "lme4: reaction times over 10 days of sleep deprivation, 18 subjects. "
                  "Reaction ~ Days + (Days | Subject)",
    "radon": "Gelman & Hill: log radon in 919 Minnesota homes, 85 counties. "
             "log_radon ~ floor + (1 | county)",
    "reedfrogs": "rethinking: tadpole survival in 48 tanks (a 'tank' id column is added). "
                 "surv | trials(density) ~ pred * size + (1 | tank)",
    "chimpanzees": "rethinking: prosocial choice, 7 actors, 6 blocks (a 'treatment' column "
                   "1 + prosoc_left + 2 * condition is added). "
                   "pulled_left ~ treatment + (1 | actor) + (1 | block), family='bernoulli'",
    "epilepsy": "brms: seizure counts, 59 patients. count ~ zAge + zBase * Trt + (1 | patient)",
    "cbpp": "lme4: contagious bovine pleuropneumonia, 15 herds. "
            "incidence | trials(size) ~ period + (1 | herd), family='binomial'",
    "gambia": "geoR: malaria in Gambian children, 65 villages. "
              "pos ~ age + netuse + treated + green + phc + (1 | village), family='bernoulli'",
    "diabetes": "lars: diabetes progression, 10 standardized predictors. y ~ age + sex + ...",
    "diabetes64": "lars: diabetes progression, 64 standardized predictors (squares and "
                  "interactions; columns renamed with _ for ^ and :)",
    "diabetes_raw": "scikit-learn: diabetes progression, unscaled predictors",
}


def names() -> list[str]:
    """Names of the bundled data sets."""
    return list(_FILES)


def describe(name: str) -> str:
    """One line on a data set and its typical model."""
    _check(name)
    return _DESCRIPTIONS[name]


def _check(name: str) -> None:
    if name not in _FILES:
        raise ValueError(f"unknown data set {name!r}; available: {', '.join(_FILES)}")


def load(name: str) -> pd.DataFrame:
    """Load a bundled data set as a DataFrame.

    Categorical grouping columns (``Subject``, ``herd``, ``patient``, ...) are read as
    strings so they are never mistaken for numbers.
    """
    _check(name)
    path = resources.files(__package__).joinpath(_FILES[name])
    with resources.as_file(path) as file:
        frame = pd.read_csv(file)
    if name == "reedfrogs":
        frame["tank"] = [f"tank{i + 1}" for i in range(len(frame))]
    if name == "chimpanzees":
        frame["treatment"] = (1 + frame["prosoc_left"] + 2 * frame["condition"]).astype(str)
    if name == "diabetes64":
        frame.columns = [c.replace("^", "_").replace(":", "_") for c in frame.columns]
    for column in {"sleepstudy": ["Subject"], "cbpp": ["herd", "period"],
                   "epilepsy": ["patient", "visit", "obs"], "chimpanzees": ["actor", "block"],
                   "gambia": ["village"]}.get(name, []):
        frame[column] = frame[column].astype(str)
    return frame
