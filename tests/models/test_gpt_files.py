"""Files that lie, and sizes that cannot fit (models/gpt_files.py, models/gpt_config.py, tinygrad_tx/serialization.py).

Each lying file is built here, tiny. Loading it must be a one-line TinygradTxError within a second with
nothing big allocated (tracemalloc's peak, which NumPy reports its buffers to, stays small), never a
MemoryError, a RecursionError or a minute of building a model the file does not hold.
"""

import io
import json
import struct
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
from safetensors.numpy import save_file

from models.gpt import GPT, GPTConfig
from tinygrad_tx import TinygradTxError

from helpers.gpt import TINY, tiny_gpt

SMALL_PEAK = 20 * 2**20  # bytes: far below any model the lying files claim


def fails_fast(call, *fragments):
    """The one-line TinygradTxError ``call()`` raises, checked for ``fragments``, speed and memory."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(TinygradTxError) as caught:
            call()
        seconds, (_, peak) = time.perf_counter() - started, tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    assert seconds < 1.0, f"took {seconds:.2f} s: {message}"
    assert peak < SMALL_PEAK, f"allocated {peak / 2**20:.0f} MiB: {message}"
    return message


def safetensors_with(path, model_args, tensors=None):
    save_file(tensors or {"w": np.zeros(2, np.float32)}, str(path), metadata={"model_args": model_args})
    return path


def npy_bytes(shape, data=b"", dtype="<f4"):
    """An .npy file whose header claims ``shape`` and whose data is ``data``."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + data


def npz_with(path, entries):
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in entries.items():
            archive.writestr(f"{name}.npy", content)
    return path


def npz_model_args(text):
    buffer = io.BytesIO()
    np.save(buffer, np.array(text))
    return buffer.getvalue()


BIG = json.dumps(dict(TINY, n_embd=4096, n_head=8))


@pytest.mark.parametrize(
    "model_args, message",
    [
        (BIG, "the file holds 1 tensors but its model_args"),  # 200 bytes claiming n_embd 4096: no 5 GB model
        ("{n_layer: 2", "model_args are not valid JSON"),
        ("[1, 2]", "model_args must be a JSON object of GPTConfig fields, got list"),
        ("[" * 200000, "model_args are not valid JSON (nested too deeply)"),
        (json.dumps(dict(TINY, n_layer="2")), "n_layer must be a positive integer, got '2'"),
        (json.dumps(dict(TINY, dropout="0.1")), "dropout must be a number in [0, 1)"),
        (json.dumps(dict(TINY, vocab_size=200000, n_embd=20000, n_head=2)), "the file holds 1 tensors"),
    ],
)
def test_safetensors_metadata_that_lies(tmp_path, model_args, message):
    path = safetensors_with(tmp_path / "lie.safetensors", model_args)
    fails_fast(lambda: GPT.from_safetensors(path), "GPT.from_safetensors", str(path), message)


def test_safetensors_tensors_that_do_not_fit_the_config_are_refused_before_building(tmp_path):
    state = {name: np.asarray(value) for name, value in tiny_gpt(seed=0).state_dict().items()}
    state["transformer.wpe.weight"] = state["transformer.wpe.weight"].T.copy()
    args = json.dumps(dict(TINY, n_embd=4096, n_head=8, n_layer=1))  # the right count, the wrong widths
    path = safetensors_with(tmp_path / "shapes.safetensors", args, state)
    fails_fast(lambda: GPT.from_safetensors(path), "shape mismatch", "transformer.wte.weight (11, 8) != (11, 4096)")


def test_a_safetensors_header_claiming_more_than_the_file_stores(tmp_path):
    header = {"w": {"dtype": "F32", "shape": [200000, 200000], "data_offsets": [0, 16]}}
    text = json.dumps(header).encode()
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text + bytes(16))
    fails_fast(lambda: GPT.from_safetensors(path), "tensor 'w' claims shape (200000, 200000) F32", "stores 16 bytes")
    path.write_bytes(struct.pack("<Q", 10**12) + text)
    fails_fast(lambda: GPT.from_safetensors(path), "not a safetensors file", "header length 1000000000000")
    nested = b"[" * 200000
    path.write_bytes(struct.pack("<Q", len(nested)) + nested)
    fails_fast(lambda: GPT.from_safetensors(path), "header is not valid JSON (nested too deeply)")


def test_an_npz_header_claiming_more_than_the_file_stores(tmp_path):
    path = npz_with(
        tmp_path / "huge.npz",
        {
            "__model_args__": npz_model_args(json.dumps(TINY)),
            "transformer.wte.weight": npy_bytes((200000, 200000), bytes(16)),
        },
    )
    fails_fast(lambda: GPT.from_npz(path), "GPT.from_npz", "claims shape (200000, 200000) float32", "stores 16 bytes")


@pytest.mark.parametrize(
    "model_args, message",
    [
        ("not json", "model_args are not valid JSON"),
        ("[1]", "got list"),
        ("[" * 200000, "nested too deeply"),
        (BIG, "the file holds 0 tensors"),
    ],
)
def test_npz_model_args_that_lie(tmp_path, model_args, message):
    path = npz_with(tmp_path / "lie.npz", {"__model_args__": npz_model_args(model_args)})
    fails_fast(lambda: GPT.from_npz(path), "GPT.from_npz", message)


def test_an_honest_file_still_loads(tmp_path):
    model = tiny_gpt(seed=1)
    model.save_npz(tmp_path / "m.npz")
    model.save_safetensors(tmp_path / "m.safetensors")
    idx = np.arange(8)[None] % 11
    for loaded in (GPT.from_npz(tmp_path / "m.npz"), GPT.from_safetensors(tmp_path / "m.safetensors")):
        np.testing.assert_array_equal(loaded(idx, idx)[0].numpy(), model(idx, idx)[0].numpy())


# ---------------------------------------------------------------- sizes that cannot fit
def test_the_memory_estimate_counts_the_parameters_exactly():
    from models.gpt_config import estimate_gpt_memory, parameter_count

    for bias in (True, False):
        model = tiny_gpt(seed=0, bias=bias)
        assert parameter_count(model.config) == model.num_params(non_embedding=False)
        estimate = estimate_gpt_memory(model.config, batch_size=2, training=True)
        assert estimate.parameters == 4 * model.num_params(non_embedding=False)
        assert estimate.optimizer == 3 * estimate.parameters and estimate.activations > 0
    assert estimate_gpt_memory(model.config).activations == 0


def test_a_gpt_too_big_for_the_memory_is_one_line_before_allocating(monkeypatch):
    huge = GPTConfig(vocab_size=200000, n_embd=20000, n_head=2, n_layer=12, block_size=8)  # ~230 GB of weights
    fails_fast(lambda: GPT(huge), "GPT(vocab_size=200000, n_embd=20000, n_layer=12, ...) needs about", "is available")
    monkeypatch.setattr("models.gpt_config.available_memory_bytes", lambda device="cpu": 2 * 2**30)
    wide = GPTConfig(vocab_size=200000, n_embd=20000, n_head=2, n_layer=1, block_size=8)  # 35 GB: more than 2 GiB
    message = fails_fast(lambda: GPT(wide), "needs about 32.8 GiB (parameters 32.8 GiB)", "but 2.0 GiB of memory")
    assert "choose a smaller model" in message
