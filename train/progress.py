"""The trainer's progress display: a tqdm bar on a terminal, else one printed line per logged step."""

import time

from tqdm import tqdm


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
