"""The embedded SmolLM2-135M: loaded from the package (GGUF converted once to a cached safetensors
dir) and LoRA-trained a few steps on CPU."""

from __future__ import annotations

import json

import pytest
import torch

from judgetrain.models import EMBEDDED_MODEL, embedded_model_dir, load_tokenizer
from judgetrain.train.config import load_config
from judgetrain.train.trainer import train

from train_helpers import base_overrides, judge_sample, logged_losses, write_prepared_dir

pytestmark = pytest.mark.slow


def test_smollm2_loads_from_the_package_and_lora_trains(tmp_path):
    model_dir = embedded_model_dir()
    # The conversion left a plain safetensors dir: no GGUF quantizer, loadable by any transformers.
    config_json = json.loads((model_dir / "config.json").read_text())
    assert "quantization_config" not in config_json and config_json["model_type"] == "llama"
    assert list(model_dir.glob("*.safetensors"))
    tokenizer = load_tokenizer(EMBEDDED_MODEL)
    prepared = tmp_path / "judge8"
    samples = [judge_sample(i) for i in range(8)]
    write_prepared_dir(prepared, samples, tokenizer, tokenizer_name=EMBEDDED_MODEL)

    overrides = base_overrides(prepared, tmp_path / "run", model__path=EMBEDDED_MODEL, method__name="lora", method__lora__r=4,
                               method__lora__alpha=8, method__lora__target_modules="q_proj,v_proj", optim__lr=1e-3,
                               optim__max_steps=4, optim__per_device_batch_size=2, data__packing="true")
    result = train(load_config(None, overrides))
    losses = logged_losses(result.log_history)
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
    adapter = json.loads((result.final_dir / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == EMBEDDED_MODEL
    assert set(adapter["target_modules"]) == {"q_proj", "v_proj"}
