"""Sample text from a trained run, printing each token's text as soon as it is drawn.

    python -m train.sample --out_dir runs/cpu --prompt "ROMEO:" --num_samples 3 --max_new_tokens 500 \\
        --temperature 0.8 --top_k 200 --top_p 0.95 --seed 1337
    python -m train.sample --out_dir runs/cpu --prompt FILE:prompt.txt     # or --prompt_file prompt.txt

The model, its tokenizer and its settings all come from the checkpoint (``--ckpt best`` or ``last``).
Errors print one ``error: ...`` line and exit with status 2 (``--debug`` shows the traceback).
"""
import os
import sys

import numpy as np

from models.generation import check_sampling_args
from models.gpt import GPT, GPTConfig
from tinygrad_tx import Tensor, manual_seed, normalize_device
from tinygrad_tx.errors import TinygradTxError
from train.checkpoint import load_checkpoint
from train.config import ArgumentParser, ConfigError
from train.tokenizers import Tokenizer
from train.trainer import CHECKPOINT_NAMES, checkpoint_path

PROMPT_FILE_PREFIX = "FILE:"
SEPARATOR = "\n---------------"


def build_parser():
    parser = ArgumentParser(prog="python -m train.sample", allow_abbrev=False,
                            description="Generate text from a checkpoint of python -m train.shakespeare.")
    parser.add_argument("--out_dir", default="runs/shakespeare", help="run directory (default: %(default)s)")
    parser.add_argument("--ckpt", default="best", choices=CHECKPOINT_NAMES, help="which checkpoint (default: best)")
    parser.add_argument("--prompt", default="\n", help="start text, or FILE:path to read it from a file "
                        "(default: a newline)")
    parser.add_argument("--prompt_file", help="read the start text from this file")
    parser.add_argument("--num_samples", type=int, default=3, help="samples to draw (default: %(default)s)")
    parser.add_argument("--max_new_tokens", type=int, default=500, help="tokens per sample (default: %(default)s)")
    parser.add_argument("--temperature", type=float, default=0.8, help="> 0; lower is more conservative "
                        "(default: %(default)s)")
    parser.add_argument("--top_k", type=int, default=200, help="keep the k most likely tokens, >= 1 "
                        "(default: %(default)s)")
    parser.add_argument("--top_p", type=float, default=None, help="nucleus sampling mass in (0, 1] (default: off)")
    parser.add_argument("--seed", type=int, default=1337, help="sampling seed (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu or gpu (default: %(default)s)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    return parser


def main(argv=None, out=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        sample(build_parser().parse_args(argv), out or sys.stdout)
        return 0
    except (TinygradTxError, OSError) as exc:
        if "--debug" in argv:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


def sample(args, out):
    """Load the run's checkpoint and write ``num_samples`` samples to ``out``, token by token."""
    check_sampling_args(args.temperature, args.top_k, args.top_p)
    if args.num_samples < 1 or args.max_new_tokens < 0:
        raise ConfigError(f"num_samples must be >= 1 and max_new_tokens >= 0, got {args.num_samples} and "
                          f"{args.max_new_tokens}")
    if args.seed < 0:   # numpy's generators take only non-negative seeds
        raise ConfigError(f"seed must be >= 0, got {args.seed}")
    prompt = read_prompt(args)
    device = normalize_device(args.device)
    path = checkpoint_path(args.out_dir, args.ckpt)
    if not os.path.exists(path):
        raise ConfigError(f"no checkpoint {path!r}: train first with python -m train.shakespeare --out_dir "
                          f"{args.out_dir}")
    payload = load_checkpoint(path)
    tokenizer = Tokenizer.from_dict(payload["tokenizer"])
    model = GPT(GPTConfig(**payload["model_args"]))
    model.load_state_dict(payload["model"])
    model.to(device).eval()
    prompt_ids = tokenizer.encode(prompt)
    manual_seed(args.seed)
    for _ in range(args.num_samples):
        out.write(prompt)
        for piece in stream_text(model, tokenizer, prompt_ids, args.max_new_tokens, args.temperature, args.top_k,
                                 args.top_p):
            out.write(piece)
            out.flush()
        print(SEPARATOR, file=out, flush=True)


def read_prompt(args):
    path = args.prompt_file
    if args.prompt.startswith(PROMPT_FILE_PREFIX):
        if path:
            raise ConfigError("give the prompt file once: --prompt FILE:path or --prompt_file path, not both")
        path = args.prompt[len(PROMPT_FILE_PREFIX):]
    if path is None:
        prompt = args.prompt
    else:
        try:
            with open(path, encoding="utf-8") as f:
                prompt = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"prompt file {path!r} cannot be read ({exc})") from None
    if not prompt:
        raise ConfigError("the prompt is empty: the model needs at least one token to start from")
    return prompt


def stream_text(model, tokenizer, prompt_ids, max_new_tokens, temperature, top_k, top_p):
    """Yield the new text as each token is drawn (GPT.generate_stream: the same draws as ``generate``)."""
    tokens = Tensor(np.array([prompt_ids], dtype=np.int64), device=model.device)
    new_ids, shown = [], ""
    for token in model.generate_stream(tokens, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p):
        new_ids.append(int(token[0, 0]))
        text = tokenizer.decode(new_ids)
        if not text.endswith("\ufffd"):   # else a multi-byte character is cut: wait for its other bytes
            yield text[len(shown):]
            shown = text
    text = tokenizer.decode(new_ids)
    if text != shown:
        yield text[len(shown):]

if __name__ == "__main__":
    sys.exit(main())
