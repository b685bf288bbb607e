"""The README's Python examples run, and its commands match CI.

Each fenced ``python`` block of README.md is run on its own (the blocks are self-contained);
the examples already use few draws, so nothing is substituted.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI_SCRIPT = ROOT / ".ci" / "run"

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
_TEST_COMMAND = 'python -m pytest -m "not slow" -n 2 --dist loadfile'


def _blocks() -> list[tuple[int, str]]:
    text = README.read_text(encoding="utf-8")
    return [(text[: match.start()].count("\n") + 1, match.group(1))
            for match in _BLOCK.finditer(text)]


BLOCKS = _blocks()


def _run(block: str, line: int) -> dict:
    namespace: dict = {"__name__": "__readme__"}
    code = compile(block, f"README.md (block at line {line})", "exec")
    with warnings.catch_warnings():
        # the quick start draws few samples on purpose; the diagnostics warning says so
        warnings.simplefilter("ignore")
        exec(code, namespace)
    return namespace


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize(("line", "block"), BLOCKS, ids=[f"line{line}" for line, _ in BLOCKS])
def test_readme_python_block_runs(line, block, capsys):
    namespace = _run(block, line)
    if "m.fit(" in block:  # the quick start: check what its comments promise
        fit, model = namespace["fit"], namespace["m"]
        assert model.variant == "R2D2M2"
        assert list(model.components.index) == ["Days", "1|Subject", "Days|Subject"]
        assert list(fit.variance_decomposition().index) == list(model.components.index)
        assert {"Intercept", "b[Days]", "sigma", "R2", "sd_Subject[Days]"} <= set(
            fit.summary().index)
        assert "log_likelihood" in namespace["idata"].groups()
    for name in ("frogs", "chimps"):  # the printed component lists match the comments
        if name in namespace:
            comment = re.search(rf"{name}\.components\.index\)\)\n# (.*)\n", block)
            assert comment is not None
            assert comment.group(1).endswith(str(list(namespace[name].components.index)))


def test_readme_starts_with_the_two_commands():
    text = README.read_text(encoding="utf-8")
    first = text.split("```", 2)[1].strip().splitlines()
    assert first == [
        'pip install . && r2d2formula fit --example sleepstudy '
        '"Reaction ~ Days + (Days | Subject)"',
        f'pip install ".[test]" && {_TEST_COMMAND}',
    ]
    assert text.startswith("```\npip install . && r2d2formula fit")


def test_ci_runs_the_readme_test_command():
    lines = [line.strip() for line in CI_SCRIPT.read_text(encoding="utf-8").splitlines()]
    assert any(line == _TEST_COMMAND or line.startswith(_TEST_COMMAND + " ||")
               for line in lines), (
        f".ci/run must run exactly {_TEST_COMMAND!r}, the README's test command"
    )
