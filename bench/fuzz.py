"""The long differential-fuzzing sweep: every public op against PyTorch until the time is up.

    python -m bench.fuzz --minutes N [--seed S] [--ops SUBSTRING] [--chunk K]

Runs the table of bench/fuzzing/specs.py (the one tests/ops/test_fuzz.py runs under its 60 s budget) round
after round, K hypothesis cases per op per round with a fresh seed each time, in this one process.
Prints a summary table: cases per op, how many PyTorch and we both refused, how many we refused on
purpose (documented divergences), failures, and the shrunk failing example with its message.
Exit status: 0 when nothing failed, 1 otherwise.
"""

import argparse
import collections
import dataclasses
import sys
import time
import warnings

from bench.fuzzing.core import fuzz
from bench.fuzzing.specs import SPECS


@dataclasses.dataclass
class OpStats:
    outcomes: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    failures: int = 0
    example: str = ""
    message: str = ""
    last_case: object = None


def _first_failure(exc):
    """The message of a failure, or of the first of several distinct ones hypothesis reports together."""
    while getattr(exc, "exceptions", None):  # an exception group (built in from Python 3.11, backported before)
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def sweep(minutes, seed=0, ops=None, chunk=50, progress=sys.stderr):
    """Fuzz until ``minutes`` have passed; returns {op name: OpStats}."""
    names = [name for name in sorted(SPECS) if ops is None or ops in name]
    stats = {name: OpStats() for name in names}
    deadline = time.monotonic() + minutes * 60
    round_index = 0
    while names and time.monotonic() < deadline:
        for index, name in enumerate(names):
            if time.monotonic() >= deadline:
                break
            op = stats[name]

            def on_case(case, outcome, op=op):
                op.outcomes[outcome or "failed"] += 1
                op.last_case = case

            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    fuzz(
                        SPECS[name],
                        chunk,
                        seed=(seed * 1_000_003 + round_index * 1009 + index) % 2**32,
                        on_case=on_case,
                    )
            except Exception as exc:  # a divergence, already shrunk by hypothesis
                op.failures += 1
                if not op.example:
                    op.example, op.message = repr(op.last_case), _first_failure(exc)
        round_index += 1
        total = sum(sum(op.outcomes.values()) for op in stats.values())
        failed = [name for name, op in stats.items() if op.failures]
        print(
            f"round {round_index}: {total:,} cases, failing ops: {', '.join(failed) or 'none'}",
            file=progress,
            flush=True,
        )
    return stats


def summary(stats):
    lines = [
        "| op | cases | both refused | refused on purpose | failures | shrunk failing example |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, op in stats.items():
        cases = sum(op.outcomes.values())
        example = f"`{op.example}`: {op.message}" if op.failures else ""
        lines.append(
            f"| {name} | {cases:,} | {op.outcomes['raised']:,} | {op.outcomes['refused']:,} | "
            f"{op.failures} | {example.replace('|', '/')} |"
        )
    total = sum(sum(op.outcomes.values()) for op in stats.values())
    failing = sum(1 for op in stats.values() if op.failures)
    lines += ["", f"{total:,} cases over {len(stats)} ops; {failing} op(s) with failures"]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="how long to fuzz (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first round (default 0)")
    parser.add_argument("--ops", default=None, help="only the ops whose name contains this")
    parser.add_argument("--chunk", type=int, default=50, help="cases per op per round (default 50)")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.chunk < 1 or args.seed < 0:
        parser.error("--minutes must be > 0, --chunk >= 1 and --seed >= 0")
    stats = sweep(args.minutes, args.seed, args.ops, args.chunk)
    if not stats:
        parser.error(f"no op name contains {args.ops!r}")
    print(summary(stats))
    return 1 if any(op.failures for op in stats.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
