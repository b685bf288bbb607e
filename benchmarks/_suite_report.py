"""The markdown report of ``benchmarks/suite.py``: absolute numbers and ratios."""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_markdown"]

ORDER = ["r2d2formula-pymc", "r2d2formula-nutpie", "r2d2formula-numpyro",
         "r2d2formula-blackjax", "bambi-pymc", "bambi-nutpie", "brms"]

DEFINITIONS = """\
Definitions. *setup*: from the formula and data handed to the tool to its first sampling
iteration (design, PyMC/Stan model, compilation). JAX samplers have no hook there: their set-up
ends where PyMC's sampler call starts, the conversion to JAX and the XLA compilation happen in
the call (XLA inside *sampling*). For brms: from `brm()` to the compiled Stan model. *sampling*: the sampler's own time (tuning and draws). *total*: wall time from process
launch to the fitted object (interpreter start, imports, data read, set-up, sampling and
post-processing such as the log-likelihood), the denominator of *ESS/s*. *min ESS*: minimum
bulk ESS (arviz) over every element of every reported parameter (r2d2formula: hidden raw
variables excluded; Bambi: `_offset` and transformed `__` variables excluded; brms: everything but `lp__` and
`lprior`). *RSS*: peak resident memory of the largest process (`wait4`); *tree RSS*: the largest
sum over the process and its workers (polled; counts shared pages per process). Every run is
a fresh process, alone on the machine, one after another; 2 cores for every tool (PyMC and
brms: 2 parallel chains; nutpie: 2 threads; JAX: one XLA CPU device per chain). Caches on
disk are warm, as after a first run: PyTensor's C and numba caches (r2d2formula and Bambi) and
JAX's compilation cache (r2d2formula's JAX samplers, filled by a run of the same model and
data); nutpie's cfunc and brms's Stan model are compiled in every process, as those tools do.
A failed run says the last step it reached (events: imports, data, model_start, design, graph, compiled,
first_iteration, sampled, done).
"""


def _m5_target_accept(records) -> float | None:
    """The target acceptance model 5's fits ran at, where the run set one."""
    values = {r.get("target_accept") for r in records if r["section"] == "scale"}
    values.discard(None)
    return values.pop() if len(values) == 1 else None


def _f(value, fmt: str = "{:.1f}") -> str:
    if value is None:
        return "–"
    try:
        return fmt.format(value)
    except (TypeError, ValueError):
        return str(value)


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _key(record: dict) -> tuple:
    contender = record["contender"]
    return (record["model"], ORDER.index(contender) if contender in ORDER else 99)


def _status(record: dict) -> str:
    if record["status"] == "ok":
        return "ok"
    text = record["status"]
    if record.get("stage"):  # the last event the run reached
        text += f" after {record['stage']}"
    if record.get("error"):
        text += ": " + _cell(record["error"][:160])
    return text


def _fit_table(records: list[dict]) -> list[str]:
    lines = ["| model | contender | status | setup s | sampling s | total s | divergences | "
             "min ESS (parameter) | ESS/s | RSS MB | tree RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(records, key=_key):
        ess = _f(r.get("min_ess"), "{:.0f}")
        if r.get("min_ess_param"):
            ess += f" ({_cell(r['min_ess_param'])})"
        lines.append(
            f"| {r['model']} | {r['contender']} | {_status(r)} | {_f(r.get('setup_s'))} | "
            f"{_f(r.get('sampling_s'))} | {_f(r.get('total_s'))} | "
            f"{_f(r.get('divergences'), '{}')} | {ess} | {_f(r.get('ess_per_s'), '{:.2f}')} | "
            f"{_f(r.get('peak_rss_mb'), '{:.0f}')} | {_f(r.get('peak_tree_rss_mb'), '{:.0f}')} |")
    return lines


def _best(records: list[dict], tool: str) -> dict | None:
    ok = [r for r in records if r["tool"] == tool and r["status"] == "ok"
          and r.get("ess_per_s") is not None]
    return max(ok, key=lambda r: r["ess_per_s"]) if ok else None


def _ratio_table(records: list[dict]) -> list[str]:
    lines = ["| model | r2d2formula best: ESS/s (sampler) | Bambi best: ESS/s (sampler) | "
             "brms: ESS/s | ESS/s vs Bambi (target >= 2) | ESS/s vs brms (target >= 3) | "
             "total wall Bambi / ours | total wall brms / ours | our divergences "
             "(target 0) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for model in sorted({r["model"] for r in records}):
        rows = [r for r in records if r["model"] == model]
        ours, bambi, brms = _best(rows, "r2d2formula"), _best(rows, "bambi"), _best(rows, "brms")

        def cell(r):
            return "–" if r is None else f"{r['ess_per_s']:.2f} ({r['sampler']})"

        def ratio(other, key, invert=False, ours=ours):
            if ours is None or other is None or not ours.get(key) or not other.get(key):
                return "–"
            value = other[key] / ours[key] if invert else ours[key] / other[key]
            return f"x{value:.2f}"

        divs = [f"{r['sampler']} {r.get('divergences')}" for r in rows
                if r["tool"] == "r2d2formula" and r["status"] == "ok"]
        lines.append(
            f"| {model} | {cell(ours)} | {cell(bambi)} | "
            f"{'–' if brms is None else _f(brms['ess_per_s'], '{:.2f}')} | "
            f"{ratio(bambi, 'ess_per_s')} | {ratio(brms, 'ess_per_s')} | "
            f"{ratio(bambi, 'total_s', invert=True)} | {ratio(brms, 'total_s', invert=True)} | "
            f"{', '.join(divs) or '–'} |")
    return lines


def _design_table(records: list[dict]) -> list[str]:
    lines = ["| tool | status | rows | design s (target < 30) | graph s | total wall s | "
             "RSS MB (target < 4096) | tree RSS MB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in sorted(records, key=_key):
        design = r.get("design_s")
        lines.append(
            f"| {r['tool']} | {_status(r)} | {r.get('n_rows', '–')} | {_f(design)} | "
            f"{_f(r.get('graph_s'))} | {_f(r.get('wall_s'))} | "
            f"{_f(r.get('peak_rss_mb'), '{:.0f}')} | {_f(r.get('peak_tree_rss_mb'), '{:.0f}')} |")
    return lines


def _cache_table(records: list[dict]) -> list[str]:
    lines = ["| model | sampler | cold: Model() -> first iteration s | warm s | cold / warm "
             "(target >= 2) | CPU s cold / warm | cold: launch -> first iteration s | warm s | "
             "cache MB |",
             "|---|---|---|---|---|---|---|---|---|"]
    cold = {(r["model"], r["sampler"]): r for r in records
            if r["section"] == "compile-cache-cold"}
    for (model, sampler), c in sorted(cold.items()):
        w = next((r for r in records if r["section"] == "compile-cache-warm"
                  and r["model"] == model and r["sampler"] == sampler), None)
        if c["status"] != "ok" or w is None or w["status"] != "ok":
            lines.append(f"| {model} | {sampler} | {_status(c)} | "
                         f"{'–' if w is None else _status(w)} | – | – | – | – | – |")
            continue
        ratio = c["setup_s"] / w["setup_s"] if w.get("setup_s") else None
        lines.append(
            f"| {model} | {sampler} | {_f(c['setup_s'])} | {_f(w['setup_s'])} | "
            f"{_f(ratio, 'x{:.2f}')} | {_f(c.get('setup_cpu_s'))} / "
            f"{_f(w.get('setup_cpu_s'))} | {_f(c.get('launch_to_first_s'))} | "
            f"{_f(w.get('launch_to_first_s'))} | {_f((w.get('cache_bytes') or 0) / 1e6)} |")
    return lines


def write_markdown(payload: dict, path: Path) -> None:
    records = payload["records"]
    sizes = payload["sizes"]
    machine = payload["machine"]
    out = ["# Benchmark suite: r2d2formula, Bambi, brms (issue 5)", ""]
    if payload["quick"]:
        out += ["**Smoke run (`--quick`)**: tiny draws, not a measurement.", ""]
    out += [
        f"Run {payload['started']} to {payload['finished']}: `{payload['command']}`. "
        f"Machine: {machine['platform']}, {machine['cpus']} CPUs, {machine['memory_gb']} GB, "
        f"load average at start {', '.join(f'{x:.2f}' for x in machine['load_average_at_start'])}. "
        f"Models 1-4: {sizes['chains']} chains x {sizes['draws']} draws ({sizes['tune']} tuning); "
        f"model 5: {sizes['chains']} x {sizes['m5_draws']} ({sizes['m5_tune']} tuning), "
        f"{sizes['m5_rows']:,} rows, levels {'/'.join(f'{n:,}' for n in sizes['m5_levels'])}. "
        f"Seed {payload['seed']}; r2d2formula at its defaults (target_accept 0.95), Bambi and "
        "brms at theirs (0.8)"
        + ("." if not _m5_target_accept(records) else
           f"; model 5's fits at target_accept {_m5_target_accept(records)}."), "",
        DEFINITIONS,
    ]
    fits = [r for r in records if r["section"] == "models"]
    if fits:
        out += ["## Models 1-4", "", *_fit_table(fits), "", "### Ratios", "",
                "ESS per second of total wall time of r2d2formula's best sampler against "
                "Bambi's best and brms (x > 1: r2d2formula ahead).", "", *_ratio_table(fits),
                ""]
    design = [r for r in records if r["section"] == "scale-design"]
    scale = [r for r in records if r["section"] == "scale"]
    if design or scale:
        out += ["## Model 5 (scale)", ""]
        if design:
            out += ["Design build alone (`Model(...)` / `bmb.Model(...)` / brms's "
                    "`make_standata`) in a fresh process; *graph*: the PyMC model on top. "
                    "Bambi runs under an address-space limit.", "", *_design_table(design), ""]
        if scale:
            out += ["Fits (no pointwise log-likelihood for r2d2formula: it would hold "
                    "rows x draws x chains doubles), each under the model-5 time limit.", "",
                    *_fit_table(scale), ""]
    cache = [r for r in records if r["section"].startswith("compile-cache")]
    if cache:
        out += ["## Start-up of a second fit in a new process", "",
                "`Model(...)` to the first sampling iteration in a fresh process, run twice in "
                "a row on the same, initially empty PyTensor compile folder and numba cache "
                "(`PYTENSOR_FLAGS=base_compiledir=...`, `NUMBA_CACHE_DIR`); 1 chain x 20 "
                "draws.", "", *_cache_table(cache), ""]
    notes = [f"* model {k}: {m['description']}" +
             "".join(f"; {tool}: {text}" for tool, text in m["notes"].items())
             for k, m in payload["models"].items()]
    unavailable = [r for r in records if r["status"] == "unavailable"]
    out += ["## Models and notes", "", *notes, ""]
    if unavailable:
        out += ["Not run: " + "; ".join(
            f"model {r['model']} {r['contender']} ({r['error']})" for r in unavailable), ""]
    versions: dict[str, dict[str, str]] = {}  # by tool: Bambi runs in its own environment
    for r in records:
        versions.setdefault(r["tool"], {}).update(r.get("versions") or {})
    listed = "; ".join(f"{tool}: " + ", ".join(f"{k} {v}" for k, v in sorted(found.items()))
                       for tool, found in versions.items() if found)
    if listed:
        out += [f"Versions: {listed}.", ""]
    path.write_text("\n".join(out), encoding="utf-8")
