"""Trainer callbacks: the epoch of online augmentation, and one log line per record on stdout.

The judge-agreement evaluation lives in :mod:`judgetrain.train.judge_eval`.
"""

from __future__ import annotations

import math
import sys
import time

from transformers import TrainerCallback


def epoch_index(state_epoch: float | None) -> int:
    """The 0-based index of the epoch that begins at Trainer ``state.epoch`` (a float that is e.g.
    1.9999999 at the end of the second epoch, or 1.5 when resuming mid-epoch)."""
    return int(math.floor((state_epoch or 0.0) + 1e-6))


class SetEpochCallback(TrainerCallback):
    """Calls ``dataset.set_epoch(epoch)`` at the start of every epoch, so online augmentation is drawn
    afresh each epoch and a resumed run draws the same as the uninterrupted one.

    The DataLoader reads items lazily (no worker processes), and the Trainer creates the epoch's
    iterator after ``on_epoch_begin``, so every item of the epoch sees the new epoch.
    """

    def __init__(self, dataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_epoch(epoch_index(state.epoch))
        return control


class StdoutLogCallback(TrainerCallback):
    """Prints each log record as one line (``step 10/300 | loss 1.2345 | lr 2.0e-05 | ...``) on rank 0."""

    def __init__(self, stream=None):
        self.stream = stream
        self.start_time: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start_time = time.monotonic()
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return control
        parts = [f"step {state.global_step}/{state.max_steps}"]
        for key, value in logs.items():
            if isinstance(value, float):
                text = f"{value:.3e}" if key in ("learning_rate",) or (value and abs(value) < 1e-3) else f"{value:.4f}"
            else:
                text = str(value)
            parts.append(f"{key} {text}")
        if self.start_time is not None:
            parts.append(f"elapsed {time.monotonic() - self.start_time:.0f}s")
        print(" | ".join(parts), file=self.stream or sys.stdout, flush=True)
        return control


__all__ = ["SetEpochCallback", "StdoutLogCallback", "epoch_index"]
