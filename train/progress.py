"""The trainer's progress display: a tqdm bar on a terminal, else one printed line per logged step;
and the machine's GEMM peak its MFU column is measured against."""

import json
import math
import os
import platform
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
        self.first = None  # (time, iteration) of the first logged step
        self.bar = tqdm(total=total, initial=initial, unit="it", dynamic_ncols=True) if out.isatty() else None

    def advance(self):
        if self.bar is not None:
            self.bar.update(1)

    def report(self, record):
        speed = (
            (f", {record['ms_per_iter']:.1f} ms/iter, {record['tokens_per_s']:,.0f} tok/s, {mfu_text(record['mfu'])}")
            if "ms_per_iter" in record
            else ""
        )
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {record['loss']:.4f}{speed}")
            return
        # the ETA counts from the first logged step on: that step pays for start-up (compiling, first allocations),
        # and timing from the start put 31 minutes on a 72 s run
        now, remaining = time.perf_counter(), self.total - record["iter"] - 1
        if self.first is None:
            self.first = (now, record["iter"])
        done = record["iter"] - self.first[1]
        eta = f", ETA {duration((now - self.first[0]) / done * remaining)}" if done > 0 else ""
        print(f"iter {record['iter']}: loss {record['loss']:.4f}{speed}{eta}", file=self.out, flush=True)

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


PEAK_CACHE = "peak_flops.json"  # in train.data's cache folder: {machine and device: {"flops", "measured"}}


def peak_flops_for(device, cache_folder):
    """(peak FLOP/s, where it comes from) for MFU: the best of this measurement and every earlier one on this machine
    (kept in ``cache_folder``). One timing at start-up swung from 61 to 219 GFLOP/s with the machine's load and gave
    MFU 107%; the best seen over runs is the machine's rate."""
    key = f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, device {device}"
    path = os.path.join(cache_folder, PEAK_CACHE)
    measured, now = measure_peak_flops(device), time.strftime("%Y-%m-%d %H:%M")
    try:
        with open(path, encoding="utf-8") as f:
            known = json.load(f)
    except (OSError, ValueError):
        known = {}
    best = known.get(key) if isinstance(known.get(key), dict) else None
    if best is None or not measured <= best.get("flops", 0):
        best = known[key] = {"flops": measured, "measured": now}
        try:
            os.makedirs(cache_folder, exist_ok=True)
            temporary = f"{path}.{os.getpid()}.part"
            with open(temporary, "w", encoding="utf-8") as f:
                json.dump(known, f, indent=1)
            os.replace(temporary, path)
        except OSError:
            pass  # a read-only cache: the measurement still serves this run
    note = f"the best float32 GEMM rate seen here ({best['measured']}, kept in {path}; now {measured / 1e9:.0f})"
    return best["flops"], f"{best['flops'] / 1e9:.0f} GFLOP/s, {note}"


def mfu_text(mfu):
    """'MFU 56.0%', and why when it is above 100%: the peak it is measured against was too low."""
    if mfu <= 1:
        return f"MFU {100 * mfu:.1f}%"
    return f"MFU {100 * mfu:.1f}% (above 100%: the peak was measured low on a busy machine; set --peak_flops)"
