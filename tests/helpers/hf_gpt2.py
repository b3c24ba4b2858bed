"""Tiny OpenAI GPT-2 checkpoints in Hugging Face's layout, made in the test (no network): config.json,
model.safetensors with Conv1D (in, out) weights and the attention mask buffers, vocab.json and merges.txt, and
a hub cache tree (models--<repo>/refs/main -> snapshots/<hash>/)."""

import json
import os

import numpy as np
from safetensors.numpy import save_file

from train.gpt2_tokenizer import bytes_to_unicode

HF_CONFIG = {
    "model_type": "gpt2",
    "activation_function": "gelu_new",
    "n_layer": 2,
    "n_head": 2,
    "n_embd": 8,
    "n_positions": 16,
    "vocab_size": 23,
    "layer_norm_epsilon": 1e-5,
    "resid_pdrop": 0.1,
}


def hf_tensors(config=HF_CONFIG, seed=0, prefix="", buffers=True):
    """GPT-2 tensors as a Hugging Face file holds them: Conv1D weights (in, out), mask buffers, no lm_head."""
    rng = np.random.default_rng(seed)
    c, v, t = config["n_embd"], config["vocab_size"], config["n_positions"]

    def draw(*shape, scale=0.3):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    tensors = {"wte.weight": draw(v, c), "wpe.weight": draw(t, c)}
    for i in range(config["n_layer"]):
        layer = {
            "ln_1.weight": 1 + draw(c, scale=0.1), "ln_1.bias": draw(c, scale=0.1),
            "attn.c_attn.weight": draw(c, 3 * c), "attn.c_attn.bias": draw(3 * c, scale=0.1),
            "attn.c_proj.weight": draw(c, c), "attn.c_proj.bias": draw(c, scale=0.1),
            "ln_2.weight": 1 + draw(c, scale=0.1), "ln_2.bias": draw(c, scale=0.1),
            "mlp.c_fc.weight": draw(c, 4 * c), "mlp.c_fc.bias": draw(4 * c, scale=0.1),
            "mlp.c_proj.weight": draw(4 * c, c), "mlp.c_proj.bias": draw(c, scale=0.1),
        }  # fmt: skip
        if buffers:
            layer["attn.bias"] = np.tril(np.ones((t, t), dtype=np.float32))[None, None]
            layer["attn.masked_bias"] = np.array(-1e4, dtype=np.float32)
        tensors.update({f"h.{i}.{name}": value for name, value in layer.items()})
    tensors["ln_f.weight"], tensors["ln_f.bias"] = 1 + draw(c, scale=0.1), draw(c, scale=0.1)
    return {prefix + name: value for name, value in tensors.items()}


def write_checkpoint(directory, tensors=None, config=HF_CONFIG):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as file:
        json.dump(config, file)
    save_file(hf_tensors(config) if tensors is None else tensors, os.path.join(directory, "model.safetensors"))
    return str(directory)


def fake_cache(root, repo, tensors=None, revision="0123abcd"):
    """A Hugging Face hub cache tree: models--<repo>/refs/main naming snapshots/<revision>/ with the files."""
    base = os.path.join(root, "models--" + repo.replace("/", "--"))
    os.makedirs(os.path.join(base, "refs"))
    with open(os.path.join(base, "refs", "main"), "w", encoding="utf-8") as ref:
        ref.write(revision)
    return write_checkpoint(os.path.join(base, "snapshots", revision), tensors)


MERGES = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "Ġa n", "Ġan d", "l l", "Ġ w", "e ll", "' s", "Ċ Ċ"]


def write_files(directory, merges=MERGES, header=True):
    """vocab.json: the 256 byte characters (ids 0..255 in GPT-2's order), one id per merge, then <|endoftext|>."""
    chars = list(bytes_to_unicode().values())
    vocab = {char: index for index, char in enumerate(chars)}
    for merge in merges:
        vocab[merge.replace(" ", "")] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "vocab.json"), "w", encoding="utf-8") as file:
        json.dump(vocab, file, ensure_ascii=False)
    with open(os.path.join(directory, "merges.txt"), "w", encoding="utf-8") as file:
        file.write(("#version: 0.2\n" if header else "") + "\n".join(merges) + "\n")
    return vocab


def write_gpt2_directory(directory):
    """A directory with all four files, the model's vocabulary the tokenizer's (for train.sample --init_from)."""
    vocab = write_files(directory)
    config = {**HF_CONFIG, "vocab_size": len(vocab)}
    write_checkpoint(directory, hf_tensors(config), config)
    return str(directory)
