"""bench/scaling.py: the communicator timer and one worker at W = 1 (no timing assertions; mpiexec runs are
the bench's own business)."""

import json

from bench import scaling
from tinygrad_tx.distributed import SingleProcess

CLOCK = [0.0]  # a fake perf_counter: the collectives below take exactly 1 s each, everything else no time


class SlowRanks(SingleProcess):
    def allreduce_sum(self, array):
        CLOCK[0] += 1.0
        return array

    def allreduce_sum_async(self, array):
        return SlowHandle()


class SlowHandle:
    def wait(self):
        CLOCK[0] += 1.0


def test_the_timer_counts_collectives_and_waits_but_not_the_rest(monkeypatch):
    monkeypatch.setattr(scaling.time, "perf_counter", lambda: CLOCK[0])
    timed = scaling.TimedCommunicator(SlowRanks())
    timed.barrier()
    timed.allreduce_sum([1.0])
    assert timed.seconds == 1.0
    handle = timed.allreduce_sum_async([1.0])
    assert timed.seconds == 1.0  # launching the asynchronous one costs nothing ...
    handle.wait()  # ... waiting for it does
    assert timed.seconds == 2.0 and timed.world_size == 1


def test_a_worker_reports_throughput_comm_share_and_optimizer_memory(capsys):
    scaling.worker("small", batch_size=2, accumulation=2, steps=1, warmup=0, zero=1, bucket_mb=0.0)
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["world_size"] == 1 and record["micro_steps_per_rank"] == 2 and record["tokens_per_s"] > 0
    assert 0 <= record["comm_share"] < 1 and len(record["optimizer_mib_per_rank"]) == 1
    assert record["optimizer_mib_per_rank"][0] > 6  # small: 0.81M parameters x 2 AdamW arrays x 4 bytes
