"""The engine's layers import only downward, and no import chain comes back to where it started.

Every ``import`` statement is read from the source, function-level ones included (a lazy import
still ties two modules together), so this holds for what runs, not only for what loads first.
The order is written down in docs/layout.md.
"""

import ast
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = REPO / "tinygrad_tx"

# Bottom to top; a module may import its own layer and the layers below it. The longest prefix wins.
LAYERS = [
    ("tinygrad_tx.errors", "tinygrad_tx.scoped"),
    ("tinygrad_tx.backend",),
    ("tinygrad_tx.anomaly",),
    ("tinygrad_tx.tensor",),
    ("tinygrad_tx.function",),
    ("tinygrad_tx.differentiable", "tinygrad_tx.graph"),
    ("tinygrad_tx.ops",),
    ("tinygrad_tx.kernels.reference",),
    ("tinygrad_tx.kernels.runtime",),
    ("tinygrad_tx.kernels.cpu", "tinygrad_tx.kernels.cuda"),
    ("tinygrad_tx.kernels",),
    ("tinygrad_tx.nn",),
    ("tinygrad_tx.optim", "tinygrad_tx.gradcheck", "tinygrad_tx.factories", "tinygrad_tx.serialization"),
    ("tinygrad_tx.autograd",),
    ("tinygrad_tx.viz", "tinygrad_tx.tuning", "tinygrad_tx.distributed"),
    ("tinygrad_tx",),
]


def engine_modules() -> dict[str, tuple[pathlib.Path, bool]]:
    """{dotted module name: (its file, whether it is a package's __init__)}."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def _absolute(module: str | None, level: int, importer: str, is_package: bool) -> str:
    if level == 0:
        return module or ""
    base = importer.split(".")[: None if is_package else -1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imports_of(name: str, path: pathlib.Path, is_package: bool, modules) -> dict[str, int]:
    """{engine module imported: line of the first import}, at any depth in the file."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node.module, node.level, name, is_package)
            # `from pkg import sub` imports the submodule; `from pkg import name` the package itself
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names]
        for target in targets:
            while target and target not in modules:  # `import a.b.c` of a non-module name: its module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.setdefault(target, node.lineno)
    return found


def layer_of(module: str) -> int:
    best, best_length = None, -1
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = rank, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS and to docs/layout.md"
    return best


def import_graph():
    modules = engine_modules()
    return {name: imports_of(name, path, is_package, modules) for name, (path, is_package) in modules.items()}


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            child = next(stack[-1], None)
            if child is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(child) == 1:
                return path[path.index(child) :] + [child]
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append(iter(sorted(graph[child])))
    return None


def test_every_engine_module_is_in_a_layer():
    for name in engine_modules():
        layer_of(name)


def test_no_module_imports_a_layer_above_its_own():
    upward = [
        f"{importer} (layer {layer_of(importer)}) imports {target} (layer {layer_of(target)}) at line {line}"
        for importer, targets in import_graph().items()
        for target, line in targets.items()
        if layer_of(target) > layer_of(importer)
    ]
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_the_engine_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checker_finds_a_cycle_and_an_upward_import():
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}}) is None
    assert layer_of("tinygrad_tx.backend") < layer_of("tinygrad_tx.kernels.cpu.layer_norm")
    assert layer_of("tinygrad_tx.kernels.reference") < layer_of("tinygrad_tx.kernels.dispatch")


def test_backend_is_a_leaf():
    allowed = {"tinygrad_tx.errors", "tinygrad_tx.scoped"}
    assert set(import_graph()["tinygrad_tx.backend"]) <= allowed
