"""Start-up costs before the first gradient: setting data into a graph, and importing.

Each measurement runs in a fresh Python process, alternately, ``--repeats`` times each
(medians reported), on model 1 of the suite (``_suite_models``: 500 rows, 50 predictors):

* **set data**: the graph is built, then its data are set again the way ``Model.build()``
  and ``with_data`` refits do: with ``pm.set_data`` (PyMC; its length check compiles a
  function, and the first compiled function of a process loads PyTensor's whole C module
  cache) against :func:`r2d2formula.backend.graph.set_graph_data` (ours, compiles nothing).
  The time depends on how many modules PyTensor's cache holds; the script prints the count.
* **import**: ``import r2d2formula`` (and its backend) as shipped, which does not import JAX,
  against the same import followed by ``import pytensor.link.jax.dispatch`` (what importing
  JAX eagerly cost every process before).

    python benchmarks/setup_overhead.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

_CHILD = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
what = sys.argv[1]
t0 = time.perf_counter()
import r2d2formula, r2d2formula.backend
if what == "import+jax":
    import pytensor.link.jax.dispatch
t_import = time.perf_counter() - t0
out = {"import_s": t_import}
if what.startswith("set_data"):
    import numpy as np, pymc as pm
    from r2d2formula import Model
    from r2d2formula.backend.graph import OBS_DIM, graph_data, set_graph_data
    sys.path.insert(0, sys.argv[2])
    from _suite_models import MODELS, Sizes, make_data
    frame = make_data("1", Sizes())
    model = Model(MODELS["1"].formula, frame, family=MODELS["1"].family)
    graph = model.build()
    values = {k: v for k, v in graph_data(model.design, model.family, model.priors).items()
              if k in graph.named_vars}
    n = len(frame)
    t1 = time.perf_counter()
    if what == "set_data:pymc":
        pm.set_data(values, model=graph, coords={OBS_DIM: np.arange(n)})
    else:
        set_graph_data(graph, values, n_obs=n)
    out["set_data_s"] = time.perf_counter() - t1
print(json.dumps(out))
"""


def _run(what: str) -> dict:
    here = str(Path(__file__).resolve().parent)  # for the suite's _suite_models
    result = subprocess.run([sys.executable, "-c", _CHILD, what, here], capture_output=True,
                            text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _cache_modules() -> int:
    import pytensor

    return sum(1 for _ in Path(pytensor.config.compiledir).glob("tmp*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    kinds = ["set_data:pymc", "set_data:ours", "import+jax", "import"]
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(args.repeats):
        for kind in kinds:  # alternate, so drifting machine load hits every kind alike
            out = _run(kind)
            times[kind].append(out["set_data_s"] if kind.startswith("set_data") else
                               out["import_s"])
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {args.repeats} fresh processes each, medians; "
          f"PyTensor C module cache: {_cache_modules()} modules")
    print("| step | PyMC way / before | r2d2formula | ratio |")
    print("|---|---|---|---|")
    print(f"| set the data into a built graph | pm.set_data {med['set_data:pymc']:.2f} s | "
          f"set_graph_data {1e3 * med['set_data:ours']:.1f} ms | "
          f"x{med['set_data:pymc'] / max(med['set_data:ours'], 1e-9):,.0f} |")
    print(f"| import r2d2formula | with JAX {med['import+jax']:.2f} s | "
          f"without {med['import']:.2f} s | x{med['import+jax'] / med['import']:.2f} |")


if __name__ == "__main__":
    main()
