"""tinygrad_tx/tensor.pyi declares exactly what the runtime Tensor has (the operators and methods
tinygrad_tx.ops attaches included), with the same parameters, so type checkers and IDEs see them all."""

import ast
import inspect
import pathlib

import tinygrad_tx  # noqa: F401  (attaches the operators to Tensor)
from tinygrad_tx import tensor as tensor_module
from tinygrad_tx.tensor import Tensor

STUB = pathlib.Path(tensor_module.__file__).with_suffix(".pyi")
NOT_DECLARED = {"__module__", "__doc__", "__slots__", "__weakref__", "__dict__"}
KINDS = {inspect.Parameter.VAR_POSITIONAL: "*", inspect.Parameter.VAR_KEYWORD: "**"}


def stub_tree():
    return ast.parse(STUB.read_text(encoding="utf-8"))


def stub_parameters(function):
    """[(name, '*' | '**' | '', has a default)] of a stub's def."""
    args = function.args
    positional = args.posonlyargs + args.args
    defaults = [False] * (len(positional) - len(args.defaults)) + [True] * len(args.defaults)
    found = [(arg.arg, "", default) for arg, default in zip(positional, defaults)]
    if args.vararg:
        found.append((args.vararg.arg, "*", False))
    found += [(arg.arg, "", default is not None) for arg, default in zip(args.kwonlyargs, args.kw_defaults)]
    if args.kwarg:
        found.append((args.kwarg.arg, "**", False))
    return found


def runtime_parameters(member):
    function = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
    return [
        (p.name, KINDS.get(p.kind, ""), p.default is not inspect.Parameter.empty)
        for p in inspect.signature(function).parameters.values()
    ]


def stub_class_members():
    (cls,) = [node for node in stub_tree().body if isinstance(node, ast.ClassDef) and node.name == "Tensor"]
    functions = {node.name: node for node in cls.body if isinstance(node, ast.FunctionDef)}
    attributes = {node.target.id for node in cls.body if isinstance(node, ast.AnnAssign)}
    return functions, attributes


def test_stub_declares_every_tensor_member_and_nothing_else():
    functions, attributes = stub_class_members()
    runtime = {name for name in vars(Tensor) if name not in NOT_DECLARED}
    declared = set(functions) | attributes
    assert not runtime - declared, f"tensor.pyi lacks {sorted(runtime - declared)}: declare them"
    assert not declared - runtime, f"tensor.pyi declares {sorted(declared - runtime)}, which Tensor does not have"


def test_stub_parameters_match_the_runtime_signatures():
    functions, _ = stub_class_members()
    for name, node in functions.items():
        member = vars(Tensor)[name]
        if type(member).__name__ == "wrapper_descriptor":  # object's own __hash__: nothing to compare
            continue
        assert stub_parameters(node) == runtime_parameters(member), f"Tensor.{name}: stub and runtime differ"
        is_property = any(isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list)
        assert is_property == isinstance(member, property), f"Tensor.{name}: property in one, not the other"


def test_stub_declares_the_module_level_names():
    tree = stub_tree()
    declared = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    declared |= {node.target.id for node in tree.body if isinstance(node, ast.AnnAssign)}
    public = {
        name
        for name, value in vars(tensor_module).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == tensor_module.__name__
    }
    assert public <= declared, f"tensor.pyi lacks module-level {sorted(public - declared)}"
    assert all(hasattr(tensor_module, name) for name in declared), "tensor.pyi declares names tensor.py lacks"


def test_the_checker_notices_a_missing_operator(monkeypatch):
    """Test the tester: a method attached at runtime but absent from the stub fails the check."""
    monkeypatch.setattr(Tensor, "cummax", lambda self, axis=0: self, raising=False)
    try:
        test_stub_declares_every_tensor_member_and_nothing_else()
    except AssertionError as exc:
        assert "cummax" in str(exc)
    else:
        raise AssertionError("a method missing from the stub went unnoticed")


def test_a_type_checker_sees_the_operators(tmp_path):
    """mypy, given code that uses Tensor's attached operators, infers Tensor and catches a misuse."""
    api = __import__("pytest").importorskip("mypy.api", reason='mypy is not installed (pip install -e ".[lint]")')
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from tinygrad_tx import Tensor\n"
        "x = Tensor([1.0, 2.0])\n"
        "reveal_type((x @ x + 1).sum(axis=0).exp().T)\n"
        "count: int = x * 2\n",
        encoding="utf-8",
    )
    root = STUB.parent.parent
    out, _, status = api.run(
        [
            str(probe),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--python-version",
            "3.10",
            "--config-file",
            str(root / "pyproject.toml"),
            "--no-error-summary",
        ]
    )
    assert 'Revealed type is "tinygrad_tx.tensor.Tensor"' in out, out
    assert 'expression has type "Tensor", variable has type "int"' in out and status == 1, out
