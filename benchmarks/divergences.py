"""Divergences at default settings: a fixed panel of models, both samplers, several seeds.

Each fit uses the package defaults (4 chains x 1000 draws, the default tuning length and
target_accept of ``Model.fit``) unless a variant asks otherwise. Recorded per fit:
divergences, the minimum bulk ESS over every reported parameter (hidden raw variables
excluded) and which parameter has it, sampling seconds (the sampler's own time), set-up
seconds (graph build and compilation; for pymc also its post-sampling conversion), ESS per
sampling second and per second of total wall time, leapfrog steps per draw, and ESS per
1000 gradient evaluations (after tuning; the one efficiency figure that does not depend on
the machine's load).

The panel (issue 5's models 1-4 plus the models where divergences had been seen):

=============  ==============================================================================
model1         issue 5's model 1: gaussian R2D2, n = 500, p = 50, 5 non-zero coefficients
               (data of ``benchmarks/_suite_models.py``, seed 101)
model2         issue 5's model 2: poisson R2D2M2, n = 2000, 3 predictors, crossed factors
               with 30 and 12 levels (``_suite_models.py``, seed 102)
chimpanzees    ``pulled_left ~ treatment + (1|actor) + (1|block)``, bernoulli (categorical
               treatment)
sleepstudy     ``Reaction ~ Days + (Days | Subject)``
radon          ``log_radon ~ floor + (1 | county)``
cbpp           ``cbind(incidence, size - incidence) ~ period + (1 | herd)``, binomial
poisson_glmm   issue 3's simulated poisson GLMM (``benchmarks/exact_vs_linear.py``, seed 5,
               a null coefficient x3), approx="exact"
diabetes64     ``datasets.load("diabetes64")``, gaussian R2D2 on all 64 predictors
=============  ==============================================================================

CPU time on the development machine is shared with other jobs: timings are indicative;
compare variants within one run.

    python benchmarks/divergences.py                      # whole panel, pymc and nutpie
    python benchmarks/divergences.py --models cbpp,radon --samplers pymc --seeds 1,2,3
    python benchmarks/divergences.py --target-accept 0.99 --label "ta 0.99"
    python benchmarks/divergences.py --report-only        # rewrite the table from records

Records go to ``benchmarks/divergences.jsonl`` (one JSON line per fit, appended); the markdown
table ``benchmarks/divergences.md`` is rewritten from all records each time.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd

from r2d2formula import Model, datasets
from r2d2formula.backend import compile_nutpie, sample_model

HERE = Path(__file__).resolve().parent


def poisson_glmm_data(seed: int = 5) -> pd.DataFrame:
    """Issue 3's simulated poisson GLMM (as in ``benchmarks/exact_vs_linear.py``)."""
    rng = np.random.default_rng(seed)
    n = 2000
    g, h = rng.integers(30, size=n), rng.integers(12, size=n)
    x = rng.normal(size=(n, 3))
    eta = 0.5 + x @ np.array([0.3, -0.2, 0.0]) + rng.normal(0, 0.4, 30)[g] + \
        rng.normal(0, 0.2, 12)[h]
    frame = pd.DataFrame(x, columns=["x1", "x2", "x3"])
    frame["count"] = rng.poisson(np.exp(eta))
    frame["g"] = [f"g{i}" for i in g]
    frame["h"] = [f"h{i}" for i in h]
    return frame


def _chimpanzees() -> pd.DataFrame:
    data = datasets.load("chimpanzees")
    return data.assign(**{c: data[c].astype(str) for c in ("treatment", "actor", "block")})


def _diabetes64() -> tuple[str, pd.DataFrame]:
    data = datasets.load("diabetes64")
    predictors = [c for c in data.columns if c != "y"]
    return "y ~ " + " + ".join(predictors), data


def _suite_model(key: str) -> Model:
    """Model ``key`` of issue 5's suite, on the suite's data (``_suite_models.py``)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    from _suite_models import MODELS, Sizes, make_data

    spec = MODELS[key]
    return Model(spec.formula, make_data(key, Sizes()), family=spec.family)


PANEL: dict[str, Callable[[], Model]] = {
    "model1": lambda: _suite_model("1"),
    "model2": lambda: _suite_model("2"),
    "chimpanzees": lambda: Model("pulled_left ~ treatment + (1|actor) + (1|block)",
                                 _chimpanzees(), family="bernoulli"),
    "sleepstudy": lambda: Model("Reaction ~ Days + (Days | Subject)",
                                datasets.load("sleepstudy")),
    "radon": lambda: Model("log_radon ~ floor + (1 | county)", datasets.load("radon")),
    "cbpp": lambda: Model("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                          datasets.load("cbpp"), family="binomial"),
    "poisson_glmm": lambda: Model("count ~ x1 + x2 + x3 + (1 | g) + (1 | h)",
                                  poisson_glmm_data(), family="poisson"),
    "diabetes64": lambda: Model(*_diabetes64()),
}


def _defaults() -> dict:
    """The defaults of ``Model.fit`` (so that the table follows them when they change)."""
    import inspect

    params = inspect.signature(Model.fit).parameters
    return {name: params[name].default for name in ("draws", "tune", "chains", "target_accept")}


def run_one(name: str, sampler: str, seeds: list[int], *, draws: int | None = None,
            tune: int | None = None, target_accept: float | None = None,
            sampler_kwargs: dict | None = None, label: str = "default") -> list[dict]:
    """Fit one panel model with one sampler for each seed (compiled once)."""
    settings = _defaults()
    settings.update({k: v for k, v in (("draws", draws), ("tune", tune),
                                       ("target_accept", target_accept)) if v is not None})
    t0 = time.perf_counter()
    model = PANEL[name]()
    graph = model.build()
    compiled = None
    if sampler == "nutpie":
        compiled = compile_nutpie(graph, model.graph_info)
    setup = time.perf_counter() - t0
    hidden = set(model.graph_info.hidden)
    records = []
    for seed in seeds:
        t1 = time.perf_counter()
        extra = {"sampler_kwargs": sampler_kwargs} if sampler_kwargs else {}
        idata, _ = sample_model(graph, sampler=sampler, draws=settings["draws"],
                                tune=settings["tune"], chains=settings["chains"],
                                target_accept=settings["target_accept"], random_seed=seed,
                                progressbar=False, compiled=compiled,
                                info=model.graph_info, **extra)
        wall = time.perf_counter() - t1
        sampling = float(idata.posterior.attrs.get("sampling_time", wall))
        if sampler == "pymc":  # pm.sample compiles inside its call
            setup_seed = setup + wall - sampling
        else:
            setup_seed = setup if seed == seeds[0] else 0.0
        names = [v for v in idata.posterior.data_vars if v not in hidden]
        ess = az.ess(idata, var_names=names, method="bulk")
        per_var = {v: float(np.nanmin(ess[v].values)) for v in names}
        worst = min(per_var, key=per_var.get)
        stats = idata.sample_stats
        steps = stats["n_steps"] if "n_steps" in stats else stats["tree_size"]
        record = {
            "model": name, "sampler": sampler, "label": label, "seed": seed,
            "draws": settings["draws"], "tune": settings["tune"],
            "target_accept": settings["target_accept"], "chains": settings["chains"],
            "divergences": int(stats["diverging"].sum()), "min_ess": per_var[worst],
            "min_ess_param": worst, "sampling_s": sampling, "setup_s": setup_seed,
            "ess_per_s": per_var[worst] / sampling,
            "ess_per_wall_s": per_var[worst] / (sampling + setup_seed),
            "steps_per_draw": float(steps.mean()),
            # load-independent efficiency: ESS per 1000 gradient evaluations (after tuning)
            "ess_per_1k_grads": 1000.0 * per_var[worst] / float(steps.sum()),
        }
        records.append(record)
        print(json.dumps(record), flush=True)
    return records


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def report(records: list[dict]) -> str:
    """Markdown: one row per (model, sampler, variant) over its seeds, then every fit."""
    frame = pd.DataFrame(records)
    order = {name: i for i, name in enumerate(PANEL)}
    frame["_order"] = frame["model"].map(order)
    rows = []
    for (_, model, label, sampler), group in frame.groupby(
            ["_order", "model", "label", "sampler"], sort=True):
        rows.append({
            "model": model, "variant": label, "sampler": sampler,
            "seeds": ",".join(str(s) for s in group["seed"]),
            "divergences (per seed)": "/".join(str(d) for d in group["divergences"]),
            "min ESS (median)": f"{group['min_ess'].median():.0f}",
            "lowest": group.loc[group["min_ess"].idxmin(), "min_ess_param"],
            "sampling s (median)": f"{group['sampling_s'].median():.1f}",
            "ESS/s sampling": f"{group['ess_per_s'].median():.1f}",
            "ESS/s wall": f"{group['ess_per_wall_s'].median():.1f}",
            "steps/draw": f"{group['steps_per_draw'].median():.0f}",
            "ESS/1k grads": f"{group['ess_per_1k_grads'].median():.1f}",
        })
    detail = frame.drop(columns="_order").assign(
        min_ess=lambda f: f["min_ess"].round(0), sampling_s=lambda f: f["sampling_s"].round(1),
        setup_s=lambda f: f["setup_s"].round(1), ess_per_s=lambda f: f["ess_per_s"].round(2),
        ess_per_wall_s=lambda f: f["ess_per_wall_s"].round(2),
        steps_per_draw=lambda f: f["steps_per_draw"].round(1),
        ess_per_1k_grads=lambda f: f["ess_per_1k_grads"].round(2))
    return (
        "# Divergences at default settings\n\n"
        "Generated by `python benchmarks/divergences.py` from `benchmarks/divergences.jsonl`. "
        "Settings per fit in the detail table (library defaults unless the variant says "
        "otherwise). Timings on a shared 2-core machine: indicative only.\n\n"
        + _markdown(pd.DataFrame(rows)) + "\n\n## Every fit\n\n" + _markdown(detail) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(PANEL))
    parser.add_argument("--samplers", default="pymc,nutpie")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--draws", type=int)
    parser.add_argument("--tune", type=int)
    parser.add_argument("--target-accept", type=float)
    parser.add_argument("--low-rank", action="store_true",
                        help="nutpie's low-rank modified mass matrix adaptation")
    parser.add_argument("--label", default="default", help="name of this variant in the table")
    parser.add_argument("--records", type=Path, default=HERE / "divergences.jsonl")
    parser.add_argument("--output", type=Path, default=HERE / "divergences.md")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("pymc").setLevel(logging.ERROR)
    if not args.report_only:
        seeds = [int(s) for s in args.seeds.split(",")]
        kwargs = {"low_rank_modified_mass_matrix": True} if args.low_rank else None
        for name in args.models.split(","):
            for sampler in args.samplers.split(","):
                try:
                    records = run_one(name, sampler, seeds, draws=args.draws, tune=args.tune,
                                      target_accept=args.target_accept, sampler_kwargs=kwargs,
                                      label=args.label)
                except Exception as err:  # one failing fit must not lose the others
                    print(f"{name} / {sampler}: failed: {err!r}", flush=True)
                    continue
                with args.records.open("a") as handle:
                    for record in records:
                        handle.write(json.dumps(record) + "\n")
    lines = args.records.read_text().splitlines() if args.records.exists() else []
    records = [json.loads(line) for line in lines if line.strip()]
    if records:
        args.output.write_text(report(records))
        print(args.output.read_text())


if __name__ == "__main__":
    main()
