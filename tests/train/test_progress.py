"""The trainer's progress lines (issue 24): the MFU's peak is the best seen on this machine, an MFU above 100% says
why, and the first ETA does not count the start-up."""

import io
import json
import time

from train import progress


def test_the_peak_is_the_best_measurement_kept_per_machine(tmp_path, monkeypatch):
    """Regression: one timing at start-up swung from 61 to 219 GFLOP/s with the load, and MFU read 107%."""
    rates = iter([219e9, 61e9, 250e9])
    monkeypatch.setattr(progress, "measure_peak_flops", lambda device: next(rates))
    first, note = progress.peak_flops_for("cpu", str(tmp_path))
    busy, busy_note = progress.peak_flops_for("cpu", str(tmp_path))  # a busy machine measures 61: 219 stays
    assert first == busy == 219e9 and "219 GFLOP/s" in busy_note and "now 61" in busy_note
    assert str(tmp_path / progress.PEAK_CACHE) in note
    assert progress.peak_flops_for("cpu", str(tmp_path))[0] == 250e9
    assert [entry["flops"] for entry in json.loads((tmp_path / progress.PEAK_CACHE).read_text()).values()] == [250e9]


def test_an_unwritable_cache_still_gives_this_measurement(tmp_path, monkeypatch):
    monkeypatch.setattr(progress, "measure_peak_flops", lambda device: 1e11)
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert progress.peak_flops_for("cpu", str(blocker / "cache"))[0] == 1e11


def test_an_mfu_above_100_percent_says_why():
    assert progress.mfu_text(0.56) == "MFU 56.0%"
    assert progress.mfu_text(1.076).startswith("MFU 107.6% (above 100%: the peak was measured low")


def test_the_first_eta_leaves_out_the_start_up(monkeypatch):
    """Regression: the first ETA divided the start-up (compiling, the first step) over every step: 31 min for 72 s."""
    clock = iter([0.0, 30.0, 31.0, 32.0])  # 30 s of start-up, then 1 s per 10 steps
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
    out = io.StringIO()
    shown = progress.Progress(total=1000, initial=0, out=out)
    for iteration in (0, 10, 20):
        shown.report({"iter": iteration, "loss": 1.0})
    lines = out.getvalue().splitlines()
    assert "ETA" not in lines[0] and lines[1].endswith("ETA 1m38s") and lines[2].endswith("ETA 1m37s")
