"""Regenerate ``cupy_api.json``, the names and signatures of the installed CuPy that the stand-in may expose.

    PYTHONPATH=tests python -m gpu_standin.make_api_list      # needs cupy-cuda12x, not a GPU

CuPy imports without a GPU (only device calls fail), so its API surface can be read on any machine:
the functions, ufuncs and constants of ``cupy``, ``cupyx`` and ``cupy.random``, the attributes of
``cupy.ndarray`` and the methods of ``cupy.random.Generator``. Each callable's parameters come from
``inspect.signature`` or, for Cython functions and ufuncs, from the signature line CuPy embeds in the
docstring. A parameter is stored as ``[name, kind, has_default]`` (kind as ``inspect.Parameter``
names it); ``null`` means CuPy publishes no signature, and the stand-in then checks the name only.
"""

import argparse
import ast
import inspect
import json
import os
import re
import warnings

API_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cupy_api.json")
UFUNC_METHODS = ("at", "reduce", "reduceat", "accumulate", "outer")


def _params_from_text(text):
    """'(x1, x2, /, out=None, *, dtype=None)' -> [[name, kind, has_default], ...], or None if unparsable."""
    text = text.replace("\\", "")
    text = re.sub(r"(?<=[(,])(\s*)\w+\s+(?=\w+\s*[=,)])", r"\1", text)  # Cython's typed 'str code=None' -> 'code=None'
    try:
        args = ast.parse(f"def f{text}: pass").body[0].args
    except SyntaxError:
        return None
    params = []
    positional = args.posonlyargs + args.args
    first_default = len(positional) - len(args.defaults)
    for index, arg in enumerate(positional):
        kind = "POSITIONAL_ONLY" if index < len(args.posonlyargs) else "POSITIONAL_OR_KEYWORD"
        params.append([arg.arg, kind, index >= first_default])
    if args.vararg:
        params.append([args.vararg.arg, "VAR_POSITIONAL", False])
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        params.append([arg.arg, "KEYWORD_ONLY", default is not None])
    if args.kwarg:
        params.append([args.kwarg.arg, "VAR_KEYWORD", False])
    return params


def _embedded_signature(obj):
    """The '(...)' of a Cython docstring's first line 'name(...) -> result', or None."""
    first_line = (getattr(obj, "__doc__", None) or "").strip().split("\n")[0]
    start, end = first_line.find("("), first_line.rfind(")")
    return first_line[start : end + 1] if 0 <= start < end else None


def parameters(obj):
    """The parameters of a callable as stored in the JSON (see the module docstring)."""
    try:
        signature = inspect.signature(obj)
        return [[p.name, p.kind.name, p.default is not inspect.Parameter.empty] for p in signature.parameters.values()]
    except (TypeError, ValueError):
        text = _embedded_signature(obj)
        return _params_from_text(text) if text else None


def describe(obj):
    kind = type(obj).__name__
    entry = {"kind": kind, "params": parameters(obj) if callable(obj) and not isinstance(obj, type) else None}
    if kind == "ufunc":
        entry["ufunc_methods"] = [m for m in UFUNC_METHODS if hasattr(obj, m)]
    return entry


def surface(module):
    return {name: describe(getattr(module, name)) for name in sorted(dir(module)) if not name.startswith("__")}


def build():
    warnings.simplefilter("ignore")
    import cupy
    import cupyx

    return {
        "version": cupy.__version__,
        "cupy": surface(cupy),
        "cupyx": surface(cupyx),
        "cupy.random": surface(cupy.random),
        "ndarray": {name: describe(getattr(cupy.ndarray, name)) for name in sorted(dir(cupy.ndarray))},
        "cupy.linalg": surface(cupy.linalg),
        # constructors (from the class docstring: Cython classes publish no signature) and launch methods
        "kernels": {
            cls.__name__: {
                "init": _params_from_text(_embedded_signature(cls)),
                **{
                    method: parameters(getattr(cls, method))
                    for method in ("__call__", "get_function")
                    if hasattr(cls, method)
                },
            }
            for cls in (cupy.RawModule, cupy.RawKernel, cupy.ElementwiseKernel)
        },
        "Generator": {
            name: parameters(getattr(cupy.random.Generator, name))
            for name in sorted(dir(cupy.random.Generator))
            if not name.startswith("_")
        },
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m gpu_standin.make_api_list", description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=API_PATH, help="where to write the JSON (default: the committed list)")
    output = parser.parse_args(argv).output
    api = build()
    with open(output + ".tmp", "w") as handle:
        json.dump(api, handle, indent=0, sort_keys=True)
        handle.write("\n")
    os.replace(output + ".tmp", output)
    print(
        f"CuPy {api['version']}: {len(api['cupy'])} cupy names, {len(api['ndarray'])} ndarray attributes, "
        f"{len(api['Generator'])} Generator methods -> {output}"
    )


if __name__ == "__main__":
    main()
