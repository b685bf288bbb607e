"""Running test code in a fresh Python interpreter (imports, caches and threads start anew)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping


def run_python(code: str, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run ``code`` with ``args`` in a new interpreter and return its standard output; the
    test fails, showing the end of its standard error, unless it exits with status 0."""
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                            text=True, env=None if env is None else dict(env))
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout
