"""The trainer's progress display: a tqdm bar on a terminal, else one printed line per logged step;
and the machine's GEMM peak its MFU column is measured against."""

import math
import time

import numpy as np
from tqdm import tqdm

import tinygrad_tx.nn.functional as F
from tinygrad_tx import from_numpy, no_grad, synchronize


class Progress:
    """A tqdm bar (iteration, ETA; loss, ms/iter, tokens/s and MFU as its postfix) on a terminal,
    else one printed line per logged step."""

    def __init__(self, total, initial, out):
        self.out, self.total, self.started, self.initial = out, total, time.perf_counter(), initial
        self.bar = tqdm(total=total, initial=initial, unit="it", dynamic_ncols=True) if out.isatty() else None

    def advance(self):
        if self.bar is not None:
            self.bar.update(1)

    def report(self, record):
        speed = (
            (
                f", {record['ms_per_iter']:.1f} ms/iter, {record['tokens_per_s']:,.0f} tok/s, "
                f"MFU {100 * record['mfu']:.1f}%"
            )
            if "ms_per_iter" in record
            else ""
        )
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {record['loss']:.4f}{speed}")
            return
        done = record["iter"] + 1 - self.initial
        eta = (time.perf_counter() - self.started) / done * (self.total - record["iter"] - 1)
        print(
            f"iter {record['iter']}: loss {record['loss']:.4f}{speed}, ETA {duration(eta)}", file=self.out, flush=True
        )

    def message(self, text):
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, file=self.out, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def duration(seconds):
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m{seconds:02d}s" if minutes >= 60 else f"{minutes}m{seconds:02d}s"


def measure_peak_flops(device, repeats=10):
    """This machine's float32 GEMM rate in FLOP/s: the fastest of a few n x n products (the MFU
    denominator), through ``F.linear``, the path the model's GEMMs take (after tune_for_training() the
    engine's team splits them, while a plain ``a @ a`` runs on OpenBLAS held to one thread)."""
    n = 1024 if device == "cpu" else 4096
    a = from_numpy(np.random.default_rng(0).standard_normal((n, n), dtype=np.float32), device)
    best = math.inf
    for _ in range(repeats + 1):  # the first call pays for thread start-up and allocation
        synchronize(device)
        start = time.perf_counter()
        with no_grad():
            F.linear(a, a)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best
