"""nanoGPT's Tiny Shakespeare run and ours, fed the same random draws: the same losses come out.

    python -m bench.nanogpt_parity [--seed 1337] [--max_iters 2000] [--data PATH] [--threads N]

A final val loss is one draw from a distribution: the initial weights and the order of the batches
move it by about +-0.01 from seed to seed, more than any difference between two correct engines.
So this script takes the randomness out of the comparison. PyTorch first runs nanoGPT's train.py
loop on the PyTorch GPT (bench/torch_gpt.py) with the ``cpu`` preset and nanoGPT's seeding:
``torch.manual_seed(seed)`` before the model is built, nanoGPT's initialisation, batches from
``torch.randint`` in nanoGPT's order (the first one before the loop, estimate_loss's batches at each
evaluation, the next batch fetched after every forward). Every batch's window starts are recorded.
Then our Trainer (train/trainer.py, the loop ``python -m train.shakespeare`` runs) starts from the
same weights and replays those batches. Printed: both sides' train and val estimates at every
evaluation, the largest difference of the logged training losses, and the loss over the whole val
split at the end. Dropout must be 0 (the two engines' dropout masks cannot be the same draws).
"""

import argparse
import io
import math
import sys
import tempfile
import time

import numpy as np

try:
    import torch
except ImportError as exc:  # test-only dependency (bench.torch_gpt needs it too, hence before our imports)
    raise SystemExit(
        f"error: bench.nanogpt_parity runs nanoGPT in PyTorch, which is not installed ({exc}); "
        'install the test extra: pip install -e ".[test]"'
    ) from None

from bench.torch_gpt import TorchGPT
from models.gpt import GPTConfig
from tinygrad_tx import tune_for_training
from tinygrad_tx.errors import TinygradTxError
from train.config import make_config
from train.data import TinyShakespeare, get_batch, iter_batches, split_data
from train.tokenizers import CharTokenizer
from train.trainer import Trainer


class RecordedStarts:
    """Stands in for the numpy Generator of ``train.data.get_batch``: hands back recorded window starts."""

    def __init__(self, starts):
        self._starts = iter(starts)

    def integers(self, low, high, size):
        return next(self._starts)


class NanoGPTRun:
    """nanoGPT's train.py loop in PyTorch; keeps the window starts of every batch it draws."""

    def __init__(self, config, vocab_size, train_ids, val_ids, seed):
        self.config, self.splits = config, {"train": train_ids, "val": val_ids}
        torch.manual_seed(seed)
        model_args = GPTConfig(
            block_size=config.block_size,
            vocab_size=vocab_size,
            n_layer=config.n_layer,
            n_head=config.n_head,
            n_embd=config.n_embd,
            dropout=0.0,
            bias=config.bias,
        )
        self.model = TorchGPT(model_args).init_as_nanogpt()
        self.initial_state = {name: value.numpy().copy() for name, value in self.model.state_dict().items()}
        self.optimizer = self.model.configure_optimizers(
            config.weight_decay, config.learning_rate, (config.beta1, config.beta2)
        )
        self.train_starts, self.eval_starts = [], {}
        self.train_losses, self.evals = [], {}

    def get_batch(self, split):
        c, data = self.config, self.splits[split]
        starts = torch.randint(len(data) - c.block_size, (c.batch_size,)).numpy()
        windows = data[starts[:, None] + np.arange(c.block_size + 1)].astype(np.int64)
        return starts, torch.from_numpy(windows[:, :-1].copy()), torch.from_numpy(windows[:, 1:].copy())

    def get_lr(self, it):  # nanoGPT's, written out again so the reference does not lean on our cosine_lr
        c = self.config
        if it < c.warmup_iters:
            return c.learning_rate * (it + 1) / (c.warmup_iters + 1)
        if it > c.lr_decay_iters:
            return c.min_lr
        coeff = 0.5 * (1.0 + math.cos(math.pi * (it - c.warmup_iters) / (c.lr_decay_iters - c.warmup_iters)))
        return c.min_lr + coeff * (c.learning_rate - c.min_lr)

    @torch.no_grad()
    def estimate_loss(self, it):
        self.model.eval()
        self.eval_starts[it], self.evals[it] = {}, {}
        for split in self.splits:
            starts, losses = [], []
            for _ in range(self.config.eval_iters):
                batch_starts, x, y = self.get_batch(split)
                starts.append(batch_starts)
                losses.append(self.model(x, y)[1].item())
            self.eval_starts[it][split], self.evals[it][split] = starts, float(np.mean(losses))
        self.model.train()

    def run(self):
        c = self.config
        starts, x, y = self.get_batch("train")
        for it in range(c.max_iters + 1):
            for group in self.optimizer.param_groups:
                group["lr"] = self.get_lr(it)
            if it % c.eval_interval == 0 or it == c.max_iters:
                self.estimate_loss(it)
            if it == c.max_iters:
                break
            _, loss = self.model(x, y)
            self.train_starts.append(starts)
            starts, x, y = self.get_batch("train")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.train_losses.append(loss.item())

    @torch.no_grad()
    def split_loss(self, data):
        self.model.eval()
        total = count = 0
        for x, y in iter_batches(data, self.config.batch_size, self.config.block_size):
            x, y = (torch.from_numpy(np.ascontiguousarray(t.numpy())) for t in (x, y))
            total += self.model(x, y)[1].item() * y.numel()
            count += y.numel()
        return total / count


class ReplayTrainer(Trainer):
    """Our training loop, fed the batches a NanoGPTRun drew (train and eval alike)."""

    def __init__(self, reference, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reference = reference
        self.model.load_state_dict(reference.initial_state)
        self._replayed_train = RecordedStarts(reference.train_starts)

    def train_batch(self):
        c = self.config
        return get_batch(self.splits["train"], c.batch_size, c.block_size, c.device, self._replayed_train)

    def eval_batches(self, split):
        c, starts = self.config, self.reference.eval_starts[self.iter_num][split]
        replay = RecordedStarts(starts)
        return [get_batch(self.splits[split], c.batch_size, c.block_size, c.device, replay) for _ in starts]


def compare(config, text, seed, out=sys.stdout):
    """Run both sides on ``text`` with ``config`` (a TrainConfig, dropout 0); print and return the figures."""
    if config.dropout:
        raise ValueError(f"nanogpt_parity: dropout must be 0 for the same draws on both sides, got {config.dropout}")
    tokenizer = CharTokenizer.from_text(text)
    train_ids, val_ids = split_data(np.array(tokenizer.encode(text), dtype=np.int64))
    started = time.perf_counter()
    reference = NanoGPTRun(config, tokenizer.vocab_size, train_ids, val_ids, seed)
    reference.run()
    reference_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as out_dir:
        config.out_dir = out_dir
        started = time.perf_counter()
        ours = ReplayTrainer(reference, config, tokenizer, train_ids, val_ids, out=io.StringIO())
        ours.run()
        our_seconds = time.perf_counter() - started
    our_evals = {r["iter"]: r for r in ours.records if r["kind"] == "eval"}
    logged = {r["iter"]: r["loss"] for r in ours.records if r["kind"] == "train"}
    figures = {
        "evals": {
            it: {
                "nanogpt": reference.evals[it],
                "ours": {"train": our_evals[it]["train_loss"], "val": our_evals[it]["val_loss"]},
            }
            for it in sorted(reference.evals)
        },
        "train_loss_max_difference": max(abs(loss - reference.train_losses[it]) for it, loss in logged.items()),
        "whole_val": {"nanogpt": reference.split_loss(val_ids), "ours": ours.split_loss(val_ids)},
        "seconds": {"nanogpt": reference_seconds, "ours": our_seconds},
    }
    report(figures, seed, config, len(logged), len(val_ids) - 1, out)
    return figures


def report(figures, seed, config, logged_steps, val_targets, out):
    print(
        f"nanoGPT (PyTorch {torch.__version__}) and tinygrad_tx on the same draws: seed {seed}, "
        f"{config.max_iters} iterations of the cpu preset",
        file=out,
    )
    print(f"{'step':>6} | {'train: nanoGPT':>14} {'ours':>7} | {'val: nanoGPT':>12} {'ours':>7}", file=out)
    for it, sides in figures["evals"].items():
        print(
            f"{it:>6} | {sides['nanogpt']['train']:>14.4f} {sides['ours']['train']:>7.4f} | "
            f"{sides['nanogpt']['val']:>12.4f} {sides['ours']['val']:>7.4f}",
            file=out,
        )
    whole, seconds = figures["whole_val"], figures["seconds"]
    print(
        f"training loss at the {logged_steps} logged steps: largest difference "
        f"{figures['train_loss_max_difference']:.1e}",
        file=out,
    )
    print(
        f"whole val split ({val_targets:,} targets): nanoGPT {whole['nanogpt']:.4f}, ours {whole['ours']:.4f}", file=out
    )
    print(f"wall time: nanoGPT {seconds['nanogpt']:.0f} s, ours {seconds['ours']:.0f} s", file=out)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.nanogpt_parity", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1337, help="torch.manual_seed of nanoGPT's side (default 1337)")
    parser.add_argument("--max_iters", type=int, default=2000, help="iterations (default: the cpu preset's 2000)")
    parser.add_argument("--data", help="Tiny Shakespeare's input.txt (default: found as train/data.py says)")
    parser.add_argument("--threads", type=int, default=None, help="PyTorch's CPU threads (default: PyTorch's choice)")
    args = parser.parse_args(argv)
    tune_for_training()  # our side trains as train.shakespeare does
    if args.threads:
        torch.set_num_threads(args.threads)
    config = make_config(
        overrides={"max_iters": args.max_iters, "lr_decay_iters": max(args.max_iters, 100), "seed": args.seed}
    )
    try:
        text = TinyShakespeare(args.data).text
    except TinygradTxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    compare(config, text, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
