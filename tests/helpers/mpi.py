"""Two ranks: ``mpiexec -n 2`` (the MPICH wheel of the ``dist`` extra) where mpi4py and mpiexec are installed
(``requires_mpi`` skips with the reason elsewhere), and a simulated second rank for the in-process tests."""

import os
import shutil
import subprocess
import sys

import pytest

from tinygrad_tx import distributed
from tinygrad_tx.distributed import SingleProcess

from . import REPO


def mpiexec():
    """The launcher: the one installed beside this Python (the mpich wheel's), else the one on PATH, else None."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.access(beside, os.X_OK) else shutil.which("mpiexec")


def mpi_missing():
    """Why the 2-rank checks cannot run here, or '' when they can."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return 'mpi4py is not installed (pip install "tinygrad-tx[dist]")'
    return "" if mpiexec() else "no mpiexec beside this Python or on PATH (the mpich wheel provides one)"


requires_mpi = pytest.mark.skipif(bool(mpi_missing()), reason=mpi_missing() or "mpi available")


def launch_env():
    """The environment of launched ranks: this worktree on the path, one BLAS thread per rank, no launcher vars."""
    env = {k: v for k, v in os.environ.items() if k not in distributed.WORLD_SIZE_ENV + distributed.RANK_ENV}
    env.update(PYTHONPATH=REPO + os.pathsep + env.get("PYTHONPATH", ""), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    return env


class SimulatedRanks(SingleProcess):
    """Rank ``rank`` of ``world_size`` whose partners hold the same gradients: a sum multiplies by W."""

    def __init__(self, rank=0, world_size=2):
        self.rank, self.world_size, self.launched = rank, world_size, []

    def allreduce_sum_async(self, array):
        self.launched.append(array.size)
        array *= self.world_size
        return SingleProcess().allreduce_sum_async(array)  # a handle that is already done


def launch_ranks(ranks_args, timeout=120):
    """``python -m train.shakespeare`` under mpiexec, one argument list per rank group: [(ranks, argv), ...]
    (MPMD when they differ)."""
    command = [mpiexec()]
    for number, (ranks, argv) in enumerate(ranks_args):
        command += ([":"] if number else []) + [
            "-n",
            str(ranks),
            sys.executable,
            "-m",
            "mpi4py",
            "-m",
            "train.shakespeare",
            *argv,
        ]
    return subprocess.run(
        command,
        cwd=REPO,
        env=launch_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
