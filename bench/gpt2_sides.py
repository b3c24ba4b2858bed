"""The two sides of bench/gpt2.py: tinygrad_tx's GPT and PyTorch's GPT-2 (transformers's GPT2LMHeadModel, or
bench/torch_gpt.py's nanoGPT), each loaded with the same weights and run in its own worker process."""

import importlib.util

NO_CACHE = "bench/torch_gpt.py has no key/value cache (install transformers: the test extra)"


class OursGPT2:
    """tinygrad_tx's GPT, as train.sample runs it."""

    @staticmethod
    def import_libraries():
        import models.gpt  # noqa: F401  (imported before the memory baseline is taken)
        from tinygrad_tx import tune_for_training

        tune_for_training()

    sample_unavailable = ""

    def __init__(self, config, state, threads, torch_model):
        from models.gpt import GPT, GPTConfig

        self.model = GPT(GPTConfig(**config))
        self.model.load_state_dict(state)
        self.model.eval()

    def forward(self, idx):
        from tinygrad_tx import from_numpy, no_grad

        with no_grad():
            logits, _ = self.model(from_numpy(idx))
        return logits.numpy()

    def sample(self, idx, new_tokens, seed):
        from tinygrad_tx import manual_seed

        manual_seed(seed)
        return self.model.generate(idx, new_tokens, temperature=1.0, use_cache=True).numpy()


class TorchGPT2:
    """transformers's GPT2LMHeadModel (or bench/torch_gpt.py's nanoGPT) with our weights."""

    @staticmethod
    def import_libraries():
        import torch  # noqa: F401  (imported before the memory baseline is taken)

        if importlib.util.find_spec("transformers") is not None:
            import transformers
            from transformers import GPT2LMHeadModel  # noqa: F401  (its lazy modules, before the baseline too)

            transformers.logging.set_verbosity_error()

    def __init__(self, config, state, threads, torch_model):
        import torch

        self.torch = torch
        torch.set_num_threads(threads)
        self.kind = torch_model
        self.sample_unavailable = "" if torch_model == "transformers" else NO_CACHE
        if torch_model == "transformers":
            self.model = hf_gpt2(config, state)
        else:
            import types

            from bench.torch_gpt import TorchGPT

            self.model = TorchGPT(types.SimpleNamespace(**config)).load_numpy_state(state).eval()

    def forward(self, idx):
        with self.torch.no_grad():
            ids = self.torch.from_numpy(idx)
            if self.kind == "transformers":
                return self.model(ids, logits_to_keep=1).logits.numpy()
            return self.model(ids)[0].numpy()

    def cache_argument(self, out):
        """The key/value cache of an output, as the next call takes it: ``cache=`` from transformers 5.25 on
        (``past_key_values`` is deprecated there), ``past_key_values=`` before."""
        if "cache" in out:
            return {"cache": out["cache"]}
        return {"past_key_values": out["past_key_values"]}

    def sample(self, idx, new_tokens, seed):
        if self.kind != "transformers":
            raise RuntimeError(NO_CACHE)
        torch = self.torch
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            ids = torch.from_numpy(idx)
            out = self.model(ids, use_cache=True, logits_to_keep=1)
            drawn = []
            for step in range(new_tokens):
                probs = torch.softmax(out.logits[:, -1, :], dim=-1)
                token = torch.multinomial(probs, 1, generator=generator)
                drawn.append(token)
                if step + 1 < new_tokens:  # as ours: the last token drawn is not run through the model
                    out = self.model(token, use_cache=True, **self.cache_argument(out))
        return torch.cat([ids, *drawn], dim=1).numpy()


def hf_gpt2(config, state):
    """A GPT2LMHeadModel holding ``state`` (nanoGPT's names and layouts; the Conv1D weights transposed back)."""
    import torch
    import transformers

    from models import pretrained

    hf_config = transformers.GPT2Config(
        n_layer=config["n_layer"],
        n_head=config["n_head"],
        n_embd=config["n_embd"],
        n_positions=config["block_size"],
        vocab_size=config["vocab_size"],
        activation_function="gelu_new",
        attn_pdrop=0.0,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        bos_token_id=config["vocab_size"] - 1,
        eos_token_id=config["vocab_size"] - 1,
    )
    model = transformers.GPT2LMHeadModel(hf_config)
    tensors = {
        name: torch.from_numpy(array.T.copy() if pretrained.is_conv1d(name) else array) for name, array in state.items()
    }
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    missing = [name for name in missing if not name.endswith(pretrained.SKIPPED)]
    if missing or unexpected:
        raise KeyError(f"bench.gpt2: state dict mismatch, missing {missing}, unexpected {unexpected}")
    return model.eval()
