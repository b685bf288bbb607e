"""The sampling coordinates change nothing in the model: exact changes of variables.

``backend/graph.py`` samples coefficients and group effects in coordinates adapted to the
data (``b = m(tau) + s(tau) u``, from the pilot fit of ``backend/pilot.py``). These tests
check that the prior stays exactly SPEC section 2's, in the log-density NUTS uses and in
forward draws, and that the pilot fit computes what it says.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytest
from scipy import optimize, special, stats

from r2d2formula import R2D2, Model
from r2d2formula.backend import graph
from r2d2formula.backend.pilot import pilot_fit
from r2d2formula.design import build_design
from r2d2formula.families import get_family

SEED = 20260511


@pytest.fixture(scope="module")
def informative() -> pd.DataFrame:
    """2000 rows: strong, weak and null predictors, an informative and a sparse factor."""
    rng = np.random.default_rng(3)
    n = 2000
    frame = pd.DataFrame({
        "x1": rng.normal(size=n), "x2": rng.normal(scale=5.0, size=n),
        "x3": rng.normal(size=n),
        "g": rng.integers(25, size=n).astype(str),
        "h": rng.integers(400, size=n).astype(str),
    })
    g_eff = rng.normal(0, 0.5, 25)[frame.g.astype(int)]
    slope = rng.normal(0, 0.3, 25)[frame.g.astype(int)]
    frame["y"] = (1.0 + 2.0 * frame.x1 + 0.01 * frame.x2 + g_eff + slope * frame.x3
                  + rng.normal(size=n))
    frame["count"] = rng.poisson(np.exp(0.3 + 0.4 * frame.x1 + 0.5 * g_eff))
    return frame


@pytest.mark.parametrize("laplace", [False, True])
def test_whitened_density_is_the_change_of_variables(laplace):
    """log p(u) = log p_b(m + s u) + log s: the density NUTS sees is the prior's."""
    sd = np.array([1e-6, 0.05, 0.5, 3.0, 40.0])
    hat = np.array([0.3, -1.2, 0.0, 2.0, 5.0])
    prec = np.array([400.0, 0.0, 25.0, 1e4, 1.0])
    ratio = np.sqrt(0.5) if laplace else 1.0
    dist = pm.Laplace if laplace else pm.Normal
    with pm.Model() as model:
        b = graph._whitened("u", dist, pm.math.constant(sd), ratio, hat, prec, shape=5)
    u = np.array([0.3, -1.0, 2.5, 0.0, -0.7])
    logp = model.compile_logp(sum=False)({"u": u})[0]
    root = np.sqrt(1.0 + sd**2 * prec)
    s = sd / root
    b_value = hat * (1.0 - 1.0 / root**2) + s * u
    law = stats.laplace(scale=sd / np.sqrt(2.0)) if laplace else stats.norm(scale=sd)
    np.testing.assert_allclose(logp, law.logpdf(b_value) + np.log(s), rtol=1e-9, atol=1e-9)
    fn = model.compile_fn(b, inputs=[model["u"]], on_unused_input="ignore")
    np.testing.assert_allclose(fn({"u": u}), b_value, rtol=1e-9)


def test_whitened_pair_density_is_the_change_of_variables():
    """The correlated pair, sampled as (u0, z): u1 is the conditional posterior mean of the
    second term's whitened effect given u0 and rho plus z conditional posterior SDs (the
    likelihood N(hat, 1 / prec) on r, written in u1's units), and
    log p(u0, z) = log MvN(r; 0, S R S) + log |dr / d(u0, z)|."""
    n_levels = 4
    sd = np.array([0.8, 0.2])
    rho = -0.6
    rng = np.random.default_rng(1)
    hat = rng.normal(size=(n_levels, 2))
    prec = np.array([[10.0, 50.0], [0.0, 0.0], [1e3, 1.0], [2.0, 0.0]])
    hidden: list[str] = []
    with pm.Model() as model:
        r = graph._whitened_pair("u", pm.math.constant(sd), pm.math.constant(rho), hat, prec,
                                 n_levels, hidden)
    u0, z = rng.normal(size=n_levels), rng.normal(size=n_levels)
    logp = sum(float(np.sum(term)) for term in model.compile_logp(sum=False)({"u": u0, "ub": z}))
    root = np.sqrt(1.0 + sd**2 * prec)
    s = sd / root
    # r = s (u + shift) = hat (1 - 1 / root^2) + s u; u1 | u0 from the bivariate prior of r
    offset = hat * (1.0 - 1.0 / root**2)
    r0 = offset[:, 0] + s[:, 0] * u0
    prior_mean = (rho * sd[1] / sd[0] * r0 - offset[:, 1]) / s[:, 1]  # E[u1 | u0]
    prior_var = sd[1] ** 2 * (1.0 - rho**2) / s[:, 1] ** 2
    like_prec = prec[:, 1] * s[:, 1] ** 2  # r1 ~ N(hat, 1 / prec) in u1's units
    like_mean = (hat[:, 1] - offset[:, 1]) / s[:, 1]
    post_var = 1.0 / (1.0 / prior_var + like_prec)
    post_mean = post_var * (prior_mean / prior_var + like_prec * like_mean)
    u1 = post_mean + np.sqrt(post_var) * z
    value = offset + s * np.stack([u0, u1], axis=1)
    cov = np.diag(sd) @ np.array([[1.0, rho], [rho, 1.0]]) @ np.diag(sd)
    log_jacobian = np.log(s[:, 0]) + np.log(s[:, 1] * np.sqrt(post_var))
    expected = stats.multivariate_normal(np.zeros(2), cov).logpdf(value).sum() + log_jacobian.sum()
    np.testing.assert_allclose(logp, expected, rtol=1e-9)
    fn = model.compile_fn(r, inputs=[model["u"], model["ub"]], on_unused_input="ignore")
    np.testing.assert_allclose(fn({"u": u0, "ub": z}), value, rtol=1e-9)
    assert hidden == ["ub"]


def test_whitened_pair_has_no_funnel_where_the_correlation_nears_one():
    """As rho -> 1 with weak data the second term's conditional scale shrinks to 0; the
    sampled z keeps a standard-normal-sized prior (its SD k >= 1 stays finite), so the log
    density's curvature in z does not blow up."""
    sd, hat = np.array([0.5, 0.5]), np.zeros((3, 2))
    prec = np.array([[0.0, 0.0], [5.0, 5.0], [100.0, 100.0]])
    for rho in (0.0, 0.99, 0.999999):
        with pm.Model() as model:
            graph._whitened_pair("u", pm.math.constant(sd), pm.math.constant(rho), hat, prec,
                                 3, [])
        sigma = model.compile_fn(model["ub"].owner.inputs[-1], inputs=[], on_unused_input="ignore")
        k = np.asarray(sigma({}))
        assert np.all(np.isfinite(k)) and np.all(k >= 1.0) and np.all(k < 100.0), (rho, k)


@pytest.mark.parametrize("kernel", ["normal", "laplace"])
def test_prior_of_b_given_phi_and_w_is_exact(informative, kernel):
    """Forward draws: b_j / sqrt(phi_j W / s_j^2) standard (normal or Laplace), whatever the
    pilot says about column j (strong x1, weak x2, null x3)."""
    m = Model("y ~ x1 + x2 + x3 + (1 + x3 | g) + (1 | h)", informative,
              prior=R2D2(kernel=kernel))
    pil = pilot_fit(m.design, m.family)
    assert pil.t[0] > 20 and pil.t[2] < 3  # the coordinates differ per column
    prior = m.sample_prior(4000, random_seed=SEED).prior
    law = stats.norm() if kernel == "normal" else stats.laplace(scale=1 / np.sqrt(2))
    for j, label in enumerate(m.design.common.labels):
        b = prior["b"].sel(coef=label).values.ravel()
        var = (prior["phi"].sel(component=label) * prior["W"]).values.ravel()
        standardized = b / np.sqrt(var / m.design.common.scales[j] ** 2)
        assert stats.kstest(standardized, law.cdf).pvalue > 1e-3, label


def test_prior_of_phi_is_dirichlet_and_group_effects_exact(informative):
    """phi_j ~ Beta(c_j, sum c - c_j); r / sd standard normal; within the correlated pair the
    second term given the first has the conditional law of the LKJ correlation."""
    conc = {"x1": 0.5, "x2": 0.5, "1|g": 1.0, "x3|g": 2.0, "1|h": 0.5}
    m = Model("y ~ x1 + x2 + (1 + x3 | g) + (1 | h)", informative,
              prior=R2D2(concentration=conc))
    prior = m.sample_prior(4000, random_seed=SEED).prior
    total = sum(conc.values())
    for name, c in conc.items():
        draws = prior["phi"].sel(component=name).values.ravel()
        assert stats.kstest(draws, stats.beta(c, total - c).cdf).pvalue > 1e-3, name
    r_h = prior["r_h"].values[0, :, :, 0]  # draws x levels
    z_h = (r_h / prior["sd_h"].values[0, :, :1]).ravel()[::37]
    assert stats.kstest(z_h, "norm").pvalue > 1e-3
    r_g, sd_g = prior["r_g"].values[0], prior["sd_g"].values[0]
    rho = prior["cor_g"].values[0][:, 0, 1]
    z0 = r_g[:, :, 0] / sd_g[:, None, 0]
    z1 = (r_g[:, :, 1] / sd_g[:, None, 1] - rho[:, None] * z0) / np.sqrt(1 - rho[:, None] ** 2)
    for z in (z0, z1):
        assert stats.kstest(z.ravel()[::7], "norm").pvalue > 1e-3
    assert abs(np.corrcoef(z0.ravel(), z1.ravel())[0, 1]) < 0.03


def test_absorbed_intercept_keeps_effects_independent_of_it(informative):
    """The best-informed factor's effects are centred on hat - (beta0 - beta0_hat): they
    depend on beta0 in the graph, yet a priori r is independent of beta0 and N(0, sd)."""
    from pytensor.graph.traversal import ancestors

    # gaussian: W does not depend on beta0, so beta0 reaches r only through the shift
    m = Model("y ~ x1 + (1 | g) + (1 | h)", informative)
    pil = pilot_fit(m.design, m.family)
    assert pil.shrinkage["g"][0] > 0.5 > pil.shrinkage["h"][0]
    graph_model = m.build()
    assert graph_model["beta0"] in set(ancestors([graph_model["r_g"]]))
    assert graph_model["beta0"] not in set(ancestors([graph_model["r_h"]]))
    prior = m.sample_prior(4000, random_seed=SEED).prior
    beta0 = prior["beta0"].values.ravel()
    r_g, sd_g = prior["r_g"].values[0, :, :, 0], prior["sd_g"].values[0, :, :1]
    assert stats.kstest((r_g / sd_g).ravel()[::11], "norm").pvalue > 1e-3
    for level in range(3):
        assert abs(np.corrcoef(beta0, r_g[:, level])[0, 1]) < 0.06


def test_common_mode_scale_is_a_change_of_variables():
    """log p(v) = log p_u(u(v)) + log lambda: the marked column's level mean is multiplied by
    lambda (the mean of its standard deviations over levels), the contrasts are unchanged."""
    rng = np.random.default_rng(2)
    n_levels = 6
    mu, sigma = rng.normal(size=(n_levels, 2)), rng.uniform(1.0, 5.0, size=(n_levels, 2))
    with pm.Model() as model:
        pm.Normal("u", mu, sigma, shape=(n_levels, 2),
                  transform=graph.CommonModeScale(np.array([True, False])))
    v = rng.normal(size=(n_levels, 2))
    lam = sigma[:, 0].mean()
    u = v.copy()
    u[:, 0] += (lam - 1.0) * v[:, 0].mean()
    logp = model.compile_logp()({"u_commonmode__": v})
    expected = stats.norm(mu, sigma).logpdf(u).sum() + np.log(lam)
    np.testing.assert_allclose(logp, expected, rtol=1e-10)
    np.testing.assert_allclose(u[:, 0].mean(), lam * v[:, 0].mean())
    np.testing.assert_allclose(u[:, 0] - u[:, 0].mean(), v[:, 0] - v[:, 0].mean())
    transform = graph.CommonModeScale(np.array([True, False]))
    value = pm.math.constant(v)
    back = transform.forward(transform.backward(value, None, None, mu, sigma),
                             None, None, mu, sigma).eval()
    np.testing.assert_allclose(back, v, rtol=1e-12)


def test_crossed_factors_absorber_follows_the_other_mean_and_priors_stay_exact(informative):
    """Two crossed factors: the best-informed one absorbs the intercept and follows the other
    factor's level mean (built after it in the graph; the other's common mode sampled on the
    prior's scale); a priori both effects stay N(0, sd), independent of each other and of
    beta0."""
    from pytensor.graph.traversal import ancestors

    m = Model("count ~ x1 + (1 | g) + (1 | h)", informative, family="poisson")
    graph_model = m.build()
    assert graph_model["r_h"] in set(ancestors([graph_model["r_g"]]))
    assert graph_model["r_g"] not in set(ancestors([graph_model["r_h"]]))
    value_names = {v.name for v in graph_model.value_vars}
    assert "r_h_u_commonmode__" in value_names and "r_g_u" in value_names
    prior = m.sample_prior(4000, random_seed=SEED).prior
    r_g, sd_g = prior["r_g"].values[0, :, :, 0], prior["sd_g"].values[0, :, :1]
    r_h, sd_h = prior["r_h"].values[0, :, :, 0], prior["sd_h"].values[0, :, :1]
    for r, sd in ((r_g, sd_g), (r_h, sd_h)):
        assert stats.kstest((r / sd).ravel()[::13], "norm").pvalue > 1e-3
    mean_h = (r_h / sd_h).mean(axis=1) * np.sqrt(r_h.shape[1])  # N(0, 1) a priori
    assert stats.kstest(mean_h, "norm").pvalue > 1e-3
    beta0 = prior["beta0"].values.ravel()
    for level in range(3):
        assert abs(np.corrcoef(mean_h, r_g[:, level] / sd_g[:, 0])[0, 1]) < 0.06
        assert abs(np.corrcoef(beta0, r_g[:, level])[0, 1]) < 0.06


def _beta_variable(model: Model, log_w: float, beta0: float, aux: dict) -> float:
    """The Beta-distributed variable at W = exp(log_w), in NumPy (r2_maps): R2, or the
    GBP's U = sigmoid(c (log W - log d))."""
    from r2d2formula.priors import r2_maps

    priors = model.priors
    if priors.approx == "gbp" and model.family.name != "gaussian":
        _, _, c, d = priors.gbp_params
        return special.expit(c * (log_w - np.log(d)))
    if priors.approx == "linear" and model.family.name != "gaussian":
        s2 = model.family.linear_s2(beta0 + priors.offset_mean, aux, priors.map_trials)
        return special.expit(log_w - np.log(s2))
    return float(r2_maps.r2_of_w(model.family, np.exp(log_w), beta0 + priors.offset_mean, aux,
                                 priors.map_trials))


@pytest.mark.parametrize(("formula", "family", "approx"), [
    ("y ~ x1 + x2 + (1 | g)", "gaussian", None),
    ("y ~ x1", "gaussian", None),
    ("count ~ x1 + x2 + (1 | g) + (1 | h)", "poisson", "exact"),
    ("count ~ x1 + x2", "poisson", "linear"),
    ("count ~ x1 + (1 | g)", "poisson", "gbp"),
    ("hit ~ x1 + (1 | g)", "bernoulli", "exact"),
    ("count ~ x1 + x2", "negativebinomial", "exact"),
])
def test_log_component_variances_density_is_the_change_of_variables(informative, formula,
                                                                    family, approx):
    """log V_k = log(phi_k W) has density Beta(R2) Dirichlet(phi) |d(R2, phi_1..K-1) / d log V|:
    the density NUTS sees is SPEC's prior on (R2, phi), the Jacobian by finite differences of
    the NumPy map (independent of the graph's symbolic derivative)."""
    frame = informative.assign(hit=(informative["count"] > 1).astype(int))
    prior = R2D2(approx=approx) if approx else R2D2(concentration={"x1": 0.7})
    m = Model(formula, frame, family=family, prior=prior)
    graph_model = m.build()
    conc = np.asarray(m.priors.concentrations)
    k = len(conc)
    a, b = ((m.priors.gbp_params[0], m.priors.gbp_params[1])
            if approx == "gbp" else m.priors.r2_beta)
    point = graph_model.initial_point()
    rng = np.random.default_rng(7)
    logp_fn = graph_model.compile_logp(vars=[graph_model["log_V"]])
    for _ in range(3):
        log_v = rng.normal(-1.0, 1.5, size=k)
        point["log_V"] = log_v
        point["beta0"] = rng.normal(0.2, 0.5)
        aux = {}
        if "sigma_log__" in point:
            point["sigma_log__"] = rng.normal(0.0, 0.5)
            aux["sigma"] = float(np.exp(point["sigma_log__"]))
        if "alpha_log__" in point:
            aux["alpha"] = float(np.exp(point["alpha_log__"]))
        beta0 = float(point["beta0"])

        def transform(v, beta0=beta0, aux=aux):
            log_w = special.logsumexp(v)
            phi = np.exp(v - log_w)
            return np.concatenate([[_beta_variable(m, log_w, beta0, aux)], phi[:-1]])

        step = 1e-6
        jac = np.column_stack([(transform(log_v + step * e) - transform(log_v - step * e))
                               / (2 * step) for e in np.eye(k)])
        target = transform(log_v)
        phi = np.exp(log_v - special.logsumexp(log_v))
        expected = (stats.beta(a, b).logpdf(target[0]) + np.log(abs(np.linalg.det(jac)))
                    + (stats.dirichlet(conc).logpdf(phi) if k > 1 else 0.0))
        assert float(logp_fn(point)) == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_forward_draws_of_r2_follow_its_beta_prior(informative):
    """Prior draws go R2 -> W(R2) -> log V and back to R2 = R2(W): R2 keeps its Beta law."""
    m = Model("count ~ x1 + (1 | g)", informative, family="poisson",
              prior=R2D2(r2_mean=0.3, r2_precision=5.0))
    draws = m.sample_prior(3000, random_seed=SEED).prior["R2"].values.ravel()
    a, b = m.priors.r2_beta
    assert stats.kstest(draws, stats.beta(a, b).cdf).pvalue > 1e-3


def test_raw_coordinates_are_hidden(informative):
    m = Model("count ~ x1 + x3 + (1 + x3 | g) + (1 | h)", informative, family="poisson")
    graph_model = m.build()
    hidden = set(m.graph_info.hidden)
    free = {rv.name for rv in graph_model.free_RVs}
    public = {"beta0"}
    assert free - public <= hidden
    assert "log_V" in hidden
    for name in ("b", "r_g", "r_h", "sd_g", "sd_h", "W", "phi", "R2"):
        assert name in graph_model.named_vars and name not in hidden


def _glm_newton(A, y, n, family):
    """Maximum likelihood by a generic optimiser (independent of the IRLS code)."""
    def nll(beta):
        eta = A @ beta
        if family == "poisson":
            return -np.sum(y * eta - np.exp(eta))
        return -np.sum(y * eta - n * np.logaddexp(0, eta))

    return optimize.minimize(nll, np.zeros(A.shape[1]), method="BFGS",
                             options={"gtol": 1e-9}).x


@pytest.mark.parametrize("family", ["poisson", "binomial"])
def test_pilot_estimates_match_maximum_likelihood(family):
    rng = np.random.default_rng(5)
    n = 400
    frame = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
    eta = 0.2 + 0.7 * frame.x1 - 0.4 * frame.x2
    frame["size"] = rng.integers(1, 8, size=n)
    frame["s"] = (rng.poisson(np.exp(eta)) if family == "poisson"
                  else rng.binomial(frame["size"], special.expit(eta)))
    formula = "s ~ x1 + x2" if family == "poisson" else "s | trials(size) ~ x1 + x2"
    design = build_design(formula, frame)
    pil = pilot_fit(design, get_family(family))
    A = np.column_stack([np.ones(n), frame.x1, frame.x2])
    expected = _glm_newton(A, frame.s.to_numpy(float), frame["size"].to_numpy(float), family)
    np.testing.assert_allclose(pil.b_hat, expected[1:], atol=1e-5)
    # precision: the observed information of the maximum likelihood fit
    mu = np.exp(A @ expected) if family == "poisson" else (
        frame["size"].to_numpy() * special.expit(A @ expected) * (1 - special.expit(A @ expected)))
    info = (A * mu[:, None]).T @ A
    np.testing.assert_allclose(pil.b_prec, 1 / np.diag(np.linalg.inv(info))[1:], rtol=1e-4)


def test_pilot_gives_no_precision_to_unidentified_effects():
    from r2d2formula.backend.pilot import _marginal_precision

    # collinear columns: neither is identified; an independent third one is
    info = np.array([[1.0, 2.0, 0.0], [2.0, 4.0, 0.0], [0.0, 0.0, 3.0]])
    np.testing.assert_allclose(_marginal_precision(info), [0.0, 0.0, 3.0])
    rng = np.random.default_rng(8)
    n = 100
    frame = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n),
                          "g": np.repeat(["a", "b", "c", "d"], 25)})
    frame["y"] = frame.x + rng.normal(size=n)
    design = build_design("y ~ x + z + (1 + z | g)", frame)
    pil = pilot_fit(design, get_family("gaussian"))
    assert np.all(pil.b_prec > 0)
    assert pil.r_prec["g"].shape == (4, 2) and np.all(pil.r_prec["g"] > 0)
    # a level whose slope column is constant (zero) identifies its intercept only
    frame.loc[frame.g == "a", "z"] = 0.0
    pil = pilot_fit(build_design("y ~ x + z + (1 + z | g)", frame), get_family("gaussian"))
    assert pil.r_prec["g"][0, 1] == 0 and pil.r_prec["g"][0, 0] > 0
    assert pil.r_hat["g"][0, 1] == 0 and np.all(pil.r_prec["g"][1:] > 0)
