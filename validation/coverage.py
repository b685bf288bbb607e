"""Coverage of central posterior intervals on data simulated from fixed known values.

Per scenario (:data:`validation.configs.COVERAGE_CONFIGS`): the hyperparameters (R2, phi, the
intercept, sigma or alpha) are fixed, the coefficients follow from them with |z| = 1 and the
group effects are drawn afresh for each data set from N(0, sd) (:mod:`validation.truth`, which
shares no code with the library). Each data set is fitted and the 50% and 90% central
intervals of every reported parameter are checked against the truth.

Bayesian intervals cover at their nominal rate on average over the prior (that is what SBC
checks); at one fixed truth they do so only as far as the data dominate the prior. Here the
coefficients, the group SD and R2 are well identified (240-480 rows, 30 levels); a single
coefficient's share phi_j is not (phi_j W is only pinned down up to the z_j^2 of its
coefficient), so its coverage may differ from nominal without any error in the library.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from validation.configs import COVERAGE_CONFIGS, Config
from validation.fitting import FitSettings, Refitter, fit_replication, quantities
from validation.truth import simulate_response, true_values

__all__ = ["CoverageRun", "scenario", "run_coverage", "load_results", "LEVELS"]

CACHE = Path(__file__).resolve().parent / "cache"
LEVELS = (0.5, 0.9)
_PREDICTORS = ["x", "w"]
_FACTOR = "g"


@dataclass(frozen=True, kw_only=True)
class CoverageRun:
    config: str
    n_reps: int
    settings: FitSettings = FitSettings()

    def directory(self, root: Path = CACHE) -> Path:
        return root / "coverage" / f"{self.config}__{self.settings.key()}"


def scenario(config: Config) -> tuple[dict, object]:
    """(true values, fixed design) of a coverage configuration."""
    data = config.data()
    return true_values(config.truth, data, config.family, _PREDICTORS, _FACTOR), data


_WORKER: dict[str, Refitter] = {}


def _run_rep(run: CoverageRun, rep: int, root: Path) -> dict:
    config = COVERAGE_CONFIGS[run.config]
    values, data = scenario(config)
    if run.config not in _WORKER:
        _WORKER[run.config] = Refitter(config.model(data), data, config.response, run.settings)
    refitter = _WORKER[run.config]
    rng = np.random.default_rng([config.seed, rep])
    y = simulate_response(values, config.truth, data, config.family, _PREDICTORS, _FACTOR, rng)
    compile_before = refitter.compile_seconds
    start = time.perf_counter()
    posterior, stats = fit_replication(refitter, y, random_seed=config.seed * 7919 + rep)
    seconds = time.perf_counter() - start - (refitter.compile_seconds - compile_before)
    post = quantities(posterior, [_FACTOR])
    record = {"rep": rep, "divergences": int(stats["diverging"].sum()), "fit_seconds": seconds,
              "compile_seconds": refitter.compile_seconds - compile_before,
              "method": refitter.method, "pilot": "per replication",
              "truth": {}, "quantiles": {}, "mean": {}}
    probs = sorted({q for level in LEVELS for q in ((1 - level) / 2, (1 + level) / 2)})
    for name, draws in post.items():
        if name not in values:
            continue
        record["truth"][name] = float(values[name])
        record["quantiles"][name] = dict(zip([f"{q:g}" for q in probs],
                                             np.quantile(draws.ravel(), probs).tolist(),
                                             strict=True))
        record["mean"][name] = float(draws.mean())
    directory = run.directory(root)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".rep_{rep:04d}.json.tmp"
    tmp.write_text(json.dumps(record))
    os.replace(tmp, directory / f"rep_{rep:04d}.json")
    return record


def _run_chunk(run: CoverageRun, reps: list[int], root: str) -> list[int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for rep in reps:
            try:
                _run_rep(run, rep, Path(root))
            except Exception as error:  # noqa: BLE001 - recorded and reported, never dropped
                directory = run.directory(Path(root))
                directory.mkdir(parents=True, exist_ok=True)
                (directory / f"fail_{rep:04d}.json").write_text(json.dumps(
                    {"rep": rep, "error": f"{type(error).__name__}: {error}"}))
    return reps


def run_coverage(runs: list[CoverageRun], *, workers: int = 2, root: Path = CACHE,
                 chunk: int = 10, log=print) -> None:
    """Fit every replication of ``runs`` not cached yet, in ``workers`` processes."""
    from validation.sbc import schedule

    per_config = []
    for run in runs:
        done = {int(p.stem.split("_")[1]) for pattern in ("rep_*.json", "fail_*.json")
                for p in run.directory(root).glob(pattern)}
        todo = [rep for rep in range(run.n_reps) if rep not in done]
        log(f"[coverage] {run.config}: {len(done)} cached, {len(todo)} to fit")
        per_config.append([(run, todo[i:i + chunk]) for i in range(0, len(todo), chunk)])
    jobs = schedule(per_config)
    if not jobs:
        return
    started = time.perf_counter()
    if workers <= 1:
        for run, reps in jobs:
            _run_chunk(run, reps, str(root))
            log(f"[coverage] {run.config}: reps {reps[0]}-{reps[-1]} done "
                f"({time.perf_counter() - started:.0f} s)")
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(_run_chunk, run, reps, str(root)): (run, reps)
                   for run, reps in jobs}
        for future in as_completed(futures):
            run, reps = futures[future]
            future.result()
            log(f"[coverage] {run.config}: reps {reps[0]}-{reps[-1]} done "
                f"({time.perf_counter() - started:.0f} s)")


def load_results(run: CoverageRun, root: Path = CACHE) -> list[dict]:
    directory = run.directory(root)
    return [json.loads((directory / f"rep_{rep:04d}.json").read_text())
            for rep in range(run.n_reps) if (directory / f"rep_{rep:04d}.json").exists()]


def load_failures(run: CoverageRun, root: Path = CACHE) -> list[dict]:
    """Data sets whose fit raised an error (recorded, not dropped)."""
    return [json.loads(p.read_text()) for p in sorted(run.directory(root).glob("fail_*.json"))
            if int(p.stem.split("_")[1]) < run.n_reps]


def coverage_table(records: list[dict]) -> list[dict]:
    """Empirical coverage per parameter and level, with its binomial Monte Carlo error."""
    from validation.stats import binomial_mc_error

    rows = []
    names = list(records[0]["truth"]) if records else []
    for name in names:
        row = {"parameter": name, "truth": records[0]["truth"][name], "n": len(records)}
        for level in LEVELS:
            lo, hi = f"{(1 - level) / 2:g}", f"{(1 + level) / 2:g}"
            hits = sum(r["quantiles"][name][lo] <= r["truth"][name] <= r["quantiles"][name][hi]
                       for r in records)
            row[f"cover{int(level * 100)}"] = hits / len(records)
            row[f"mcse{int(level * 100)}"] = binomial_mc_error(hits, len(records))
        row["mean_estimate"] = float(np.mean([r["mean"][name] for r in records]))
        rows.append(row)
    return rows


def default_runs(n_reps: int, names: list[str] | None = None) -> list[CoverageRun]:
    return [CoverageRun(config=name, n_reps=n_reps) for name in (names or list(COVERAGE_CONFIGS))]
