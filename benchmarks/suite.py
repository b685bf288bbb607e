"""Issue 5's benchmark suite: r2d2formula against Bambi and brms, side by side in one run.

    python benchmarks/suite.py [--models 1,2,3,4,5] [--contenders r2d2formula,bambi,brms]
                               [--quick] [--no-compile-cache]

Models (``benchmarks/_suite_models.py``): 1 gaussian R2D2 (n 500, p 50), 2 poisson R2D2M2
(n 2000, 30 x 12 crossed), 3 bernoulli chimpanzees, 4 sleepstudy with a correlated slope,
5 poisson at scale (n 1e6, factors of 10,000 / 1,000 / 50 levels). Contenders: r2d2formula
with each sampler (``r2d2formula-pymc``, ``-nutpie``, ``-numpyro``, ``-blackjax``), Bambi 0.17
(``bambi-pymc``, ``bambi-nutpie``: default priors, same likelihood and formula) from its own
virtual environment, and ``brms`` (its R2D2 prior on model 1, default priors elsewhere) through
Rscript. ``r2d2formula`` and ``bambi`` name all of a tool's samplers.

Every contender-model pair runs alone, in a fresh process (``_suite_child.py``, or a generated
R script), one after another; the parent measures wall time and peak RSS
(``_suite_run.py``). Recorded: set-up (formula given -> first sampling iteration), sampling,
total wall (process launch -> the fitted object, imports included), divergences, minimum bulk
ESS over all reported parameters (arviz, for brms on the draws it writes out), ESS per second
of total wall time, peak RSS. Model 5 measures the design build (time, peak RSS) on its own,
then a fit of 4 chains x 500 draws (500 tuning) under a 15-minute limit; Bambi runs it under an
8 GB address-space limit, and how it fails is recorded. A last section times a fresh process
from ``Model(...)`` to the first sampling iteration twice in a row on empty PyTensor and numba
caches (cold, then warm).

Writes ``benchmarks/results/<date>.json`` and ``benchmarks/suite.md`` (with ``--quick``:
``benchmarks/results/<date>-quick.json`` and ``benchmarks/results/suite-quick.md``).
``--quick`` is a smoke run: 1 chain x 50 draws (50 tuning), model 5 at 20,000 rows with
1,000 / 100 / 50 levels and a 300 s limit per run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _suite_brms import draws_ess, r_script  # noqa: E402
from _suite_models import MODELS, BenchModel, Sizes, make_data  # noqa: E402
from _suite_report import write_markdown  # noqa: E402
from _suite_run import run_child  # noqa: E402

CONTENDERS = {
    "r2d2formula-pymc": ("r2d2formula", "pymc"),
    "r2d2formula-nutpie": ("r2d2formula", "nutpie"),
    "r2d2formula-numpyro": ("r2d2formula", "numpyro"),
    "r2d2formula-blackjax": ("r2d2formula", "blackjax"),
    "bambi-pymc": ("bambi", "pymc"),
    "bambi-nutpie": ("bambi", "nutpie"),
    "brms": ("brms", "nuts"),
}
GROUPS = {"r2d2formula": [c for c in CONTENDERS if c.startswith("r2d2formula")],
          "bambi": ["bambi-pymc", "bambi-nutpie"]}
DEFAULT_BAMBI_PYTHON = "/work/venvs/bambi/bin/python"
CORES = 2  # the machine the issue measures on; every tool gets the same
SEED = 1


def _contenders(text: str) -> list[str]:
    names: list[str] = []
    for item in text.split(","):
        item = item.strip()
        for name in GROUPS.get(item, [item]):
            if name not in CONTENDERS:
                raise SystemExit(f"unknown contender {name!r}; choose from "
                                 f"{', '.join([*CONTENDERS, *GROUPS])}")
            if name not in names:
                names.append(name)
    return names


@functools.cache
def _has_brms(rscript: str) -> bool:
    return subprocess.run([rscript, "-e", "library(brms)"], capture_output=True).returncode == 0


def _available(contender: str, args: argparse.Namespace) -> str | None:
    """None when the contender can run here, else why not (and how to fix it)."""
    tool, sampler = CONTENDERS[contender]
    if tool == "bambi" and not Path(args.bambi_python).exists():
        return f"no Bambi environment at {args.bambi_python}: run benchmarks/setup.sh"
    if tool == "brms":
        if shutil.which(args.rscript) is None:
            return "Rscript not found: run benchmarks/setup.sh"
        if not _has_brms(args.rscript):
            return "R package brms not installed: run benchmarks/setup.sh"
    if tool == "r2d2formula" and sampler in ("numpyro", "blackjax"):
        import importlib.util

        missing = [p for p in ("jax", sampler) if importlib.util.find_spec(p) is None]
        if missing:
            return f"{', '.join(missing)} not installed: pip install 'r2d2formula[jax]'"
    return None


class Suite:
    def __init__(self, args: argparse.Namespace, sizes: Sizes, workdir: Path) -> None:
        self.args = args
        self.sizes = sizes
        self.workdir = workdir
        self.data_files: dict[str, dict[str, Path]] = {}
        self.records: list[dict] = []
        self.on_record = None

    # ---- data ----------------------------------------------------------------------
    def data(self, model: BenchModel, *, csv: bool) -> dict[str, Path]:
        files = self.data_files.setdefault(model.key, {})
        if "parquet" not in files:
            frame = make_data(model.key, self.sizes)
            files["parquet"] = self.workdir / f"model{model.key}.parquet"
            frame.to_parquet(files["parquet"])
            files["rows"] = len(frame)
        if csv and "csv" not in files:
            import pandas as pd

            frame = pd.read_parquet(files["parquet"])
            files["csv"] = self.workdir / f"model{model.key}.csv"
            frame.to_csv(files["csv"], index=False)
        return files

    # ---- one run -------------------------------------------------------------------
    def run(self, model: BenchModel, contender: str, *, mode: str, draws: int, tune: int,
            chains: int, timeout_s: float, section: str, env_extra: dict | None = None,
            memory_limit_gb: float | None = None, log_likelihood: bool = True,
            tag: str = "", target_accept: float | None = None) -> dict:
        tool, sampler = CONTENDERS[contender]
        name = f"m{model.key}-{contender}-{mode}{tag}"
        result_path = self.workdir / f"{name}.jsonl"
        log_path = self.workdir / f"{name}.log"
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        if tool == "r2d2formula" and sampler in ("numpyro", "blackjax"):
            # one XLA device per chain, so the chains run in parallel (sampling.py's Notes)
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                                f" --xla_force_host_platform_device_count={chains}").strip()
        env.update(env_extra or {})
        print(f"[{dt.datetime.now():%H:%M:%S}] model {model.key} {contender} {mode}{tag} ...",
              flush=True)
        if tool == "brms":
            files = self.data(model, csv=True)
            draws_csv = self.workdir / f"{name}-draws.csv"
            script = self.workdir / f"{name}.R"
            script.write_text(r_script(
                formula=model.formula, family=model.family, factors=model.factors,
                prior=model.brms_prior, data_csv=files["csv"], result_path=result_path,
                draws_csv=draws_csv, mode=mode, draws=draws, tune=tune, chains=chains,
                cores=CORES, seed=SEED), encoding="utf-8")
            cmd = [self.args.rscript, "--vanilla", str(script)]
        else:
            files = self.data(model, csv=False)
            job = {
                "tool": tool, "sampler": sampler, "mode": mode, "data": str(files["parquet"]),
                "formula": model.formula, "family": model.family,
                "factors": list(model.factors), "draws": draws, "tune": tune,
                "chains": chains, "cores": CORES, "seed": SEED,
                "log_likelihood": log_likelihood, "result_path": str(result_path),
                "target_accept": target_accept,
            }
            job_path = self.workdir / f"{name}.job.json"
            job_path.write_text(json.dumps(job), encoding="utf-8")
            python = self.args.bambi_python if tool == "bambi" else sys.executable
            cmd = [python, str(HERE / "_suite_child.py"), str(job_path)]
        measured = run_child(cmd, result_path=result_path, log_path=log_path,
                             timeout_s=timeout_s, env=env, memory_limit_gb=memory_limit_gb)
        record = self._record(model, contender, mode, section, measured, draws=draws,
                              tune=tune, chains=chains, memory_limit_gb=memory_limit_gb,
                              target_accept=target_accept)
        if tool == "brms" and record["status"] == "ok" and mode == "fit":
            record.update(draws_ess(draws_csv))
            record["ess_per_s"] = _ratio(record["min_ess"], record["total_s"])
            if not self.args.keep_work:
                draws_csv.unlink(missing_ok=True)
        record["log"] = str(log_path)
        self._append(record)
        print("    " + _one_line(record), flush=True)
        return record

    def _append(self, record: dict) -> None:
        self.records.append(record)
        if self.on_record is not None:  # write the results so far: a long run may be cut
            self.on_record(self.records)

    def _record(self, model, contender, mode, section, measured, **settings) -> dict:
        tool, sampler = CONTENDERS[contender]
        ev = measured["events"]
        res = measured["result"] or {}
        first = ev.get("first_iteration", ev.get("compiled"))
        record = {
            "section": section, "model": model.key, "model_name": model.name,
            "contender": contender, "tool": tool, "sampler": sampler, "mode": mode,
            "status": measured["status"], **settings,
            "n_rows": self.data_files[model.key]["rows"],
            "total_s": ev.get("done", measured["wall_s"]) if mode == "fit" else
            measured["wall_s"],
            "wall_s": measured["wall_s"],
            "imports_s": _diff(ev, "started", "imports"),
            "design_s": _diff(ev, "model_start", "design"),
            "graph_s": _diff(ev, "design", "graph"),
            "setup_s": None if first is None or "model_start" not in ev else
            first - ev["model_start"],
            "setup_cpu_s": _diff(measured["cpu"], "model_start", "first_iteration"),
            "launch_to_first_s": first,
            "sampling_s": res.get("sampling_s", _diff(ev, "compiled", "sampled")),
            "peak_rss_mb": measured["peak_rss_mb"],
            "peak_tree_rss_mb": measured["peak_tree_rss_mb"],
            "events": ev,
            "returncode": measured["returncode"],
        }
        for key in ("divergences", "min_ess", "min_ess_param", "n_params", "draws_out",
                    "chains_out", "versions", "chain_seconds_max", "error", "stage"):
            if key in res:
                record[key] = res[key]
        if measured["status"] != "ok":
            # the last event reached: a run cut by a limit died in the step after it
            record.setdefault("stage", max(ev, key=ev.get) if ev else "before start")
            if measured["status"] == "timeout":
                record.setdefault("error", f"stopped at the time limit ({measured['wall_s']:.0f} s)")
            elif "error" not in record:
                record["error"] = _last_error_line(measured["log_tail"])
        if record["status"] == "ok" and mode == "fit" and record.get("min_ess") is not None:
            record["ess_per_s"] = _ratio(record["min_ess"], record["total_s"])
        return record

    # ---- sections ------------------------------------------------------------------
    def fit_models(self, keys: list[str], contenders: list[str]) -> None:
        """Models 1-4 (model 5 has its own plan: :meth:`model_5`), in the order given."""
        s = self.sizes
        for key in keys:
            if MODELS[key].scale:
                self.model_5(contenders)
                continue
            model = MODELS[key]
            for contender in contenders:
                why = _available(contender, self.args)
                if why:
                    self._unavailable(model, contender, "fit", "models", why)
                    continue
                self.run(model, contender, mode="fit", draws=s.draws, tune=s.tune,
                         chains=s.chains, timeout_s=self.args.timeout, section="models")

    def model_5(self, contenders: list[str]) -> None:
        s = self.sizes
        model = MODELS["5"]
        limit = self.args.m5_timeout
        design_ok: dict[str, bool] = {}
        for contender in contenders:
            tool, _ = CONTENDERS[contender]
            why = _available(contender, self.args)
            if why:
                self._unavailable(model, contender, "fit", "scale", why)
                continue
            mem = self.args.bambi_memory_gb if tool == "bambi" else None
            if tool not in design_ok:  # one design measurement per tool
                rec = self.run(model, contender, mode="design", draws=s.m5_draws,
                               tune=s.m5_tune, chains=s.chains, timeout_s=limit,
                               section="scale-design", memory_limit_gb=mem)
                design_ok[tool] = rec["status"] == "ok"
            if self.args.m5_design_only:
                continue
            if not design_ok[tool]:
                self._unavailable(model, contender, "fit", "scale",
                                  "skipped: the design build failed (see scale-design)")
                continue
            # the pointwise log-likelihood would be rows x draws x chains doubles (16 GB)
            self.run(model, contender, mode="fit", draws=s.m5_draws, tune=s.m5_tune,
                     chains=s.chains, timeout_s=limit, section="scale", memory_limit_gb=mem,
                     log_likelihood=False, target_accept=self.args.m5_target_accept)

    def compile_cache(self, keys: list[str], samplers: list[str]) -> None:
        """Cold, then warm: two fresh processes on the same, initially empty, caches."""
        for key in keys:
            model = MODELS[key]
            for sampler in samplers:
                contender = f"r2d2formula-{sampler}"
                cache = Path(tempfile.mkdtemp(prefix=f"cache-m{key}-{sampler}-",
                                              dir=self.workdir))
                env = {
                    "PYTENSOR_FLAGS": ",".join(filter(None, [
                        os.environ.get("PYTENSOR_FLAGS", ""),
                        f"base_compiledir={cache / 'pytensor'}"])),
                    "NUMBA_CACHE_DIR": str(cache / "numba"),
                }
                for run in ("cold", "warm"):
                    self.run(model, contender, mode="fit", draws=20, tune=20, chains=1,
                             timeout_s=self.args.timeout, section=f"compile-cache-{run}",
                             env_extra=env, tag=f"-{run}")
                self.records[-1]["cache_bytes"] = _du(cache)
                if not self.args.keep_work:
                    shutil.rmtree(cache, ignore_errors=True)

    def _unavailable(self, model, contender, mode, section, why) -> None:
        tool, sampler = CONTENDERS[contender]
        record = {"section": section, "model": model.key, "model_name": model.name,
                  "contender": contender, "tool": tool, "sampler": sampler, "mode": mode,
                  "status": "unavailable", "error": why}
        self._append(record)
        print(f"    model {model.key} {contender}: {why}", flush=True)


def _diff(events: dict, a: str, b: str) -> float | None:
    return events[b] - events[a] if a in events and b in events else None


def _ratio(a, b):
    return None if a is None or not b else a / b


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _last_error_line(tail: str) -> str:
    lines = [ln for ln in tail.splitlines() if ln.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line or "Killed" in line:
            return line.strip()[:500]
    return lines[-1].strip()[:500] if lines else ""


def _one_line(r: dict) -> str:
    parts = [r["status"]]
    for key, fmt in (("setup_s", "setup {:.1f}s"), ("sampling_s", "sampling {:.1f}s"),
                     ("total_s", "total {:.1f}s"), ("divergences", "div {}"),
                     ("min_ess", "min ESS {:.0f}"), ("ess_per_s", "ESS/s {:.2f}"),
                     ("peak_rss_mb", "RSS {:.0f} MB")):
        if r.get(key) is not None:
            parts.append(fmt.format(r[key]))
    if r["status"] != "ok" and r.get("error"):
        parts.append(f"[{r.get('stage')}] {r['error'][:200]}")
    return ", ".join(parts)


def _machine() -> dict:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "memory_gb": round(memory / 1e9, 1),
            "load_average_at_start": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="1,2,3,4,5", help="run in this order")
    parser.add_argument("--contenders", default="r2d2formula,bambi,brms")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 chain x 50 draws, model 5 at 20,000 rows")
    parser.add_argument("--no-compile-cache", action="store_true",
                        help="skip the cold/warm start-up measurement")
    parser.add_argument("--cache-models", default=None,
                        help="models of the cold/warm measurement (default 4,3; quick: 4)")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds per run of models 1-4 (default 3600)")
    parser.add_argument("--m5-timeout", type=float, default=None,
                        help="seconds per model-5 run (default 900: 15 minutes; quick: 300)")
    parser.add_argument("--m5-rows", type=int, default=None)
    parser.add_argument("--m5-target-accept", type=float, default=None,
                        help="model 5's NUTS target acceptance (default: each tool's own)")
    parser.add_argument("--m5-design-only", action="store_true",
                        help="model 5: measure each tool's design build, fit nothing")
    parser.add_argument("--bambi-memory-gb", type=float, default=8.0,
                        help="address-space limit of Bambi's model-5 processes")
    parser.add_argument("--bambi-python", default=DEFAULT_BAMBI_PYTHON)
    parser.add_argument("--rscript", default="Rscript")
    parser.add_argument("--workdir", default=None,
                        help="data, job files and logs (default: a new temporary folder)")
    parser.add_argument("--keep-work", action="store_true",
                        help="keep brms's draws CSVs and the cache folders")
    parser.add_argument("--out-json", default=None)
    parser.add_argument("--out-md", default=None)
    args = parser.parse_args(argv)

    if args.m5_timeout is None:
        args.m5_timeout = 300.0 if args.quick else 900.0
    if args.quick:
        sizes = Sizes(draws=50, tune=50, chains=1, m5_draws=50, m5_tune=50,
                      m5_rows=args.m5_rows or 20_000, m5_levels=(1_000, 100, 50))
    else:
        sizes = Sizes(m5_rows=args.m5_rows or 1_000_000)
    keys = [k.strip() for k in args.models.split(",") if k.strip()]
    for key in keys:
        if key not in MODELS:
            raise SystemExit(f"unknown model {key!r}; choose from {', '.join(MODELS)}")
    contenders = _contenders(args.contenders)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="r2d2formula-suite-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"work folder: {workdir}", flush=True)
    started = dt.datetime.now()
    machine = _machine()
    stamp = started.strftime("%Y-%m-%d")
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    out_json = Path(args.out_json or results / (f"{stamp}-quick.json" if args.quick
                                                else f"{stamp}.json"))
    out_md = Path(args.out_md or (results / "suite-quick.md" if args.quick
                                  else HERE / "suite.md"))

    def save(records: list[dict]) -> None:
        payload = {
            "started": started.isoformat(timespec="seconds"),
            "finished": dt.datetime.now().isoformat(timespec="seconds"),
            "quick": args.quick,
            "sizes": sizes.__dict__ | {"m5_levels": list(sizes.m5_levels)},
            "cores": CORES, "seed": SEED, "machine": machine,
            "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
            "models": {k: {"name": m.name, "formula": m.formula, "family": m.family,
                           "description": m.description, "notes": m.notes}
                       for k, m in MODELS.items() if k in keys},
            "records": records,
        }
        out_json.write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
        write_markdown(payload, out_md)

    suite = Suite(args, sizes, workdir)
    suite.on_record = save
    suite.fit_models(keys, contenders)
    if not args.no_compile_cache:
        cache_keys = (args.cache_models or ("4" if args.quick else "4,3")).split(",")
        suite.compile_cache([k.strip() for k in cache_keys], ["pymc", "nutpie"])
    save(suite.records)
    print(f"wrote {out_json} and {out_md}", flush=True)
    if not args.keep_work:  # the data files are large; logs and job files stay
        for path in [*workdir.glob("model*.parquet"), *workdir.glob("model*.csv")]:
            path.unlink(missing_ok=True)
    print(f"logs in {workdir}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
