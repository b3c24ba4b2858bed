"""Sample text from a trained run, printing each token's text as soon as it is drawn.

    python -m train.sample --out_dir runs/cpu --prompt "ROMEO:" --num_samples 3 --max_new_tokens 500 \\
        --temperature 0.8 --top_k 200 --top_p 0.95 --seed 1337
    python -m train.sample --out_dir runs/cpu --prompt FILE:prompt.txt     # or --prompt_file prompt.txt
    python -m train.sample --init_from gpt2 --prompt "Hello, I'm a language model," --top_p 0.9   # OpenAI GPT-2

The model, its tokenizer and its settings all come from the checkpoint (``--ckpt best`` or ``last``), or with
``--init_from`` from GPT-2's Hugging Face files (a name in the cache, or a directory: docs/gpt2.md).
The flags are the fields of train.config.SampleConfig; ``--config`` and ``--print_config`` as in train/cli.py.
Errors print one ``error: ...`` line and exit with status 2 (``--debug`` shows the traceback).
"""

import os
import sys

import numpy as np

from models.generation import check_sampling_args
from models.gpt import GPT
from tinygrad_tx import Tensor, manual_seed, normalize_device, tune_for_training
from train.checkpoint import load_checkpoint, model_from_checkpoint
from train.cli import dump, parse, run, sampling_parser
from train.config import ConfigError
from train.gpt2_tokenizer import GPT2Tokenizer
from train.tokenizers import Tokenizer
from train.trainer import checkpoint_path

PROMPT_FILE_PREFIX = "FILE:"
SEPARATOR = "\n---------------"


def main(argv=None, out=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return run(lambda: sample(parse(sampling_parser(), argv), out or sys.stdout), argv)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


def sample(command, out):
    """Load the run's checkpoint and write ``num_samples`` samples to ``out``, token by token (``command``: a
    train.cli.CommandLine of a SampleConfig)."""
    args = command.config
    if command.print_config:
        out.write(dump(args))
        return 0
    check_sampling_args(args.temperature, args.top_k, args.top_p)
    if args.num_samples < 1 or args.max_new_tokens < 0:
        raise ConfigError(
            f"num_samples must be >= 1 and max_new_tokens >= 0, got {args.num_samples} and {args.max_new_tokens}"
        )
    if args.seed < 0:  # numpy's generators take only non-negative seeds
        raise ConfigError(f"seed must be >= 0, got {args.seed}")
    prompt = read_prompt(args)
    device = normalize_device(args.device)
    tune_for_training()  # the trainer's thread settings: without them a busy machine made sampling 10x slower
    model, tokenizer = load_model(args, device)
    prompt_ids = tokenizer.encode(prompt)
    manual_seed(args.seed)
    for _ in range(args.num_samples):
        out.write(prompt)
        for piece in stream_text(
            model, tokenizer, prompt_ids, args.max_new_tokens, args.temperature, args.top_k, args.top_p
        ):
            out.write(piece)
            out.flush()
        print(SEPARATOR, file=out, flush=True)
    return 0


def load_model(args, device):
    """(model in eval mode on ``device``, tokenizer): OpenAI GPT-2's with ``--init_from``, else the run's checkpoint."""
    if args.init_from:
        model = GPT.from_pretrained(args.init_from, device=device).eval()
        return model, GPT2Tokenizer.from_pretrained(args.init_from)
    path = checkpoint_path(args.out_dir, args.ckpt)
    if not os.path.exists(path):
        raise ConfigError(
            f"no checkpoint {path!r}: train first with python -m train.shakespeare --out_dir {args.out_dir}"
        )
    payload = load_checkpoint(path)
    model = model_from_checkpoint(payload, path).to(device).eval()
    return model, Tokenizer.from_dict(payload.get("tokenizer"))


def read_prompt(args):
    path = args.prompt_file
    if args.prompt.startswith(PROMPT_FILE_PREFIX):
        if path:
            raise ConfigError("give the prompt file once: --prompt FILE:path or --prompt_file path, not both")
        path = args.prompt[len(PROMPT_FILE_PREFIX) :]
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
        if not text.endswith("\ufffd"):  # else a multi-byte character is cut: wait for its other bytes
            yield text[len(shown) :]
            shown = text
    text = tokenizer.decode(new_ids)
    if text != shown:
        yield text[len(shown) :]


if __name__ == "__main__":
    sys.exit(main())
