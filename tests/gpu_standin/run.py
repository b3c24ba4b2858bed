"""Run a module with device 'gpu' served by the stand-in: ``python -m gpu_standin.run -m MODULE [ARGS...]``.

    PYTHONPATH=.:tests python -m gpu_standin.run -m train.shakespeare --device gpu --max_iters 3 \\
        --n_layer 1 --n_head 2 --n_embd 32 --block_size 8 --batch_size 2 --eval_iters 1 --sample_tokens 4 \\
        --peak_flops 1e12

The module runs as ``__main__`` (as ``python -m`` would) after ``gpu_standin.install()``, so every
CuPy call it makes meets the stand-in's rules and every kernel runs in the emulator. Each kernel
launch is interpreted and matmuls are NumPy's, so keep the model tiny (a few rows per launch, a few
iterations) and give ``--peak_flops``: otherwise the trainer times eleven 4096^3 GEMMs for its MFU.
"""

import runpy
import sys

from . import install
from helpers.optional import cuda_emulation_missing  # tests/ is on the path, as for the stand-in

USAGE = "usage: python -m gpu_standin.run -m MODULE [ARGS...]"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2 or argv[0] != "-m":
        print(USAGE, file=sys.stderr)
        return 2
    module, arguments = argv[1], argv[2:]
    missing = cuda_emulation_missing()  # its kernels are compiled by NVRTC and run in the PTX emulator
    if missing:
        print(f"error: gpu_standin.run needs CuPy and NVRTC, no GPU: {missing}", file=sys.stderr)
        return 2
    install()
    sys.argv = [module] + arguments
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
