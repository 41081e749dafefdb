"""FSDP is never degraded silently, and the FSDP settings judgetrain hands to accelerate are the
intended ones (built on CPU, where FSDP itself cannot run)."""

from __future__ import annotations

import pytest

from judgetrain.train import parallel
from judgetrain.train.config import load_config
from judgetrain.train.trainer import build_training_args, empty_model, train

from train_helpers import base_overrides


def fsdp_config(prepared, out, **extra):
    return load_config(None, base_overrides(prepared, out, parallel__fsdp__enabled="true", **extra))


def test_fsdp_on_cpu_is_refused_before_training(prepared_dir, tmp_path):
    config = fsdp_config(prepared_dir, tmp_path / "run")
    with pytest.raises(ValueError, match=r"FSDP needs GPUs.*DeepSpeed ZeRO-3.*deepspeed_zero3"):
        train(config)
    assert not (tmp_path / "run" / "final").exists()


def test_fsdp_requested_by_accelerate_launch_but_not_granted_is_an_error(prepared_dir, tmp_path, monkeypatch):
    from accelerate import Accelerator

    # What `accelerate launch --config_file accelerate_configs/fsdp.yaml` sets; on CPU the state it
    # then builds is not FSDP.
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    config = load_config(None, base_overrides(prepared_dir, tmp_path / "run"))
    with pytest.raises(ValueError, match="FSDP needs GPUs"):
        parallel.check_fsdp_available(config)
    accelerator = Accelerator(cpu=True)
    assert accelerator.distributed_type.value != "FSDP"
    with pytest.raises(ValueError, match=r"FSDP was requested but accelerate set up NO\. FSDP needs GPUs.*ZeRO-3"):
        parallel.check_distributed_type(config, accelerator)
    monkeypatch.delenv("ACCELERATE_USE_FSDP")
    assert parallel.check_distributed_type(config, accelerator) == "NO"
    # With GPUs present the early check lets FSDP through (the distributed-type check still runs).
    parallel.check_fsdp_available(fsdp_config(prepared_dir, tmp_path / "gpu"), cuda_available=True)


@pytest.mark.parametrize("sharding, state_dict, offload", [("full_shard", "full", True), ("shard_grad_op", "sharded", False)])
def test_fsdp_settings_handed_to_accelerate(prepared_dir, tmp_path, monkeypatch, sharding, state_dict, offload):
    from accelerate.utils import FullyShardedDataParallelPlugin
    from torch.distributed.fsdp import CPUOffloadPolicy
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    # TrainingArguments exports FSDP settings to the environment; keep them inside this test.
    monkeypatch.setenv("FSDP_CPU_RAM_EFFICIENT_LOADING", "false")
    config = fsdp_config(prepared_dir, tmp_path / "run", parallel__fsdp__sharding=sharding,
                         parallel__fsdp__state_dict_type=state_dict, parallel__fsdp__cpu_offload=offload)
    model = empty_model(config)
    assert next(model.parameters()).device.type == "meta"
    args = build_training_args(config, has_eval=False, packed=False, model_for_fsdp=model)
    plugin = FullyShardedDataParallelPlugin(**args.fsdp_plugin_args)
    assert plugin.fsdp_version == 2
    assert plugin.transformer_cls_names_to_wrap == ["LlamaDecoderLayer"]
    plugin.set_auto_wrap_policy(model)
    assert plugin.auto_wrap_policy.keywords["transformer_layer_cls"] == {LlamaDecoderLayer}
    assert plugin.reshard_after_forward is (sharding == "full_shard")
    assert plugin.state_dict_type.name == ("FULL_STATE_DICT" if state_dict == "full" else "SHARDED_STATE_DICT")
    assert isinstance(plugin.cpu_offload, CPUOffloadPolicy) is offload


def test_fsdp_needs_a_named_decoder_layer():
    import torch

    with pytest.raises(ValueError, match="_no_split_modules.*DeepSpeed ZeRO-3"):
        parallel.build_fsdp_config(load_config(None, ["parallel.fsdp.enabled=true"]).parallel.fsdp, torch.nn.Linear(2, 2))


def test_deepspeed_and_fsdp_together_is_an_error():
    with pytest.raises(ValueError, match="choose one engine"):
        load_config(None, ["parallel.fsdp.enabled=true", "parallel.deepspeed=accelerate_configs/deepspeed_zero3.json"])
