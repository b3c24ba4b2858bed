"""The walkthrough notebooks (notebooks/*.ipynb): committed with their outputs, and each re-executed here
from a clean kernel; a failing cell (every notebook asserts as it goes) fails the test.

Needs the docs extra (nbclient, ipykernel) and Tiny Shakespeare (TINYSHAKESPEARE_PATH or the cache).
"""

import os

import pytest

from tinygrad_tx import TinygradTxError
from train.data import resolve_text_path

from helpers import ROOT
from helpers.optional import DOCS

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
nbformat = pytest.importorskip("nbformat", reason=f"the docs extra is not installed ({DOCS})")
nbclient = pytest.importorskip("nbclient", reason=f"the docs extra is not installed ({DOCS})")


def test_the_five_walkthroughs_exist():
    assert [p.name for p in NOTEBOOKS] == [
        "backprop_by_hand.ipynb",
        "bigram.ipynb",
        "gpt_walkthrough.ipynb",
        "second_order.ipynb",
        "self_attention.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_with_outputs_and_no_errors(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.execution_count for cell in code), f"{path.name}: a code cell was never run"
    assert not [out for cell in code for out in cell.outputs if out.output_type == "error"]
    assert sum(1 for cell in code if cell.outputs) >= len(code) // 2, f"{path.name}: outputs were cleared"


def path_without(program):
    """PATH less every folder that holds ``program``."""
    folders = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(f for f in folders if f and not os.path.exists(os.path.join(f, program)))


@pytest.fixture(scope="module")
def shakespeare():
    try:
        return resolve_text_path()
    except TinygradTxError as error:
        pytest.skip(f"the notebooks read Tiny Shakespeare, which is not available: {error}")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_executes_from_a_clean_kernel(path, shakespeare, monkeypatch):
    """As Jupyter runs them (issue 24): from notebooks/, with no PYTHONPATH (each notebook that imports models/ or
    train/ puts the checkout's root on sys.path in its first cell) and without Graphviz's dot on PATH (draw_graph's
    graphs show as DOT text)."""
    monkeypatch.setenv("TINYSHAKESPEARE_PATH", shakespeare)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setenv("PATH", path_without("dot"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
