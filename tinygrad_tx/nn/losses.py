"""Fused cross-entropy: log-softmax and negative log-likelihood in one op, with ignore_index.

Derivation: docs/derivations/cross_entropy.md.
"""

from ..backend import xp_of
from ..errors import DTypeError, IndexOutOfRangeError, ShapeError, TinygradTxError
from ..function import Function
from ..kernels import pick, reference
from ..ops import as_rows, require_float
from ..tensor import Tensor

REDUCTIONS = ("mean", "sum", "none")


def check_targets(logits, targets, ignore_index, reduction):
    """The shape, dtype and range rules of cross_entropy, with messages naming the bad values."""
    require_float("cross_entropy", logits)
    if reduction not in REDUCTIONS:
        raise TinygradTxError(f"cross_entropy: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if logits.ndim not in (2, 3):
        raise ShapeError(f"cross_entropy: logits must be (N, C) or (B, T, C), got shape {tuple(logits.shape)}")
    if targets.dtype.kind not in "iu":
        raise DTypeError(f"cross_entropy: targets must be integer class indices, got dtype {targets.dtype}")
    if tuple(targets.shape) != tuple(logits.shape[:-1]):
        raise ShapeError(
            f"cross_entropy: targets shape {tuple(targets.shape)} does not match logits shape "
            f"{tuple(logits.shape)} (expected {tuple(logits.shape[:-1])})"
        )
    classes = logits.shape[-1]
    counted = targets != ignore_index
    bad = counted & ((targets < 0) | (targets >= classes))
    if bad.any():  # one small reduction; on the GPU this is the op's only host sync
        raise IndexOutOfRangeError(
            f"cross_entropy: target {int(targets[bad].ravel()[0])} is out of range for "
            f"{classes} classes (valid: 0..{classes - 1}, or ignore_index={ignore_index})"
        )
    return counted


class CrossEntropy(Function):
    """loss_i = logsumexp(z_i) - z_i[t_i] over rows i whose target is not ignore_index.

    reduction "mean" divides the sum by the number of counted rows; when every target is ignored the
    loss is 0.0 and the gradient is zero (PyTorch returns nan there). "none" gives one loss per
    position, 0 at ignored ones. Saves the softmax probabilities.

    Reference: kernels/reference.py: cross_entropy_forward, cross_entropy_backward
    Derivation: docs/derivations/cross_entropy.md
    Test: tests/nn/test_functional.py::test_cross_entropy
    """

    @staticmethod
    def forward(ctx, logits, targets, ignore_index=-1, reduction="mean"):
        xp = xp_of(logits)
        counted = check_targets(logits, targets, ignore_index, reduction).reshape(-1)
        rows = as_rows(logits)
        safe_targets = xp.where(counted, targets.reshape(-1), 0)  # ignored rows read class 0, then get weight 0
        probs, row_loss = pick(reference.cross_entropy_forward, rows)(rows, safe_targets, counted)
        count = xp.maximum(counted.sum(dtype=logits.dtype), 1.0)  # all ignored: 0 / 1, not 0 / 0
        ctx.save_for_backward(probs, safe_targets, counted, count)
        ctx.reduction, ctx.logits_shape = reduction, logits.shape
        if reduction == "none":
            return row_loss.reshape(targets.shape)
        total_loss = row_loss.sum()
        return total_loss / count if reduction == "mean" else total_loss

    @staticmethod
    def backward(ctx, grad):
        """dz_i = w_i (softmax(z_i) - onehot(t_i)), w_i = g_i (none), g (sum) or g / count (mean), 0 if ignored.
        docs/derivations/cross_entropy.md"""
        probs, safe_targets, counted, count = ctx.saved_tensors
        if isinstance(grad, Tensor) and ctx.inputs[0] is not None:
            # recorded (create_graph): the probabilities recomputed from the logits, so that they are differentiated too
            probs = reference.cross_entropy_forward(as_rows(ctx.inputs[0]), safe_targets, counted)[0]
        if ctx.reduction == "none":
            row_weight = grad.reshape(-1) * counted
        else:
            row_weight = counted * (grad / count if ctx.reduction == "mean" else grad)
        grad_rows = pick(reference.cross_entropy_backward, probs)(probs, safe_targets, row_weight)
        return grad_rows.reshape(ctx.logits_shape), None
