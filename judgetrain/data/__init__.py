"""Data between the canonical samples and the trainer: reading and writing shards (``io``), swap and
reference augmentation (``augment``), loss-masked tokenization (``tokenize``) and packing (``packing``).

Import the submodule you need; this package imports nothing heavy on its own.
"""
