"""What a dense mass matrix costs numpyro per leapfrog step, by the number of coordinates.

Runs numpyro's NUTS (4 parallel chains on 4 XLA CPU devices, 1000 tuning + 1000 draws,
target_accept 0.95) on a standard-normal-like target with scales from 0.5 to 2, with a
diagonal and with a dense mass matrix, and prints microseconds per leapfrog step per core
(each run after a first one that compiles). The target costs next to nothing, so the
figures are numpyro's own per-step cost; ``r2d2formula.backend.sampling._dense_mass_matrix``
uses them for its coordinate limit::

    python benchmarks/dense_mass_cost.py [--dims 20,43,51,64,102] [--cores 2]
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", default="20,43,51,64,102")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1,
                        help="cores the chains share (for the per-core figure)")
    args = parser.parse_args()
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_force_host_platform_device_count=4").strip()
    import jax
    import jax.numpy as jnp
    import numpy as np
    from numpyro.infer import MCMC, NUTS

    chains, warmup, draws = 4, 1000, 1000
    print("| coordinates | mass matrix | seconds | steps per draw | us per step per core |")
    print("|---|---|---|---|---|")
    for dim in (int(text) for text in args.dims.split(",")):
        scales = jnp.asarray(np.linspace(0.5, 2.0, dim))
        for dense in (False, True):
            kernel = NUTS(potential_fn=lambda z, s=scales: 0.5 * jnp.sum((z / s) ** 2),
                          dense_mass=dense, target_accept_prob=0.95)
            mcmc = MCMC(kernel, num_warmup=warmup, num_samples=draws, num_chains=chains,
                        chain_method="parallel", progress_bar=False)
            start = jnp.zeros((chains, dim))
            for seed in (0, 1):  # the first run compiles
                began = time.perf_counter()
                mcmc.run(jax.random.split(jax.random.PRNGKey(seed), chains),
                         init_params=start, extra_fields=("num_steps",))
                jax.block_until_ready(mcmc.get_samples())
                seconds = time.perf_counter() - began
            steps = float(mcmc.get_extra_fields()["num_steps"].mean())
            per_step = seconds / (steps * chains * (warmup + draws)) * min(args.cores, chains)
            print(f"| {dim} | {'dense' if dense else 'diagonal'} | {seconds:.2f} | "
                  f"{steps:.1f} | {per_step * 1e6:.0f} |", flush=True)


if __name__ == "__main__":
    main()
