"""The optional pieces some tests need, each checked for what the tests really use, and the skip that names
the extra (or apt package) bringing it. ``pip install -e ".[test]"`` alone must pass: every test that
needs more skips with one of these reasons (the README lists the extras and what each adds).

Each ``*_missing()`` returns why the piece is unusable here, or '' when it is usable; ``requires(reason)``
turns that into a skip mark.
"""

import functools
import importlib.util
import shutil

import pytest

CUDA_EMULATION = 'pip install -e ".[cuda-emulation]"'
DOCS = 'pip install -e ".[docs]"'
DIST = 'pip install -e ".[dist]"'


def requires(reason):
    """A skip mark for a test that needs a piece ``reason`` says is missing ('' = present, no skip)."""
    return pytest.mark.skipif(bool(reason), reason=reason or "available")


@functools.cache
def cuda_emulation_missing():
    """CuPy (its NVRTC wrapper and compiler options) and a loadable NVRTC library: what tests/cuda_emulation,
    the stand-in's RawModule and ElementwiseKernel launches, and ``--gpu-standin`` need. No GPU needed.

    ``import cuda_emulation`` is not the check: it succeeds without CuPy, which it imports only when compiling."""
    if importlib.util.find_spec("cupy") is None:
        return f"CuPy is not installed (the NVRTC compiler and PTX emulator need it: {CUDA_EMULATION})"
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
    except Exception as exc:  # ImportError, or CuPy's error that the NVRTC library cannot be loaded
        first = (str(exc).splitlines() or [""])[0]
        return f"NVRTC cannot be loaded ({type(exc).__name__}: {first}; {CUDA_EMULATION})"
    return ""


def docs_missing():
    """The docs extra: mkdocs and its plugins for the site, nbclient/nbformat/ipykernel for the notebooks."""
    names = ("mkdocs", "mkdocs_jupyter", "nbclient", "nbformat", "ipykernel")
    absent = [name for name in names if importlib.util.find_spec(name) is None]
    return f"the docs extra is not installed ({', '.join(absent)}: {DOCS})" if absent else ""


def dot_missing():
    """Graphviz's ``dot`` program, which renders graphs to SVG/PNG (DOT text and the fallback need none)."""
    return "" if shutil.which("dot") else "the Graphviz 'dot' program is not installed (apt-get install graphviz)"


requires_cuda_emulation = requires(cuda_emulation_missing())
requires_docs = requires(docs_missing())
requires_dot = requires(dot_missing())


TEST = 'pip install -e ".[test]"'


def transformers_missing():
    """Hugging Face transformers (its GPT2LMHeadModel is the oracle of tests/models/test_pretrained_transformers.py),
    in the test extra; an older checkout's environment may lack it."""
    if importlib.util.find_spec("transformers") is None:
        return f"transformers is not installed (the test extra brings it: {TEST})"
    return ""


requires_transformers = requires(transformers_missing())
