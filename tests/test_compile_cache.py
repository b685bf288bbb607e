"""The compiled log density can be loaded from PyTensor's on-disk numba cache.

PyTensor caches a numba-compiled function under a key made of its ops, its constants and its
wiring. The key must not depend on the process that built the graph, else every new process
compiles the log density anew (10-30 s a model). Two builds of the same model in one process
use different Python objects, which is where an order taken from object ids would show.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pymc.distributions.multivariate import PosDefMatrix, posdef
from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key

from r2d2formula import Model, datasets
from r2d2formula.backend.numba_ops import is_positive_definite


def _crossed_poisson() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 300
    data = pd.DataFrame({"x": rng.normal(size=n),
                         "g": rng.integers(0, 8, n).astype(str),
                         "h": rng.integers(0, 5, n).astype(str)})
    data["y"] = rng.poisson(np.exp(0.3 + 0.2 * data["x"]))
    return data


def _sleepstudy3() -> pd.DataFrame:  # a correlated block of three terms: LKJCorr and its check
    data = datasets.load("sleepstudy")
    return data.assign(Days2=(data["Days"] - 4.5) ** 2)


CASES = {
    "sleepstudy, correlated slope": (lambda: datasets.load("sleepstudy"),
                                     "Reaction ~ Days + (Days | Subject)", "gaussian"),
    "three correlated terms": (_sleepstudy3, "Reaction ~ Days + (Days + Days2 | Subject)",
                               "gaussian"),
    "poisson, crossed factors": (_crossed_poisson, "y ~ x + (1 | g) + (1 | h)", "poisson"),
}


def _logp_cache_key(load, formula: str, family: str) -> str | None:
    graph = Model(formula, load(), family=family).build()
    fn = graph.logp_dlogp_function(ravel_inputs=True, mode="NUMBA")
    _, key = numba_funcify_and_cache_key(fn._pytensor_function.maker.fgraph)
    return key


@pytest.mark.parametrize("case", list(CASES))
def test_logp_cache_key_is_the_same_for_every_build(case):
    load, formula, family = CASES[case]
    first = _logp_cache_key(load, formula, family)
    assert first is not None, "an op of the log density has no numba cache key"
    assert _logp_cache_key(load, formula, family) == first


def test_positive_definite_check_matches_pymc():
    rng = np.random.default_rng(0)
    check = PosDefMatrix()
    for n in (1, 2, 3, 5):
        a = rng.normal(size=(n, n))
        cases = [a @ a.T + 0.1 * np.eye(n), -(a @ a.T) - np.eye(n), np.zeros((n, n)),
                 np.full((n, n), np.nan)]
        if n > 1:
            indefinite = np.eye(n)
            indefinite[0, 1] = indefinite[1, 0] = 2.0  # 2x2 minor has determinant -3
            cases.append(indefinite)
        for x in cases:
            expected = bool(posdef(x)) if np.isfinite(x).all() else False
            assert is_positive_definite(x) == expected
            assert bool(check(x).eval(mode="NUMBA")) == expected


@pytest.mark.parametrize("case", list(CASES))
def test_build_and_refit_data_compile_nothing(case, monkeypatch):
    """Building the graph and setting a refit's data must not compile a PyTensor function:
    the first compiled function of a process loads PyTensor's whole C module cache (5-10 s),
    which the JAX samplers never need otherwise."""
    from pytensor.compile.function.types import FunctionMaker

    load, formula, family = CASES[case]
    data = load()

    def refuse(self, *args, **kwargs):
        raise AssertionError("a PyTensor function was compiled")

    monkeypatch.setattr(FunctionMaker, "create", refuse)
    model = Model(formula, data, family=family)
    graph = model.build()
    # a refit with fewer rows sets its data, and its observation length, into the same graph
    fewer = data.drop(index=data.index[::15])  # every level stays
    refit = model.with_data(fewer)
    assert refit.build() is graph
    assert graph.dim_lengths["__obs__"].get_value() == len(fewer) < len(data)
    assert graph["y_observed"].get_value().shape[0] == len(fewer)
