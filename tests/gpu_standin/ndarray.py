"""The stand-in's ``cupy.ndarray``: NumPy memory behind CuPy's rules for crossing the host/device line.

Real CuPy keeps an array on the device; moving it to the host must be asked for (``.get()``,
``cupy.asnumpy``, ``.item()``, ``.tolist()``, ``float()``/``int()``/``bool()`` of one element). Every
implicit route raises: ``numpy.asarray(a)`` hits ``__array__`` (CuPy's own TypeError), there is no
``__index__``, and a NumPy array handed to a device operation is refused ("Unsupported type").
This class keeps its data in a private NumPy array and applies those rules; attributes are limited
to the names ``cupy.ndarray`` has (``cupy_api.json``) and method calls are bound to CuPy's signatures.
"""

import operator

import numpy as np

from . import api

IMPLICIT_CONVERSION_MESSAGE = (
    "Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy array explicitly."
)


class ndarray:
    """An array "on the device": NumPy storage, CuPy's surface."""

    __slots__ = ("_storage",)
    __array_priority__ = 100
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        self._storage = np.empty(shape, dtype=dtype, order=order)

    # ---------------------------------------------------------------- explicit host transfers
    def get(self, stream=None, order="C", out=None, blocking=True):
        host = np.array(self._storage, order=order)
        if out is not None:
            out[...] = host
            return out
        return host

    def set(self, arr, stream=None):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray. Got {type(arr)}")
        self._storage[...] = arr

    # ---------------------------------------------------------------- refused implicit transfers
    def __array__(self, dtype=None, copy=None):
        raise TypeError(IMPLICIT_CONVERSION_MESSAGE)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """NumPy ufuncs on device arrays run CuPy's ufunc of the same name (CuPy's dispatch), if there is one."""
        from . import module

        device_ufunc = module.CUPY.__dict__.get(ufunc.__name__)
        if not isinstance(device_ufunc, module.Ufunc):
            return NotImplemented
        return (
            device_ufunc.__call__(*inputs, **kwargs)
            if method == "__call__"
            else getattr(device_ufunc, method)(*inputs, **kwargs)
        )

    def __array_function__(self, func, types, args, kwargs):
        """``numpy.f(device_array)`` runs ``cupy.f`` where CuPy has it, else NumPy raises TypeError (as with CuPy)."""
        from . import module

        device_function = module.lookup(func.__module__, func.__name__)
        return NotImplemented if device_function is None else device_function(*args, **kwargs)

    # ---------------------------------------------------------------- what CuPy allows (one element, synchronising)
    def __float__(self):
        return float(self._storage)

    def __int__(self):
        return int(self._storage)

    def __complex__(self):
        return complex(self._storage)

    def __bool__(self):
        return bool(self._storage)

    def __len__(self):
        return len(self._storage)

    def __iter__(self):
        if self._storage.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (wrap(row) for row in self._storage)

    def __repr__(self):
        return repr(self._storage)

    def __str__(self):
        return str(self._storage)

    def __copy__(self):
        return wrap(self._storage.copy())

    def __deepcopy__(self, memo):
        return wrap(self._storage.copy())

    def __reduce__(self):
        return (wrap, (self._storage.copy(),))

    # ---------------------------------------------------------------- indexing
    def __getitem__(self, key):
        return wrap(self._storage[index_operand(key)])

    def __setitem__(self, key, value):
        self._storage[index_operand(key)] = device_operand(value, "ndarray.__setitem__")

    # ---------------------------------------------------------------- every other attribute: CuPy's names only
    def __getattr__(self, name):
        entry = api.ndarray_entry(name)
        if entry is None or not hasattr(self._storage, name):
            raise AttributeError(f"'cupy.ndarray' object has no attribute '{name}'")
        value = getattr(self._storage, name)
        if not callable(value):
            return wrap(value)
        return checked_call(value, f"cupy.ndarray.{name}", entry["params"], drop_self=True)


def _binary(name, reflected=False, in_place=False):
    apply = getattr(operator, name)

    def method(self, other):
        other_storage = device_operand(other, f"ndarray.__{name}__", strict=True)
        if in_place:
            apply(self._storage, other_storage)
            return self
        return wrap(apply(other_storage, self._storage) if reflected else apply(self._storage, other_storage))

    return method


for _name in (
    "add",
    "sub",
    "mul",
    "truediv",
    "floordiv",
    "mod",
    "pow",
    "matmul",
    "and",
    "or",
    "xor",
    "lshift",
    "rshift",
):
    _op = _name + "_" if _name in ("and", "or") else _name
    setattr(ndarray, f"__{_name}__", _binary(_op))
    setattr(ndarray, f"__r{_name}__", _binary(_op, reflected=True))
    setattr(ndarray, f"__i{_name}__", _binary(f"i{_name}", in_place=True))
for _name in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(ndarray, f"__{_name}__", _binary(_name))
for _name, _unary in (("neg", operator.neg), ("pos", operator.pos), ("abs", operator.abs), ("invert", operator.invert)):
    setattr(ndarray, f"__{_name}__", lambda self, _unary=_unary: wrap(_unary(self._storage)))


# ---------------------------------------------------------------- crossing the line
def wrap(value):
    """NumPy results -> device arrays (scalars too: CuPy's reductions return 0-d device arrays)."""
    if isinstance(value, np.ndarray):
        array = ndarray.__new__(ndarray)
        array._storage = value
        return array
    if isinstance(value, np.generic):
        return wrap(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(wrap(v) for v in value)
    if isinstance(value, list):
        return [wrap(v) for v in value]
    return value


def storage(array: ndarray) -> np.ndarray:
    """The NumPy memory behind a device array (for the kernel launcher and cupyx)."""
    return array._storage


def host_array_error(value, where):
    return TypeError(
        f"Unsupported type {type(value)} (a host NumPy array given to {where}: move it with cupy.asarray first)"
    )


def device_operand(value, where, strict=False):
    """An operand of a device operation -> what NumPy computes with; host arrays raise as CuPy does.

    ``strict`` (operators and ufuncs) also refuses lists and tuples: CuPy's elementwise kernels take
    device arrays and scalars only. Elsewhere sequences are unwrapped item by item (``concatenate``).
    """
    if isinstance(value, ndarray):
        return value._storage
    if isinstance(value, np.ndarray):
        raise host_array_error(value, where)
    if isinstance(value, (list, tuple)):
        if strict:
            raise TypeError(f"Unsupported type {type(value)} ({where} takes device arrays and scalars)")
        return type(value)(device_operand(v, where) for v in value)
    return value


def index_operand(key):
    """An index: device arrays unwrap; NumPy/list indices are accepted (CuPy copies them to the device)."""
    if isinstance(key, tuple):
        return tuple(index_operand(k) for k in key)
    return key._storage if isinstance(key, ndarray) else key


def checked_call(function, name, params, drop_self=False, host_ok=False):
    """``function`` (NumPy's) behind CuPy's signature ``params``: unknown keywords and extra arguments
    raise TypeError as CuPy would, host arrays are refused (unless ``host_ok``), results become device arrays."""
    signature = api.signature(params, drop_self)

    def call(*args, **kwargs):
        if signature is not None:
            try:
                signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise TypeError(f"{name}(): {exc} (CuPy's signature is {signature})") from None
        if not host_ok:
            args = [device_operand(a, name) for a in args]
            kwargs = {k: device_operand(v, name) for k, v in kwargs.items()}
        else:
            args = [a._storage if isinstance(a, ndarray) else a for a in args]
        return wrap(function(*args, **kwargs))

    call.__name__ = name
    return call
