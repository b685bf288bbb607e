"""Run one child process and measure it: wall time, peak RSS, time and memory limits.

Each contender-model pair runs in its own process (``_suite_child.py`` or ``Rscript``), one
at a time. Peak memory is measured twice:

* ``peak_rss_mb``: the kernel's peak RSS of the largest single process of the child's tree
  (``os.wait4``'s ``ru_maxrss``, the number ``/usr/bin/time -v`` prints);
* ``peak_tree_rss_mb``: the largest sum of RSS over the child and all its descendants
  (PyMC's and rstan's worker processes), polled every 0.2 s from /proc; shared pages of
  forked workers count once per process, so this is an upper bound.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

__all__ = ["run_child", "read_events"]

_POLL_S = 0.2


def _tree_rss(pid: int) -> int:
    """Sum of the RSS (bytes) of ``pid`` and all its descendants, read from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            resident = int(Path(entry.path, "statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # exited meanwhile
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])  # the name may hold spaces
        child = int(entry.name)
        children.setdefault(ppid, []).append(child)
        rss[child] = resident * page
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += rss.get(current, 0)
        todo.extend(children.get(current, []))
    return total


def _limit_address_space(limit_bytes: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
    return apply


def read_events(path: Path) -> tuple[dict[str, float], dict | None, dict[str, float]]:
    """Event times, the final result and the CPU seconds at each event written by a child
    (any may be missing)."""
    events: dict[str, float] = {}
    cpu: dict[str, float] = {}
    result = None
    if not path.exists():
        return events, result, cpu
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "event" in record:
            events[record["event"]] = float(record["t"])
            if record.get("cpu") is not None:
                cpu[record["event"]] = float(record["cpu"])
        elif "result" in record:
            result = record["result"]
    return events, result, cpu


def run_child(cmd: list[str], *, result_path: Path, log_path: Path, timeout_s: float,
              env: dict[str, str] | None = None, memory_limit_gb: float | None = None) -> dict:
    """Start ``cmd``, wait for it under ``timeout_s`` and return what was measured.

    Returns a dict with ``t_launch``, ``wall_s``, ``returncode``, ``status`` ("ok", "failed",
    "timeout", "killed by <signal>"), ``peak_rss_mb``, ``peak_tree_rss_mb``, ``events``
    (seconds after launch), ``cpu`` (the child's CPU seconds at each event), ``result`` (the
    child's own report or None) and ``log_tail``.
    """
    result_path.unlink(missing_ok=True)
    preexec = None
    if memory_limit_gb is not None:
        preexec = _limit_address_space(int(memory_limit_gb * 1024**3))
    t_launch = time.time()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, preexec_fn=preexec)
    peak_tree = 0
    timed_out = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak_tree = max(peak_tree, _tree_rss(proc.pid))
        if time.time() - t_launch > timeout_s:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the child's own process group
            except ProcessLookupError:
                pass
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(_POLL_S)
    wall = time.time() - t_launch
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    events, result, cpu = read_events(result_path)
    if timed_out:
        state = "timeout"
    elif proc.returncode < 0:
        state = f"killed by {signal.Signals(-proc.returncode).name}"
    elif proc.returncode == 0 and result is not None and result.get("ok"):
        state = "ok"
    else:
        state = "failed"
    tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
    return {
        "t_launch": t_launch,
        "wall_s": wall,
        "returncode": proc.returncode,
        "status": state,
        "peak_rss_mb": usage.ru_maxrss / 1024.0,
        "peak_tree_rss_mb": peak_tree / 1024.0**2,
        "events": {name: t - t_launch for name, t in events.items()},
        "cpu": cpu,
        "result": result,
        "log_tail": tail,
    }
