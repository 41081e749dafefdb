"""What goes beside the weights, which checkpoint to resume from, and the atomic final save.

Every checkpoint dir (the Trainer's ``checkpoint-N/`` and our ``final/``) holds, next to the
safetensors weights (or LoRA adapter) and the Trainer's optimizer / scheduler / RNG state:

- ``train_config.yaml``: the resolved config of the run;
- ``judgetrain_checkpoint.json``: global step, the manifest hash of every prepared dir trained on,
  the git revision of the code (with ``-dirty`` when the tree had changes), the judgetrain version,
  and the judge template the samples were rendered with (``format``: what ``judgetrain export``
  writes into the judge card).

The record is written last (after the Trainer's own files, in ``on_save``), so its presence marks a
complete checkpoint: a run killed while saving ``checkpoint-N`` leaves a dir without it, which
:func:`resume_checkpoint` moves aside (``incomplete-checkpoint-N``) instead of resuming from it.
The final model is saved into ``.final.tmp`` and renamed to ``final``, so ``final`` is always whole.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from judgetrain.atomic import write_text_atomic
from judgetrain.train.config import TrainConfig, save_config

logger = logging.getLogger(__name__)

RECORD_FILE = "judgetrain_checkpoint.json"
CONFIG_FILE = "train_config.yaml"
FINAL_DIR = "final"
INCOMPLETE_PREFIX = "incomplete-"


def git_revision(start: str | os.PathLike | None = None) -> str | None:
    """The commit of the code being run (``<sha>-dirty`` with uncommitted changes), or None outside git."""
    where = Path(start) if start is not None else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if status else sha


def trained_format(config: TrainConfig) -> str | None:
    """The judge template a run renders its samples with: ``data.format``, else the one its prepared
    dirs were checked against (as :func:`judgetrain.train.data.build_train_data` resolves it); a reward
    run's scored conversation template. None when neither names one."""
    if config.kind == "reward":
        from judgetrain.reward.data import REWARD_TEMPLATE

        return REWARD_TEMPLATE
    if config.data.format:
        return config.data.format
    from judgetrain.data.prepared import Manifest
    from judgetrain.train.data import _manifest_format

    return _manifest_format({spec.path: Manifest.read(spec.path) for spec in config.data.datasets})


def write_record(checkpoint_dir: str | os.PathLike, config: TrainConfig, *, global_step: int,
                 manifest_hashes: dict[str, str], revision: str | None) -> None:
    """Write the resolved config and then the record (the completeness mark) into ``checkpoint_dir``."""
    import judgetrain

    directory = Path(checkpoint_dir)
    save_config(config, directory / CONFIG_FILE)
    write_text_atomic(directory / RECORD_FILE, json.dumps({
        "global_step": global_step,
        "manifest_hashes": manifest_hashes,
        "git_revision": revision,
        "judgetrain_version": judgetrain.__version__,
        "model": config.model.path,
        "method": config.method.name,
        "format": trained_format(config),
    }, indent=2, ensure_ascii=False) + "\n")


def read_record(checkpoint_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The record of a checkpoint, or None when it has none (an incomplete checkpoint)."""
    path = Path(checkpoint_dir) / RECORD_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _barrier() -> None:
    from accelerate import PartialState

    PartialState().wait_for_everyone()


def _is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


class CheckpointRecordCallback(TrainerCallback):
    """Completes every ``checkpoint-N`` the Trainer saves with the config and the record (rank 0)."""

    def __init__(self, config: TrainConfig, manifest_hashes: dict[str, str], revision: str | None):
        self.config = config
        self.manifest_hashes = manifest_hashes
        self.revision = revision

    def on_save(self, args, state, control, **kwargs):
        # Every process has finished writing its part (DeepSpeed and FSDP shards) before the mark goes in.
        _barrier()
        if state.is_world_process_zero:
            directory = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            write_record(directory, self.config, global_step=state.global_step, manifest_hashes=self.manifest_hashes,
                         revision=self.revision)
        _barrier()
        return control


def resume_checkpoint(output_dir: str | os.PathLike, resume: str) -> str | None:
    """The checkpoint to resume from: None to start afresh; for ``auto``, the latest complete checkpoint
    in ``output_dir`` (incomplete ones are moved aside by rank 0 first); otherwise the given path,
    which must be complete. Call it on every process."""
    if resume == "never":
        return None
    if resume != "auto":
        if read_record(resume) is None:
            raise ValueError(f"checkpoint.resume={resume}: not a complete judgetrain checkpoint (no {RECORD_FILE}); "
                             "use checkpoint.resume=auto to pick the latest complete one")
        return resume
    output_dir = Path(output_dir)
    # Every process must reach the barrier below: a process that saw no output dir yet and returned
    # early would leave rank 0 waiting there forever (rank 0 may create the dir meanwhile).
    if _is_main_process() and output_dir.is_dir():
        while (last := get_last_checkpoint(output_dir)) is not None and read_record(last) is None:
            aside = Path(last).with_name(INCOMPLETE_PREFIX + Path(last).name)
            if aside.exists():
                shutil.rmtree(aside)
            os.replace(last, aside)
            logger.warning("%s was not completely written (no %s); moved it to %s", last, RECORD_FILE, aside)
    _barrier()
    return get_last_checkpoint(output_dir) if output_dir.is_dir() else None


def save_final(trainer, config: TrainConfig, *, manifest_hashes: dict[str, str], revision: str | None) -> Path:
    """Save the trained model (full weights as safetensors, or the LoRA adapter), tokenizer, config
    and record to ``output_dir/final`` through a temp dir and a rename. Call it on every process:
    DeepSpeed ZeRO-3 and FSDP gather the weights collectively."""
    from judgetrain.atomic import replace_dir

    output_dir = Path(config.output_dir)
    final = output_dir / FINAL_DIR
    staging = output_dir / f".{FINAL_DIR}.tmp"
    if _is_main_process() and staging.exists():
        shutil.rmtree(staging)
    _barrier()
    trainer.save_model(str(staging))
    _barrier()
    if _is_main_process():
        write_record(staging, config, global_step=trainer.state.global_step, manifest_hashes=manifest_hashes,
                     revision=revision)
        replace_dir(staging, final)
    _barrier()
    return final


__all__ = ["RECORD_FILE", "CONFIG_FILE", "FINAL_DIR", "git_revision", "trained_format", "write_record", "read_record",
           "CheckpointRecordCallback", "resume_checkpoint", "save_final"]
