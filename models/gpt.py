"""GPT-2 as nanoGPT writes it, on tinygrad_tx: token + position embeddings, pre-norm blocks, a final
LayerNorm and an lm_head tied to the token embedding.

    from models import GPT, GPTConfig
    model = GPT(GPTConfig(block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128))
    logits, loss = model(x, y)               # logits (B, T, V), loss a scalar Tensor
    logits, _ = model(x)                     # logits (B, 1, V): the last position only (nanoGPT's
                                             # inference shortcut: lm_head runs on one position)
    out = model.generate(x, 100, temperature=0.8, top_k=40)

Parameter names and layouts are nanoGPT's (``transformer.wte.weight``, ``transformer.h.0.attn.c_attn.weight``
of shape (3C, C), ..., ``lm_head.weight``), so state dicts move both ways unchanged.

nanoGPT checkpoints: ``python -m train.convert_nanogpt ckpt.pt model.npz`` writes the weights as an
``.npz`` of float32 arrays plus the model arguments as JSON (torch is needed for that step only);
then ``GPT.from_npz("model.npz")`` builds the model, or ``model.load_npz(path)`` loads the weights
into an existing one, and ``model.save_npz(path)`` writes the same format back.

safetensors: ``model.save_safetensors(path)``, ``GPT.from_safetensors(path)`` and
``model.load_safetensors(path)`` do the same in the format PyTorch and Hugging Face tools read
(``safetensors.torch.load_file(path)`` gives a state dict nanoGPT's GPT loads as it is); the
GPTConfig travels as JSON in the file's metadata under ``model_args``.

OpenAI's GPT-2: ``GPT.from_pretrained("gpt2")`` (or a Hugging Face checkpoint directory) reads config.json and
model.safetensors, maps Hugging Face's names and Conv1D layouts to these (models/pretrained.py, docs/gpt2.md).
"""

import dataclasses
import json
import math
import os
from collections.abc import Iterator
from typing import Any, Optional, Union

import numpy as np

import tinygrad_tx.nn.functional as F
from tinygrad_tx import Tensor, arange, randn, zeros
from tinygrad_tx.errors import ShapeError, TinygradTxError
from tinygrad_tx.nn import Dropout, Embedding, LayerNorm, Linear, Module, ModuleDict, ModuleList
from tinygrad_tx.optim import AdamW
from tinygrad_tx.serialization import load_safetensors, save_safetensors

from .block import Block
from .generation import KVCache, as_token_ids, generate_tokens, iter_tokens
from .gpt_config import GPTConfig, estimate_gpt_memory, require_memory
from .gpt_files import SAFETENSORS_ARGS_KEY, read_npz, read_safetensors, write_npz
from .pretrained import load_pretrained

__all__ = ["GPT", "GPTConfig", "read_npz", "read_safetensors", "write_npz"]

TokenIds = Any  # int token ids (B, T): a Tensor, a NumPy/CuPy array or nested lists
Path = Union[str, "os.PathLike[str]"]


class GPT(Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        c = config  # an impossible size is a one-line error now, not a MemoryError after minutes
        require_memory(
            estimate_gpt_memory(c), f"GPT(vocab_size={c.vocab_size}, n_embd={c.n_embd}, n_layer={c.n_layer}, ...)"
        )
        self.config = config
        self.transformer = ModuleDict(
            dict(
                wte=Embedding(config.vocab_size, config.n_embd),
                wpe=Embedding(config.block_size, config.n_embd),
                drop=Dropout(config.dropout),
                h=ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # weight tying: one (V, C) matrix, two uses
        self._init_weights()

    def _init_weights(self):
        """normal(0, 0.02) weights, zero biases, residual projections at 0.02/sqrt(2 n_layer) (GPT-2)."""
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        initial = {}
        for name, param in self.named_parameters():  # in order: each weight's draws come from the same place
            if param.ndim >= 2:
                std = residual_std if name.endswith("c_proj.weight") else 0.02
                initial[name] = randn(param.shape, device=param.device) * std
            elif name.endswith(".bias"):
                initial[name] = zeros(param.shape, device=param.device)
        self.load_state_dict(initial, strict=False)  # in place: the tied lm_head weight stays tied

    @property
    def device(self) -> str:
        return self.transformer.wte.weight.device

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameter count; by default without the position embeddings (the token embedding is
        counted: it is also the lm_head's weight), as nanoGPT reports it."""
        total = sum(param.size for param in self.parameters())  # the tied weight once
        return total - self.transformer.wpe.weight.size if non_embedding else total

    def forward(
        self, idx: TokenIds, targets: Optional[TokenIds] = None, kv_cache: Optional[KVCache] = None
    ) -> tuple[Tensor, Optional[Tensor]]:
        """idx: int (B, T) token ids, T <= block_size. Returns (logits, loss).

        With targets (B, T) (-1 = ignored position): logits (B, T, V) and the mean cross-entropy.
        Without: logits (B, 1, V) for the last position only, and None. With ``kv_cache``
        (``models.generation.KVCache``), idx holds only the positions after the cached ones.
        """
        device = self.device
        idx = as_token_ids(idx, device, "GPT.forward")
        start = 0 if kv_cache is None else kv_cache.length
        length = idx.shape[1]
        if start + length > self.config.block_size:
            where = f"{start} cached + {length} new positions" if start else f"sequence length {length}"
            raise ShapeError(f"GPT.forward: {where} exceeds block_size {self.config.block_size}")
        positions = arange(start, start + length, device=device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(positions))
        layer_caches = kv_cache.layers if kv_cache is not None else [None] * len(self.transformer.h)
        for block, layer_cache in zip(self.transformer.h, layer_caches):
            x = block(x, kv_cache=layer_cache)
        x = self.transformer.ln_f(x)
        if targets is None:
            return self.lm_head(x[:, -1:, :]), None
        logits = self.lm_head(x)
        loss = F.cross_entropy(logits, as_token_ids(targets, device, "GPT.forward targets"), ignore_index=-1)
        return logits, loss

    def generate(
        self,
        idx: TokenIds,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        use_cache: bool = True,
    ) -> Tensor:
        """Append ``max_new_tokens`` sampled tokens to idx (B, T); returns an int Tensor (B, T + new).

        Runs under no_grad and draws from ``tinygrad_tx.rng(device)`` (seed with ``tinygrad_tx.manual_seed``);
        call ``model.eval()`` first if the model has dropout. The context is cropped to the last
        block_size tokens. With ``use_cache`` the prompt is run once and each later token costs one
        position's work. Once the sequence is longer than block_size the window slides, which shifts
        every position embedding and invalidates the cached keys, so from then on each token re-runs
        the cropped window exactly as ``use_cache=False`` does (rolling the cache would give different
        tokens from the cache-free model). Both paths give the same tokens for the same seed.
        """
        return generate_tokens(
            self._next_logits(use_cache), idx, max_new_tokens, self.device, temperature, top_k, top_p, "GPT.generate"
        )

    def generate_stream(
        self,
        idx: TokenIds,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        use_cache: bool = True,
    ) -> Iterator[np.ndarray]:
        """``generate`` one token at a time: yields each new token as an int array (B, 1) when it is drawn
        (the same draws as ``generate`` for the same seed)."""
        return iter_tokens(
            self._next_logits(use_cache),
            idx,
            max_new_tokens,
            self.device,
            temperature,
            top_k,
            top_p,
            "GPT.generate_stream",
        )

    def _next_logits(self, use_cache):
        """int Tensor (B, T) -> the next position's logits (B, V), through a key/value cache when asked."""
        block_size = self.config.block_size
        cache = KVCache(self.config.n_layer, block_size) if use_cache else None

        def next_logits(tokens):
            if cache is not None and tokens.shape[1] <= block_size:
                logits, _ = self(tokens[:, cache.length :], kv_cache=cache)
            else:
                logits, _ = self(tokens[:, -block_size:])
            return logits[:, -1, :]

        return next_logits

    def estimate_mfu(self, fwdbwd_per_iter: int, dt: float, peak_flops: float) -> float:
        """Model FLOPs utilisation: achieved FLOP/s over ``peak_flops`` (the device's peak FLOP/s, e.g.
        the BLAS GEMM rate measured on this machine). PaLM appendix B: 6N + 12 L H Q T FLOPs per token
        for a forward and backward pass."""
        if not dt > 0 or not peak_flops > 0:
            raise TinygradTxError(f"estimate_mfu: dt and peak_flops must be > 0, got dt={dt}, peak_flops={peak_flops}")
        cfg = self.config
        layers, heads, head_dim, seq = cfg.n_layer, cfg.n_head, cfg.n_embd // cfg.n_head, cfg.block_size
        flops_per_token = 6 * self.num_params() + 12 * layers * heads * head_dim * seq
        flops_per_iter = flops_per_token * seq * fwdbwd_per_iter
        return flops_per_iter / dt / peak_flops

    def configure_optimizers(
        self, weight_decay: float, learning_rate: float, betas: tuple[float, float] = (0.9, 0.95)
    ) -> AdamW:
        """AdamW with two groups: weight decay on every >= 2-D weight (matmuls, embeddings), none on
        biases and LayerNorm gains, as nanoGPT."""
        params = [param for param in self.parameters() if param.requires_grad]
        groups = [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ]
        return AdamW(groups, lr=learning_rate, betas=betas)

    # ---------------------------------------------------------------- OpenAI's GPT-2 (Hugging Face checkpoints)
    @classmethod
    def from_pretrained(cls, name_or_path: Path, device: str = "cpu", dropout: float = 0.0) -> "GPT":
        """GPT-2 from a Hugging Face checkpoint: a name (gpt2, gpt2-medium, gpt2-large, gpt2-xl, or
        openai-community/<name>) looked up in the Hugging Face cache (downloaded with huggingface_hub when it is
        installed), or a directory with config.json and model.safetensors (or pytorch_model.bin, read with
        torch.load(weights_only=True)). GPT-2's MLP uses the tanh GELU (gelu_new). See models/pretrained.py."""
        state, config = load_pretrained(name_or_path, "GPT.from_pretrained", dropout)  # checked, then built
        model = cls(config)
        model.load_state_dict(state)
        return model.to(device)

    # ---------------------------------------------------------------- .npz weights (nanoGPT interchange)
    @classmethod
    def from_npz(cls, path: Path, device: str = "cpu") -> "GPT":
        """A GPT built from an .npz written by ``save_npz`` or ``train.convert_nanogpt`` (with the file's
        dropout: call ``.eval()`` before sampling)."""
        state, config = read_npz(path)  # the file's names and shapes checked against its config first
        model = cls(config)
        model.load_state_dict(state)
        return model.to(device)

    def load_npz(self, path: Path) -> "GPT":
        """Load the weights of an .npz into this model; its architecture must match the file's (dropout may differ)."""
        state, config = read_npz(path, "GPT.load_npz")
        if dataclasses.replace(config, dropout=self.config.dropout) != self.config:
            raise TinygradTxError(f"GPT.load_npz: {path} holds a model with {config}, this one is {self.config}")
        self.load_state_dict(state)
        return self

    def save_npz(self, path: Path) -> None:
        write_npz(path, self.state_dict(), dataclasses.asdict(self.config))

    # ---------------------------------------------------------------- safetensors weights
    @classmethod
    def from_safetensors(cls, path: Path, device: str = "cpu") -> "GPT":
        """A GPT built from a safetensors file written by ``save_safetensors``."""
        state, config = read_safetensors(path)  # the file's names and shapes checked against its config first
        model = cls(config)
        model.load_state_dict(state)
        return model.to(device)

    def load_safetensors(self, path: Path) -> "GPT":
        """Load a safetensors file's weights into this model (state dict names; the metadata is not needed)."""
        state, _ = load_safetensors(path)
        self.load_state_dict(state)
        return self

    def save_safetensors(self, path: Path) -> None:
        """Every parameter under each of its names (the tied weight twice, as nanoGPT's state dict has it),
        float32, plus the GPTConfig as JSON in the metadata."""
        save_safetensors(self.state_dict(), path, {SAFETENSORS_ARGS_KEY: json.dumps(dataclasses.asdict(self.config))})
