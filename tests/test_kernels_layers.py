"""The kernels package imports in layer order, with no cycle: every import is walked, function-level
ones included. Bottom to top: reference.py and runtime/ <- cpu/; reference.py <- cuda/; both <- dispatch.py.
backend.py, below everything, imports no kernel; tuning.py (tune_for_training) sits above kernels/."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "tinygrad_tx"


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path):
    """Every tinygrad_tx module ``path`` imports, anywhere in the file (``from . import x`` counts x)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("tinygrad_tx"))
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            if not module.startswith("tinygrad_tx"):
                continue
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                exists = (ROOT / (candidate.replace(".", "/") + ".py")).exists() or (
                    ROOT / candidate.replace(".", "/")
                ).is_dir()
                found.add(candidate if exists else module)
    return found - {name}


GRAPH = {_module_name(path): _imports(path) for path in PACKAGE.rglob("*.py")}


def _layer(module):
    """The kernels layer of a module (None outside kernels/)."""
    for prefix, layer in (
        ("tinygrad_tx.kernels.reference", 0),
        ("tinygrad_tx.kernels.runtime", 1),
        ("tinygrad_tx.kernels.cpu", 2),
        ("tinygrad_tx.kernels.cuda", 2),
        ("tinygrad_tx.kernels.dispatch", 3),
        ("tinygrad_tx.kernels", 4),  # the package's __init__
    ):
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return None


def test_kernel_modules_import_only_lower_layers():
    upward = []
    for module, imported in GRAPH.items():
        here = _layer(module)
        if here is None:
            continue
        for target in imported:
            there = _layer(target)
            if there is None:
                continue
            same_op_family = (here == there == 2) and module.split(".")[2] == target.split(".")[2]
            if there > here or (there == here and here in (2,) and not same_op_family):
                upward.append(f"{module} -> {target}")
            if here == 1 and there == 2:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports against the layer order:\n" + "\n".join(sorted(upward))


def test_no_import_cycle_among_the_kernel_modules():
    kernels = {m: {t for t in targets if t.startswith("tinygrad_tx.kernels")} for m, targets in GRAPH.items()}
    kernels = {m: t for m, t in kernels.items() if m.startswith("tinygrad_tx.kernels")}
    # a package's __init__ importing its own submodules is how it lists them, not a cycle
    for module in kernels:
        kernels[module] = {t for t in kernels[module] if not module.startswith(t + ".")}
    state, cycle = {}, []

    def visit(module, path):
        state[module] = "open"
        for target in sorted(kernels.get(module, ())):
            if state.get(target) == "open":
                cycle.append(" -> ".join(path + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(kernels):
        if module not in state:
            visit(module, [module])
    assert not cycle, "import cycles:\n" + "\n".join(cycle)


def test_backend_imports_no_kernel_and_tuning_sits_above_kernels():
    assert not {t for t in GRAPH["tinygrad_tx.backend"] if t.startswith(("tinygrad_tx.kernels", "tinygrad_tx.tuning"))}
    assert any(t.startswith("tinygrad_tx.kernels") for t in GRAPH["tinygrad_tx.tuning"])
    kernel_modules = [m for m in GRAPH if m.startswith("tinygrad_tx.kernels")]
    assert not [m for m in kernel_modules if "tinygrad_tx.tuning" in GRAPH[m]]
