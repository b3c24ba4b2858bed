"""Training side of tinygrad_tx: text data sets, tokenizers, the trainer loop and the command-line tools."""
