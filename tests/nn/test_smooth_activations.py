"""tinygrad_tx/nn/smooth_activations.py: F.silu and F.softplus against PyTorch (CPU and GPU) and gradcheck in float64,
softplus across its threshold and with other beta; both refuse integer tensors and bad arguments."""

import numpy as np
import pytest
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_tx as tx
import tinygrad_tx.nn.functional as F
from tinygrad_tx import Tensor, gradcheck

from helpers import DEVICES
from helpers.op_checks import against_torch, data, leaves

ACTIVATIONS = {
    "silu": (F.silu, TF.silu),
    "softplus": (F.softplus, TF.softplus),
    "softplus_beta": (lambda x: F.softplus(x, beta=2.0, threshold=3.0), lambda x: TF.softplus(x, 2.0, 3.0)),
    "softplus_negative_beta": (lambda x: F.softplus(x, beta=-0.5), lambda x: TF.softplus(x, -0.5)),
}
small_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


@pytest.mark.parametrize("name", ACTIVATIONS)
@given(shape=small_shapes, seed=st.integers(0, 2**16))
def test_gradcheck_smooth_activations(name, shape, seed):
    x = data(shape, seed) * 3
    if name == "softplus_beta":  # the threshold is a jump in the derivative: keep away from it
        x = np.where(np.abs(2.0 * x - 3.0) < 1e-2, 0.0, x)
    assert gradcheck(ACTIVATIONS[name][0], leaves([x], dtype="float64"))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_against_torch_smooth_activations(device, name):
    x = np.concatenate([data((3, 5), 0) * 4, [[-200.0, -30.0, 0.0, 1.5, 15.0], [20.0, 25.0, 60.0, 100.0, 1e4]]])
    against_torch(*ACTIVATIONS[name], [x], device)


def test_softplus_refuses_bad_arguments_and_integers():
    with pytest.raises(tx.TinygradTxError, match=r"softplus: beta must be a number, got 'a'"):
        F.softplus(Tensor([1.0]), beta="a")
    with pytest.raises(tx.DTypeError, match=r"silu: needs a float tensor, got dtype int64"):
        F.silu(Tensor([1, 2]))
