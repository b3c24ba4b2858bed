"""The ops behind nn.Linear and nn.Embedding: an affine map as one GEMM, and a row lookup.

Derivations: docs/derivations/matmul.md (linear) and docs/derivations/embedding.md.
"""

from ..backend import xp_of
from ..errors import DTypeError, IndexOutOfRangeError, ShapeError
from ..function import Function
from ..kernels import pick, reference
from ..ops import as_rows, require_float
from ..tensor import Tensor


class LinearFunction(Function):
    """y = x W^T + b with W of shape (out_features, in_features); x (..., in) runs as one (N, in) GEMM.

    Reference: kernels/reference.py: linear_forward, linear_backward
    Derivation: docs/derivations/matmul.md
    Test: tests/nn/test_functional.py::test_linear
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        require_float("linear", x, weight, bias)
        if weight.ndim != 2 or x.ndim == 0 or x.shape[-1] != weight.shape[1]:
            raise ShapeError(
                f"linear: input shape {tuple(x.shape)} does not fit weight shape {tuple(weight.shape)} "
                f"(weight must be (out_features, in_features) with in_features = the input's last axis)"
            )
        if bias is not None and tuple(bias.shape) != (weight.shape[0],):
            raise ShapeError(
                f"linear: bias shape {tuple(bias.shape)} does not match out_features "
                f"({weight.shape[0]},) of weight shape {tuple(weight.shape)}"
            )
        rows = as_rows(x)
        out = pick(reference.linear_forward, rows)(rows, weight, bias)
        ctx.save_for_backward(rows, weight)
        ctx.x_shape = x.shape
        return out.reshape(x.shape[:-1] + (weight.shape[0],))

    @staticmethod
    def backward(ctx, grad):
        """dx = g W, dW = g^T x, db = sum_rows g (g, x as (N, features) matrices).  docs/derivations/matmul.md"""
        rows, weight = ctx.saved_tensors
        if isinstance(grad, Tensor) and ctx.inputs[0] is not None:  # recorded: the input's rows, not a saved view
            rows = as_rows(ctx.inputs[0])
        grad_rows = as_rows(grad)
        grad_x, grad_weight, grad_bias = pick(reference.linear_backward, grad_rows)(
            grad_rows, rows, weight, ctx.needs_input_grad
        )
        return None if grad_x is None else grad_x.reshape(ctx.x_shape), grad_weight, grad_bias


class EmbeddingFunction(Function):
    """out[...] = weight[indices[...]]: rows of a (num_embeddings, dim) table picked by integer indices.

    Reference: kernels/reference.py: embedding_backward
    Derivation: docs/derivations/embedding.md
    Test: tests/nn/test_functional.py::test_embedding_with_repeated_indices
    """

    @staticmethod
    def forward(ctx, indices, weight):
        require_float("embedding", weight)
        if indices.dtype.kind not in "iu":
            raise DTypeError(f"embedding: indices must be integers, got dtype {indices.dtype}")
        if weight.ndim != 2:
            raise ShapeError(
                f"embedding: weight must be (num_embeddings, embedding_dim), got shape {tuple(weight.shape)}"
            )
        num_rows = weight.shape[0]
        if indices.size:
            low, high = int(indices.min()), int(indices.max())
            if low < 0 or high >= num_rows:
                raise IndexOutOfRangeError(
                    f"embedding: index {low if low < 0 else high} is out of range for a table "
                    f"of {num_rows} rows (valid: 0..{num_rows - 1})"
                )
        ctx.save_for_backward(indices)
        ctx.num_rows = num_rows
        return xp_of(weight).take(weight, indices, axis=0)

    @staticmethod
    def backward(ctx, grad):
        """dweight[k] = sum of g[i] over every position i with indices[i] == k.  docs/derivations/embedding.md"""
        (indices,) = ctx.saved_tensors
        rows = as_rows(grad)
        return None, pick(reference.embedding_backward, rows)(indices.reshape(-1), rows, ctx.num_rows)
