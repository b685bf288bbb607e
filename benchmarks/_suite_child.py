"""One contender on one model, in a fresh process: ``python _suite_child.py JOB.json``.

Started by ``benchmarks/suite.py``, with the system python for r2d2formula and with the
Bambi virtual environment's python for Bambi, so this file imports neither package at module
level (nor anything the Bambi environment lacks: only the standard library until a tool is
chosen).

The job file says what to run; the child appends one JSON line per event to
``job["result_path"]`` as it goes (``{"event": name, "t": unix time}``), so a child killed by
the time or memory limit still tells how far it got, and ends with one ``{"result": ...}``
line. Events:

``started`` (interpreter up) -> ``imports`` -> ``data`` (parquet read) -> ``model_start``
(formula given) -> ``design`` (``Model(...)`` / ``bmb.Model(...)`` returned) -> ``graph``
(PyMC model built) -> [``compiled``: nutpie] -> ``first_iteration`` (written when it happens,
so a run cut by a limit shows whether it was sampling) -> ``sampled`` -> ``done``
(the result object a user gets, log-likelihood included where the tool adds it).

ESS and divergences are computed after ``done``, outside the timed span.
"""

from __future__ import annotations

import json
import resource
import sys
import time
import traceback


class EventLog:
    def __init__(self, path: str) -> None:
        self.path = path
        self.last = None
        self.times: dict[str, float] = {}

    def _write(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def event(self, name: str, t: float | None = None, cpu: float | None = None) -> None:
        t = time.time() if t is None else t
        cpu = _cpu_s() if cpu is None else cpu
        self.times[name] = t
        self.last = name
        self._write({"event": name, "t": t, "cpu": cpu, "maxrss_mb": _maxrss_mb()})

    def result(self, **values) -> None:
        self._write({"result": values})


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process and its finished children (PyTensor's C
    compiler runs) so far: a start-up measure that depends less than wall time on what else
    the machine runs."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _maxrss_mb() -> float:
    """Peak RSS of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _read_data(job: dict):
    import pandas as pd

    data = pd.read_parquet(job["data"])
    for column in job["factors"]:
        data[column] = data[column].astype(str)
    return data


def _ess_summary(idata, names: list[str]) -> dict:
    """Minimum bulk ESS over every element of the named posterior variables (arviz)."""
    import arviz as az
    import numpy as np

    ess = az.ess(idata.posterior[names], method="bulk")
    best = (np.inf, None)
    n_params = 0
    for name in names:
        values = np.asarray(ess[name].values, dtype=float).ravel()
        n_params += values.size
        finite = values[np.isfinite(values)]  # a constant (e.g. phi of one component) has none
        if finite.size and finite.min() < best[0]:
            best = (float(finite.min()), name)
    diverging = idata.sample_stats.get("diverging")
    return {
        "min_ess": None if best[1] is None else best[0],
        "min_ess_param": best[1],
        "n_params": n_params,
        "divergences": None if diverging is None else int(diverging.values.sum()),
        "draws_out": int(idata.posterior.sizes["draw"]),
        "chains_out": int(idata.posterior.sizes["chain"]),
    }


def _run_r2d2formula(job: dict, log: EventLog) -> dict:
    import importlib.metadata as md
    import warnings

    warnings.filterwarnings("ignore")
    from r2d2formula import Model
    from r2d2formula.backend import compile_nutpie, sample_model
    from r2d2formula.backend.sampling import _add_groups
    from r2d2formula.results import Fit

    log.event("imports")
    data = _read_data(job)
    log.event("data")
    log.event("model_start")
    model = Model(job["formula"], data, family=job["family"])
    log.event("design")
    graph = model.build()
    log.event("graph")
    versions = {p: md.version(p) for p in ("r2d2formula", "pymc", "pytensor", "nutpie", "numba",
                                           "formulae", "pandas")}
    if job["mode"] == "design":
        return {"versions": versions, "n_rows": len(data)}
    sampler = job["sampler"]
    compiled = None
    if sampler == "nutpie":
        compiled = compile_nutpie(graph, model.graph_info)
        log.event("compiled")
    first: dict[str, float] = {}
    extra = {}
    if sampler == "pymc":
        def callback(trace, draw):  # runs in this process for every draw of every chain
            if "t" not in first:
                first.update(t=time.time(), cpu=_cpu_s())
                log.event("first_iteration", first["t"], first["cpu"])
        extra["callback"] = callback
    if sampler in ("numpyro", "blackjax"):
        import jax

        versions.update({p: md.version(p) for p in ("jax", sampler)})
        versions["jax_devices"] = f"{jax.local_device_count()} x {jax.devices()[0].platform}"
    # nutpie: sample, then the same log-likelihood step sample_model would run, timed apart
    ll_inside = job["log_likelihood"] and sampler != "nutpie"
    t_call, cpu_call = time.time(), _cpu_s()
    if sampler != "pymc":
        # nutpie starts sampling at once; JAX samplers have no hook at the first iteration:
        # PyMC turns the graph into JAX and finds initial points inside the call, then XLA
        # compiles inside the timed sampling. Their set-up ends at the call; the conversion,
        # the log-likelihood and the post-processing of the draws show only in the total.
        first.update(t=t_call, cpu=cpu_call)
        log.event("first_iteration", t_call, cpu_call)
    idata, _ = sample_model(
        graph, sampler=sampler, draws=job["draws"], tune=job["tune"], chains=job["chains"],
        cores=job["cores"], random_seed=job["seed"], progressbar=False, compiled=compiled,
        **({"target_accept": job["target_accept"]} if job.get("target_accept") else {}),
        log_likelihood=ll_inside, sampler_kwargs=extra,
        info=model.graph_info,
    )
    t_sampled = time.time()
    if sampler == "nutpie":
        sampling_s = t_sampled - t_call
        idata = _add_groups(idata, graph, job["log_likelihood"])
    else:
        sampling_s = float(idata.posterior.attrs["sampling_time"])
    log.event("sampled", t_sampled)
    fit = Fit(model=model, idata=idata, sampler=sampler)
    log.event("done")
    hidden = set(model.graph_info.hidden)
    names = [v for v in fit.idata.posterior.data_vars
             if v not in hidden and not v.endswith("__")]
    return {"sampling_s": sampling_s, "versions": versions, "n_rows": len(data),
            **_ess_summary(fit.idata, names)}


def _run_bambi(job: dict, log: EventLog) -> dict:
    import importlib.metadata as md
    import warnings

    warnings.filterwarnings("ignore")
    import bambi as bmb

    log.event("imports")
    data = _read_data(job)
    log.event("data")
    log.event("model_start")
    model = bmb.Model(job["formula"], data, family=job["family"])
    log.event("design")
    model.build()
    log.event("graph")
    versions = {p: md.version(p) for p in ("bambi", "formulae", "pymc", "pytensor", "nutpie",
                                           "pandas")}
    if job["mode"] == "design":
        return {"versions": versions, "n_rows": len(data)}
    first: dict[str, float] = {}
    extra = {}
    if job["sampler"] == "pymc":
        def callback(trace, draw):
            if "t" not in first:
                first.update(t=time.time(), cpu=_cpu_s())
                log.event("first_iteration", first["t"], first["cpu"])
        extra["callback"] = callback
    idata = model.fit(draws=job["draws"], tune=job["tune"], chains=job["chains"],
                      cores=job["cores"], random_seed=job["seed"], progressbar=False,
                      inference_method=job["sampler"], **extra,
                      **({"target_accept": job["target_accept"]} if job.get("target_accept")
                         else {}))
    t_done = time.time()
    sampling_s = float(idata.posterior.attrs["sampling_time"])
    if "t" not in first:  # nutpie: no callback; its sampling ends at bambi's fit
        first["t"] = t_done - sampling_s
        log.event("first_iteration", first["t"], float("nan"))
    log.event("sampled", first["t"] + sampling_s)
    log.event("done", t_done)
    # non-centred offsets and (nutpie) transformed values are not model parameters
    names = [v for v in idata.posterior.data_vars
             if not v.endswith("_offset") and not v.endswith("__")]
    return {"sampling_s": sampling_s, "versions": versions, "n_rows": len(data),
            **_ess_summary(idata, names)}


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        job = json.load(handle)
    log = EventLog(job["result_path"])
    log.event("started")
    runner = {"r2d2formula": _run_r2d2formula, "bambi": _run_bambi}[job["tool"]]
    try:
        values = runner(job, log)
    except BaseException as exc:  # MemoryError and KeyboardInterrupt too: say where it died
        message = f"{type(exc).__name__}: {exc}"
        try:
            log.result(ok=False, error=message[:3000], stage=log.last,
                       traceback=traceback.format_exc()[-4000:], maxrss_mb=_maxrss_mb())
        finally:
            print(message, file=sys.stderr)
        raise SystemExit(1) from None
    log.result(ok=True, maxrss_mb=_maxrss_mb(), **values)


if __name__ == "__main__":
    main()
