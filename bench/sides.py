"""The two sides of bench/train_step.py: one GPT training step in tinygrad_tx and in PyTorch eager.

Each class is built inside its own worker process from the same state dict and the same recipe, and
answers the worker's requests: ``step`` (forward, cross-entropy, backward, AdamW), ``gemm_rate`` (the
machine's fp32 GEMM peak, for MFU) and ``memory_mib`` (peak memory above the post-import baseline).
"""

import resource
import time
import types

LEARNING_RATE, WEIGHT_DECAY, BETAS = 1e-3, 0.1, (0.9, 0.99)
GEMM_SIZE = 1024  # square fp32 GEMM whose best rate is the machine's peak for MFU


class OursSide:
    """tinygrad_tx's GPT + AdamW; arrays on ``device``."""

    @staticmethod
    def import_libraries():
        import models.gpt  # noqa: F401  (imported before the memory baseline is taken)
        from tinygrad_tx import tune_for_training

        tune_for_training()  # glibc keeps freed memory, as train.shakespeare has it

    def __init__(self, config, state, device, threads):
        from models.gpt import GPT, GPTConfig
        from tinygrad_tx import backend

        self.backend, self.device = backend, device
        self.model = GPT(GPTConfig(**config))
        self.model.load_state_dict(state)
        self.model.to(device).train()
        self.optimizer = self.model.configure_optimizers(WEIGHT_DECAY, LEARNING_RATE, BETAS)

    def batch(self, x, y):
        xp = self.backend.array_module(self.device)
        return xp.asarray(x), xp.asarray(y)

    def step(self, x, y):
        _, loss = self.model(x, y)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.backend.synchronize(self.device)

    def memory_mib(self, baseline):
        if self.device == "gpu":
            return self.backend.gpu_memory_held_bytes() / 2**20
        return max_rss_mib() - baseline

    def gemm_rate(self):
        """Through F.linear, the engine's own GEMM path (after tune_for_training() NumPy's matmul is
        held to one OpenBLAS thread, and the team splits the Linear GEMMs)."""
        import tinygrad_tx.nn.functional as F
        from tinygrad_tx import Tensor, no_grad

        xp = self.backend.array_module(self.device)
        a = Tensor(xp.asarray(self.backend.rng("cpu").standard_normal((GEMM_SIZE, GEMM_SIZE), dtype="float32")))

        def gemm():
            with no_grad():
                F.linear(a, a)

        return best_rate(gemm, lambda: self.backend.synchronize(self.device))


class TorchSide:
    """The PyTorch GPT + torch.optim.AdamW (nanoGPT's groups)."""

    @staticmethod
    def import_libraries():
        import bench.torch_gpt  # noqa: F401  (imports torch before the memory baseline is taken)

    def __init__(self, config, state, device, threads):
        import torch

        from bench.torch_gpt import TorchGPT

        if device == "gpu" and not torch.cuda.is_available():
            raise RuntimeError("this PyTorch build has no CUDA device")
        self.torch, self.device = torch, "cuda" if device == "gpu" else "cpu"
        torch.set_num_threads(threads)
        # a plain namespace, not models.GPTConfig: the PyTorch worker loads nothing of tinygrad_tx
        config = types.SimpleNamespace(gelu_approximate="none", **config)
        self.model = TorchGPT(config).load_numpy_state(state).to(self.device).train()
        self.optimizer = self.model.configure_optimizers(WEIGHT_DECAY, LEARNING_RATE, BETAS)

    def batch(self, x, y):
        return self.torch.from_numpy(x).to(self.device), self.torch.from_numpy(y).to(self.device)

    def step(self, x, y):
        _, loss = self.model(x, y)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.synchronize()

    def synchronize(self):
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def memory_mib(self, baseline):
        if self.device == "cuda":
            return self.torch.cuda.max_memory_reserved() / 2**20
        return max_rss_mib() - baseline

    def gemm_rate(self):
        a = self.torch.randn(GEMM_SIZE, GEMM_SIZE, device=self.device)
        return best_rate(lambda: a @ a, self.synchronize)


def best_rate(gemm, synchronize, tries=10):
    """Best FLOP/s of a GEMM_SIZE^3 fp32 product over ``tries`` (the first call warms up)."""
    gemm()
    synchronize()
    best = float("inf")
    for _ in range(tries):
        start = time.perf_counter()
        gemm()
        synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * GEMM_SIZE**3 / best


def max_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
