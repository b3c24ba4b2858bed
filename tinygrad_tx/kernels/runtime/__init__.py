"""The thread runtime and native intrinsics under the fast CPU kernels; it knows no particular op.

- row_blocks.py: ``in_row_blocks`` (blocks of rows pulled by sleeping helper threads), OpenBLAS's
  thread count (held to one inside blocks; following the free cores), and the team's handle.
- team.py: the team, the engine's own spinning threads, running compiled block functions.
- jobs.py: what every team job shares (``@block_function``, ``blocks_for``, ``span``).
- slots.py: ``Slots``, a block function's int64 argument slots declared once by name.
- native.py: numba intrinsics (sgemm by address, atomics, spin hint, array views over addresses).
- openblas.py: NumPy's bundled OpenBLAS through ctypes (thread count, sgemm's address).

Nothing here imports an op module (kernels/cpu/): the op modules import the runtime.
"""
