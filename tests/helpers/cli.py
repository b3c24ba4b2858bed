"""The trainer's command line run in this process (fast): a tiny run's arguments, the runner, the metrics it logs."""

import contextlib
import io
import json
import os


def tiny_args(data, out_dir, max_iters=40, *extra):
    """A 1-layer, 32-wide GPT: a 40-step run takes about a second. lr_decay_iters is fixed at 40 so
    shorter runs follow the same schedule (and so the same losses) as the 40-step one."""
    return [
        "--data",
        str(data),
        "--out_dir",
        str(out_dir),
        "--max_iters",
        str(max_iters),
        "--n_layer",
        "1",
        "--n_head",
        "2",
        "--n_embd",
        "32",
        "--block_size",
        "16",
        "--batch_size",
        "4",
        "--learning_rate",
        "3e-3",
        "--warmup_iters",
        "5",
        "--lr_decay_iters",
        "40",
        "--min_lr",
        "3e-4",
        "--eval_interval",
        "10",
        "--eval_iters",
        "4",
        "--log_interval",
        "1",
        "--sample_tokens",
        "40",
        *extra,
    ]


def run_cli(module, argv):
    """(exit status, stdout, stderr) of ``module.main(argv)`` run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = module.main(argv)
        except SystemExit as exit_:
            status = exit_.code
    return status, out.getvalue(), err.getvalue()


def read_metrics(out_dir, keep_timing=False):
    with open(os.path.join(out_dir, "metrics.jsonl"), encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    timing = ("ms_per_iter", "tokens_per_s", "mfu")
    return records if keep_timing else [{k: v for k, v in r.items() if k not in timing} for r in records]
