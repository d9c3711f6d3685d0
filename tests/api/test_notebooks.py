"""The analyst notebooks (notebooks/*.ipynb) run top to bottom against the API over the whole sample.

Each is executed with nbclient in a python3 kernel, with CIM_API_URL pointing at the test server and
notebooks/ as its working directory. The asserts inside the notebooks check what their text claims. The
executed copies, with their outputs and plots, are kept in tests/artifacts/notebooks/ for inspection."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tests.conftest import ROOT

NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "tests" / "artifacts" / "notebooks"
EXPECTED = ("01_api_tour.ipynb", "02_pipe_analyses.ipynb")
CELL_TIMEOUT_S = 120


def notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def test_the_notebooks_are_there():
    assert {p.name for p in notebooks()} >= set(EXPECTED)


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_stored_without_outputs(path: Path):
    """Notebooks are committed clean: no outputs, no execution counts."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_notebook_runs(path: Path, api, monkeypatch):
    monkeypatch.setenv("CIM_API_URL", api.url)  # the kernel inherits the environment
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        client.execute()
    except CellExecutionError as exc:
        pytest.fail(f"{path.name} failed (executed copy: {ARTIFACTS / path.name}; server log: {api.log}):\n{exc}",
                    pytrace=False)
    finally:
        nbformat.write(nb, ARTIFACTS / path.name)
    errors = [o for cell in nb.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
