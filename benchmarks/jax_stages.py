"""Where a JAX fit's time goes: PyMC's JAX sampling call, stage by stage, on a suite model.

Times each stage of a JAX fit (``r2d2formula.backend.sampling._sample_jax``, the steps of
``pymc.sampling.jax.sample_jax_nuts``; wrapping the functions of PyMC's module and
``pymc.Model.logp``): the model's log-density terms, their conversion to JAX, the check of
the chains' starts, the sampler call (XLA compilation and sampling) and the post-processing
of the draws (deterministics and pointwise log-likelihood), then the minimum bulk ESS and
the divergences. On a version that ran PyMC's ``sample_jax_nuts`` itself (before
2026-12-06), the log-likelihood shows as a stage of its own. Run it twice to see JAX's persistent compilation
cache at work (the second process loads the compiled programs, see
``r2d2formula.backend.sampling.use_jax_compilation_cache``)::

    python benchmarks/jax_stages.py --model 1 --sampler numpyro [--seed 1]

Chains run in parallel on 4 XLA CPU devices, as in ``suite.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

STAGES = ("get_jaxified_graph", "_get_batched_jittered_initial_points", "_sample_numpyro_nuts",
          "_sample_blackjax_nuts", "_get_log_likelihood", "_postprocess_samples")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="1", choices=["1", "2", "3", "4"])
    parser.add_argument("--sampler", default="numpyro", choices=["numpyro", "blackjax"])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_force_host_platform_device_count=4").strip()
    started = time.perf_counter()
    warnings.filterwarnings("ignore")
    import arviz as az
    import jax
    import pymc as pm
    import pymc.sampling.jax as pymc_jax

    from r2d2formula import Model
    from r2d2formula.backend import sample_model

    sys.path.insert(0, str(Path(__file__).parent))
    from _suite_models import MODELS, Sizes, make_data

    imports_s = time.perf_counter() - started
    stages: list[tuple[str, float]] = []

    def timed(name: str):
        original = getattr(pymc_jax, name)

        def wrapper(*a, **k):
            t = time.perf_counter()
            out = original(*a, **k)
            jax.block_until_ready(out[0] if isinstance(out, tuple) else out)
            stages.append((name, time.perf_counter() - t))
            return out

        return wrapper

    for name in STAGES:
        setattr(pymc_jax, name, timed(name))
    logp = pm.Model.logp

    def timed_logp(self, *a, **k):
        t = time.perf_counter()
        out = logp(self, *a, **k)
        stages.append(("Model.logp", time.perf_counter() - t))
        return out

    pm.Model.logp = timed_logp

    spec = MODELS[args.model]
    data = make_data(args.model, Sizes())
    for column in spec.factors:
        data[column] = data[column].astype(str)
    t = time.perf_counter()
    model = Model(spec.formula, data, family=spec.family)
    graph = model.build()
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    idata, _ = sample_model(graph, sampler=args.sampler, chains=4, random_seed=args.seed,
                            progressbar=False, info=model.graph_info)
    call_s = time.perf_counter() - t
    print(f"model {args.model} ({spec.name}), {args.sampler}, seed {args.seed}")
    print(f"imports {imports_s:.2f} s, Model + build {build_s:.2f} s, "
          f"sample_model {call_s:.2f} s, total {time.perf_counter() - started:.2f} s")
    for name, seconds in stages:
        print(f"  {name:40s} {seconds:6.2f} s")
    hidden = set(model.graph_info.hidden)
    names = [v for v in idata.posterior.data_vars if v not in hidden and not v.endswith("__")]
    ess = az.ess(idata.posterior[names], method="bulk")
    lowest = min(names, key=lambda v: float(ess[v].min()))
    print(f"min bulk ESS {float(ess[lowest].min()):.0f} ({lowest}); "
          f"divergences {int(idata.sample_stats['diverging'].sum())}")


if __name__ == "__main__":
    main()
