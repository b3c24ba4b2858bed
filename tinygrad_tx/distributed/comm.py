"""Communicators: the collectives data-parallel training needs, over one process, MPI or NCCL.

    comm = init_communicator("auto", device="cpu")   # SingleProcess unless launched by mpiexec
    comm.allreduce_sum(flat)                          # in place; every rank ends with the same array
    comm.allreduce_mean(flat); comm.broadcast(array, root=0); comm.barrier()
    whole = comm.allgather(part, counts)              # ranks' parts (sizes in counts), concatenated
    mine = comm.reduce_scatter(flat, counts)          # the sum of flat, cut by counts: this rank's piece
    handle = comm.allreduce_sum_async(bucket); ...; handle.wait()

Every operation works on one flat, contiguous array. ``SingleProcess`` (the default) never imports
mpi4py and its collectives return their input unchanged, so a one-process run takes exactly the
path it always took. ``MPICommunicator`` moves NumPy buffers with mpi4py (no pickling).
``NCCLCommunicator`` moves CuPy buffers with NCCL: rank 0 makes the unique id and broadcasts it
over MPI (llm.c's way); where NCCL is missing (or on the CuPy stand-in) the GPU arrays go through
the MPI communicator by host copies. mpi4py comes in only through this module, CuPy only through
``backend`` (the one file that imports it); nccl.py holds the NCCL and stream helpers.

The launcher, not this module, decides the world: ``mpiexec -n 4 python -m mpi4py -m train.shakespeare``.
"""

import os
import sys
import time

import numpy as np

from .. import backend
from ..errors import TinygradTxError
from .nccl import gpu_current_stream, gpu_record_event, gpu_side_stream, gpu_stream_wait, nccl_dtype, nccl_module

BACKENDS = ("auto", "mpi", "nccl")
# what launchers set: MPICH/Hydra and Slurm's PMI, Open MPI, and Intel MPI (PMI too)
WORLD_SIZE_ENV = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "SLURM_NTASKS")
RANK_ENV = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "SLURM_PROCID")
DIST_INSTALL_HINT = 'pip install "tinygrad-tx[dist]" (mpi4py and the MPICH wheel)'


class DistributedError(TinygradTxError):
    """A launch that cannot run data-parallel (no mpi4py), or ranks that disagree."""


def launched_world_size() -> int:
    """The number of ranks the launcher started (1 when no launcher variable is set)."""
    for name in WORLD_SIZE_ENV:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def launched_rank() -> int:
    """This process's rank as the launcher numbered it (0 when no launcher variable is set)."""
    for name in RANK_ENV:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


# Seen in CI: a failing rank's error line printed, then MPI_Abort, and mpiexec reported an empty stderr.
ABORT_GRACE_SECONDS = 0.5


def abort_other_ranks(status: int) -> None:
    """End every rank of a launched job with ``status`` (MPI_Abort); nothing in a one-process run.

    With plain ``python`` (not ``python -m mpi4py``) a rank that stops before a collective would
    leave the others waiting in it forever.
    """
    if launched_world_size() > 1:
        try:
            from mpi4py import MPI
        except ImportError:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(ABORT_GRACE_SECONDS)  # MPI_Abort kills the job at once: let the launcher forward our last lines
        MPI.COMM_WORLD.Abort(status)


def exit_together(status: int) -> None:
    """End this rank with ``status`` when every rank ends here at once (a Ctrl-C agreed in an all-reduce); nothing
    in a one-process run. MPI is finalized and the process exits without MPI_Abort, which could tear the job
    down before the launcher has forwarded the ranks' last lines.
    """
    if launched_world_size() > 1:
        from mpi4py import MPI

        sys.stdout.flush()
        sys.stderr.flush()
        MPI.Finalize()
        os._exit(status)


class _Done:
    """The handle of a collective that has already finished."""

    def wait(self) -> None:
        pass


class SingleProcess:
    """World size 1: every collective is the identity (the arrays are not touched)."""

    name, rank, local_rank, world_size = "single", 0, 0, 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def allreduce_sum(self, array):
        return array

    def allreduce_sum_async(self, array):
        return _Done()

    def allreduce_mean(self, array):
        self.allreduce_sum(array)
        if self.world_size > 1:
            array /= self.world_size
        return array

    def broadcast(self, array, root: int = 0):
        return array

    def allgather(self, part, counts):
        return part.copy()

    def reduce_scatter(self, array, counts):
        return array[: counts[0]].copy()

    def barrier(self) -> None:
        pass

    def gather_objects(self, value):
        """[value of rank 0, ..., value of rank W-1] on every rank (small picklable things)."""
        return [value]

    def abort(self, code: int) -> None:
        pass


def _check_counts(name, counts, world_size, size=None):
    if len(counts) != world_size or (size is not None and sum(counts) != size):
        raise DistributedError(
            f"{name}: counts {list(counts)} must have one entry per rank ({world_size})"
            + (f" and add up to the array's {size} elements" if size is not None else "")
        )


class MPICommunicator(SingleProcess):
    """Collectives over mpi4py's COMM_WORLD on NumPy arrays (buffer interface, no pickling)."""

    name = "mpi"

    def __init__(self, mpi):
        self.MPI, self.comm = mpi, mpi.COMM_WORLD
        self.rank, self.world_size = self.comm.Get_rank(), self.comm.Get_size()
        self.local_rank = self.comm.Split_type(mpi.COMM_TYPE_SHARED).Get_rank()

    def allreduce_sum(self, array):
        self.comm.Allreduce(self.MPI.IN_PLACE, array, op=self.MPI.SUM)
        return array

    def allreduce_sum_async(self, array):
        return self.comm.Iallreduce(self.MPI.IN_PLACE, array, op=self.MPI.SUM)  # Request.wait()

    def broadcast(self, array, root: int = 0):
        self.comm.Bcast(array, root=root)
        return array

    def allgather(self, part, counts):
        _check_counts("allgather", counts, self.world_size)
        whole = np.empty(sum(counts), part.dtype)
        self.comm.Allgatherv(part, [whole, list(counts)])
        return whole

    def reduce_scatter(self, array, counts):
        _check_counts("reduce_scatter", counts, self.world_size, array.size)
        mine = np.empty(counts[self.rank], array.dtype)
        self.comm.Reduce_scatter(array, mine, list(counts), op=self.MPI.SUM)
        return mine

    def barrier(self) -> None:
        self.comm.Barrier()

    def gather_objects(self, value):
        return self.comm.allgather(value)

    def abort(self, code: int) -> None:
        self.comm.Abort(code)


class HostCopyCommunicator(SingleProcess):
    """GPU arrays through an MPI communicator by host copies (MPI wheels are not CUDA-aware)."""

    name = "mpi (host copies)"

    def __init__(self, host):
        self.host = host
        self.rank, self.local_rank, self.world_size = host.rank, host.local_rank, host.world_size

    def _through_host(self, array, collective):
        result = collective(backend.to_numpy(array))
        if backend.is_gpu_array(array):
            array[...] = backend.as_array(result, "gpu")
            return array
        return result

    def allreduce_sum(self, array):
        return self._through_host(array, self.host.allreduce_sum)

    def allreduce_sum_async(self, array):
        self.allreduce_sum(array)
        return _Done()

    def broadcast(self, array, root: int = 0):
        return self._through_host(array, lambda host: self.host.broadcast(host, root))

    def allgather(self, part, counts):
        whole = self.host.allgather(backend.to_numpy(part), counts)
        return backend.as_array(whole, backend.device_of(part))

    def reduce_scatter(self, array, counts):
        mine = self.host.reduce_scatter(backend.to_numpy(array), counts)
        return backend.as_array(mine, backend.device_of(array))

    def barrier(self) -> None:
        self.host.barrier()

    def gather_objects(self, value):
        return self.host.gather_objects(value)

    def abort(self, code: int) -> None:
        self.host.abort(code)


class _NCCLHandle:
    """An all-reduce queued on the side stream; ``wait`` makes the compute stream wait for it."""

    def __init__(self, done_event):
        self.done_event = done_event

    def wait(self) -> None:
        gpu_stream_wait(self.done_event)


class NCCLCommunicator(HostCopyCommunicator):
    """CuPy arrays over NCCL on a side stream; the id travels over MPI; host arrays still go through MPI."""

    name = "nccl"

    def __init__(self, host, nccl):
        super().__init__(host)
        self.nccl = nccl
        unique_id = host.comm.bcast(nccl.get_unique_id() if host.rank == 0 else None, root=0)
        self.comm = nccl.NcclCommunicator(host.world_size, unique_id, host.rank)
        self.side_stream = gpu_side_stream()

    def _all_reduce(self, array, stream):
        self.comm.allReduce(
            array.data.ptr, array.data.ptr, array.size, nccl_dtype(array.dtype), self.nccl.NCCL_SUM, stream.ptr
        )

    def allreduce_sum(self, array):
        if not backend.is_gpu_array(array):
            return self.host.allreduce_sum(array)
        self._all_reduce(array, gpu_current_stream())
        return array

    def allreduce_sum_async(self, array):
        if not backend.is_gpu_array(array):
            return self.host.allreduce_sum_async(array)
        gpu_stream_wait(gpu_record_event(), self.side_stream)  # the gradient is written
        self._all_reduce(array, self.side_stream)
        return _NCCLHandle(gpu_record_event(self.side_stream))

    def broadcast(self, array, root: int = 0):
        if not backend.is_gpu_array(array):
            return self.host.broadcast(array, root)
        self.comm.bcast(array.data.ptr, array.size, nccl_dtype(array.dtype), root, gpu_current_stream().ptr)
        return array

    def _per_owner(self, array, counts, call):
        """``call(piece, owner)`` for each rank's piece of ``array``, as one NCCL group (uneven pieces:
        NCCL's own ReduceScatter and AllGather take equal ones)."""
        self.nccl.groupStart()
        try:
            start = 0
            for owner, count in enumerate(counts):
                if count:
                    call(array[start : start + count], owner)
                start += count
        finally:
            self.nccl.groupEnd()

    def reduce_scatter(self, array, counts):
        if not backend.is_gpu_array(array):
            return self.host.reduce_scatter(array, counts)
        _check_counts("reduce_scatter", counts, self.world_size, array.size)
        stream, dtype = gpu_current_stream().ptr, nccl_dtype(array.dtype)
        self._per_owner(
            array,
            counts,
            lambda piece, owner: self.comm.reduce(
                piece.data.ptr, piece.data.ptr, piece.size, dtype, self.nccl.NCCL_SUM, owner, stream
            ),
        )
        start = sum(counts[: self.rank])
        return array[start : start + counts[self.rank]].copy()

    def allgather(self, part, counts):
        if not backend.is_gpu_array(part):
            return self.host.allgather(part, counts)
        _check_counts("allgather", counts, self.world_size)
        whole = backend.array_module("gpu").empty(sum(counts), part.dtype)
        start = sum(counts[: self.rank])
        whole[start : start + counts[self.rank]] = part
        stream, dtype = gpu_current_stream().ptr, nccl_dtype(part.dtype)
        self._per_owner(
            whole, counts, lambda piece, owner: self.comm.bcast(piece.data.ptr, piece.size, dtype, owner, stream)
        )
        return whole


def init_communicator(kind: str = "auto", device: str = "cpu"):
    """The communicator for this process: ``SingleProcess`` unless a launcher started several ranks.

    ``kind``: "auto" (NCCL for GPU runs where NCCL is present, else MPI), "mpi" or "nccl". With more
    than one rank and no mpi4py, a DistributedError says so in one line, so N copies of a run never
    write one run directory.
    """
    if kind not in BACKENDS:
        raise DistributedError(f"dist_backend must be one of {', '.join(BACKENDS)}, got {kind!r}")
    world_size = launched_world_size()
    if world_size == 1:
        return SingleProcess()
    try:
        from mpi4py import MPI
    except ImportError:
        raise DistributedError(
            f"the launcher started {world_size} ranks but mpi4py is not installed; install it with: {DIST_INSTALL_HINT}"
        ) from None
    host = MPICommunicator(MPI)
    if backend.normalize_device(device) == "cpu":
        if kind == "nccl":
            raise DistributedError("dist_backend nccl needs device gpu (NCCL moves GPU memory); use mpi on the CPU")
        return host
    backend.use_gpu(host.local_rank)
    nccl = nccl_module() if kind != "mpi" else None
    if nccl is None:
        if kind == "nccl":
            raise DistributedError(
                "dist_backend nccl: cupy.cuda.nccl is not available in this CuPy; use mpi "
                "(host copies) or install CuPy with NCCL"
            )
        return HostCopyCommunicator(host)
    return NCCLCommunicator(host, nccl)
