"""Reproduce the table "Default sampler and target_accept" of benchmarks/README.md.

Fits the five reference models with nutpie and with PyMC's NUTS (numba backend) side by side,
at the package defaults (4 chains x 1000 draws x 1000 tune, target_accept 0.95, seed 1), and
prints compile and sampling seconds, divergences, the minimum bulk ESS over the reported
parameters, ESS per second of total wall time, and the pymc/nutpie ratios.

    python benchmarks/sampler_defaults.py [--draws 1000] [--tune 1000] [--models radon,cbpp]
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings

import arviz as az
import numpy as np

from r2d2formula import Model, datasets
from r2d2formula.backend import compile_nutpie, sample_model

MODELS = {
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", "sleepstudy", "gaussian"),
    "radon": ("log_radon ~ floor + (1 | county)", "radon", "gaussian"),
    "cbpp": ("incidence | trials(size) ~ period + (1 | herd)", "cbpp", "binomial"),
    "chimpanzees": ("pulled_left ~ treatment + (1|actor) + (1|block)", "chimpanzees",
                    "bernoulli"),
    "diabetes": ("y ~ age + sex + bmi + map + tc + ldl + hdl + tch + ltg + glu", "diabetes",
                 "gaussian"),
}


def load(name: str) -> Model:
    formula, dataset, family = MODELS[name]
    data = datasets.load(dataset)
    if name == "chimpanzees":
        data = data.assign(**{c: data[c].astype(str) for c in ("treatment", "actor", "block")})
    return Model(formula, data, family=family)


def run(name: str, sampler: str, draws: int, tune: int, seed: int = 1) -> dict:
    model = load(name)
    t0 = time.perf_counter()
    graph = model.build()
    compiled = None
    if sampler == "nutpie":
        compiled = compile_nutpie(graph, model.graph_info)
    t1 = time.perf_counter()
    idata, _ = sample_model(graph, sampler=sampler, draws=draws, tune=tune, chains=4,
                            target_accept=0.95, random_seed=seed, progressbar=False,
                            compiled=compiled, info=model.graph_info)
    t2 = time.perf_counter()
    if sampler == "pymc":  # pm.sample compiles inside: split by its own sampling time
        t1 = t2 - float(idata.posterior.attrs["sampling_time"])
    hidden = set(model.graph_info.hidden)
    names = [v for v in idata.posterior.data_vars if v not in hidden and not v.endswith("__")]
    ess = az.ess(idata, var_names=names, method="bulk")
    min_ess = min(float(np.nanmin(ess[v].values)) for v in names)
    return {
        "model": name, "sampler": sampler, "compile_s": t1 - t0, "sampling_s": t2 - t1,
        "divergences": int(idata.sample_stats["diverging"].sum()), "min_ess": min_ess,
        "ess_per_s": min_ess / (t2 - t0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--samplers", default="nutpie,pymc")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("pymc").setLevel(logging.ERROR)
    samplers = args.samplers.split(",")
    print("| model | sampler | compile s | sampling s | divergences | min ESS | ESS/s |")
    print("|---|---|---|---|---|---|---|")
    rows = {}
    for name in args.models.split(","):
        for sampler in samplers:
            r = run(name, sampler, args.draws, args.tune)
            rows[name, sampler] = r
            print(f"| {name} | {sampler} | {r['compile_s']:.1f} | {r['sampling_s']:.1f} | "
                  f"{r['divergences']} | {r['min_ess']:.0f} | {r['ess_per_s']:.1f} |",
                  flush=True)
    if len(samplers) == 2:
        a, b = samplers
        print(f"\nratios {b}/{a}: ESS/s, total wall s")
        for name in args.models.split(","):
            ra, rb = rows[name, a], rows[name, b]
            wall = (rb["compile_s"] + rb["sampling_s"]) / (ra["compile_s"] + ra["sampling_s"])
            print(f"  {name}: ESS/s x{rb['ess_per_s'] / ra['ess_per_s']:.2f}, wall x{wall:.2f}")


if __name__ == "__main__":
    main()
