"""Tests of the R2 <-> W maps (r2d2formula.priors.r2_maps)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from r2d2formula.errors import PriorSpecError
from r2d2formula.families import get_family
from r2d2formula.priors.r2_maps import (
    density_w,
    r2_by_integration,
    r2_of_w,
    w_of_r2,
)

pytensor = pytest.importorskip("pytensor")
pt = pytest.importorskip("pytensor.tensor")
from r2d2formula.backend.xp import PYTENSOR  # noqa: E402

# Python-implemented ops: no C compilation, so the suite stays fast on a cold cache.
MODE = "FAST_COMPILE"

# (family, link, aux name, aux value, trials)
CASES = [
    ("gaussian", None, "sigma", 1.3, 1.0),
    ("bernoulli", "logit", None, None, 1.0),
    ("bernoulli", "probit", None, None, 1.0),
    ("binomial", "logit", None, None, 10.0),
    ("binomial", "probit", None, None, 10.0),
    ("poisson", None, None, None, 1.0),
    ("negativebinomial", None, "alpha", 2.0, 1.0),
]
IDS = [f"{c[0]}-{c[1] or 'default'}" for c in CASES]


def _aux(name, value):
    return {} if name is None else {name: value}


@pytest.fixture(autouse=True)
def _quiet_quad():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_r2_of_w_matches_independent_integration(case):
    name, link, an, av, n = case
    fam = get_family(name, link)
    w, b = np.meshgrid(np.geomspace(1e-6, 1e3, 7), [-8.0, -3.0, 0.0, 2.5, 8.0])
    ours = r2_of_w(fam, w, b, _aux(an, av), n)
    brute = r2_by_integration(fam, w, b, _aux(an, av), n)
    assert np.max(np.abs(ours - brute)) < 1e-6


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_pytensor_r2_of_w_equals_numpy(case):
    name, link, an, av, n = case
    fam = get_family(name, link)
    w, b, a = pt.dvector("w"), pt.dvector("b"), pt.dscalar("a")
    f = pytensor.function([w, b, a], r2_of_w(fam, w, b, _aux(an, a), n, xp=PYTENSOR),
                          on_unused_input="ignore", mode=MODE)
    wv = np.geomspace(1e-6, 1e3, 10)
    bv = np.linspace(-8, 8, 10)
    np.testing.assert_allclose(f(wv, bv, av or 1.0), r2_of_w(fam, wv, bv, _aux(an, av), n),
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_r2_of_w_is_increasing(case):
    name, link, an, av, n = case
    fam = get_family(name, link)
    w = np.geomspace(1e-6, 1e4, 400)
    for b in (-8.0, 0.0, 3.0):
        r2 = r2_of_w(fam, w, b, _aux(an, av), n)
        assert np.all(np.diff(r2) >= 0) and r2[0] < 1e-3 and np.all((r2 >= 0) & (r2 <= 1))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_round_trip(case):
    name, link, an, av, n = case
    fam = get_family(name, link)
    levels = np.concatenate([np.geomspace(1e-6, 0.5, 25), 1 - np.geomspace(1e-6, 0.5, 25)])
    r, b = np.meshgrid(levels, np.linspace(-8, 8, 9))
    w = w_of_r2(fam, r, b, _aux(an, av), n)
    assert np.all(np.isfinite(w)) and np.all(w > 0)
    back = r2_of_w(fam, w, b, _aux(an, av), n)
    np.testing.assert_allclose(back, r, rtol=1e-8, atol=0)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_extremes_are_finite(case):
    name, link, an, av, n = case
    fam = get_family(name, link)
    r = np.array([0.0, 1e-300, 1e-12, 0.5, 1 - 1e-12, 1.0])
    for b in (-30.0, 0.0, 30.0):
        w = w_of_r2(fam, r, b, _aux(an, av), n)
        assert np.all(np.isfinite(w)) and np.all(w > 0)
        assert np.all(np.diff(w) >= 0)


def _grad_case(case):
    name, link, an, av, n = case
    fam = get_family(name, link)
    r, b, a = pt.dscalar("r"), pt.dscalar("b"), pt.dscalar("a")
    wrt = [r, b] + ([a] if an else [])
    return fam, r, b, a, wrt, an, av, n


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradients_of_w_of_r2_match_finite_differences(case):
    fam, r, b, a, wrt, an, av, n = _grad_case(case)
    out = w_of_r2(fam, r, b, _aux(an, a), n, xp=PYTENSOR)
    f = pytensor.function([r, b, a], pt.grad(out, wrt, disconnected_inputs="ignore"),
                          on_unused_input="ignore", mode=MODE)
    for rv, bv in [(0.2, 0.7), (0.95, -2.0), (1e-3, 4.0)]:
        got = f(rv, bv, av or 1.0)
        h = 1e-6

        def fw(rr, bb, aa):
            return float(w_of_r2(fam, rr, bb, _aux(an, aa), n))

        fd = [(fw(rv * (1 + h), bv, av) - fw(rv * (1 - h), bv, av)) / (2 * h * rv),
              (fw(rv, bv + h, av) - fw(rv, bv - h, av)) / (2 * h)]
        if an:
            fd.append((fw(rv, bv, av * (1 + h)) - fw(rv, bv, av * (1 - h))) / (2 * h * av))
        np.testing.assert_allclose(np.array(got, float), fd, rtol=2e-5, atol=1e-9)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradients_of_r2_of_w_match_finite_differences(case):
    fam, _, b, a, _, an, av, n = _grad_case(case)
    w = pt.dscalar("w")
    wrt = [w, b] + ([a] if an else [])
    out = r2_of_w(fam, w, b, _aux(an, a), n, xp=PYTENSOR)
    f = pytensor.function([w, b, a], pt.grad(out, wrt, disconnected_inputs="ignore"),
                          on_unused_input="ignore", mode=MODE)
    for wv, bv in [(0.3, 0.7), (20.0, -2.0)]:
        got = f(wv, bv, av or 1.0)
        h = 1e-6

        def fr(ww, bb, aa):
            return float(r2_of_w(fam, ww, bb, _aux(an, aa), n))

        fd = [(fr(wv * (1 + h), bv, av) - fr(wv * (1 - h), bv, av)) / (2 * h * wv),
              (fr(wv, bv + h, av) - fr(wv, bv - h, av)) / (2 * h)]
        if an:
            fd.append((fr(wv, bv, av * (1 + h)) - fr(wv, bv, av * (1 - h))) / (2 * h * av))
        np.testing.assert_allclose(np.array(got, float), fd, rtol=1e-5, atol=1e-10)


def test_pytensor_inverse_equals_numpy_for_vectors():
    fam = get_family("binomial", "probit")
    r, b = pt.dvector("r"), pt.dvector("b")
    f = pytensor.function([r, b], w_of_r2(fam, r, b, trials=10.0, xp=PYTENSOR), mode=MODE)
    rv, bv = np.array([1e-5, 0.3, 0.999]), np.array([-3.0, 0.5, 6.0])
    np.testing.assert_allclose(f(rv, bv), w_of_r2(fam, rv, bv, trials=10.0), rtol=1e-10)


def test_spec_sanity_numbers():
    # SPEC: with R2 ~ Beta(1, 1) at beta0 = 0 the median of W is W(R2 = 0.5)
    assert w_of_r2(get_family("poisson"), 0.5, 0.0) == pytest.approx(0.5628, abs=5e-4)
    assert w_of_r2(get_family("poisson"), 0.5, 0.0, method="linear") == pytest.approx(1.0)
    assert w_of_r2(get_family("bernoulli"), 0.5, 0.0) == pytest.approx(7.2, abs=0.05)
    assert w_of_r2(get_family("bernoulli"), 0.5, 0.0, method="linear") == pytest.approx(4.0)


def test_linear_uses_the_prior_r2_as_is():
    fam = get_family("negativebinomial")
    w = w_of_r2(fam, 0.5, 1.0, {"alpha": 2.0}, method="linear")
    assert w == pytest.approx(np.exp(-1.0) + 0.5)


def test_density_integrates_to_one():
    from scipy import integrate

    for fam, aux in [(get_family("bernoulli", "logit"), {}),
                     (get_family("negativebinomial"), {"alpha": 2.0})]:
        total, _ = integrate.quad(lambda w, f=fam, a=aux: float(density_w(f, w, 2.0, 3.0, 0.5, a)),
                                  0, np.inf, limit=200)
        assert total == pytest.approx(1.0, abs=1e-6)


def test_errors():
    with pytest.raises(PriorSpecError, match="method"):
        w_of_r2(get_family("poisson"), 0.5, method="gbp")
    with pytest.raises(PriorSpecError, match="alpha"):
        r2_of_w(get_family("negativebinomial"), 1.0, 0.0, {})


def test_inverse_compiles_in_numba_mode():
    pytest.importorskip("numba")
    fam = get_family("bernoulli", "logit")
    r, b = pt.dscalar("r"), pt.dscalar("b")
    w = w_of_r2(fam, r, b, xp=PYTENSOR)
    f = pytensor.function([r, b], [w, *pt.grad(w, [r, b])], mode="NUMBA")
    out = f(0.5, 0.0)
    assert float(out[0]) == pytest.approx(float(w_of_r2(fam, 0.5, 0.0)), rel=1e-10)


# ---- the exact map as one Op (r2d2formula.backend.r2_map_op) -----------------------------
ROOT_CASES = [c for c in CASES if c[0] != "gaussian"]
ROOT_IDS = [f"{c[0]}-{c[1] or 'default'}" for c in ROOT_CASES]


@pytest.mark.parametrize("case", ROOT_CASES, ids=ROOT_IDS)
def test_root_kernel_solves_the_map_everywhere(case):
    from r2d2formula.backend.r2_map_op import KINDS, solve
    from r2d2formula.priors.r2_maps import LOG_W_MAX, LOG_W_MIN, logit_r2_of_w, root_log_w_guess

    name, link, an, av, n = case
    fam = get_family(name, link)
    kind = KINDS[(fam.name, fam.link)]
    y, b = np.meshgrid(np.linspace(-23, 23, 47), np.linspace(-8, 8, 9))
    u = np.vectorize(lambda yy, bb: solve(kind, yy, bb, n, av or 1.0))(y, b)
    assert np.all((u >= LOG_W_MIN) & (u <= LOG_W_MAX))
    # it lands on the root, and where the NumPy guess does; at R2 = 1e-10 and |beta0| = 8
    # g itself carries rounding noise of about 1e-5 (Var mu cancels)
    g = logit_r2_of_w(fam, np.exp(u), b, _aux(an, av), n)
    np.testing.assert_allclose(g, y, atol=1e-4)
    central = np.abs(y) <= 15
    np.testing.assert_allclose(g[central], y[central], atol=1e-9)
    guess = root_log_w_guess(fam, y, b, _aux(an, av), n)
    np.testing.assert_allclose(u[central], guess[central], atol=1e-6)


@pytest.mark.parametrize("mode", ["FAST_COMPILE", "FAST_RUN", "NUMBA", "JAX"])
def test_root_op_runs_in_every_backend(mode):
    if mode == "NUMBA":
        pytest.importorskip("numba")
    if mode == "JAX":
        pytest.importorskip("jax")
    from r2d2formula.backend.r2_map_op import LogWOfR2

    for fam, aux in [(get_family("bernoulli"), {}), (get_family("binomial", "probit"), {}),
                     (get_family("negativebinomial"), {"alpha": 3.0})]:
        r, b = pt.dvector("r"), pt.dscalar("b")
        w = w_of_r2(fam, r, b, aux, 4.0, xp=PYTENSOR)
        f = pytensor.function([r, b], [w, pt.grad(w.sum(), b)], mode=mode)
        rv = np.array([1e-4, 0.3, 0.9])
        got, dgot = f(rv, 0.7)
        np.testing.assert_allclose(got, w_of_r2(fam, rv, 0.7, aux, 4.0), rtol=1e-9)
        h = 1e-6
        fd = (w_of_r2(fam, rv, 0.7 + h, aux, 4.0) - w_of_r2(fam, rv, 0.7 - h, aux, 4.0)).sum()
        assert float(dgot) == pytest.approx(fd / (2 * h), rel=1e-5)
        if mode != "JAX":  # one node for the map in the compiled graph, not an iteration
            roots = [node for node in f.maker.fgraph.apply_nodes
                     if isinstance(node.op, LogWOfR2)]
            assert len(roots) == 1
