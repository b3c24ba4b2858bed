"""Convert a nanoGPT checkpoint (``ckpt.pt``) into the .npz that ``models.GPT.from_npz`` loads.

    python -m train.convert_nanogpt out-shakespeare-char/ckpt.pt shakespeare_char.npz
    # then, in Python:  from models import GPT;  model = GPT.from_npz("shakespeare_char.npz")

Reads ``ckpt["model"]`` (the state dict) and ``ckpt["model_args"]`` (n_layer, n_head, n_embd,
block_size, bias, vocab_size, dropout), strips the ``_orig_mod.`` prefix that ``torch.compile`` adds,
drops the causal-mask buffers (``*.attn.bias``, 4-D) that nanoGPT registers when flash attention is
unavailable, and writes every weight as a float32 array under its unchanged name, plus the model
arguments as JSON (``models.gpt.write_npz``). Only this step needs PyTorch.

The other direction needs no converter: ``model.state_dict()`` has nanoGPT's names and layouts, so
``nanogpt_model.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})``.
"""

import argparse
import pickle
import re
import sys

from models.gpt import write_npz
from tinygrad_tx import tune_for_training
from tinygrad_tx.errors import TinygradTxError

COMPILE_PREFIX = "_orig_mod."
REQUIRED_ARGS = ("n_layer", "n_head", "n_embd", "block_size", "bias", "vocab_size")


def nanogpt_state_to_numpy(state_dict):
    """nanoGPT's state dict (torch tensors) -> {name: float32 NumPy array} with our (= nanoGPT's) names."""
    arrays = {}
    for name, tensor in state_dict.items():
        if name.startswith(COMPILE_PREFIX):
            name = name[len(COMPILE_PREFIX) :]
        if name.endswith(".attn.bias") and tensor.ndim == 4:  # the causal mask buffer, not a weight
            continue
        arrays[name] = tensor.detach().to("cpu").float().numpy()
    return arrays


def convert(checkpoint_path, output_path):
    """Read a nanoGPT ckpt.pt, write the .npz; returns the model arguments."""
    import torch  # only the converter needs it

    try:
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise TinygradTxError(f"convert_nanogpt: no such checkpoint file: {checkpoint_path}") from None
    except pickle.UnpicklingError as exc:  # torch's weights-only unpickler: a long multi-line text, cut to its reason
        refused = re.search(r"GLOBAL (\S+) was not an allowed global", str(exc))
        if refused:
            raise TinygradTxError(
                f"convert_nanogpt: {checkpoint_path} is not a weights-only checkpoint: it holds a Python object "
                f"({refused.group(1)}) that torch.load(weights_only=True) refuses, and unpickling it could run "
                "code; save the state dict and model_args alone and convert that"
            ) from None
        reason = re.search(r"WeightsUnpickler error:\s*(.*?)(\n\n|$)", str(exc).strip(), re.S)
        detail = reason.group(1) if reason else str(exc).splitlines()[0]
        raise TinygradTxError(
            f"convert_nanogpt: cannot read {checkpoint_path} as a torch checkpoint: {' '.join(detail.split())}"
        ) from None
    except (OSError, RuntimeError, EOFError) as exc:  # truncated or not a torch file
        raise TinygradTxError(
            f"convert_nanogpt: cannot read {checkpoint_path} as a torch checkpoint: {' '.join(str(exc).split())}"
        ) from None
    if not isinstance(checkpoint, dict) or "model" not in checkpoint or "model_args" not in checkpoint:
        raise TinygradTxError(
            f"convert_nanogpt: {checkpoint_path} is not a nanoGPT checkpoint "
            "(expected a dict with 'model' and 'model_args')"
        )
    model_args = dict(checkpoint["model_args"])
    missing = [key for key in REQUIRED_ARGS if key not in model_args]
    if missing:
        raise TinygradTxError(f"convert_nanogpt: {checkpoint_path}: model_args lacks {missing}")
    write_npz(output_path, nanogpt_state_to_numpy(checkpoint["model"]), model_args)
    return model_args


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m train.convert_nanogpt", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="nanoGPT ckpt.pt")
    parser.add_argument("output", help="the .npz to write (load with models.GPT.from_npz)")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    args = parser.parse_args(argv)
    tune_for_training()  # the trainer's thread settings, as every command that computes applies them
    try:
        model_args = convert(args.checkpoint, args.output)
    except TinygradTxError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {model_args}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
