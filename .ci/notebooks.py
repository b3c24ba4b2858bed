"""Run every notebook as a learner's "Run All" does: from notebooks/, in a kernel of this Python, and stop at the first
cell that fails. ``--write`` saves the outputs back (how the committed outputs are made).

    python .ci/notebooks.py [--write]

CI's newcomer job runs it with the docs extra and no Graphviz on PATH (.ci/run).
"""

import sys
import time
from pathlib import Path

import nbclient
import nbformat

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def main(argv):
    write = "--write" in argv
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        client = nbclient.NotebookClient(
            notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
        )
        client.execute()
        print(f"{path.name}: ran in {time.perf_counter() - start:.1f} s", flush=True)
        if write:
            nbformat.write(notebook, path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
