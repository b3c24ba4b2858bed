"""Data-parallel building blocks: communicators (one process, MPI, NCCL), gradient buckets and ZeRO-1.

    comm = init_communicator("auto", device="cpu")   # SingleProcess unless mpiexec started several ranks
    buckets = GradientBuckets(model.parameters(), comm, bucket_bytes)
    optimizer = ZeroOptimizer(optimizer, comm)

comm.py holds the collectives (nccl.py its NCCL and CUDA-stream helpers), buckets.py the all-reduce
that overlaps backward, zero.py the sharded optimizer; train/distributed.py uses them with nanoGPT's
semantics (docs/distributed.md).
"""

from .buckets import GradientBuckets
from .comm import (
    BACKENDS,
    RANK_ENV,
    WORLD_SIZE_ENV,
    DistributedError,
    HostCopyCommunicator,
    MPICommunicator,
    NCCLCommunicator,
    SingleProcess,
    abort_other_ranks,
    exit_together,
    init_communicator,
    launched_rank,
    launched_world_size,
)
from .zero import ZeroOptimizer

__all__ = [
    "BACKENDS",
    "RANK_ENV",
    "WORLD_SIZE_ENV",
    "DistributedError",
    "GradientBuckets",
    "HostCopyCommunicator",
    "MPICommunicator",
    "NCCLCommunicator",
    "SingleProcess",
    "ZeroOptimizer",
    "abort_other_ranks",
    "exit_together",
    "init_communicator",
    "launched_rank",
    "launched_world_size",
]
