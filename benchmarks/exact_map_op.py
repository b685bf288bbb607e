"""The exact R2 -> W map as one Op against the same map written as graph operations.

``python benchmarks/exact_map_op.py [--repeats 2] [--models chimpanzees,cbpp]``

For each model, fresh processes alternate between the two implementations of
``w_of_r2(method="exact")`` in the PyMC graph:

* ``op``: :mod:`r2d2formula.backend.r2_map_op` (the library's default): one numba-compiled
  Op and its implicit-gradient Op;
* ``graph``: the vectorised grid, three Newton steps and one implicit Newton step of
  :mod:`r2d2formula.priors.r2_maps` written as PyTensor operations (the library before the
  Op; selected here by removing the Op from the PyTensor namespace).

Each process builds the model, compiles its log-density and gradient with PyTensor's numba
backend (the backend of PyMC's NUTS in this library), calls it once (numba compiles on the
first call), then times 2,000 calls at the model's initial point. Reported: compile seconds
(build excluded), nodes in the compiled graph, microseconds per call, and the ratios graph /
op; the log-density values must agree. The first repeat may pay for cold compile caches (the
numba and PyTensor caches are shared by both implementations' unchanged parts).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

MODELS = {
    "chimpanzees": ("pulled_left ~ treatment + (1|actor) + (1|block)", "chimpanzees",
                    "bernoulli"),
    "cbpp": ("incidence | trials(size) ~ period + (1|herd)", "cbpp", "binomial"),
}

_CHILD = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
from r2d2formula.backend.xp import PYTENSOR
if sys.argv[1] == "graph":
    del PYTENSOR.log_w_of_r2
from pymc.blocking import DictToArrayBijection
from r2d2formula import Model, datasets
formula, data, family = json.loads(sys.argv[2])
model = Model(formula, datasets.load(data), family=family).build()
point = DictToArrayBijection.map(model.initial_point()).data
start = time.perf_counter()
fn = model.logp_dlogp_function(ravel_inputs=True, mode="NUMBA")
fn.set_extra_values({})
logp = float(fn(point)[0])
compile_s = time.perf_counter() - start
calls = 2000
start = time.perf_counter()
for _ in range(calls):
    fn(point)
call_us = (time.perf_counter() - start) / calls * 1e6
print(json.dumps({"compile_s": compile_s, "nodes": len(fn._pytensor_function.maker.fgraph.apply_nodes),
                  "call_us": call_us, "logp": logp}))
"""


def run(kind: str, model: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, kind, json.dumps(MODELS[model])],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--out", default=str(Path(__file__).with_name("exact_map_op.md")))
    args = parser.parse_args()
    rows = []
    for model in args.models.split(","):
        for repeat in range(1, args.repeats + 1):
            result = {kind: run(kind, model) for kind in ("graph", "op")}
            g, o = result["graph"], result["op"]
            if abs(g["logp"] - o["logp"]) > 1e-8 * max(1.0, abs(g["logp"])):
                raise SystemExit(f"{model}: log-densities differ: {g['logp']} vs {o['logp']}")
            rows.append(f"| {model} | {repeat} | {g['compile_s']:.1f} | {o['compile_s']:.1f} | "
                        f"x{g['compile_s'] / o['compile_s']:.1f} | {g['nodes']} | {o['nodes']} | "
                        f"{g['call_us']:.0f} | {o['call_us']:.0f} | "
                        f"x{g['call_us'] / o['call_us']:.1f} |")
            print(rows[-1], flush=True)
    header = ("| model | repeat | compile s, graph | compile s, Op | graph / Op | nodes, graph | "
              "nodes, Op | us per call, graph | us per call, Op | graph / Op |\n"
              "|---|---|---|---|---|---|---|---|---|---|")
    text = (f"# Exact R2 -> W map: one Op against graph operations\n\n"
            f"`python benchmarks/exact_map_op.py --repeats {args.repeats}`, "
            f"{time.strftime('%Y-%m-%d')}. Log-density and gradient at the initial point, "
            f"PyTensor's numba backend; compile includes numba's compilation on the first "
            f"call. Both implementations give the same log-density.\n\n{header}\n"
            + "\n".join(rows) + "\n")
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
