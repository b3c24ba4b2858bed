"""Anomaly mode: the first NaN/Inf names the op, the pass and the user's line."""

import numpy as np
import pytest

from tinygrad_tx import AnomalyError, Function, Tensor, detect_anomaly

pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")


class NanBackward(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 1.0

    @staticmethod
    def backward(ctx, grad):
        return grad * np.nan


def test_off_by_default_lets_nan_through():
    out = Tensor(np.array([-1.0])).log()
    assert np.isnan(out.numpy()).all()


def test_nan_in_forward_names_op_pass_and_line():
    x = Tensor(np.array([1.0, -1.0]), requires_grad=True)
    with (
        detect_anomaly(),
        pytest.raises(
            AnomalyError, match=r"Log produced a NaN or Inf in its forward pass .* created at .*test_anomaly.py:\d+"
        ),
    ):
        x.log()


def test_nan_in_backward_names_op_pass_and_line():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with detect_anomaly():
        y = NanBackward.apply(x).sum()
        with pytest.raises(
            AnomalyError, match=r"NanBackward produced a NaN or Inf in its backward pass .*test_anomaly.py:\d+"
        ):
            y.backward()
