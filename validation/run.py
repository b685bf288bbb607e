"""Run the validation suite and write validation/RESULTS.md.

    python -m validation.run                     # everything: 200 SBC and coverage replications
    python -m validation.run --quick             # 20 replications, short agreement runs
    python -m validation.run --only sbc --workers 2
    python -m validation.run --only agreement
    python -m validation.run --report            # summarise the cache, rewrite RESULTS.md

Replications are cached in validation/cache/ (git-ignored), so an interrupted run resumes.
Each part stores its summary in validation/results/<part>.json; RESULTS.md is rebuilt from
all stored summaries, so one part can be rerun alone. ``--quick`` writes to
validation/cache/quick/ and never touches the committed results.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

#: Significance rule of the SBC uniformity tests (fixed in advance): a quantity FAILS when the
#: ECDF-band or the chi-square p-value is below 0.05 / (quantities in its configuration)
#: (Bonferroni within a configuration), and is NOTED when one is below 0.01.
FAIL_FAMILYWISE = 0.05
NOTE_LEVEL = 0.01
N_BINS = 10


def _summarise_sbc(runs, out_dir: Path, fig_dir: Path, log) -> list[dict]:
    from validation.configs import SBC_CONFIGS
    from validation.plots import plot_ecdf_differences, plot_rank_histograms
    from validation.sbc import load_failures, load_results
    from validation.stats import chisq_uniformity, ecdf_band, ecdf_uniformity

    summaries = []
    for run in runs:
        records = load_results(run)
        if not records:
            continue
        n_ranks = run.n_keep + 1
        names = list(records[0]["rank"])
        ranks = {name: np.array([r["rank"][name] for r in records]) for name in names}
        band = ecdf_band(len(records), n_ranks, seed=len(records))
        rows, diffs = [], {}
        threshold = FAIL_FAMILYWISE / len(names)
        for name in names:
            chi2, p_chi2 = chisq_uniformity(ranks[name], n_ranks, N_BINS)
            diff, p_ecdf = ecdf_uniformity(ranks[name], n_ranks, band)
            diffs[name] = diff
            low = min(p_chi2, p_ecdf)
            verdict = "FAIL" if low < threshold else ("note" if low < NOTE_LEVEL else "ok")
            rows.append({"quantity": name, "chi2": chi2, "p_chi2": p_chi2, "p_ecdf": p_ecdf,
                         "mean_rank": float(ranks[name].mean() / run.n_keep),
                         "verdict": verdict})
        fit_s = [r["fit_seconds"] for r in records]
        compile_s = sum(r["compile_seconds"] for r in records)
        divergent = [r["divergences"] for r in records]
        min_ess = [min(r["ess_bulk"].values()) for r in records]
        title = SBC_CONFIGS[run.config].title
        plot_rank_histograms(ranks, n_ranks, N_BINS, title, fig_dir / f"sbc_{run.config}_ranks.png")
        plot_ecdf_differences(diffs, band, title, fig_dir / f"sbc_{run.config}_ecdf.png")
        summaries.append({
            "config": run.config, "title": title, "formula": SBC_CONFIGS[run.config].formula,
            "family": SBC_CONFIGS[run.config].family, "n_reps": len(records),
            "target_reps": run.n_reps, "settings": run.settings.key(), "n_keep": run.n_keep,
            "method": records[0]["method"], "fit_seconds_total": float(np.sum(fit_s)),
            "fit_seconds_median": float(np.median(fit_s)), "compile_seconds": compile_s,
            "reps_with_divergences": int(np.sum(np.array(divergent) > 0)),
            "divergences_total": int(np.sum(divergent)),
            "min_ess_median": float(np.median(min_ess)), "min_ess_min": float(np.min(min_ess)),
            "threshold": threshold, "quantities": rows,
            "failed_reps": [f"{f['rep']}: {f['error'][:200]}" for f in load_failures(run)],
        })
        log(f"[sbc] {run.config}: {len(records)} replications summarised")
    (out_dir / "sbc.json").write_text(json.dumps(summaries, indent=1) + "\n")
    return summaries


def _summarise_coverage(runs, out_dir: Path, fig_dir: Path, log) -> list[dict]:
    from validation.configs import COVERAGE_CONFIGS
    from validation.coverage import coverage_table, load_failures, load_results
    from validation.plots import plot_coverage

    summaries = []
    for run in runs:
        records = load_results(run)
        if not records:
            continue
        rows = coverage_table(records)
        config = COVERAGE_CONFIGS[run.config]
        plot_coverage(rows, f"{config.family}: {config.title}",
                      fig_dir / f"coverage_{run.config}.png")
        summaries.append({
            "config": run.config, "title": config.title, "family": config.family,
            "formula": config.formula, "n_reps": len(records), "target_reps": run.n_reps,
            "method": records[0]["method"],
            "fit_seconds_total": float(sum(r["fit_seconds"] for r in records)),
            "compile_seconds": float(sum(r["compile_seconds"] for r in records)),
            "reps_with_divergences": int(sum(r["divergences"] > 0 for r in records)),
            "failed_reps": [f"{f['rep']}: {f['error'][:200]}" for f in load_failures(run)],
            "rows": rows,
        })
        log(f"[coverage] {run.config}: {len(records)} replications summarised")
    (out_dir / "coverage.json").write_text(json.dumps(summaries, indent=1) + "\n")
    return summaries


def _run_agreement(out_dir: Path, quick: bool, log) -> dict:
    from validation import agreement

    draws = 500 if quick else 2000
    result: dict = {"reference": [], "mixedlm": [], "brms": None}
    for family in ("gaussian", "poisson"):
        log(f"[agreement] reference model, {family}")
        res = agreement.reference_agreement(family, draws=draws)
        res["table"] = res["table"].to_dict(orient="records")
        result["reference"].append(res)
    log("[agreement] library refit against a fresh model")
    res = agreement.refit_agreement(draws=500 if quick else 1000)
    res["table"] = res["table"].to_dict(orient="records")
    result["refit"] = res
    for name in ("sleepstudy", "radon"):
        log(f"[agreement] MixedLM/lme4 reference, {name}")
        ref = agreement.write_reference(name) if not quick else agreement.mixedlm_reference(name)
        res = agreement.mixedlm_agreement(name, draws=500 if quick else 1000, reference=ref)
        res["table"] = res["table"].to_dict(orient="records")
        result["mixedlm"].append(res)
    log("[agreement] brms R2D2")
    res = agreement.brms_agreement(draws=draws)
    if "table" in res:
        res["table"] = res["table"].to_dict(orient="records")
    result["brms"] = res
    (out_dir / "agreement.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    return result


# ---- the report ------------------------------------------------------------------------------
def _with_cached_reps(runs: list) -> list:
    """The runs, each extended to every consecutive replication its cache holds.

    A configuration run further than the default (to look again at a quantity flagged at 200
    replications, say) is then summarised with all its replications, not cut back to 200.
    """
    import dataclasses

    out = []
    for run in runs:
        n = run.n_reps
        while (run.directory() / f"rep_{n:04d}.json").exists():
            n += 1
        out.append(dataclasses.replace(run, n_reps=n))
    return out


def _fmt_p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _cell(text: str) -> str:
    """Text for a markdown table cell (a literal | would end the cell)."""
    return text.replace("|", "\\|")


def _sbc_section(summaries: list[dict]) -> list[str]:
    lines = ["## 1. Simulation-based calibration", ""]
    if not summaries:
        return lines + ["Not run yet.", ""]
    lines += [
        "Per configuration: a fixed design; per replication, parameters and response drawn "
        "from the model's prior predictive (`Model.sample_prior_predictive`), the model refitted "
        "on the response without recompiling, 2 chains x 500 draws (500 tuning, "
        "target_accept 0.95) thinned to 99 draws, and the rank (0-99) of each true value among "
        "them. Priors that would read the response are fixed (intercept Normal(0, 1) on the "
        "link scale, sigma HalfNormal(1); the negative binomial's alpha keeps its default "
        "LogNormal(1, 2)); the runner checks that no resolved prior changes with the response. "
        f"Uniformity: chi-square over {N_BINS} bins and the simultaneous ECDF band test "
        "(Säilynoja et al. 2022, 2000 simulations). A quantity FAILS when either p-value is "
        f"below {FAIL_FAMILYWISE} / (its configuration's number of quantities), is NOTED below "
        f"{NOTE_LEVEL}.",
        "",
        "| configuration | replications | failed fits | quantities | FAIL | noted "
        "| reps with divergences | median min ESS | fit s (median / total) | compile s "
        "| method |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        q = s["quantities"]
        fails = [r["quantity"] for r in q if r["verdict"] == "FAIL"]
        notes = [r["quantity"] for r in q if r["verdict"] == "note"]
        lines.append(
            f"| {_cell(s['title'])} | {s['n_reps']} / {s['target_reps']} | "
            f"{len(s.get('failed_reps', []))} | {len(q)} | "
            f"{', '.join(fails) or '-'} | {', '.join(notes) or '-'} | "
            f"{s['reps_with_divergences']} ({s['divergences_total']} div.) | "
            f"{s['min_ess_median']:.0f} | {s['fit_seconds_median']:.1f} / "
            f"{s['fit_seconds_total']:.0f} | {s['compile_seconds']:.0f} | {s['method']} |")
    lines.append("")
    for s in summaries:
        lines += [f"### {s['config']}: {s['title']}", "",
                  f"`{s['formula']}`, family {s['family']}, {s['n_reps']} replications."
                  + (f" Failed fits (left out of the ranks): {s['failed_reps']}."
                     if s.get("failed_reps") else ""), "",
                  "| quantity | chi2 p | ECDF p | mean rank / 99 | verdict |",
                  "|---|---|---|---|---|"]
        for r in s["quantities"]:
            lines.append(f"| {_cell(r['quantity'])} | {_fmt_p(r['p_chi2'])} | "
                         f"{_fmt_p(r['p_ecdf'])} | "
                         f"{r['mean_rank']:.3f} | {r['verdict']} |")
        lines += ["", f"![ranks](figures/sbc_{s['config']}_ranks.png)",
                  f"![ecdf](figures/sbc_{s['config']}_ecdf.png)", ""]
    return lines


def _coverage_section(summaries: list[dict]) -> list[str]:
    lines = ["## 2. Coverage at fixed known values", ""]
    if not summaries:
        return lines + ["Not run yet.", ""]
    lines += [
        "Fixed R2 = 0.5, phi = (x 0.5, w 0.2, 1|g 0.3), intercept and sigma/alpha; "
        "coefficients b_j = +-sqrt(phi_j W) / s_j, group effects drawn per data set from "
        "N(0, sd_g); W from R2 by the definition of SPEC section 2 (quadrature and root finding "
        "in `validation/truth.py`, no library code). Central 50% and 90% posterior intervals "
        "(2 x 500 draws). MC SE: binomial Monte Carlo standard error of the coverage. Nominal "
        "coverage is expected where the data dominate the prior (b, sd_g, R2, Intercept, "
        "sigma); a single coefficient's share phi_j is only weakly identified (its z_j^2 is "
        "not), so its coverage at one fixed truth need not be nominal.",
        "",
    ]
    for s in summaries:
        lines += [f"### {s['family']}: {s['title']}", "",
                  f"`{s['formula']}`, {s['n_reps']} / {s['target_reps']} data sets, "
                  f"{len(s.get('failed_reps', []))} failed fits, "
                  f"{s['reps_with_divergences']} fits with divergences, fitting "
                  f"{s['fit_seconds_total']:.0f} s + compiling {s['compile_seconds']:.0f} s.", "",
                  "| parameter | truth | mean of posterior means | 50% coverage (MC SE) "
                  "| 90% coverage (MC SE) |", "|---|---|---|---|---|"]
        for r in s["rows"]:
            lines.append(f"| {_cell(r['parameter'])} | {r['truth']:.4g} | "
                         f"{r['mean_estimate']:.4g} | "
                         f"{r['cover50']:.3f} ({r['mcse50']:.3f}) | "
                         f"{r['cover90']:.3f} ({r['mcse90']:.3f}) |")
        lines += ["", f"![coverage](figures/coverage_{s['config']}.png)", ""]
    return lines


def _agreement_table(rows: list[dict]) -> list[str]:
    lines = ["| quantity | mean (library) | mean (other) | sd (library) | sd (other) | z mean "
             "| z sd | agree |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {_cell(r['quantity'])} | {r['mean_lib']:.4g} | "
                     f"{r['mean_ref']:.4g} | "
                     f"{r['sd_lib']:.4g} | {r['sd_ref']:.4g} | {r['z_mean']:+.2f} | "
                     f"{r['z_sd']:+.2f} | {'yes' if r['agree'] else 'NO'} |")
    return lines


def _agreement_section(result: dict | None) -> list[str]:
    from validation.agreement import MIXEDLM_TOLERANCES, Z_MAX

    lines = ["## 3. Agreement with independent implementations", ""]
    if not result:
        return lines + ["Not run yet.", ""]
    lines += ["### 3a. Direct PyMC implementation written from SPEC "
              "(`validation/reference_model.py`)", "",
              "Same simulated data, same priors; library sampled with nutpie, the reference "
              "with PyMC's NUTS. z = difference / sqrt(MCSE_1^2 + MCSE_2^2); agreement "
              f"means |z| < {Z_MAX} for both the mean and the sd.", ""]
    for res in result["reference"]:
        lines += [f"**{res['family']}**: `{res['formula']}`, n = {res['n']}, {res['draws']} "
                  f"draws each; divergences library {res['lib_divergences']}, reference "
                  f"{res['ref_divergences']}."
                  + (f" Not compared (names differ): {res['missing']}." if res["missing"]
                     else ""), ""]
        lines += _agreement_table(res["table"]) + [""]
    refit = result.get("refit")
    if refit:
        lines += ["**The library's refit** (`model.fit(data=new)`, reusing the compiled graph "
                  "of a model built on other data) against a fresh `Model(..., new).fit()`, "
                  f"default priors (which read the response), `{refit['formula']}`, "
                  f"{refit['draws']} draws each; graph reused: {refit['reused_graph']}, "
                  f"identical prior tables: {refit['same_prior_table']}.", ""]
        lines += _agreement_table(refit["table"]) + [""]
    lines += ["### 3b. REML fits where the data dominate (statsmodels MixedLM, lme4)", "",
              "The library with its default priors against REML. Tolerances, fixed before the "
              f"runs ({MIXEDLM_TOLERANCES}): fixed effects |posterior mean - REML| <= 0.25 REML "
              "SE and posterior sd / SE in [0.8, 1.25]; SDs |posterior median / REML - 1| <= "
              "0.5 / sqrt(2 (m - 1)) (half an SD estimate's relative SE; m levels, or rows for "
              "sigma); correlation |median - REML| <= 0.5 / sqrt(m - 3) (half the Fisher-z "
              "SE). Why not tighter: a posterior mean or median is not a REML estimate; they "
              "differ by a fraction of the sampling uncertainty (skewed SD posteriors, the "
              "prior's weight with 18 subjects). A slope is compared not with its REML "
              "estimate but with that estimate moved by the shrinkage its R2D2 prior implies "
              "(column *REML shrunk by the prior*: the conjugate normal mean est * v / (v + "
              "SE^2), averaged over posterior draws of the prior variance v = phi_j W / "
              "s_j^2; `agreement.prior_shrinkage`): REML has no prior, and on sleepstudy the "
              "prior's pull on b[Days] is about 0.3 SE. Reference numbers are stored in "
              "`validation/reference/`.", ""]
    for res in result["mixedlm"]:
        ref = res["reference"]
        lme4 = ref.get("lme4")
        lines += [f"**{res['data']}**: `{res['formula']}`, {res['draws']} draws "
                  f"({res['sampler']}), {res['divergences']} divergences. "
                  + ("lme4 agrees with statsmodels: " + ", ".join(
                      f"{k} {v:.4g}" for k, v in {**lme4['fixed'], **lme4['sd'],
                                                  'sigma': lme4['sigma']}.items())
                     if lme4 else "lme4 not available."), "",
                  "| quantity | REML | REML shrunk by the prior | posterior | statistic "
                  "| deviation | tolerance | ok |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in res["table"]:
            lines.append(f"| {_cell(r['quantity'])} | {r['reml']:.4g} | "
                         f"{r.get('target', r['reml']):.4g} | {r['posterior']:.4g} | "
                         f"{r['statistic']} | {r['deviation']} | {r['tolerance']} | "
                         f"{'yes' if r['ok'] else 'NO'} |")
        lines.append("")
    lines += ["### 3c. brms `R2D2()`", ""]
    brms = result.get("brms") or {}
    if "table" not in brms:
        lines += [f"Not run: {brms.get('skipped', 'not attempted')}. `validation/brms_r2d2.R` "
                  "runs when R with brms is installed.", ""]
    else:
        lines += [f"diabetes, 10 predictors standardized to sd 1 (ddof 0), same priors "
                  f"(R2 ~ Beta(1, 1), phi ~ Dirichlet(0.5), Intercept ~ N(150, 100), "
                  f"sigma ~ half-t(3, 0, 80)); brms {brms['brms']['brms_version']} "
                  f"({brms['brms']['divergences']} divergences), library nutpie "
                  f"({brms['divergences']} divergences), {brms['draws']} draws each.", ""]
        lines += _agreement_table(brms["table"]) + [""]
    return lines


def write_report(log=print) -> Path:
    """Rebuild RESULTS.md from validation/results/*.json."""
    results = HERE / "results"

    def load(name: str):
        path = results / name
        return json.loads(path.read_text()) if path.exists() else None

    meta = load("meta.json") or {}
    lines = ["# Validation results", "",
             "Produced by `python -m validation.run` (see `validation/README.md`). "
             f"Last run: {meta.get('date', '?')}, r2d2formula commit {meta.get('commit', '?')}"
             f"{' (with uncommitted changes)' if meta.get('dirty') else ''}, "
             f"{meta.get('machine', '?')}.", ""]
    if meta.get("timings"):
        lines += ["Wall time of the last run of each part (a shared 2-core machine under "
                  "other load, so indicative only): "
                  + ", ".join(f"{k} {v / 60:.0f} min" for k, v in meta["timings"].items())
                  + ".", ""]
    lines += _sbc_section(load("sbc.json") or [])
    lines += _coverage_section(load("coverage.json") or [])
    lines += _agreement_section(load("agreement.json"))
    notes = HERE / "FINDINGS.md"
    if notes.exists():
        lines += [notes.read_text().strip(), ""]
    path = HERE / "RESULTS.md"
    path.write_text("\n".join(lines) + "\n")
    log(f"wrote {path}")
    return path


def _meta(timings: dict) -> dict:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True,
                                  text=True, check=True).stdout.strip()
        except (subprocess.SubprocessError, OSError):
            return "?"
    import os

    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": git("rev-parse", "--short", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--", "r2d2formula")),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
                       f"{platform.python_version()}", "timings": timings}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m validation.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="20 replications and short agreement runs, into "
                             "validation/cache/quick")
    parser.add_argument("--only", choices=["sbc", "coverage", "agreement"], action="append",
                        help="run only this part (repeatable)")
    parser.add_argument("--workers", type=int, default=2, help="processes for SBC and coverage")
    parser.add_argument("--reps", type=int, default=None,
                        help="replications per configuration (default: SBC 200, coverage "
                             "100; --quick 20)")
    parser.add_argument("--configs", default=None,
                        help="comma-separated configuration names (default: all)")
    parser.add_argument("--report", action="store_true",
                        help="fit nothing: summarise the cached replications (parts named by "
                             "--only) and rewrite RESULTS.md")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    def log(message: str) -> None:
        print(message, flush=True)

    parts = args.only or ["sbc", "coverage", "agreement"]
    reps = args.reps or (20 if args.quick else 200)  # SBC
    cov_reps = args.reps or (20 if args.quick else 100)  # coverage: MC SE <= 0.05 at 50%
    names = args.configs.split(",") if args.configs else None
    out_dir = HERE / "cache" / "quick" if args.quick else HERE / "results"
    fig_dir = out_dir / "figures" if args.quick else HERE / "figures"
    out_dir.mkdir(parents=True, exist_ok=True)
    fig_dir.mkdir(parents=True, exist_ok=True)
    if args.report:
        # summarise what the cache holds now (also while a run is still going); parts without a
        # cache keep their stored summaries
        from validation.coverage import default_runs as coverage_runs
        from validation.sbc import default_runs

        if "sbc" in parts and (HERE / "cache" / "sbc").exists():
            _summarise_sbc(_with_cached_reps(default_runs(reps)), out_dir, fig_dir, log)
        if "coverage" in parts and (HERE / "cache" / "coverage").exists():
            _summarise_coverage(coverage_runs(cov_reps), out_dir, fig_dir, log)
        write_report(log)
        return 0
    timings: dict[str, float] = {}
    if "sbc" in parts:
        from validation.configs import SBC_CONFIGS
        from validation.sbc import default_runs, run_sbc

        chosen = [n for n in (names or SBC_CONFIGS) if n in SBC_CONFIGS]
        runs = default_runs(reps, chosen)
        started = time.perf_counter()
        run_sbc(runs, workers=args.workers, log=log)
        timings["sbc"] = time.perf_counter() - started
        _summarise_sbc(_with_cached_reps(default_runs(reps)), out_dir, fig_dir, log)
    if "coverage" in parts:
        from validation.configs import COVERAGE_CONFIGS
        from validation.coverage import default_runs as coverage_runs
        from validation.coverage import run_coverage

        chosen = [n for n in (names or COVERAGE_CONFIGS) if n in COVERAGE_CONFIGS]
        started = time.perf_counter()
        run_coverage(coverage_runs(cov_reps, chosen), workers=args.workers, log=log)
        timings["coverage"] = time.perf_counter() - started
        _summarise_coverage(coverage_runs(cov_reps), out_dir, fig_dir, log)
    if "agreement" in parts:
        started = time.perf_counter()
        _run_agreement(out_dir, args.quick, log)
        timings["agreement"] = time.perf_counter() - started
    if args.quick:
        log(f"quick run: summaries in {out_dir} (RESULTS.md left as it is)")
        return 0
    # merge with the timings of parts run separately (read now: another run may have written)
    meta_path = HERE / "results" / "meta.json"
    previous = json.loads(meta_path.read_text()).get("timings", {}) if meta_path.exists() else {}
    meta_path.write_text(json.dumps(_meta({**previous, **timings}), indent=1) + "\n")
    write_report(log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
