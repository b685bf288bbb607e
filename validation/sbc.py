"""Simulation-based calibration (Talts et al. 2018) of r2d2formula models.

For one configuration (:mod:`validation.configs`): build the model on its fixed design, draw
``n_reps`` parameter sets and responses from the model's prior predictive
(``Model.sample_prior``, forward sampling through the model graph), refit the model on each
response without recompiling it (:func:`validation.fitting.fit_replication`), thin the
posterior to ``n_keep`` draws and record the rank of each true value among them. Each
replication is cached as a JSON file, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from validation.configs import SBC_CONFIGS, Config, get_config
from validation.fitting import FitSettings, Refitter, fit_replication, quantities
from validation.stats import sbc_rank, thin_draws

__all__ = ["SBCRun", "simulate", "check_prior_free_of_response", "run_replication", "run_sbc",
           "load_results", "CACHE"]

CACHE = Path(__file__).resolve().parent / "cache"
#: Thinned draws per replication: ranks take N_KEEP + 1 = 100 values (10 bins of 10).
N_KEEP = 99


@dataclass(frozen=True, kw_only=True)
class SBCRun:
    """What one SBC run of a configuration asks for."""

    config: str
    n_reps: int
    settings: FitSettings = FitSettings()
    n_keep: int = N_KEEP

    def directory(self, root: Path = CACHE) -> Path:
        return root / "sbc" / f"{self.config}__{self.settings.key()}k{self.n_keep}"


def simulate(config: Config, n_reps: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """True parameters and responses of ``n_reps`` replications, from the prior predictive.

    Returns
    -------
    truths : dict
        Quantity name (as in :func:`validation.fitting.quantities`) -> array (n_reps,).
    ys : ndarray, shape (n_reps, n_obs)
    """
    model = config.model()
    check_prior_free_of_response(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prior = model.sample_prior(draws=n_reps, random_seed=config.seed)
    factors = list(model.design.factors)
    truths = {name: values.reshape(n_reps) for name, values in
              quantities(prior.prior, factors).items()}
    ys = prior.prior_predictive[model.graph_info.response].values.reshape(n_reps, -1)
    return truths, ys


def check_prior_free_of_response(config: Config) -> None:
    """Raise if the model's resolved priors change when the response changes.

    SBC is valid only for a prior that does not read y (SPEC section 5). The check builds the
    model on the design with two unrelated responses and compares every resolved prior.
    """
    data = config.data()
    other = data.copy()
    y = other[config.response].to_numpy()
    if config.family == "gaussian":
        other[config.response] = 3.0 * y + 5.0  # another mean and sd
    elif config.family == "bernoulli":
        other[config.response] = 1 - y
    elif config.family == "binomial":
        other[config.response] = other["n"] - y  # failures: another mean proportion
    else:
        other[config.response] = 2 * y + 1  # counts with another mean
    a = config.model(data).priors
    b = config.model(other).priors
    fields = ("r2_beta", "concentrations", "intercept", "aux", "group_sd", "map_trials",
              "offset_mean", "gbp_params", "approx")
    changed = [name for name in fields if getattr(a, name) != getattr(b, name)]
    if changed:
        raise RuntimeError(f"configuration {config.name!r}: the resolved priors {changed} "
                           "depend on the response; SBC would not be valid. Fix them with "
                           "priors={...}")


def schedule(per_config: list[list[tuple]]) -> list[tuple]:
    """Order jobs (each a tuple whose first item has a ``config`` name), given per config.

    Round robin over configurations, so that an interrupted run has similar counts
    everywhere; the logit-link models (bernoulli, binomial), whose fits take about 7 times
    as long (the exact R2 map's logistic-mixture quadrature in every gradient), come last.
    """
    def slow(group: list) -> bool:
        return get_config(group[0][0].config).family in ("bernoulli", "binomial")

    jobs = []
    for tier in ([g for g in per_config if g and not slow(g)],
                 [g for g in per_config if g and slow(g)]):
        jobs += [job for group in itertools.zip_longest(*tier) for job in group if job]
    return jobs


_WORKER_MODELS: dict[str, Refitter] = {}


def _refitter(config: Config, settings: FitSettings) -> Refitter:
    key = f"{config.name}:{settings.key()}"
    if key not in _WORKER_MODELS:
        data = config.data()
        _WORKER_MODELS[key] = Refitter(config.model(data), data, config.response, settings)
    return _WORKER_MODELS[key]


def run_replication(run: SBCRun, rep: int, truth: dict[str, float], y: np.ndarray,
                    root: Path = CACHE) -> dict:
    """Fit replication ``rep`` and write its ranks to the cache; returns the record."""
    config = get_config(run.config)
    refitter = _refitter(config, run.settings)
    compile_before = refitter.compile_seconds
    start = time.perf_counter()
    seed = config.seed * 100_003 + rep
    posterior, sample_stats = fit_replication(refitter, y, random_seed=seed)
    fit_seconds = time.perf_counter() - start - (refitter.compile_seconds - compile_before)
    factors = list(refitter.model.design.factors)
    post = quantities(posterior, factors)
    rng = np.random.default_rng(seed)
    ranks, means, sds, ess = {}, {}, {}, {}
    import arviz as az

    for name, true_value in truth.items():
        draws = post[name]
        kept = thin_draws(draws, run.n_keep)
        ranks[name] = sbc_rank(true_value, kept, rng)
        means[name] = float(draws.mean())
        sds[name] = float(draws.std())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ess[name] = float(az.ess(draws, method="bulk"))
    record = {
        "rep": rep, "seed": seed, "truth": truth, "rank": ranks, "mean": means, "sd": sds,
        "ess_bulk": ess, "divergences": int(sample_stats["diverging"].sum()),
        "fit_seconds": fit_seconds, "compile_seconds": refitter.compile_seconds - compile_before,
        "method": refitter.method, "pilot": "per replication", "n_keep": run.n_keep,
    }
    directory = run.directory(root)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".rep_{rep:04d}.json.tmp"
    tmp.write_text(json.dumps(record))
    os.replace(tmp, directory / f"rep_{rep:04d}.json")  # atomic: a killed run leaves no half file
    return record


def _run_chunk(run: SBCRun, reps: list[int], truths: list[dict], ys: list[np.ndarray],
               root: str) -> list[int]:
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    done = []
    for rep, truth, y in zip(reps, truths, ys, strict=True):
        try:
            run_replication(run, rep, truth, y, Path(root))
        except Exception as error:  # noqa: BLE001 - recorded: dropping it silently would bias SBC
            directory = run.directory(Path(root))
            directory.mkdir(parents=True, exist_ok=True)
            (directory / f"fail_{rep:04d}.json").write_text(json.dumps(
                {"rep": rep, "truth": truth, "error": f"{type(error).__name__}: {error}"}))
        done.append(rep)
    return done


def run_sbc(runs: list[SBCRun], *, workers: int = 2, root: Path = CACHE, chunk: int = 10,
            log=print) -> None:
    """Fit every replication of ``runs`` that is not cached yet, in ``workers`` processes.

    Each process compiles a configuration once and keeps it for all its chunks.
    """
    per_config = []
    for run in runs:
        config = get_config(run.config)
        directory = run.directory(root)
        truths, ys = simulate(config, run.n_reps)
        done = set()
        for path in directory.glob("rep_*.json"):
            rep = int(path.stem.split("_")[1])
            if rep >= run.n_reps:
                continue
            cached = json.loads(path.read_text())["truth"]
            # a cached replication counts only if it was fitted to today's simulated data
            if all(np.isclose(cached.get(k, np.nan), v[rep]) for k, v in truths.items()):
                done.add(rep)
        done |= {int(p.stem.split("_")[1]) for p in directory.glob("fail_*.json")}
        todo = [rep for rep in range(run.n_reps) if rep not in done]
        log(f"[sbc] {run.config}: {len(done)} cached, {len(todo)} to fit")
        if not todo:
            continue
        per_config.append([
            (run, reps, [{k: float(v[r]) for k, v in truths.items()} for r in reps],
             [ys[r] for r in reps])
            for reps in (todo[i:i + chunk] for i in range(0, len(todo), chunk))])
    jobs = schedule(per_config)
    if not jobs:
        return
    started = time.perf_counter()
    failures = []

    def report(job, error: BaseException | None) -> None:
        what = f"[sbc] {job[0].config}: reps {job[1][0]}-{job[1][-1]}"
        if error is None:
            log(f"{what} done ({time.perf_counter() - started:.0f} s)")
        else:
            failures.append(f"{what}: {type(error).__name__}: {error}")
            log(f"{what} FAILED: {type(error).__name__}: {error}")

    if workers <= 1:
        for job in jobs:
            try:
                _run_chunk(*job, str(root))
                report(job, None)
            except Exception as error:  # noqa: BLE001 - a failing configuration is a result
                report(job, error)
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_run_chunk, *job, str(root)): job for job in jobs}
            for future in as_completed(futures):
                report(futures[future], future.exception())
    if failures:
        raise RuntimeError("SBC replications failed:\n" + "\n".join(failures))


def load_results(run: SBCRun, root: Path = CACHE) -> list[dict]:
    """The cached records of ``run`` (replications 0..n_reps-1 that exist), in order."""
    directory = run.directory(root)
    records = []
    for rep in range(run.n_reps):
        path = directory / f"rep_{rep:04d}.json"
        if path.exists():
            records.append(json.loads(path.read_text()))
    return records


def load_failures(run: SBCRun, root: Path = CACHE) -> list[dict]:
    """Replications whose fit raised an error (recorded, not dropped)."""
    return [json.loads(p.read_text()) for p in sorted(run.directory(root).glob("fail_*.json"))
            if int(p.stem.split("_")[1]) < run.n_reps]


def default_runs(n_reps: int, names: list[str] | None = None) -> list[SBCRun]:
    """One :class:`SBCRun` per SBC configuration."""
    return [SBCRun(config=name, n_reps=n_reps) for name in (names or list(SBC_CONFIGS))]
