"""The bigram language model of "Let's build GPT": the next token's logits are a row lookup of the
current token in a (V, V) table. The baseline every later model has to beat.
"""

import tinygrad_tx.nn.functional as F
from tinygrad_tx.nn import Embedding, Module

from .generation import as_token_ids, generate_tokens


class BigramLanguageModel(Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.token_embedding_table = Embedding(vocab_size, vocab_size)

    @property
    def device(self):
        return self.token_embedding_table.weight.device

    def forward(self, idx, targets=None):
        """idx: int (B, T). Returns logits (B, T, V) (always every position: they cost one lookup
        each) and the mean cross-entropy against targets (B, T), or None without targets."""
        logits = self.token_embedding_table(as_token_ids(idx, self.device, "BigramLanguageModel.forward"))
        if targets is None:
            return logits, None
        targets = as_token_ids(targets, self.device, "BigramLanguageModel.forward targets")
        return logits, F.cross_entropy(logits, targets, ignore_index=-1)

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None):
        """Append ``max_new_tokens`` sampled tokens to idx (B, T); an int Tensor (B, T + new).

        Only the last token matters to a bigram model, so each step looks up one row. Sampling as
        ``GPT.generate`` (seeded by ``tinygrad_tx.rng(device)``)."""

        def next_logits(tokens):
            return self(tokens[:, -1:])[0][:, -1, :]

        return generate_tokens(
            next_logits, idx, max_new_tokens, self.device, temperature, top_k, top_p, "BigramLanguageModel.generate"
        )
