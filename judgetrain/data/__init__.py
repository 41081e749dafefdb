"""Data between the canonical samples and the trainer: reading raw rows (``rows``) with the readers'
field helpers (``fields``), the prepared-dir format and its typed manifest (``prepared``), the one
function that writes a prepared dir (``prepare.prepare_dataset``), swap and reference augmentation
(``augment``), loss-masked tokenization (``tokenize``) and packing (``packing``).

Import the submodule you need; this package imports nothing heavy on its own.
"""
