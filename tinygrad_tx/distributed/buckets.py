"""Gradients all-reduced in buckets while backward still runs (data-parallel's overlap of compute and transfer).

    buckets = GradientBuckets(model.parameters(), comm, bucket_bytes=25 * 2**20)
    buckets.start(last_loss, stop_flag)                  # before the last micro-step's backward
    with buckets.sending_during_backward():              # each bucket leaves once all its gradients are final
        loss.backward()
    reduced_loss, reduced_stop = buckets.finish()        # every .grad now holds the sum over ranks

``bucket_bytes=0`` makes one bucket, sent by ``finish`` after backward: one flat all-reduce per step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from .. import backend
from ..tensor import Tensor


class GradientBuckets:
    """Gradients packed into flat buckets, each summed over the ranks as soon as all its tensors are final.

    Buckets follow backward's order (the parameters reversed: the output side first) and close at
    ``bucket_bytes``. The last bucket carries two extra slots, the loss to log and the Ctrl-C flag, so
    they travel in the same collectives. Every rank launches the same buckets in the same order, as MPI
    and NCCL require (the engine finishes leaves in the same order on every rank). A parameter's
    gradient is final when its post-accumulate-grad hook runs (``Tensor.register_post_accumulate_grad_hook``),
    which ``sending_during_backward`` registers for one backward.
    """

    def __init__(self, params: Iterable[Tensor], comm: Any, bucket_bytes: int) -> None:
        self.comm = comm
        groups: list[list[Tensor]] = []
        current: list[Tensor] = []
        size = 0
        for param in reversed(list(params)):
            if current and bucket_bytes and size + param.data.nbytes > bucket_bytes:
                groups.append(current)
                current, size = [], 0
            current.append(param)
            size += param.data.nbytes
        groups.append(current)
        xp, dtype = backend.xp_of(groups[0][0].data), groups[0][0].data.dtype
        self.members = groups
        self.flats = [
            xp.empty(sum(p.size for p in group) + (2 if number == len(groups) - 1 else 0), dtype)
            for number, group in enumerate(groups)
        ]
        self.where: dict[int, tuple[int, int]] = {}  # id(param) -> (bucket number, offset in it)
        for number, group in enumerate(groups):
            offset = 0
            for param in group:
                self.where[id(param)] = (number, offset)
                offset += param.size
        self.missing: list[int] = []
        self.handles: list[Any] = []

    def start(self, last_loss: Tensor | float, stop: float) -> None:
        """Before the last micro-step's backward: reset, and put the loss (a Tensor stays on its device) and flag in."""
        self.missing = [len(group) for group in self.members]
        self.handles = [None] * len(self.members)
        self.flats[-1][-2] = last_loss.data if isinstance(last_loss, Tensor) else last_loss
        self.flats[-1][-1] = stop

    @contextlib.contextmanager
    def sending_during_backward(self) -> Iterator[None]:
        """For a backward inside the block, each bucket is sent as soon as its gradients are final.

        Registers ``leaf_final`` as every parameter's post-accumulate-grad hook, and removes the hooks
        on leaving the block, whether backward finished or raised, so other backwards never see them.
        """
        params = [param for group in self.members for param in group]
        handles = [param.register_post_accumulate_grad_hook(self.leaf_final) for param in params]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def leaf_final(self, param: Tensor) -> None:
        """The post-accumulate-grad hook: ``param.grad`` is complete; pack it, and send its bucket once full."""
        grad = param.grad
        if id(param) not in self.where or grad is None:  # not ours, or no gradient: finish() sends it
            return
        number, offset = self.where[id(param)]
        self.flats[number][offset : offset + param.size] = grad.data.reshape(-1)
        self.missing[number] -= 1
        if self.missing[number] == 0:
            self.handles[number] = self.comm.allreduce_sum_async(self.flats[number])

    def finish(self) -> tuple[float, float]:
        """Send what backward did not (a tensor without a gradient counts as zeros), wait, unpack into .grad.

        Returns the reduced (loss, stop flag).
        """
        for number, group in enumerate(self.members):
            if self.handles[number] is not None:
                continue
            for param in group:
                _, offset = self.where[id(param)]
                view = self.flats[number][offset : offset + param.size]
                view[...] = 0 if param.grad is None else param.grad.data.reshape(-1)
            self.handles[number] = self.comm.allreduce_sum_async(self.flats[number])
        for handle in self.handles:
            handle.wait()
        for number, group in enumerate(self.members):
            for param in group:
                _, offset = self.where[id(param)]
                reduced = self.flats[number][offset : offset + param.size].reshape(param.shape)
                if param.grad is None:
                    param.grad = Tensor._wrap(reduced.copy())
                else:
                    param.grad.data[...] = reduced
        extras = backend.to_numpy(self.flats[-1][-2:])
        return float(extras[0]), float(extras[1])
