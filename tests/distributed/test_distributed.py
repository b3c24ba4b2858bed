"""tinygrad_tx.distributed: the one-process default, the launch checks, and every MPI collective on 2 ranks.

The MPI checks start ``mpiexec -n 2`` (the MPICH wheel of the ``dist`` extra) and skip, with the reason,
where mpi4py or mpiexec is missing. NCCL needs a GPU: its check runs on one GPU (W = 1) when there is one.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tinygrad_tx import Tensor, backend, distributed
from tinygrad_tx.distributed import DistributedError, GradientBuckets, SingleProcess, ZeroOptimizer, init_communicator
from tinygrad_tx.distributed import nccl as nccl_helpers

from helpers import REPO, requires_gpu
from helpers.gpt import tiny_gpt
from helpers.mpi import SimulatedRanks, launch_env, mpiexec, requires_mpi


@pytest.fixture
def no_launcher(monkeypatch):
    for name in distributed.WORLD_SIZE_ENV + distributed.RANK_ENV:
        monkeypatch.delenv(name, raising=False)


def test_single_process_collectives_leave_the_arrays_alone(no_launcher, monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # importing it would now fail: it must not be imported
    comm = init_communicator("auto", "cpu")
    assert isinstance(comm, SingleProcess) and (comm.rank, comm.world_size, comm.is_main) == (0, 1, True)
    array = np.arange(5, dtype=np.float32)
    before = array.copy()
    assert comm.allreduce_sum(array) is array and comm.allreduce_mean(array) is array
    assert comm.broadcast(array) is array
    comm.allreduce_sum_async(array).wait()
    np.testing.assert_array_equal(array, before)
    np.testing.assert_array_equal(comm.allgather(array, [5]), before)
    np.testing.assert_array_equal(comm.reduce_scatter(array, [5]), before)
    assert comm.gather_objects({"a": 1}) == [{"a": 1}]
    comm.barrier()
    distributed.abort_other_ranks(3)  # nothing to end in a one-process run


def test_world_size_and_rank_come_from_the_launcher(no_launcher, monkeypatch):
    assert (distributed.launched_world_size(), distributed.launched_rank()) == (1, 0)
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "3")
    assert (distributed.launched_world_size(), distributed.launched_rank()) == (4, 3)


def test_several_ranks_without_mpi4py_refuse_in_one_line(no_launcher, monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(DistributedError, match=r"started 2 ranks but mpi4py is not installed.*tinygrad-tx\[dist\]"):
        init_communicator("auto", "cpu")


def test_unknown_backend_is_refused(no_launcher):
    with pytest.raises(DistributedError, match="dist_backend must be one of auto, mpi, nccl, got 'gloo'"):
        init_communicator("gloo")


def test_buckets_are_sent_while_backward_runs_and_carry_the_loss():
    model = tiny_gpt(seed=0, vocab_size=20, n_layer=2, n_embd=16)
    params = list(model.parameters())
    x = Tensor(np.random.default_rng(0).integers(0, 20, (2, 8)))
    _, loss = model(x, x)
    loss.backward()
    expected = [p.grad.numpy() * 2 for p in params]
    model.zero_grad()
    comm = SimulatedRanks()
    buckets = GradientBuckets(params, comm, bucket_bytes=4 * 2000)
    assert len(buckets.members) >= 3 and buckets.members[-1][-1] is params[0]  # wte: final last, sent last
    _, loss = model(x, x)
    buckets.start(loss.data, 0.0)
    launched_during_backward = []
    with buckets.sending_during_backward():  # the recorders run after the buckets' own hooks
        recorders = [
            p.register_post_accumulate_grad_hook(lambda _: launched_during_backward.append(len(comm.launched)))
            for p in params
        ]
        loss.backward()
    for recorder in recorders:
        recorder.remove()
    assert all(not p._hooks for p in params)  # and the buckets' hooks are gone after the block
    assert len(comm.launched) == len(buckets.members)  # every bucket went out before backward returned
    assert launched_during_backward[0] < len(buckets.members)  # ... and the first ones while it still ran
    reduced_loss, stop = buckets.finish()
    assert reduced_loss == pytest.approx(2 * loss.item()) and stop == 0.0
    for param, grad in zip(params, expected):
        np.testing.assert_array_equal(param.grad.numpy(), grad)


def test_zero_deals_whole_tensors_evenly_between_the_ranks():
    model = tiny_gpt(seed=0, vocab_size=20, n_layer=2, n_embd=16)
    shards = [ZeroOptimizer(model.configure_optimizers(0.1, 1e-3), SimulatedRanks(rank)) for rank in range(2)]
    per_rank = shards[0].state_bytes_per_rank()
    assert sum(per_rank) == 2 * 4 * sum(p.size for p in model.parameters()) and max(per_rank) < 0.6 * sum(per_rank)
    assert {i for s in shards for i in s.mine} == set(range(len(shards[0].params)))
    assert not set(shards[0].mine) & set(shards[1].mine)


COLLECTIVES_SCRIPT = textwrap.dedent("""
    import numpy as np
    from tinygrad_tx import distributed
    comm = distributed.init_communicator("mpi", "cpu")
    r, w = comm.rank, comm.world_size
    assert (w, comm.name, comm.is_main) == (2, "mpi", r == 0), (w, comm.name)
    for c in (comm, distributed.HostCopyCommunicator(comm)):       # GPU fallback's path, on NumPy arrays
        a = np.arange(6, dtype=np.float32) + 10 * r
        c.allreduce_sum(a); assert a.tolist() == [10 + 2 * i for i in range(6)], a
        a = np.full(3, 1.0 + r, np.float32); c.allreduce_mean(a); assert a.tolist() == [1.5] * 3, a
        a = np.full(4, float(r), np.float32); handle = c.allreduce_sum_async(a); handle.wait()
        assert a.tolist() == [1.0] * 4, a
        a = np.full(2, float(r + 7), np.float32); c.broadcast(a, root=1); assert a.tolist() == [8.0, 8.0], a
        whole = c.allgather(np.full(1 + 2 * r, float(r), np.float32), [1, 3])
        assert whole.tolist() == [0, 1, 1, 1], whole
        mine = c.reduce_scatter(np.arange(5, dtype=np.float32) * (r + 1), [2, 3])
        assert mine.tolist() == ([0.0, 3.0] if r == 0 else [6.0, 9.0, 12.0]), mine
        assert c.gather_objects(("rank", r)) == [("rank", 0), ("rank", 1)]
        c.barrier()
    try:
        comm.allgather(np.zeros(1, np.float32), [1, 1, 1])
    except distributed.DistributedError as exc:
        assert "one entry per rank (2)" in str(exc)
    else:
        raise AssertionError("bad counts accepted")
    try:
        distributed.init_communicator("nccl", "cpu")
    except distributed.DistributedError as exc:   # docs/errors.md D03
        assert str(exc) == "dist_backend nccl needs device gpu (NCCL moves GPU memory); use mpi on the CPU", exc
    else:
        raise AssertionError("nccl on the CPU accepted")
    print("collectives ok on rank", r, flush=True)
""")


@requires_mpi
def test_mpi_collectives_on_two_ranks(tmp_path):
    script = tmp_path / "collectives.py"
    script.write_text(COLLECTIVES_SCRIPT)
    result = subprocess.run(
        [mpiexec(), "-n", "2", sys.executable, "-m", "mpi4py", str(script)],
        cwd=REPO,
        env=launch_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("collectives ok") == 2


@requires_gpu
def test_nccl_on_one_gpu():
    """W = 1 with NCCL (a GPU machine may have one GPU): the calls, stream hand-offs and dtypes work."""
    nccl = nccl_helpers.nccl_module()
    if nccl is None:
        pytest.skip("this CuPy has no NCCL (or device 'gpu' is the CuPy stand-in)")
    pytest.importorskip("mpi4py", reason='the NCCL id travels over MPI: pip install "tinygrad-tx[dist]"')
    from mpi4py import MPI

    comm = distributed.NCCLCommunicator(distributed.MPICommunicator(MPI), nccl)
    xp = backend.array_module("gpu")
    array = xp.arange(8, dtype=xp.float32)
    comm.allreduce_sum(array)
    comm.allreduce_sum_async(array).wait()
    comm.broadcast(array)
    np.testing.assert_array_equal(comm.reduce_scatter(array, [8]).get(), np.arange(8, dtype=np.float32))
    np.testing.assert_array_equal(comm.allgather(array, [8]).get(), np.arange(8, dtype=np.float32))
    backend.synchronize("gpu")
    np.testing.assert_array_equal(backend.to_numpy(array), np.arange(8, dtype=np.float32))
