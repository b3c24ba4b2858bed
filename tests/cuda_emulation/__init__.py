"""CUDA kernels proven on the CPU: NVRTC compilation with CuPy's options, and a PTX interpreter.

- ``nvrtc.compile_to_ptx(source, arch)`` / ``compile_cuda``: real NVRTC, CuPy's options, arch pinned.
- ``interpreter.launch(ptx, kernel_name, grid, block, args, shared_bytes=0)``: run a kernel's PTX on
  NumPy arrays (written in place), with exact float32 rounding, bounds-checked global memory and a
  shared-memory race check (see the module docstrings for what each models).
- ``sources``: the kernel strings of ``tinygrad_tx.kernels.cuda``, taken from the module itself.
- ``elementwise``: ElementwiseKernels compiled and run as CuPy generates them.
Importable from the tests as ``cuda_emulation`` (pytest puts tests/ on sys.path). Needs
``pip install cupy-cuda12x nvidia-cuda-nvrtc-cu12`` (no GPU required).
"""

from .interpreter import BarrierDivergence, Struct, UnsupportedInstruction, launch
from .memory import EmulationError, GlobalMemoryRace, MemoryFault, SharedMemoryRace
from .nvrtc import ARCHS, CompileError, compile_cuda, compile_to_ptx

__all__ = [
    "ARCHS",
    "BarrierDivergence",
    "CompileError",
    "EmulationError",
    "GlobalMemoryRace",
    "MemoryFault",
    "SharedMemoryRace",
    "Struct",
    "UnsupportedInstruction",
    "compile_cuda",
    "compile_to_ptx",
    "launch",
]
