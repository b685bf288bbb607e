"""The teaching notebooks in notebooks/ run from top to bottom, and are stored without outputs.

Each notebook is executed with nbclient in a fresh kernel with ``R2D2_NOTEBOOK_DRAWS=100``
(and 2 chains), so the fits are small; the notebooks' own default is 1000 draws x 4 chains.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = ["01_laboratory_r2d2m2.ipynb", "02_diabetes_shrinkage.ipynb",
            "03_glmm_predictions.ipynb"]
# per cell; a cell with a fit takes well under a minute with 100 draws on a loaded machine
CELL_TIMEOUT_S = 600


def test_the_three_notebooks_are_there():
    assert [path.name for path in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: a code cell has outputs; strip them"
            assert cell.execution_count is None, f"{path.name}: a code cell has a count"


def test_notebooks_match_their_generator():
    """The .ipynb files are what notebooks/make_notebooks.py writes (edit the script)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_notebooks",
                                                  NOTEBOOK_DIR / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert sorted(module.NOTEBOOKS) == EXPECTED
    for name, cells in module.NOTEBOOKS.items():
        stored = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
        built = module.build(cells)
        assert [c.source for c in stored.cells] == [c.source for c in built.cells], name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, monkeypatch, tmp_path):
    # the kernel inherits the environment: few draws; matplotlib's inline backend (which
    # needs no display), not one that a test configuration may have set
    monkeypatch.setenv("R2D2_NOTEBOOK_DRAWS", "100")
    monkeypatch.setenv("R2D2_NOTEBOOK_CHAINS", "2")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and the traceback, on failure
    outputs = [out for cell in notebook.cells if cell.cell_type == "code"
               for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    # every notebook draws at least one figure
    assert any("image/png" in out.get("data", {}) for out in outputs)
