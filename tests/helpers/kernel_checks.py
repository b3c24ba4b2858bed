"""The checks that a fast kernel equals its reference, one per kernel family: run both on the same inputs
(the fast one on the reference forward's saved arrays, so each gradient is compared on its own) and hold
every output to ``kernel_cases.assert_same``. Shared by tests/kernels/ (test_kernels.py,
test_kernels_elementwise.py, test_row_blocks.py, test_team.py).
"""

import numpy as np

from tinygrad_tx import backend

from .kernel_cases import REFERENCE, assert_same


def check_softmax(fast, x, axis, grad):
    y, terms = REFERENCE["softmax_forward"](x, axis), x.shape[axis]
    assert_same("softmax", "forward", fast["softmax_forward"](x, axis), y, terms=terms)
    magnitude = y * (abs(grad) + (abs(grad) * y).sum(axis=axis, keepdims=True))
    assert_same(
        "softmax",
        "backward",
        fast["softmax_backward"](y, grad, axis),
        REFERENCE["softmax_backward"](y, grad, axis),
        magnitude,
        terms,
    )


def check_log_softmax(fast, x, axis, grad):
    y, terms = REFERENCE["log_softmax_forward"](x, axis), x.shape[axis]
    assert_same("log_softmax", "forward", fast["log_softmax_forward"](x, axis), y, terms=terms)
    magnitude = abs(grad) + np.exp(y) * abs(grad).sum(axis=axis, keepdims=True)
    assert_same(
        "log_softmax",
        "backward",
        fast["log_softmax_backward"](y, grad, axis),
        REFERENCE["log_softmax_backward"](y, grad, axis),
        magnitude,
        terms,
    )


def check_cross_entropy(fast, logits, targets, counted, row_weight):
    probs, row_loss = REFERENCE["cross_entropy_forward"](logits, targets, counted)
    fast_probs, fast_loss = fast["cross_entropy_forward"](logits, targets, counted)
    terms = logits.shape[1]
    assert_same("cross_entropy", "probabilities", fast_probs, probs, terms=terms)
    assert_same("cross_entropy", "row losses", fast_loss, row_loss, terms=terms)
    magnitude = abs(row_weight)[:, None] * (probs + (np.arange(probs.shape[1]) == targets[:, None]))
    assert_same(
        "cross_entropy",
        "backward",
        fast["cross_entropy_backward"](probs, targets, row_weight),
        REFERENCE["cross_entropy_backward"](probs, targets, row_weight),
        magnitude,
        terms,
    )


def check_layer_norm(fast, x, weight, bias, grad, eps=1e-5):
    saved, terms = REFERENCE["layer_norm_forward"](x, weight, bias, eps), max(x.shape[-1], x.size // x.shape[-1])
    for what, actual, expected in zip(
        ("output", "xhat", "rstd"), fast["layer_norm_forward"](x, weight, bias, eps), saved
    ):
        assert_same("layer_norm", what, actual, expected, terms=terms)
    _, xhat, rstd = saved
    d, features = abs(grad if weight is None else grad * weight), x.shape[-1]
    projection = abs(xhat) * (d * abs(xhat)).mean(axis=-1, keepdims=True)
    magnitudes = (
        rstd * (d + d.mean(axis=-1, keepdims=True) + projection),
        (abs(grad) * abs(xhat)).reshape(-1, features).sum(axis=0),
        abs(grad).reshape(-1, features).sum(axis=0),
    )
    for what, actual, expected, magnitude in zip(
        ("grad x", "grad weight", "grad bias"),
        fast["layer_norm_backward"](grad, xhat, rstd, weight),
        REFERENCE["layer_norm_backward"](grad, xhat, rstd, weight),
        magnitudes,
    ):
        assert (actual is None) == (expected is None), f"layer_norm {what}: None in one implementation only"
        if expected is not None:
            assert_same("layer_norm", what, actual, expected, magnitude, terms)


def check_attention(fast, q, k, v, allowed, dropout_p, grad, seed):
    scale, terms = 1.0 / np.sqrt(q.shape[-1]).item(), max(q.shape[-2:] + k.shape[-2:])
    backend.manual_seed(seed)  # both draw the same dropout mask
    out, probs, dropped = REFERENCE["attention_forward"](q, k, v, allowed, dropout_p, scale)
    backend.manual_seed(seed)
    for what, actual, expected in zip(
        ("output", "probabilities", "dropped probabilities"),
        fast["attention_forward"](q, k, v, allowed, dropout_p, scale),
        (out, probs, dropped),
    ):
        assert_same("attention", what, actual, expected, terms=terms)
    kept = dropped * (abs(grad) @ np.swapaxes(abs(v), -1, -2))
    grad_scores = kept + probs * kept.sum(axis=-1, keepdims=True)  # dS's formula on absolute values
    magnitudes = (
        scale * (grad_scores @ abs(k)),
        scale * (np.swapaxes(grad_scores, -1, -2) @ abs(q)),
        np.swapaxes(dropped, -1, -2) @ abs(grad),
    )
    for what, actual, expected, magnitude in zip(
        ("grad q", "grad k", "grad v"),
        fast["attention_backward"](q, k, v, probs, dropped, grad, scale),
        REFERENCE["attention_backward"](q, k, v, probs, dropped, grad, scale),
        magnitudes,
    ):
        assert_same("attention", what, actual, expected, magnitude, terms)


def check_gelu(fast, x, grad, approximate):
    """The gate Phi(x) (or 1 + t) is a difference near 0 for very negative x: the fast float32 erf's
    4e-7 and one rounding of 1 + erf are absolute errors, so y = x gate is measured against |x| and
    dx = g (...) against |g|. Both sides recompute the gate from x in the backward."""
    op = f"gelu_{approximate}"
    assert_same(op, "forward", fast["gelu_forward"](x, approximate), REFERENCE["gelu_forward"](x, approximate), abs(x))
    assert_same(
        op,
        "backward",
        fast["gelu_backward"](x, grad, approximate),
        REFERENCE["gelu_backward"](x, grad, approximate),
        abs(grad) * (1.0 + abs(x)),
    )


def check_dropout(fast, x, p, grad, seed):
    backend.manual_seed(seed)  # both draw the same uniform numbers
    out, mask = REFERENCE["dropout_forward"](x, p)
    backend.manual_seed(seed)
    fast_out, fast_mask = fast["dropout_forward"](x, p)
    assert_same("dropout", "mask", fast_mask, mask)
    assert_same("dropout", "forward", fast_out, out, abs(x) * mask)
    assert_same("dropout", "backward", fast["dropout_backward"](mask, grad), REFERENCE["dropout_backward"](mask, grad))


def check_embedding_backward(fast, indices, grad_rows, num_rows):
    magnitude = REFERENCE["embedding_backward"](indices, abs(grad_rows), num_rows)  # the sums of |g|
    assert_same(
        "embedding_backward",
        "grad weight",
        fast["embedding_backward"](indices, grad_rows, num_rows),
        REFERENCE["embedding_backward"](indices, grad_rows, num_rows),
        magnitude,
        terms=max(1, indices.size),
    )


def check_adamw(fast, make_state, grads, weight_decay):
    """``make_state()`` -> fresh (param, exp_avg, exp_avg_sq), the same values each call; one step per gradient."""
    ours, theirs = make_state(), make_state()
    for step, grad in enumerate(grads, 1):
        settings = dict(lr=1e-2, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=weight_decay, step=step)
        fast["adamw_update"](ours[0], grad, ours[1], ours[2], **settings)
        REFERENCE["adamw_update"](theirs[0], grad, theirs[1], theirs[2], **settings)
        for what, actual, expected in zip(("param", "exp_avg", "exp_avg_sq"), ours, theirs):
            assert_same("adamw_update", f"{what} after step {step}", actual, expected)
