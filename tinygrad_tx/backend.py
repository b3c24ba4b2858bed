"""Device name -> array module. The only file in the project that imports CuPy.

Everything that differs between NumPy (``"cpu"``) and CuPy (``"gpu"``, alias ``"cuda"``) lives
here: picking the module, moving arrays, scatter-add, the seeded random generator, synchronising.
CuPy is imported lazily, the first time the GPU is asked for, so ``import tinygrad_tx`` stays light.
"""

import numpy as np

from .errors import DeviceError, TinygradTxError

GPU_INSTALL_HINT = 'pip install "tinygrad-tx[gpu]" (CuPy for CUDA 12) on a machine with an NVIDIA GPU'

_cupy = None  # the module once loaded
ARRAY_TYPES = (np.ndarray,)  # grows to (np.ndarray, cupy.ndarray) once CuPy is loaded
DEFAULT_FLOAT = np.float32


def normalize_device(device):
    """'cpu' | 'gpu' | 'cuda' (any case, or None) -> 'cpu' or 'gpu'."""
    if device is None:
        return "cpu"
    name = str(device).lower()
    if name == "cpu":
        return "cpu"
    if name in ("gpu", "cuda") or name.startswith("cuda:"):
        return "gpu"
    raise DeviceError(f"unknown device {device!r}: use 'cpu' or 'gpu' (alias 'cuda')")


def _load_cupy():
    global _cupy, ARRAY_TYPES
    if _cupy is not None:
        return _cupy
    try:
        import cupy
    except ImportError as exc:
        raise DeviceError(
            f"device 'gpu' needs CuPy, which is not installed ({exc}); install it with: {GPU_INSTALL_HINT}"
        ) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken: CuPy raises its own runtime errors
        raise DeviceError(
            f"device 'gpu': CuPy is installed but no CUDA device is usable ({exc}); "
            f"use --device cpu or {GPU_INSTALL_HINT}"
        ) from None
    if count < 1:
        raise DeviceError(f"device 'gpu': CuPy found no CUDA device; use device 'cpu' or {GPU_INSTALL_HINT}")
    _cupy = cupy
    ARRAY_TYPES = (np.ndarray, cupy.ndarray)
    return cupy


def cupy_module():
    """The CuPy module, loaded on first use; DeviceError naming the fix where CuPy or a GPU is missing.

    For the engine's own GPU helpers outside this file (distributed/nccl.py): they get CuPy from here
    instead of importing it, so this stays the one file that does."""
    return _load_cupy()


def gpu_available():
    """(True, '') when CuPy and a CUDA device are usable, else (False, reason)."""
    try:
        _load_cupy()
        return True, ""
    except DeviceError as exc:
        return False, str(exc)


def gpu_name():
    """The current CUDA device's name (e.g. 'NVIDIA H200'); raises DeviceError without a usable GPU."""
    cupy = _load_cupy()
    name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.runtime.getDevice())["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def gpu_memory_held_bytes():
    """Bytes CuPy's default memory pool holds. The pool keeps freed blocks for reuse, so after a
    training step this is the step's peak device memory (what bench.train_step reports on the GPU)."""
    return _load_cupy().get_default_memory_pool().total_bytes()


def array_module(device):
    """The array module (numpy or cupy) for a device name."""
    return np if normalize_device(device) == "cpu" else _load_cupy()


def require_device(device):
    """The device's name ('cpu' | 'gpu') once it is known to be usable; DeviceError naming the fix if not.

    What a program calls before any work, so a GPU run without CuPy or a GPU stops at once."""
    array_module(device)
    return normalize_device(device)


def is_gpu_array(array):
    return _cupy is not None and isinstance(array, _cupy.ndarray)


def xp_of(array):
    """The array module that owns ``array``: numpy, cupy, or for a Tensor its ``tinygrad_tx.ops.tensor_module``
    (NumPy's names over Tensor ops, so one formula runs on arrays and on Tensors); numpy for scalars and lists."""
    if isinstance(array, np.ndarray):
        return np
    if is_gpu_array(array):
        return _cupy
    return getattr(array, "array_module", np)


def device_of(array):
    return "gpu" if is_gpu_array(array) else "cpu"


def as_array(data, device="cpu", dtype=None):
    """Any array-like (scalar, list, NumPy or CuPy array) -> an array on ``device``."""
    if normalize_device(device) == "cpu":
        if is_gpu_array(data):
            data = data.get()
        return np.asarray(data, dtype=dtype)
    return _load_cupy().asarray(data, dtype=dtype)


def to_numpy(array):
    """Always a NumPy ndarray (copied from the GPU when needed)."""
    if is_gpu_array(array):
        return array.get()
    return np.asarray(array)


def scatter_add(target, indices, values):
    """``target[indices] += values`` where repeated indices all add up (unbuffered ``add.at``; CuPy has it
    since v12 and deprecates ``cupyx.scatter_add`` for it)."""
    xp = xp_of(target)
    if xp is not np and xp is not _cupy:  # a Tensor (create_graph): the recorded, differentiable ScatterAdd op
        return xp.scatter_add(target, indices, values)
    xp.add.at(target, indices, values)
    return target


def synchronize(device="cpu"):
    """Wait for queued GPU work (a no-op on the CPU). Benchmarks need it to time honestly."""
    if normalize_device(device) == "gpu":
        _load_cupy().cuda.get_current_stream().synchronize()


# ---------------------------------------------------------------- several GPUs (tinygrad_tx.distributed)
def use_gpu(index):
    """Make GPU ``index`` (a rank's local rank, modulo the GPUs present) current for this process."""
    cupy = _load_cupy()
    count = cupy.cuda.runtime.getDeviceCount()
    if count > 1:  # with one GPU it is already the current one
        cupy.cuda.Device(index % count).use()


# ---------------------------------------------------------------- seeded random numbers
_generators: dict = {}  # device name -> its seeded Generator
_seed = 1337


def manual_seed(seed):
    """Reseed the generators of every device (dropout, init, sampling all draw from them)."""
    global _seed
    if int(seed) != seed or seed < 0:
        raise TinygradTxError(f"manual_seed: the seed must be a non-negative integer, got {seed!r}")
    _seed = int(seed)
    _generators.clear()


def rng(device="cpu"):
    """The seeded ``Generator`` of a device (numpy.random.Generator or cupy.random.Generator)."""
    device = normalize_device(device)
    gen = _generators.get(device)
    if gen is None:
        gen = np.random.default_rng(_seed) if device == "cpu" else _load_cupy().random.default_rng(_seed)
        _generators[device] = gen
    return gen


def get_rng_state():
    """A picklable snapshot of the CPU generator (what checkpoints store)."""
    return {"seed": _seed, "cpu": rng("cpu").bit_generator.state}


def set_rng_state(state):
    manual_seed(state["seed"])
    rng("cpu").bit_generator.state = state["cpu"]
