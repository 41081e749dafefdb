"""The typed training config, the shipped recipes and the accelerate configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from judgetrain import formats
from judgetrain.train import parallel
from judgetrain.train.config import TrainConfig, load_config, save_config, to_dict, valid_keys

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / "recipes").glob("*.yaml"))
ACCELERATE_CONFIGS = REPO / "accelerate_configs"
EXPECTED_RECIPES = {
    "smollm2-135m-lora-cpu", "smollm2-135m-full-cpu-ddp", "judgelm-7b-full-fsdp", "judgelm-13b-full-fsdp",
    "judgelm-33b-zero3-offload", "autoj-13b-full-zero3", "qwen2.5-7b-instruct-lora-zero2",
}


def test_every_expected_recipe_is_shipped():
    assert EXPECTED_RECIPES <= {path.stem for path in RECIPES}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_loads_validates_and_opens_with_its_launch_command(recipe: Path):
    config = load_config(recipe)
    text = recipe.read_text(encoding="utf-8")
    header = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    header_text = "\n".join(header)
    assert header, f"{recipe.name} does not open with a comment"
    assert "Launch" in header_text and "Reproduces" in header_text
    # The launch command names this very recipe, with one of the three launchers.
    assert f"recipes/{recipe.name}" in header_text
    assert any(launcher in header_text for launcher in ("judgetrain train", "torchrun", "accelerate launch"))
    for accelerate_config in {word for word in header_text.split() if word.startswith("accelerate_configs/")}:
        assert (REPO / accelerate_config).is_file(), f"{recipe.name} launches with missing {accelerate_config}"
    if config.parallel.deepspeed:
        assert (REPO / config.parallel.deepspeed).is_file()
    if config.data.format is not None:
        assert config.data.format in formats.names()
    # Batch arithmetic holds for the world size the recipe is written for.
    world_size = config.parallel.expected_world_size or 1
    _, _, global_batch = parallel.resolve_batch_sizes(config.optim, world_size)
    if config.optim.global_batch_size is not None:
        assert global_batch == config.optim.global_batch_size


@pytest.mark.parametrize("name", ["judgelm-7b-full-fsdp", "judgelm-13b-full-fsdp", "judgelm-33b-zero3-offload"])
def test_judgelm_recipes_carry_the_published_settings(name: str):
    config = load_config(REPO / "recipes" / f"{name}.yaml")
    assert config.optim.lr == 2e-5 and config.optim.epochs == 3 and config.optim.global_batch_size == 128
    assert config.data.max_seq_len == 2048 and config.data.swap_probability == 0.5
    assert config.data.p_include_reference == 0.5 and config.optim.schedule == "cosine"
    assert config.optim.warmup_ratio == 0.03 and config.optim.weight_decay == 0.0


def test_accelerate_configs_name_existing_deepspeed_json():
    expected = {"ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3", "deepspeed_zero3_offload"}
    assert expected <= {path.stem for path in ACCELERATE_CONFIGS.glob("*.yaml")}
    stages = {}
    for path in ACCELERATE_CONFIGS.glob("deepspeed_*.yaml"):
        settings = yaml.safe_load(path.read_text())
        assert settings["distributed_type"] == "DEEPSPEED"
        json_path = REPO / settings["deepspeed_config"]["deepspeed_config_file"]
        ds = json.loads(json_path.read_text())
        stages[path.stem] = ds["zero_optimization"]["stage"]
        # The Trainer fills the batch sizes from the judgetrain config, so they cannot disagree.
        assert ds["train_micro_batch_size_per_gpu"] == "auto" and ds["gradient_accumulation_steps"] == "auto"
    assert stages == {"deepspeed_zero2": 2, "deepspeed_zero3": 3, "deepspeed_zero3_offload": 3}
    offload = json.loads((ACCELERATE_CONFIGS / "deepspeed_zero3_offload.json").read_text())["zero_optimization"]
    assert offload["offload_param"]["device"] == "cpu" and offload["offload_optimizer"]["device"] == "cpu"
    fsdp = yaml.safe_load((ACCELERATE_CONFIGS / "fsdp.yaml").read_text())
    assert fsdp["distributed_type"] == "FSDP" and fsdp["fsdp_config"]["fsdp_version"] == 2
    assert fsdp["fsdp_config"]["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    ddp = yaml.safe_load((ACCELERATE_CONFIGS / "ddp.yaml").read_text())
    # MULTI_CPU would start one process without mpirun; MULTI_GPU starts num_processes (gloo on CPUs).
    assert ddp["distributed_type"] == "MULTI_GPU" and ddp["num_processes"] == 2


def test_unknown_key_in_a_file_names_the_line_and_the_closest_key(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model:\n  path: tiny\noptim:\n  lr: 1.0e-4\n  warmup_ratoi: 0.1\n")
    with pytest.raises(ValueError, match=r"r\.yaml:5: unknown key optim\.warmup_ratoi; did you mean optim\.warmup_ratio\?"):
        load_config(recipe)


def test_unknown_override_suggests_the_key():
    with pytest.raises(ValueError, match=r"unknown key optim\.learning_rate; did you mean optim\.lr\?"):
        load_config(None, ["optim.learning_rate=1e-4"])
    with pytest.raises(ValueError, match=r"did you mean method\.lora\.r\?"):
        load_config(None, ["lora_r=8"])


def test_overrides_are_typed_and_applied_in_order():
    config = load_config(None, ["optim.lr=1e-4", "optim.max_steps=20", "data.packing=true", "optim.lr=3e-4",
                                "data.datasets=[a, b]", "method.lora.target_modules=q_proj,v_proj"])
    assert config.optim.lr == 3e-4 and isinstance(config.optim.lr, float)
    assert config.optim.max_steps == 20 and config.data.packing is True
    assert [spec.path for spec in config.data.datasets] == ["a", "b"]
    assert config.method.lora.target_modules == ["q_proj", "v_proj"]
    with pytest.raises(ValueError, match="optim.max_steps must be an integer"):
        load_config(None, ["optim.max_steps=ten"])
    with pytest.raises(ValueError, match="model.attention='flash' is not one of"):
        load_config(None, ["model.attention=flash"])


def test_resolved_config_round_trips(tmp_path):
    config = load_config(REPO / "recipes" / "smollm2-135m-lora-cpu.yaml", ["optim.max_steps=7"])
    save_config(config, tmp_path / "train_config.yaml")
    again = load_config(tmp_path / "train_config.yaml")
    assert to_dict(again) == to_dict(config)
    assert set(valid_keys()) >= {"optim.lr", "method.lora.r", "parallel.fsdp.enabled", "eval.judge.num_samples"}
    assert isinstance(again, TrainConfig)


def test_global_batch_arithmetic_error_shows_the_numbers():
    config = load_config(None, ["optim.per_device_batch_size=3", "optim.global_batch_size=128"])
    with pytest.raises(ValueError, match=r"3 × GA × 8.*not a multiple of 3 × 8 = 24"):
        parallel.resolve_batch_sizes(config.optim, 8)
    config = load_config(None, ["optim.per_device_batch_size=4", "optim.gradient_accumulation_steps=2",
                                "optim.global_batch_size=128"])
    with pytest.raises(ValueError, match=r"4 × 2 × 8 = 64, but optim.global_batch_size = 128; set optim.gradient_accumulation_steps=4"):
        parallel.resolve_batch_sizes(config.optim, 8)
    assert parallel.resolve_batch_sizes(load_config(None, ["optim.per_device_batch_size=4", "optim.global_batch_size=128"]).optim, 8) == (4, 4, 128)
    with pytest.raises(ValueError, match="expects 8 processes .* launched with 2"):
        parallel.check_world_size(load_config(None, ["parallel.expected_world_size=8"]), 2)
