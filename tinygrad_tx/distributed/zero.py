"""ZeRO stage 1: each rank keeps the optimizer state of, and steps, only the tensors it owns.

zero = ZeroOptimizer(model.configure_optimizers(...), comm)
loss, stop = zero.reduce_gradients(last_loss, stop_flag)   # after backward: this rank's summed gradients
zero.clip_grad_norm_(model.parameters(), 1.0)              # the global norm, from every rank's share
zero.step(); zero.zero_grad()                              # the owners step, an all-gather shares the result
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import backend
from ..optim import Optimizer, clip_grad_norm_, squared_norm
from ..tensor import Tensor


class ZeroOptimizer:
    """An optimizer's state sharded over the ranks by whole tensors.

    Tensors are dealt largest first, each to the rank owning the fewest bytes so far, and the flat
    gradient is laid out by owner. A reduce-scatter leaves each rank the summed gradients of its own
    tensors; one small all-reduce then carries every tensor's squared norm (clipping and per-layer
    norms need the global values), the loss to log and the Ctrl-C flag. The owner steps its tensors and
    an all-gather sends the new values to every rank: the same traffic as one all-reduce, and the same
    weights as plain data-parallel, bit for bit. ``state_dict`` gathers every rank's state (a
    collective), so a checkpoint is plain data-parallel's and resumes at any world size;
    ``load_state_dict`` keeps this rank's share.
    """

    def __init__(self, optimizer: Optimizer, comm: Any) -> None:
        self.optimizer, self.comm = optimizer, comm
        self.param_groups = optimizer.param_groups
        self.params = optimizer._params()
        loads = [0] * comm.world_size
        self.owner: dict[int, int] = {}
        for index in sorted(range(len(self.params)), key=lambda i: -self.params[i].size):
            rank = loads.index(min(loads))
            self.owner[index] = rank
            loads[rank] += self.params[index].data.nbytes
        self.order = sorted(range(len(self.params)), key=lambda i: (self.owner[i], i))  # grouped by owner
        self.counts = [
            sum(self.params[i].size for i in self.order if self.owner[i] == rank) for rank in range(comm.world_size)
        ]
        self.mine = [i for i in self.order if self.owner[i] == comm.rank]
        self.index_of = {id(param): index for index, param in enumerate(self.params)}
        self._squares = np.zeros((2, len(self.params)))  # gathered sum(grad**2) per tensor: float64, float32

    def state_bytes_per_rank(self, arrays_per_param: int = 2) -> list[int]:
        """The optimizer-state bytes each rank holds (AdamW: exp_avg and exp_avg_sq per owned tensor)."""
        itemsize = self.params[0].data.itemsize
        return [arrays_per_param * count * itemsize for count in self.counts]

    # ---------------------------------------------------------------- one step
    def reduce_gradients(self, last_loss: Tensor | float, stop: float) -> tuple[float, float]:
        """Sum the gradients over ranks, keeping only this rank's tensors'; returns the reduced (loss, stop)."""
        first = self.params[0].data
        xp = backend.xp_of(first)
        flat = xp.empty(sum(self.counts), first.dtype)
        offset = 0
        for index in self.order:
            param = self.params[index]
            flat[offset : offset + param.size] = 0 if param.grad is None else param.grad.data.reshape(-1)
            offset += param.size
        mine, offset = self.comm.reduce_scatter(flat, self.counts), 0
        for param in self.params:
            param.grad = None
        for index in self.mine:
            param = self.params[index]
            param.grad = Tensor._wrap(mine[offset : offset + param.size].reshape(param.shape))
            offset += param.size
        count = len(self.params)
        summary = np.zeros(2 * count + 2)  # float64: each entry has one contributor, so every sum is exact
        if self.mine:
            grads = [self.params[i].grad.data for i in self.mine]
            own = backend.to_numpy(
                xp.stack([squared_norm(g) for g in grads] + [(g * g).sum().astype(xp.float64) for g in grads])
            )
            summary[self.mine] = own[: len(grads)]
            summary[[count + i for i in self.mine]] = own[len(grads) :]
        summary[-2:] = (last_loss.item() if isinstance(last_loss, Tensor) else last_loss), stop
        self.comm.allreduce_sum(summary)
        self._squares = summary[: 2 * count].reshape(2, count)
        return float(summary[-2]), float(summary[-1])

    def squared_gradient_norms(self, parameters: Iterable[Tensor]) -> list[np.float32]:
        """sum(grad**2) of each parameter as its owner computed it (float32), from the last reduce_gradients."""
        return [np.float32(self._squares[1, self.index_of[id(param)]]) for param in parameters]

    def clip_grad_norm_(self, parameters: Iterable[Tensor], max_norm: float) -> float:
        """``optim.clip_grad_norm_`` of the full gradient: the norm adds every rank's squared norms in the order
        of ``parameters`` (as clip_grad_norm_ would), and this rank's gradients are scaled."""
        squares = sum(self._squares[0, self.index_of[id(param)]] for param in parameters)
        return clip_grad_norm_([self.params[i] for i in self.mine], max_norm, total_norm=math.sqrt(float(squares)))

    def step(self) -> None:
        for index, param in enumerate(self.params):
            if self.owner[index] != self.comm.rank:
                param.grad = None  # the optimizer skips tensors without a gradient: it keeps no state for them
        self.optimizer.step()
        xp = backend.xp_of(self.params[0].data)
        mine = (
            xp.concatenate([self.params[i].data.reshape(-1) for i in self.mine])
            if self.mine
            else xp.empty(0, self.params[0].data.dtype)
        )
        whole, offset = self.comm.allgather(mine, self.counts), 0
        for index in self.order:
            param = self.params[index]
            param.data[...] = whole[offset : offset + param.size].reshape(param.shape)
            offset += param.size

    def zero_grad(self) -> None:
        self.optimizer.zero_grad()

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        """Every rank's state merged (a collective: call it on all ranks)."""
        own = self.optimizer.state_dict()
        merged: dict = {}
        for states in self.comm.gather_objects(own["state"]):
            merged.update(states)
        return {"state": dict(sorted(merged.items())), "param_groups": own["param_groups"]}

    def load_state_dict(self, state_dict: dict) -> None:
        mine = {
            index: entries for index, entries in state_dict["state"].items() if self.owner[int(index)] == self.comm.rank
        }
        self.optimizer.load_state_dict({**state_dict, "state": mine})
