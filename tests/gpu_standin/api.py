"""CuPy's API surface as recorded in ``cupy_api.json`` (regenerate: ``python -m gpu_standin.make_api_list``)."""

import functools
import inspect
import json
import os

API_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cupy_api.json")


@functools.cache
def load() -> dict:
    with open(API_PATH) as handle:
        return json.load(handle)


def entry(section: str, name: str):
    """The record of ``name`` in a section ('cupy', 'cupyx', 'cupy.random', 'cupy.linalg'), or None if CuPy lacks it."""
    return load().get(section, {}).get(name)


def ndarray_entry(name: str):
    return load()["ndarray"].get(name)


def generator_params(name: str):
    """The parameters of ``cupy.random.Generator.<name>``; KeyError when CuPy's Generator has no such method."""
    return load()["Generator"][name]


_REQUIRED = inspect.Parameter.empty


@functools.cache
def _signature(params, drop_self):
    parameters = [
        inspect.Parameter(name, getattr(inspect.Parameter, kind), default=None if has_default else _REQUIRED)
        for name, kind, has_default in params
    ]
    if drop_self and parameters and parameters[0].name == "self":
        parameters = parameters[1:]
    return inspect.Signature(parameters)


def signature(params, drop_self=False):
    """An ``inspect.Signature`` to bind calls against (defaults are placeholders), or None when CuPy gives none."""
    if params is None:
        return None
    return _signature(tuple(tuple(p) for p in params), drop_self)
