"""The differential fuzzer against PyTorch, under a fixed CI budget (bench/fuzzing/specs.py is the table).

Every public op gets FUZZ_EXAMPLES drawn cases (derandomized: the same cases on every run) compared
with PyTorch: forward values and dtype, every input gradient under a random upstream gradient, and
the same refusals. ``python -m bench.fuzz --minutes N --seed S`` runs the long sweep.
"""

import os
import time
import warnings

import numpy as np
import pytest

from bench.fuzzing.core import Divergence, Leaf, Spec, check, fuzz
from bench.fuzzing.specs import NOT_OPS, SPECS, public_names

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
BUDGET_S = 60.0
_spent = []


def test_every_public_op_has_a_spec():
    names = public_names()
    missing = sorted(names - set(SPECS) - set(NOT_OPS))
    assert not missing, f"public ops without a fuzz spec (add one to bench/fuzzing/specs*.py): {missing}"
    stale = sorted((set(SPECS) | set(NOT_OPS)) - names)
    assert not stale, f"specs or exclusions for names that are not public: {stale}"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_op_agrees_with_pytorch(name):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's nan/inf warnings: values are compared instead
        fuzz(SPECS[name], FUZZ_EXAMPLES, seed=0, derandomize=True)
    _spent.append(time.perf_counter() - start)
    assert sum(_spent) < BUDGET_S, f"the fuzzer's CI budget of {BUDGET_S:.0f} s is spent ({sum(_spent):.1f} s)"


def test_the_checker_catches_a_wrong_gradient_a_wrong_value_and_a_raw_error():
    """Test the tester: a broken twin of a correct op must be reported."""
    x = Leaf(np.arange(1.0, 5.0, dtype=np.float32))
    wrong_gradient = Spec("Tensor.exp", None, lambda t: t.exp(), lambda t: t.detach().exp() + 0 * t)
    with pytest.raises(Divergence, match="gradient of input 0"):
        check(wrong_gradient, ((x,), {}))
    wrong_value = Spec("Tensor.exp", None, lambda t: t.exp(), lambda t: t.exp() * 1.001)
    with pytest.raises(Divergence, match="output 0: max error"):
        check(wrong_value, ((x,), {}))
    raw_error = Spec("Tensor.exp", None, lambda t: np.log(None), lambda t: t.exp())
    with pytest.raises(Divergence, match="not a TinygradTxError"):
        check(raw_error, ((x,), {}))
    silent = Spec("Tensor.exp", None, lambda t: t.exp(), lambda t: t[10])
    with pytest.raises(Divergence, match="PyTorch raised IndexError .* but tinygrad_tx returned a result"):
        check(silent, ((x,), {}))
