"""Agreement of r2d2formula's posteriors with independent implementations.

1. :func:`reference_agreement`: the library against :mod:`validation.reference_model`, a
   direct PyMC implementation written from SPEC (R2D2M2 gaussian with a correlated slope and a
   crossed factor; R2D2-GLMM poisson with the exact map in its density form), on simulated
   data, same priors. Posterior means and sds of R2, phi, b, sd must agree within Monte Carlo
   error: ``|z| < Z_MAX`` for z = difference / sqrt(mcse_1^2 + mcse_2^2).
2. :func:`mixedlm_agreement`: the library (default priors) against REML fits of statsmodels'
   MixedLM (and lme4 when R has it) on sleepstudy and radon, where the data dominate the
   prior. Tolerances, fixed before looking at the results, are fractions of the sampling
   uncertainty of the REML estimates (see :data:`MIXEDLM_TOLERANCES`). A slope's REML estimate
   is first moved by the shrinkage its R2D2 prior implies (:func:`prior_shrinkage`): REML has
   no prior, and on sleepstudy the prior's pull on ``b[Days]`` is 0.3 SE, which is the prior
   doing its job, not a disagreement.
3. :func:`brms_agreement`: the library against brms's ``R2D2()`` on diabetes (10 predictors,
   standardized to sd 1 so that both priors are the same, see ``validation/brms_r2d2.R``),
   same priors; means and sds within Monte Carlo error as in 1.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["Z_MAX", "compare_draws", "reference_agreement", "refit_agreement",
           "mixedlm_reference", "prior_shrinkage",
           "mixedlm_agreement", "brms_agreement", "REFERENCE_DIR", "MIXEDLM_TOLERANCES",
           "check_mixedlm"]

HERE = Path(__file__).resolve().parent
REFERENCE_DIR = HERE / "reference"
CACHE = HERE / "cache"

#: Largest |z| of a mean or sd difference counted as agreement. About 25 quantities are
#: compared per model; under exact agreement P(any |z| > 3.5) is about 1%.
Z_MAX = 3.5


def _summaries(draws: np.ndarray) -> dict[str, float]:
    """Mean, sd and their Monte Carlo standard errors of (chain, draw) draws."""
    import arviz as az

    draws = np.asarray(draws, dtype=float)
    sq = (draws - draws.mean()) ** 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ess_sq = float(az.ess(sq, method="mean"))
        out = {"mean": float(draws.mean()), "sd": float(draws.std(ddof=1)),
               "mcse_mean": float(np.ravel(az.mcse(draws, method="mean"))[0]),
               "ess": float(az.ess(draws, method="bulk"))}
    # MCSE of the sd by the delta method, sd = sqrt(v): se(sd) = se(v) / (2 sd), with se(v)
    # from the ESS of the squared deviations (arviz 0.23's mcse(method="sd") fails on numpy 2)
    out["mcse_sd"] = float(np.sqrt(sq.var() / ess_sq) / (2 * out["sd"]))
    return out


def compare_draws(lib: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> pd.DataFrame:
    """Table of means, sds and z-scores of their differences, one row per shared quantity.

    Parameters
    ----------
    lib, ref : dict of str to ndarray (chain, draw)
    """
    rows = []
    for name in lib:
        if name not in ref:
            continue
        a, b = _summaries(lib[name]), _summaries(ref[name])
        z_mean = (a["mean"] - b["mean"]) / np.hypot(a["mcse_mean"], b["mcse_mean"])
        z_sd = (a["sd"] - b["sd"]) / np.hypot(a["mcse_sd"], b["mcse_sd"])
        rows.append({"quantity": name, "mean_lib": a["mean"], "mean_ref": b["mean"],
                     "sd_lib": a["sd"], "sd_ref": b["sd"], "z_mean": z_mean, "z_sd": z_sd,
                     "ess_lib": a["ess"], "ess_ref": b["ess"],
                     "agree": bool(abs(z_mean) < Z_MAX and abs(z_sd) < Z_MAX)})
    return pd.DataFrame(rows)


# ---- 1. the library against the direct implementation ---------------------------------------
def _reference_data(family: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_g, n_h, reps = 12, 6, 2
    g = np.repeat(np.repeat(np.arange(n_g), n_h), reps)
    h = np.repeat(np.tile(np.arange(n_h), n_g), reps)
    n = len(g)
    x1 = rng.normal(size=n) * 2.0 + 1.0
    x2 = rng.normal(size=n)
    frame = pd.DataFrame({"x1": x1, "x2": x2, "g": [f"g{k:02d}" for k in g],
                          "h": [f"h{k}" for k in h]})
    rg = rng.normal(size=(n_g, 2)) * [0.6, 0.2]
    rh = rng.normal(size=n_h) * 0.4
    if family == "gaussian":
        eta = 0.5 + 0.4 * x1 - 0.3 * x2 + rg[g, 0] + rg[g, 1] * x1 + rh[h]
        frame["y"] = eta + rng.normal(size=n) * 0.8
    else:
        eta = 0.3 + 0.2 * x1 - 0.3 * x2 + 0.7 * rg[g, 0] + rh[h]
        frame["y"] = rng.poisson(np.exp(eta)).astype(float)
    return frame


REFERENCE_CASES = {
    "gaussian": {"formula": "y ~ x1 + x2 + (1 + x1 | g) + (1 | h)",
                 "groups": [("g", ("x1",)), ("h", ())]},
    "poisson": {"formula": "y ~ x1 + x2 + (1 | g) + (1 | h)",
                "groups": [("g", ()), ("h", ())]},
}


def _flatten(posterior, names: list[str]) -> dict[str, np.ndarray]:
    from validation.fitting import quantities

    factors = [n[3:] for n in posterior.data_vars if n.startswith("sd_")]
    out = quantities(posterior, factors)
    return {k: v for k, v in out.items() if k.split("[")[0] in names}


def reference_agreement(family: str = "gaussian", *, draws: int = 2000, chains: int = 4,
                        seed: int = 11) -> dict:
    """Fit the library and the reference model on the same simulated data; compare."""
    import pymc as pm

    from r2d2formula import Model, Prior
    from validation.reference_model import GroupSpec, reference_design, reference_model

    case = REFERENCE_CASES[family]
    data = _reference_data(family, seed)
    priors = {"Intercept": Prior("Normal", mu=0.0, sigma=1.0)}
    if family == "gaussian":
        priors["sigma"] = Prior("HalfNormal", sigma=1.0)
    started = time.perf_counter()
    model = Model(case["formula"], data, family=family, priors=priors)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(sampler="nutpie", draws=draws, tune=1000, chains=chains,
                        random_seed=seed, progressbar=False)
    lib_seconds = time.perf_counter() - started
    design = reference_design(data, "y", ["x1", "x2"],
                              [GroupSpec(f, slopes) for f, slopes in case["groups"]])
    ref = reference_model(design, family=family, intercept=(0.0, 1.0), sigma_halfnormal=1.0)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_idata = pm.sample(draws=draws, tune=1000, chains=chains, cores=2, model=ref,
                              target_accept=0.95, random_seed=seed + 1, progressbar=False,
                              compute_convergence_checks=False,
                              compile_kwargs={"mode": "NUMBA"})
    ref_seconds = time.perf_counter() - started
    names = ["Intercept", "b", "sigma", "R2", "phi", "sd_g", "sd_h", "cor_g"]
    lib = _flatten(fit.idata.posterior, names)
    refd = _flatten(ref_idata.posterior, names)
    if "cor_g_rho" in ref_idata.posterior:
        refd["cor_g[1,x1]"] = ref_idata.posterior["cor_g_rho"].values
    table = compare_draws(lib, refd)
    missing = sorted(set(lib) ^ set(refd))
    return {"family": family, "formula": case["formula"], "n": len(data), "table": table,
            "missing": missing, "lib_divergences": int(fit.idata.sample_stats["diverging"].sum()),
            "ref_divergences": int(ref_idata.sample_stats["diverging"].sum()),
            "lib_seconds": lib_seconds, "ref_seconds": ref_seconds,
            "draws": f"{chains} x {draws}"}


# ---- 1b. the library's refit against a fresh model --------------------------------------------
def refit_agreement(config_name: str = "m2_gaussian_crossed", *, draws: int = 1000,
                    chains: int = 4, seed: int = 5) -> dict:
    """``model.fit(data=new)`` (reusing the compiled graph) against ``Model(..., new).fit()``.

    Default priors, which read the response, so the refit must also re-resolve them: the
    model is first built on the configuration's placeholder response scaled by 50 and shifted
    by 500 (another intercept location and sigma scale), then refitted on a response drawn
    from the configuration's prior predictive.
    """
    from r2d2formula import Model
    from validation.configs import get_config
    from validation.sbc import simulate

    config = get_config(config_name)
    data = config.data()
    _, ys = simulate(config, 2)
    new = data.copy()
    new[config.response] = ys[1]
    first = data.copy()
    first[config.response] = 50.0 * first[config.response] + 500.0
    settings = dict(sampler="nutpie", draws=draws, tune=1000, chains=chains, progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        original = Model(config.formula, first, family=config.family)
        original.build()
        refit = original.fit(data=new, random_seed=seed, **settings)
        fresh = Model(config.formula, new, family=config.family).fit(random_seed=seed + 1,
                                                                     **settings)
    names = ["Intercept", "b", "sigma", "alpha", "R2", "phi"] + [
        f"{kind}_{f}" for f in fresh.design.factors for kind in ("sd", "cor")]
    table = compare_draws(_flatten(refit.idata.posterior, names),
                          _flatten(fresh.idata.posterior, names))
    same_priors = refit.model.prior_table().equals(fresh.model.prior_table())
    return {"config": config_name, "formula": config.formula, "table": table,
            "same_prior_table": bool(same_priors), "draws": f"{chains} x {draws}",
            "reused_graph": refit.model._graphs is original._graphs}


# ---- 2. REML fits (statsmodels MixedLM, lme4) ------------------------------------------------
MIXEDLM_CASES = {
    "sleepstudy": {"formula": "Reaction ~ Days + (Days | Subject)", "response": "Reaction",
                   "fixed": "Reaction ~ Days", "group": "Subject", "re_formula": "~Days",
                   "terms": ["1", "Days"]},
    "radon": {"formula": "log_radon ~ floor + (1 | county)", "response": "log_radon",
              "fixed": "log_radon ~ floor", "group": "county", "re_formula": "1",
              "terms": ["1"]},
}

#: Tolerances of the library's posterior against REML, in units of the REML sampling
#: uncertainty: fixed effects |mean - estimate| <= 0.25 SE and posterior sd / SE in [0.8, 1.25];
#: group and residual SDs |median / estimate - 1| <= 0.5 / sqrt(2 (m - 1)) with m levels
#: (observations for sigma), half the approximate relative SE of an SD estimate; correlation
#: |median - estimate| <= 0.5 / sqrt(m - 3) (half the Fisher-z SE). The posterior median is
#: compared because the SDs' posteriors are skewed and REML estimates sit near their mode.
MIXEDLM_TOLERANCES = {"fixed_mean_se": 0.25, "fixed_sd_ratio": (0.8, 1.25), "sd_rel_se": 0.5,
                      "cor_fisher_se": 0.5}


def mixedlm_reference(name: str, *, lme4: bool = True) -> dict:
    """REML estimates of statsmodels' MixedLM for a shipped data set (and lme4's if R has it
    and ``lme4`` is True)."""
    import statsmodels.formula.api as smf

    from r2d2formula import datasets

    case = MIXEDLM_CASES[name]
    data = datasets.load(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = smf.mixedlm(case["fixed"], data, groups=data[case["group"]],
                             re_formula=case["re_formula"]).fit(reml=True, method="bfgs")
    # (L-BFGS stops at the boundary sd = 0 on radon; BFGS reaches lme4's optimum)
    fe = result.fe_params
    cov = np.asarray(result.cov_re)
    sds = np.sqrt(np.diag(cov))
    out = {
        "data": name, "formula": case["formula"], "source": "statsmodels MixedLM (REML)",
        "n": int(len(data)), "levels": int(data[case["group"]].nunique()),
        "fixed": {("Intercept" if k == "Intercept" else f"b[{k}]"): float(v)
                  for k, v in fe.items()},
        "fixed_se": {("Intercept" if k == "Intercept" else f"b[{k}]"): float(result.bse_fe[k])
                     for k in fe.index},
        "sd": {f"sd_{case['group']}[{t}]": float(s) for t, s in zip(case["terms"], sds,
                                                                  strict=True)},
        "sigma": float(np.sqrt(result.scale)),
    }
    if len(sds) == 2:
        out["cor"] = {f"cor_{case['group']}[1,{case['terms'][1]}]":
                      float(cov[0, 1] / (sds[0] * sds[1]))}
    out["lme4"] = _lme4_reference(name, case) if lme4 else None
    if out["lme4"] is not None:  # two REML implementations must agree before we trust them
        for group in ("fixed", "sd"):
            for key, value in out[group].items():
                other = out["lme4"][group][key]
                if abs(value - other) > 1e-3 * max(abs(other), 1e-3):
                    raise RuntimeError(f"{name}: statsmodels {key} = {value} but lme4 {other}")
    return out


def _lme4_reference(name: str, case: dict) -> dict | None:
    """lme4's REML fit through Rscript, or None when R or lme4 is not there."""
    if shutil.which("Rscript") is None:
        return None
    from r2d2formula import datasets

    CACHE.mkdir(parents=True, exist_ok=True)
    csv = CACHE / f"{name}.csv"
    datasets.load(name).to_csv(csv, index=False)
    script = (
        "suppressMessages(library(lme4)); d <- read.csv(commandArgs(TRUE)[1]);"
        f"d${case['group']} <- factor(d${case['group']});"
        f"m <- lmer({case['formula']}, d, REML = TRUE);"
        "vc <- as.data.frame(VarCorr(m)); s <- sqrt(diag(vcov(m)));"
        "cat(paste(c(fixef(m), s, vc$sdcor), collapse = ' '))"
    )
    try:
        proc = subprocess.run(["Rscript", "-e", script, str(csv)], capture_output=True,
                              text=True, timeout=300, check=True)
    except (subprocess.SubprocessError, OSError):
        return None
    values = [float(v) for v in proc.stdout.split()]
    k = 2  # fixed effects: intercept and one slope in both cases
    fixed, se, vc = values[:k], values[k:2 * k], values[2 * k:]
    names = ["Intercept", f"b[{case['fixed'].split('~')[1].strip()}]"]
    out = {"fixed": dict(zip(names, fixed, strict=True)),
           "fixed_se": dict(zip(names, se, strict=True)), "source": "lme4 lmer (REML)"}
    terms = case["terms"]
    out["sd"] = {f"sd_{case['group']}[{t}]": vc[i] for i, t in enumerate(terms)}
    if len(terms) == 2:
        out["cor"] = {f"cor_{case['group']}[1,{terms[1]}]": vc[2]}
    out["sigma"] = vc[-1]
    return out


def prior_shrinkage(prior_var: np.ndarray, estimate: float, se: float) -> float:
    """Where a Normal(0, v) prior moves an estimate with standard error ``se``.

    The conjugate normal posterior mean ``estimate * v / (v + se^2)``, averaged over draws of the
    prior variance ``v`` (the posterior draws of ``phi_j * W / s_j^2``, SPEC section 2). With
    the data dominating (v >> se^2) it is the estimate itself.
    """
    v = np.asarray(prior_var, dtype=float).ravel()
    return float(estimate * np.mean(v / (v + se**2)))


def check_mixedlm(posterior: dict[str, np.ndarray], ref: dict,
                  prior_var: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Compare library draws with REML numbers under :data:`MIXEDLM_TOLERANCES`.

    ``prior_var`` maps a fixed effect to draws of its prior variance; its REML estimate is then
    shrunk by :func:`prior_shrinkage` before the comparison (column ``target``).
    """
    tol = MIXEDLM_TOLERANCES
    prior_var = prior_var or {}
    rows = []
    for name, est in ref["fixed"].items():
        draws = posterior[name]
        se = ref["fixed_se"][name]
        target = prior_shrinkage(prior_var[name], est, se) if name in prior_var else est
        dev = (draws.mean() - target) / se
        ratio = draws.std() / se
        rows.append({"quantity": name, "reml": est, "target": target,
                     "posterior": float(draws.mean()),
                     "statistic": "mean", "deviation": f"{dev:+.3f} SE",
                     "tolerance": f"|.| <= {tol['fixed_mean_se']} SE; sd/SE {ratio:.2f} in "
                                  f"[{tol['fixed_sd_ratio'][0]}, {tol['fixed_sd_ratio'][1]}]",
                     "ok": bool(abs(dev) <= tol["fixed_mean_se"]
                                and tol["fixed_sd_ratio"][0] <= ratio <= tol["fixed_sd_ratio"][1])})
    scale_items = list(ref["sd"].items()) + [("sigma", ref["sigma"])]
    for name, est in scale_items:
        m = ref["n"] if name == "sigma" else ref["levels"]
        limit = tol["sd_rel_se"] / np.sqrt(2 * (m - 1))
        med = float(np.median(posterior[name]))
        rel = med / est - 1
        rows.append({"quantity": name, "reml": est, "target": est, "posterior": med,
                     "statistic": "median", "deviation": f"{rel:+.3%}", "tolerance": f"|.| <= {limit:.2%}",
                     "ok": bool(abs(rel) <= limit)})
    for name, est in ref.get("cor", {}).items():
        limit = tol["cor_fisher_se"] / np.sqrt(ref["levels"] - 3)
        med = float(np.median(posterior[name]))
        rows.append({"quantity": name, "reml": est, "target": est, "posterior": med,
                     "statistic": "median", "deviation": f"{med - est:+.3f}", "tolerance": f"|.| <= {limit:.3f}",
                     "ok": bool(abs(med - est) <= limit)})
    return pd.DataFrame(rows)


def mixedlm_agreement(name: str, *, draws: int = 1000, tune: int = 1000, chains: int = 4,
                      seed: int = 1, reference: dict | None = None) -> dict:
    """Fit the library with its default priors and compare with the REML reference."""
    from r2d2formula import Model, datasets

    ref = reference or load_reference(name)
    case = MIXEDLM_CASES[name]
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = Model(case["formula"], datasets.load(name)).fit(
            draws=draws, tune=tune, chains=chains, random_seed=seed, progressbar=False)
    seconds = time.perf_counter() - started
    posterior = _flatten(fit.idata.posterior, ["Intercept", "b", "sigma", f"sd_{case['group']}",
                                               f"cor_{case['group']}"])
    return {"data": name, "formula": case["formula"],
            "table": check_mixedlm(posterior, ref, _slope_prior_variances(fit)),
            "divergences": int(fit.idata.sample_stats["diverging"].sum()),
            "seconds": seconds, "draws": f"{chains} x {draws}", "sampler": fit.sampler,
            "reference": ref}


def _slope_prior_variances(fit) -> dict[str, np.ndarray]:
    """Posterior draws of each population slope's prior variance, phi_j * W / s_j^2."""
    post = fit.idata.posterior
    common = fit.design.common
    out = {}
    for label, scale in zip(common.labels, common.scales, strict=True):
        phi = post["phi"].sel(component=label).values
        out[f"b[{label}]"] = phi * post["W"].values / scale**2
    return out


def reference_path(name: str) -> Path:
    return REFERENCE_DIR / f"{name}_mixedlm.json"


def load_reference(name: str) -> dict:
    """The stored REML reference numbers of a data set (validation/reference/)."""
    return json.loads(reference_path(name).read_text())


def write_reference(name: str) -> dict:
    """Recompute and store the REML reference numbers of a data set."""
    ref = mixedlm_reference(name)
    REFERENCE_DIR.mkdir(parents=True, exist_ok=True)
    reference_path(name).write_text(json.dumps(ref, indent=2) + "\n")
    return ref


# ---- 3. brms ---------------------------------------------------------------------------------
def brms_available() -> tuple[bool, str]:
    """Whether ``Rscript`` can load brms; the reason when it cannot."""
    if shutil.which("Rscript") is None:
        return False, "Rscript is not on PATH (R is not installed)"
    try:
        proc = subprocess.run(["Rscript", "-e", "suppressMessages(library(brms))"],
                              capture_output=True, text=True, timeout=300)
    except (subprocess.SubprocessError, OSError) as err:
        return False, f"Rscript failed: {err}"
    if proc.returncode != 0:
        return False, f"library(brms) failed: {proc.stderr.strip()[-300:]}"
    return True, ""


def standardized_diabetes() -> pd.DataFrame:
    """diabetes with its 10 predictors standardized to mean 0 and population sd 1 (ddof 0,
    the s_j of the library's autoscale), so that autoscale changes nothing."""
    from r2d2formula import datasets

    data = datasets.load("diabetes")
    x = data.drop(columns="y")
    out = (x - x.mean()) / x.std(ddof=0)
    out["y"] = data["y"]
    return out


def brms_agreement(*, draws: int = 2000, chains: int = 4, seed: int = 1) -> dict:
    """brms's R2D2 against the library on standardized diabetes, same priors."""
    from r2d2formula import R2D2, Model, Prior

    ok, why = brms_available()
    if not ok:
        return {"skipped": why}
    data = standardized_diabetes()
    out_dir = CACHE / "brms"
    out_dir.mkdir(parents=True, exist_ok=True)
    csv = out_dir / "diabetes_standardized.csv"
    if not csv.exists() or not pd.read_csv(csv).equals(data):
        data.to_csv(csv, index=False)
    prefix = out_dir / "diabetes"
    draws_file = Path(f"{prefix}_draws.csv")
    script = HERE / "brms_r2d2.R"
    stale = (not draws_file.exists()
             or draws_file.stat().st_mtime < max(script.stat().st_mtime, csv.stat().st_mtime))
    if stale:  # the brms fit takes minutes (Stan compilation): reuse an up-to-date one
        proc = subprocess.run(["Rscript", str(script), str(csv), str(prefix), str(seed)],
                              capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            return {"skipped": f"brms fit failed: {proc.stderr.strip()[-500:]}"}
    brms_draws = pd.read_csv(f"{prefix}_draws.csv")
    info = json.loads(Path(f"{prefix}_info.json").read_text())
    predictors = [c for c in data.columns if c != "y"]
    started = time.perf_counter()
    model = Model("y ~ " + " + ".join(predictors), data,
                  prior=R2D2(r2_mean=0.5, r2_precision=2, concentration=0.5),
                  priors={"Intercept": Prior("Normal", mu=150.0, sigma=100.0),
                          "sigma": Prior("HalfStudentT", nu=3, sigma=80.0)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(sampler="nutpie", draws=draws, tune=1000, chains=chains,
                        random_seed=seed, progressbar=False)
    seconds = time.perf_counter() - started
    lib = _flatten(fit.idata.posterior, ["Intercept", "b", "sigma", "R2", "phi"])

    def by_chain(column: str) -> np.ndarray:
        return np.stack([g[column].to_numpy() for _, g in brms_draws.groupby(".chain")])

    ref = {"Intercept": by_chain("Intercept"), "sigma": by_chain("sigma"), "R2": by_chain("R2")}
    for x in predictors:
        ref[f"b[{x}]"] = by_chain(f"b_{x}")
        ref[f"phi[{x}]"] = by_chain(f"phi_{x}")
    return {"table": compare_draws(lib, ref), "brms": info, "seconds": seconds,
            "divergences": int(fit.idata.sample_stats["diverging"].sum()),
            "draws": f"{chains} x {draws}"}
