"""Parallel settings checked before anything runs, and the settings handed to accelerate.

Batch arithmetic: one optimizer step sees ``global batch = per_device_batch_size ×
gradient_accumulation_steps × world size`` samples (packed rows with packing). A recipe that states
``optim.global_batch_size`` gets its gradient accumulation derived from the world size it is launched
with, or an error that shows the arithmetic when the numbers cannot meet.

FSDP: accelerate 1.15 and the Trainer silently fall back to plain DDP (``MULTI_CPU``) when FSDP is
asked for on CPUs, so a run would train unsharded with no word said. :func:`check_fsdp_available`
refuses FSDP without GPUs before the run starts, and :func:`check_distributed_type` compares the
distributed type the run actually got with the one asked for; both raise a ValueError that points to
DeepSpeed ZeRO-3, which does shard on CPUs.

DeepSpeed: the JSON comes from ``parallel.deepspeed`` or from ``accelerate launch --config_file``
(``ACCELERATE_DEEPSPEED_CONFIG_FILE``); the Trainer fills its ``"auto"`` values from this config.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from judgetrain.train.config import FsdpConfig, OptimConfig, TrainConfig

logger = logging.getLogger(__name__)

FSDP_NEEDS_GPUS = (
    "FSDP needs GPUs: on CPUs accelerate silently runs plain DDP instead (every process holds the whole "
    "model). To shard parameters, gradients and optimizer state on CPUs use DeepSpeed ZeRO-3: set "
    "parallel.fsdp.enabled=false parallel.deepspeed=accelerate_configs/deepspeed_zero3.json, or launch with "
    "accelerate launch --config_file accelerate_configs/deepspeed_zero3.yaml"
)


def world_size_from_env() -> int:
    """The number of processes of this launch (torchrun / accelerate launch set ``WORLD_SIZE``)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_batch_sizes(optim: OptimConfig, world_size: int) -> tuple[int, int, int]:
    """``(per_device_batch_size, gradient_accumulation_steps, global_batch_size)`` for ``world_size``
    processes; a ValueError shows the arithmetic when the config's numbers do not meet."""
    per_device = optim.per_device_batch_size
    accumulation = optim.gradient_accumulation_steps
    wanted = optim.global_batch_size
    if wanted is None:
        accumulation = accumulation or 1
        return per_device, accumulation, per_device * accumulation * world_size
    per_step_without_accumulation = per_device * world_size
    if accumulation is None:
        if wanted % per_step_without_accumulation:
            raise ValueError(
                f"optim.global_batch_size={wanted} cannot be reached with {world_size} process(es): global batch = "
                f"per_device_batch_size × gradient_accumulation_steps × world size = {per_device} × GA × {world_size}, "
                f"and {wanted} is not a multiple of {per_device} × {world_size} = {per_step_without_accumulation}; "
                "change optim.per_device_batch_size, optim.global_batch_size or the number of processes"
            )
        accumulation = wanted // per_step_without_accumulation
    got = per_device * accumulation * world_size
    if got != wanted:
        hint = (f"set optim.gradient_accumulation_steps={wanted // per_step_without_accumulation}"
                if wanted % per_step_without_accumulation == 0 else
                "change optim.per_device_batch_size or the number of processes")
        raise ValueError(
            f"global batch = per_device_batch_size × gradient_accumulation_steps × world size = "
            f"{per_device} × {accumulation} × {world_size} = {got}, but optim.global_batch_size = {wanted}; {hint} "
            "(or unset optim.gradient_accumulation_steps to derive it)"
        )
    return per_device, accumulation, got


def check_world_size(config: TrainConfig, world_size: int) -> None:
    """The launch has the number of processes the recipe was written for (when it names one)."""
    expected = config.parallel.expected_world_size
    if expected is not None and expected != world_size:
        raise ValueError(
            f"this recipe expects {expected} processes (parallel.expected_world_size) but was launched with "
            f"{world_size}; launch with torchrun --nproc_per_node {expected} (or accelerate launch --num_processes "
            f"{expected}), or override parallel.expected_world_size={world_size} and check the batch arithmetic"
        )


def fsdp_requested(config: TrainConfig) -> bool:
    """FSDP was asked for, by the config or by ``accelerate launch`` with an FSDP config."""
    from accelerate.utils import str_to_bool

    return config.parallel.fsdp.enabled or bool(str_to_bool(os.environ.get("ACCELERATE_USE_FSDP", "false")))


def check_fsdp_available(config: TrainConfig, *, cuda_available: bool | None = None) -> None:
    """Refuse FSDP on a machine without GPUs, before the run starts (see the module docstring)."""
    import torch

    cuda_available = torch.cuda.is_available() if cuda_available is None else cuda_available
    if fsdp_requested(config) and not cuda_available:
        raise ValueError(FSDP_NEEDS_GPUS)


def check_distributed_type(config: TrainConfig, accelerator) -> str:
    """Log the distributed type the run actually got; FSDP asked for but not granted is a ValueError."""
    from accelerate.utils import DistributedType

    actual = accelerator.distributed_type
    logger.warning("distributed type: %s, %d process(es)", actual.value, accelerator.num_processes)
    if fsdp_requested(config) and actual != DistributedType.FSDP:
        raise ValueError(f"FSDP was requested but accelerate set up {actual.value}. {FSDP_NEEDS_GPUS}")
    if deepspeed_config_path(config) and actual != DistributedType.DEEPSPEED:
        raise ValueError(f"DeepSpeed was requested but accelerate set up {actual.value}; is deepspeed installed "
                         "(pip install 'judgetrain[train]')?")
    return actual.value


def init_deepspeed_comm(config: TrainConfig) -> None:
    """Attach DeepSpeed's communication layer to the process group accelerate set up (DeepSpeed runs only).

    On CPUs accelerate initialises torch.distributed itself, so ``deepspeed.comm`` stays unset and
    ZeRO-3's ``zero.Init`` (inside from_pretrained / from_config) would see a world of 1 process and
    fail its batch arithmetic; ``init_distributed`` reuses the existing group.
    """
    if not deepspeed_config_path(config) or world_size_from_env() == 1:
        return
    import deepspeed
    import torch

    deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")


def build_fsdp_config(fsdp: FsdpConfig, model) -> dict[str, Any]:
    """The ``fsdp_config`` given to ``TrainingArguments(fsdp=True, fsdp_config=...)`` (which turns it into
    accelerate's FullyShardedDataParallelPlugin): FSDP2, each decoder layer its own unit (the model's
    ``_no_split_modules``, e.g. LlamaDecoderLayer), re-sharding after forward for full_shard, the
    checkpoint state-dict type, and CPU offload."""
    layer_classes = list(getattr(model, "_no_split_modules", None) or [])
    if not layer_classes:
        raise ValueError(
            f"{type(model).__name__} does not name its decoder layer class (_no_split_modules), so FSDP cannot wrap "
            "each layer; use DeepSpeed ZeRO-3 (parallel.deepspeed) for this model"
        )
    return {
        "version": 2,
        "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "transformer_layer_cls_to_wrap": layer_classes,
        # FSDP2 expresses FULL_SHARD / SHARD_GRAD_OP as re-sharding (or not) after each forward.
        "reshard_after_forward": fsdp.sharding == "full_shard",
        "state_dict_type": "FULL_STATE_DICT" if fsdp.state_dict_type == "full" else "SHARDED_STATE_DICT",
        "cpu_offload": fsdp.cpu_offload,
        "activation_checkpointing": fsdp.activation_checkpointing,
        # Rank 0 loads the weights and broadcasts them, instead of every process reading the checkpoint.
        "cpu_ram_efficient_loading": True,
    }


def deepspeed_config_path(config: TrainConfig) -> str | None:
    """The DeepSpeed JSON of this run: ``parallel.deepspeed``, or the one ``accelerate launch`` was given."""
    from accelerate.utils import str_to_bool

    from_launcher = None
    own = config.parallel.deepspeed
    if str_to_bool(os.environ.get("ACCELERATE_USE_DEEPSPEED", "false")):
        from_launcher = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
        # TrainingArguments(deepspeed=...) sets ACCELERATE_USE_DEEPSPEED itself, without the file variable.
        if not from_launcher and not own:
            raise ValueError("accelerate launch asked for DeepSpeed without a deepspeed_config_file; name one of the "
                             "JSON files in accelerate_configs/ in the accelerate config")
    if own and from_launcher and Path(own).resolve() != Path(from_launcher).resolve():
        raise ValueError(f"parallel.deepspeed={own} differs from the accelerate config's deepspeed_config_file "
                         f"{from_launcher}; use one of them")
    path = own or from_launcher
    if path and not Path(path).is_file():
        raise ValueError(f"parallel.deepspeed={path}: no such file (relative paths are read from {os.getcwd()})")
    return path


__all__ = [
    "FSDP_NEEDS_GPUS", "world_size_from_env", "resolve_batch_sizes", "check_world_size", "fsdp_requested",
    "check_fsdp_available", "check_distributed_type", "init_deepspeed_comm", "build_fsdp_config", "deepspeed_config_path",
]
