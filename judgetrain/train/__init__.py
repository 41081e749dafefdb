"""Training: a typed config (``config``), the Trainer assembled from it (``trainer``), parallel-settings
checks (``parallel``), checkpoints (``checkpoint``) and callbacks (``callbacks``).

``python -m judgetrain.train --config recipes/X.yaml [key=value ...]`` runs a recipe (under torchrun or
accelerate launch for several processes); ``judgetrain train`` is the same in one process.
Import the submodule you need; this package imports nothing heavy on its own.
"""
