"""The walkthrough notebooks (notebooks/*.ipynb): committed with their outputs, and each re-executed here
from a clean kernel; a failing cell (every notebook asserts as it goes) fails the test.

Needs the docs extra (nbclient, ipykernel) and Tiny Shakespeare (TINYSHAKESPEARE_PATH or the cache).
"""

import os

import pytest

from tinygrad_tx import TinygradTxError
from train.data import resolve_text_path

from helpers import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
nbformat = pytest.importorskip("nbformat", reason="the docs extra is not installed (pip install -e '.[docs]')")
nbclient = pytest.importorskip("nbclient", reason="the docs extra is not installed (pip install -e '.[docs]')")


def test_the_four_walkthroughs_exist():
    assert [p.name for p in NOTEBOOKS] == [
        "backprop_by_hand.ipynb",
        "bigram.ipynb",
        "gpt_walkthrough.ipynb",
        "self_attention.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_with_outputs_and_no_errors(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.execution_count for cell in code), f"{path.name}: a code cell was never run"
    assert not [out for cell in code for out in cell.outputs if out.output_type == "error"]
    assert sum(1 for cell in code if cell.outputs) >= len(code) // 2, f"{path.name}: outputs were cleared"


@pytest.fixture(scope="module")
def shakespeare():
    try:
        return resolve_text_path()
    except TinygradTxError as error:
        pytest.skip(f"the notebooks read Tiny Shakespeare, which is not available: {error}")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_executes_from_a_clean_kernel(path, shakespeare, monkeypatch):
    monkeypatch.setenv("TINYSHAKESPEARE_PATH", shakespeare)
    # the kernel imports models/, train/ and tinygrad_tx from this checkout, installed or not
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
