"""setup.py: a non-editable install ships the engine only (no generic top-level packages such as
models, train or bench in site-packages), with its typing marker and stub, and the dependencies."""

import runpy

import pytest
import setuptools

from helpers import ROOT


@pytest.fixture(scope="module")
def setup_arguments():
    """The keyword arguments setup.py hands to setuptools.setup, captured without building anything."""
    captured = {}
    original = setuptools.setup
    setuptools.setup = lambda **kwargs: captured.update(kwargs)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(ROOT)
            runpy.run_path(str(ROOT / "setup.py"))
    finally:
        setuptools.setup = original
    return captured


def test_only_the_engine_is_installed(setup_arguments):
    packages = setup_arguments["packages"]
    assert all(name == "tinygrad_tx" or name.startswith("tinygrad_tx.") for name in packages), packages
    engine = {
        path.parent.relative_to(ROOT).as_posix().replace("/", ".")
        for path in (ROOT / "tinygrad_tx").rglob("__init__.py")
    }
    assert set(packages) == engine, f"setup.py misses engine packages: {sorted(engine - set(packages))}"


def test_the_typing_marker_and_stub_ship(setup_arguments):
    data = setup_arguments["package_data"]["tinygrad_tx"]
    assert "py.typed" in data and "*.pyi" in data
    assert (ROOT / "tinygrad_tx" / "py.typed").is_file() and (ROOT / "tinygrad_tx" / "tensor.pyi").is_file()


def test_dependencies(setup_arguments):
    assert any(req.startswith("safetensors") for req in setup_arguments["install_requires"])
    lint = setup_arguments["extras_require"]["lint"]
    assert any(req.startswith("ruff==") for req in lint) and any(req.startswith("mypy==") for req in lint), (
        "the linters' versions are pinned, so CI and pre-commit agree"
    )
