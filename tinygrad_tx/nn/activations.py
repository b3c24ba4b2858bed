"""Fused activations: softmax, log_softmax, gelu, dropout, and the erf that exact GELU needs.

Each op is one Function with a hand-derived backward (pages in docs/derivations/). Forwards work on
temporaries they allocate themselves, in place, and save the cheapest thing the backward needs.
"""
import math
import numbers

from .. import backend
from ..backend import xp_of
from ..errors import TinygradTxError
from ..function import Function
from ..ops import normalize_axes, require_float
from ..kernels import cuda as cuda_kernels

SQRT_HALF = math.sqrt(0.5)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
TANH_CUBIC = 0.044715  # the cubic coefficient of GELU's tanh approximation (Hendrycks & Gimpel)

# erf(x) ~ x P(x^2) / Q(x^2) on |x| <= 3.92 (beyond it erf rounds to +-1 in float32). Coefficients
# fitted for this project by weighted least squares against math.erf: max error 2e-8 in exact
# arithmetic, 4e-7 (a few ulp near +-1) when evaluated in float32.
_ERF_CLAMP = 3.92
_ERF_P = (1.1283790879, 0.1910612972, 0.052837851201, 0.0037956042785, 0.0002858892205, 2.0486426455e-06)
_ERF_Q = (1.0, 0.50265591842, 0.11438271782, 0.015027283208, 0.0011705285462, 3.8131085794e-05)
_ERF64_CLAMP, _ERF64_TERMS = 6.0, 100  # erf(6) is 1 in float64; 100 series terms reach float64 rounding there


# The float32 rational runs ~24 elementwise passes; over blocks that fit in the L2 cache instead of
# whole arrays it ran 2.4x faster on the 2-core box (40 vs 95 ms for 6.3M elements).
ERF_BLOCK = 1 << 15


def _polynomial_into(coefficients, s, out):
    """out = sum_i c_i s^i by Horner's rule."""
    xp_of(s).multiply(s, coefficients[-1], out=out)
    for c in coefficients[-2:0:-1]:
        out += c
        out *= s
    out += coefficients[0]
    return out


def _erf_rational_into(x, out, scratch):
    """out = x P(x^2) / Q(x^2) for one block (1-D ``x``, ``out``; ``scratch`` holds three such arrays)."""
    xp = xp_of(x)
    squares, numerator, denominator = scratch[:, :x.size]
    xp.clip(x, -_ERF_CLAMP, _ERF_CLAMP, out=out)
    xp.multiply(out, out, out=squares)
    out *= _polynomial_into(_ERF_P, squares, numerator)
    out /= _polynomial_into(_ERF_Q, squares, denominator)
    # the fit ends a hair below 1 at the clamp: beyond it erf is exactly +-1 in float32 (gelu(-1e4) = -0, not -3e-4)
    xp.abs(x, out=squares)
    xp.copyto(out, xp.sign(x), where=squares >= _ERF_CLAMP)


def erf(x):
    """The error function of a float array, elementwise (NumPy has none; scipy is not a dependency).

    float64: the everywhere-positive series erf(x) = 2/sqrt(pi) e^(-x^2) sum_n 2^n x^(2n+1) / (2n+1)!!
    (no cancellation; error ~2e-15), slow but exact enough for gradchecks. Other dtypes: the fitted
    rational x P(x^2)/Q(x^2) above, within 4e-7 of erf in float32, over cache-sized blocks on the CPU.
    """
    xp = xp_of(x)
    if x.dtype == xp.float64:
        x = xp.clip(x, -_ERF64_CLAMP, _ERF64_CLAMP)
        two_x2 = 2.0 * x * x
        term, total = x.copy(), x.copy()
        for n in range(1, _ERF64_TERMS):
            term *= two_x2 / (2 * n + 1)
            total += term
        return (2.0 / math.sqrt(math.pi)) * xp.exp(-x * x) * total
    flat = xp.ascontiguousarray(x).reshape(-1)
    out = xp.empty_like(flat)
    backend.in_row_blocks(_erf_into, flat, out)
    return out.reshape(x.shape)


def _erf_into(flat, out):
    """out = erf(flat) (1-D float32) by the rational, over cache-sized blocks on the CPU."""
    block = max(1, flat.size if backend.device_of(flat) == "gpu" else min(flat.size, ERF_BLOCK))
    scratch = xp_of(flat).empty((3, block), flat.dtype)
    for start in range(0, flat.size, block):
        _erf_rational_into(flat[start:start + block], out[start:start + block], scratch)


def softmax_into(x, axis, out=None):
    """softmax(x) along ``axis`` written into ``out`` (which may be ``x`` itself when the caller owns it).

    Subtracting the row maximum keeps exp() finite for any finite logits. A row that is entirely
    -inf (a fully masked attention row) gives all zeros instead of NaN.
    """
    if axis % x.ndim == x.ndim - 1 and cuda_kernels.fits_row_kernel(x, out):
        return cuda_kernels.softmax_last_axis(x, out)
    out = xp_of(x).empty_like(x) if out is None else out
    if axis % x.ndim == 0:
        _softmax_block(x, axis, out)
    else:  # rows are independent: the leading axis splits across cores
        backend.in_row_blocks(lambda x_block, out_block: _softmax_block(x_block, axis, out_block), x, out)
    return out


def _softmax_block(x, axis, out):
    xp = xp_of(x)
    row_max = x.max(axis=axis, keepdims=True)
    xp.maximum(row_max, xp.finfo(x.dtype).min, out=row_max)  # all -inf row: avoid -inf - -inf = nan
    xp.subtract(x, row_max, out=out)
    xp.exp(out, out=out)
    total = out.sum(axis=axis, keepdims=True)
    xp.maximum(total, 1.0, out=total)  # a row with any finite entry sums to >= 1; an all -inf row to 0
    out /= total


def row_dots(a, b):
    """sum(a * b, axis=-1, keepdims=True) without an a-sized temporary (NumPy >= 2's vecdot)."""
    xp = xp_of(a)
    if hasattr(xp, "vecdot"):
        return xp.vecdot(a, b)[..., None]
    return (a * b).sum(axis=-1, keepdims=True)


def single_axis(op, axis, ndim):
    if not isinstance(axis, numbers.Integral):
        raise TinygradTxError(f"{op}: axis must be one int, got {axis!r}")
    return normalize_axes(op, axis, ndim)[0]


class Softmax(Function):
    """y = exp(x - max x) / sum exp(x - max x) along ``axis``; saves y."""

    @staticmethod
    def forward(ctx, x, axis=-1):
        require_float("softmax", x)
        ctx.axis = single_axis("softmax", axis, x.ndim)
        y = softmax_into(x, ctx.axis) if x.size else x.copy()   # an empty axis has no maximum to shift by
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        """dx = y * (g - sum(g * y, axis)).  docs/derivations/softmax.md"""
        (y,) = ctx.saved_tensors
        if ctx.axis == y.ndim - 1 and cuda_kernels.fits_row_kernel(y, grad):
            return cuda_kernels.softmax_backward_last_axis(y, grad)
        grad_x = grad * y
        weighted = grad_x.sum(axis=ctx.axis, keepdims=True)
        xp_of(grad).subtract(grad, weighted, out=grad_x)
        grad_x *= y
        return grad_x


class LogSoftmax(Function):
    """y = x - max x - log sum exp(x - max x) along ``axis``; saves y."""

    @staticmethod
    def forward(ctx, x, axis=-1):
        require_float("log_softmax", x)
        xp = xp_of(x)
        ctx.axis = axis = single_axis("log_softmax", axis, x.ndim)
        if x.size == 0:   # an empty axis has no maximum to shift by
            ctx.save_for_backward(x.copy())
            return x.copy()
        y = x - x.max(axis=axis, keepdims=True)
        y -= xp.log(xp.exp(y).sum(axis=axis, keepdims=True))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        """dx = g - exp(y) * sum(g, axis).  docs/derivations/softmax.md"""
        (y,) = ctx.saved_tensors
        grad_x = xp_of(y).exp(y)
        grad_x *= -grad.sum(axis=ctx.axis, keepdims=True)
        grad_x += grad
        return grad_x


class Gelu(Function):
    """gelu(x) = x Phi(x) with Phi(x) = (1 + erf(x / sqrt 2)) / 2, or PyTorch's tanh approximation."""

    @staticmethod
    def forward(ctx, x, approximate="none"):
        require_float("gelu", x)
        if approximate not in ("none", "tanh"):
            raise TinygradTxError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        ctx.approximate, ctx.in_shape = approximate, x.shape
        # a 0-d input runs as shape (1,): NumPy arithmetic on 0-d arrays returns scalars, which out= refuses
        return Gelu._forward(ctx, x.reshape(x.shape or (1,)), approximate).reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        return Gelu._backward(ctx, grad.reshape(grad.shape or (1,))).reshape(ctx.in_shape)

    @staticmethod
    def _forward(ctx, x, approximate):
        xp = xp_of(x)
        if backend.is_gpu_array(x):                            # one fused CuPy kernel
            out, gate = cuda_kernels.gelu(x, approximate)
            ctx.save_for_backward(x, gate)
            return out
        if approximate == "none" and x.dtype != xp.float64:   # the float32 erf: blocks on every core
            x = xp.ascontiguousarray(x)
            gate, out = xp.empty_like(x), xp.empty_like(x)
            backend.in_row_blocks(_gelu_exact_into, x.reshape(-1), gate.reshape(-1), out.reshape(-1))
            ctx.save_for_backward(x, gate)
            return out
        if approximate == "none":
            gate = erf(x * SQRT_HALF)            # becomes Phi(x)
            gate += 1.0
            gate *= 0.5
        else:
            gate = x * x
            gate *= TANH_CUBIC
            gate += 1.0
            gate *= x
            gate *= SQRT_2_OVER_PI
            xp_of(x).tanh(gate, out=gate)        # t = tanh(sqrt(2/pi) (x + 0.044715 x^3))
        ctx.save_for_backward(x, gate)
        if approximate == "none":
            return x * gate
        out = gate + 1.0
        out *= 0.5
        out *= x
        return out

    @staticmethod
    def _backward(ctx, grad):
        """none: dx = g (Phi(x) + x phi(x));  tanh: dx = g (1+t)/2 + g x (1-t^2) sqrt(2/pi) (1 + 3 0.044715 x^2) / 2.
        docs/derivations/gelu.md"""
        x, gate = ctx.saved_tensors
        xp = xp_of(x)
        if backend.is_gpu_array(x):
            return cuda_kernels.gelu_backward(x, gate, grad, ctx.approximate)
        if ctx.approximate == "none" and x.flags.c_contiguous:
            slope = xp.empty_like(x)
            backend.in_row_blocks(_gelu_exact_slope_into, x.reshape(-1), gate.reshape(-1),
                                  xp.ascontiguousarray(grad).reshape(-1), slope.reshape(-1))
            return slope
        if ctx.approximate == "none":
            slope = x * x
            slope *= -0.5
            xp.exp(slope, out=slope)
            slope *= INV_SQRT_2PI                # phi(x), the standard normal density
            slope *= x
            slope += gate
        else:
            slope = x * x
            slope *= 3.0 * TANH_CUBIC
            slope += 1.0
            slope *= SQRT_2_OVER_PI
            slope *= 1.0 - gate * gate
            slope *= x
            slope += 1.0 + gate
            slope *= 0.5
        slope *= grad
        return slope


def _gelu_exact_into(x, gate, out):
    """gate = Phi(x) = (1 + erf(x / sqrt 2)) / 2 and out = x gate, for one 1-D block."""
    xp_of(x).multiply(x, SQRT_HALF, out=out)
    _erf_into(out, gate)
    gate += 1.0
    gate *= 0.5
    xp_of(x).multiply(x, gate, out=out)


def _gelu_exact_slope_into(x, gate, grad, out):
    """out = grad (Phi(x) + x phi(x)) for one 1-D block."""
    xp = xp_of(x)
    xp.multiply(x, x, out=out)
    out *= -0.5
    xp.exp(out, out=out)
    out *= INV_SQRT_2PI                          # phi(x), the standard normal density
    out *= x
    out += gate
    out *= grad


def check_dropout_probability(op, p):
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p < 1.0:
        raise TinygradTxError(f"{op}: dropout probability must be a number in [0, 1), got {p!r}")


def dropout_mask(shape, p, dtype, device):
    """Keep each element with probability 1 - p, scaled by 1/(1 - p): 0 or 1/(1-p), from backend.rng."""
    draws = backend.rng(device).random(shape, dtype="float32")  # one generator: drawn in order, on one core
    mask = draws if draws.dtype == dtype else xp_of(draws).empty(shape, dtype)
    backend.in_row_blocks(lambda block, out: _keep_scaled_into(block, out, p), draws, mask)
    return mask


def _keep_scaled_into(draws, out, p):
    """out = (draws >= p) / (1 - p); ``out`` may be ``draws`` itself."""
    xp_of(draws).greater_equal(draws, p, out=out)
    out *= 1.0 / (1.0 - p)


class Dropout(Function):
    """Inverted dropout: y = x * mask, mask in {0, 1/(1-p)}; saves the mask."""

    @staticmethod
    def forward(ctx, x, p):
        require_float("dropout", x)
        mask = dropout_mask(x.shape, p, x.dtype, backend.device_of(x))
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, grad):
        """dx = g * mask (the forward's own mask).  docs/derivations/dropout.md"""
        (mask,) = ctx.saved_tensors
        return grad * mask, None
