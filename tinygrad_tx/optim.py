"""Optimizers (SGD, AdamW), gradient clipping and nanoGPT's learning-rate schedule.

Every update works in place on the parameters' arrays and on the optimizer's state arrays, with one
reusable scratch buffer per (device, dtype) for the temporaries, so a step allocates nothing that
grows with the model. float32 parameters stay float32: hyperparameters enter as Python floats.
The update rules are torch.optim's (SGD with momentum and L2 weight decay; AdamW with decoupled
weight decay), so their results agree to float32 rounding.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any, Union

from . import backend
from .errors import TinygradTxError
from .kernels import pick, reference
from .tensor import Tensor

# the parameters, or group dicts {"params": [...], "lr": ..., ...}
Params = Union[Iterable[Tensor], Iterable[dict[str, Any]]]


class Optimizer:
    """Parameter groups, per-parameter state, and saving/restoring both.

    ``params`` is an iterable of Parameters, or of group dicts ``{"params": [...], "lr": .., ...}``
    whose missing settings come from the optimizer's defaults.
    """

    state_keys: tuple[str, ...] = ()  # names of the per-parameter state entries (arrays, plus "step" counts)

    def __init__(self, params: Params, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        if isinstance(params, Tensor):
            raise TinygradTxError(
                f"{self._name}: params must be an iterable of Parameters or of group dicts, "
                "got a single Tensor (wrap it in a list)"
            )
        groups: list[Any] = list(params)
        if not groups:
            raise TinygradTxError(f"{self._name}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.param_groups: list[dict[str, Any]] = []
        for group in groups:
            self.add_param_group(group)
        self.state: dict[int, dict[str, Any]] = {}  # id(param) -> dict of state entries
        # (device, dtype) -> flat buffer as large as the largest parameter seen
        self._scratch: dict[tuple[str, Any], Any] = {}

    @property
    def _name(self):
        return type(self).__name__

    def add_param_group(self, group: dict[str, Any]) -> None:
        group = {**self.defaults, **group, "params": list(group["params"])}
        self._check_hyperparameters(group)
        known = {id(p) for g in self.param_groups for p in g["params"]}
        for param in group["params"]:
            if not isinstance(param, Tensor) or not param.requires_grad:
                raise TinygradTxError(
                    f"{self._name}: every parameter must be a Tensor with requires_grad=True, "
                    f"got {type(param).__name__}"
                )
            if id(param) in known:
                raise TinygradTxError(
                    f"{self._name}: a parameter of shape {param.shape} appears in more than one "
                    "place in the parameter groups"
                )
            known.add(id(param))
        self.param_groups.append(group)

    def _check_hyperparameters(self, group):
        lr, weight_decay = group["lr"], group.get("weight_decay", 0.0)
        if not isinstance(lr, numbers.Real) or not lr > 0:
            raise TinygradTxError(f"{self._name}: lr must be a positive number, got {lr!r}")
        if not isinstance(weight_decay, numbers.Real) or not weight_decay >= 0:
            raise TinygradTxError(f"{self._name}: weight_decay must be >= 0, got {weight_decay!r}")

    def _params(self):
        return [param for group in self.param_groups for param in group["params"]]

    def zero_grad(self) -> None:
        for param in self._params():
            param.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient, in place."""
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    self._update(param.data, param.grad.data, self.state.setdefault(id(param), {}), group)

    def _update(self, param, grad, state, group):
        raise NotImplementedError

    def _scratch_like(self, array):
        """A reusable temporary with ``array``'s shape, dtype and device (valid until the next call)."""
        key = (backend.device_of(array), array.dtype)
        buffer = self._scratch.get(key)
        if buffer is None or buffer.size < array.size:
            buffer = self._scratch[key] = backend.xp_of(array).empty(array.size, array.dtype)
        return buffer[: array.size].reshape(array.shape)

    # ------------------------------------------------------------------ saving and restoring
    def state_dict(self) -> dict[str, Any]:
        """{"state": {index: {key: NumPy array or int}}, "param_groups": [{settings, "params": [index]}]}.

        Parameters are numbered in group order, as torch.optim does; arrays are copies.
        """
        index = {id(p): i for i, p in enumerate(self._params())}
        state = {
            index[pid]: {
                key: value if isinstance(value, int) else backend.to_numpy(value).copy()
                for key, value in entries.items()
            }
            for pid, entries in self.state.items()
            if pid in index
        }
        groups = [
            {**{k: v for k, v in g.items() if k != "params"}, "params": [index[id(p)] for p in g["params"]]}
            for g in self.param_groups
        ]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore settings and state saved by ``state_dict``; every mismatch is reported in one error."""
        problems = self._problems_loading(state_dict)
        if problems:
            raise TinygradTxError(f"{self._name}.load_state_dict: {'; '.join(problems)}")
        for saved, group in zip(state_dict["param_groups"], self.param_groups):
            group.update({k: (tuple(v) if k == "betas" else v) for k, v in saved.items() if k != "params"})
        params, self.state = self._params(), {}
        for index, entries in state_dict["state"].items():
            param = params[int(index)]
            self.state[id(param)] = {
                key: int(value) if key == "step" else backend.as_array(value, param.device, param.dtype).copy()
                for key, value in entries.items()
            }

    def _problems_loading(self, state_dict):
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            found = f"keys {sorted(state_dict)}" if isinstance(state_dict, dict) else type(state_dict).__name__
            return [f"expected a dict with 'state' and 'param_groups' (from state_dict()), got {found}"]
        params, saved_groups, problems = self._params(), state_dict["param_groups"], []
        if len(saved_groups) != len(self.param_groups):
            problems.append(f"{len(saved_groups)} parameter groups saved, this optimizer has {len(self.param_groups)}")
        else:
            for number, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
                if len(saved["params"]) != len(group["params"]):
                    problems.append(
                        f"group {number} saved {len(saved['params'])} parameters, has {len(group['params'])}"
                    )
        for index, entries in state_dict["state"].items():
            index = int(index)
            if not 0 <= index < len(params):
                problems.append(f"state for parameter {index}, but there are only {len(params)}")
                continue
            if set(entries) and set(entries) < set(self.state_keys):
                problems.append(
                    f"parameter {index}: state {sorted(entries)} is incomplete (expected {self.state_keys})"
                )
            for key, value in entries.items():
                if key not in self.state_keys:
                    problems.append(f"parameter {index}: unknown state entry {key!r} (expected {self.state_keys})")
                elif key != "step" and tuple(value.shape) != params[index].shape:
                    problems.append(
                        f"parameter {index}: {key!r} has shape {tuple(value.shape)}, "
                        f"the parameter has {params[index].shape}"
                    )
        return problems


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and L2 weight decay, as torch.optim.SGD."""

    state_keys = ("momentum_buffer",)

    def __init__(self, params: Params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        if not isinstance(momentum, numbers.Real) or not momentum >= 0:
            raise TinygradTxError(f"SGD: momentum must be >= 0, got {momentum!r}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    def _update(self, param, grad, state, group):
        """d = g + wd p; buf = momentum buf + d (buf = d at first); p -= lr buf (or lr d without momentum)."""
        lr, momentum, weight_decay = float(group["lr"]), float(group["momentum"]), float(group["weight_decay"])
        scratch = self._scratch_like(param)
        direction = grad
        if weight_decay:
            backend.xp_of(param).multiply(param, weight_decay, out=scratch)
            scratch += grad
            direction = scratch
        if momentum:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = direction.copy()
            else:
                buffer *= momentum
                buffer += direction
            direction = buffer
        backend.xp_of(param).multiply(direction, lr, out=scratch)
        param -= scratch


class AdamW(Optimizer):
    """Adam with decoupled weight decay, exactly torch.optim.AdamW's update (amsgrad off)."""

    state_keys = ("step", "exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ) -> None:
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})

    def _check_hyperparameters(self, group):
        super()._check_hyperparameters(group)
        betas, eps = group["betas"], group["eps"]
        if len(betas) != 2 or not all(isinstance(b, numbers.Real) and 0 <= b < 1 for b in betas):
            raise TinygradTxError(f"AdamW: betas must be two numbers in [0, 1), got {betas!r}")
        if not isinstance(eps, numbers.Real) or not eps >= 0:
            raise TinygradTxError(f"AdamW: eps must be >= 0, got {eps!r}")
        group["betas"] = tuple(betas)

    def _update(self, param, grad, state, group):
        """p <- p (1 - lr wd) - lr/(1-b1^t) m / (sqrt(v/(1-b2^t)) + eps), m and v the moving averages of g, g^2.
        docs/derivations/adamw.md"""
        xp = backend.xp_of(param)
        lr, eps, weight_decay = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        if not state:
            state.update(step=0, exp_avg=xp.zeros_like(param), exp_avg_sq=xp.zeros_like(param))
        state["step"] += 1
        pick(reference.adamw_update, param)(
            param,
            grad,
            state["exp_avg"],
            state["exp_avg_sq"],
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
            state["step"],
        )


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, total_norm: float | None = None) -> float:
    """Scale all gradients by max_norm / (norm + 1e-6) when their total 2-norm exceeds max_norm.

    As torch.nn.utils.clip_grad_norm_: the norm is over every gradient together; returns it as a float
    (the one value that comes back to the host). ``total_norm``: the norm when it was computed
    elsewhere (a ZeRO-1 rank holds only its share of the gradients); only ``parameters`` are scaled.
    """
    if not isinstance(max_norm, numbers.Real) or not max_norm > 0:
        raise TinygradTxError(f"clip_grad_norm_: max_norm must be a positive number, got {max_norm!r}")
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [param.grad.data for param in parameters if param.grad is not None]
    if total_norm is None:
        if not grads:
            return 0.0
        total_norm = math.sqrt(float(sum(squared_norm(g) for g in grads)))
    scale = max_norm / (total_norm + 1e-6)
    if scale < 1:
        for grad in grads:
            grad *= scale
    return total_norm


def squared_norm(array: Any) -> Any:
    """sum(array**2) as a float64 scalar on the array's device (what clip_grad_norm_ adds up, in order)."""
    xp = backend.xp_of(array)
    return xp.vdot(array.ravel(), array.ravel()).astype(xp.float64)


def cosine_lr(it: int, learning_rate: float, min_lr: float, warmup_iters: int, lr_decay_iters: int) -> float:
    """nanoGPT's get_lr: linear warmup lr (it+1)/(warmup_iters+1), cosine decay to min_lr at lr_decay_iters."""
    if it < 0 or lr_decay_iters < warmup_iters:
        raise TinygradTxError(
            f"cosine_lr: need it >= 0 and lr_decay_iters >= warmup_iters, got it={it}, "
            f"warmup_iters={warmup_iters}, lr_decay_iters={lr_decay_iters}"
        )
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:  # ">=" rather than nanoGPT's ">": same value, and no 0/0 when the two are equal
        return min_lr
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * decay_ratio)) * (learning_rate - min_lr)
