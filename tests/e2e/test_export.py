"""Export a tiny LoRA judge trained with the train API, then load it back with plain transformers.

The export must rebuild the training prompt byte for byte from its card and tokenizer, and its merged
weights must generate what the checkpoint (base + adapter) generates.
"""

import json
from pathlib import Path

import pytest
import torch

from judgetrain import formats
from judgetrain.data.prepare import prepare_dataset
from judgetrain.quickstart import read_shipped
from tests.conftest import TINY_JUDGE_TEMPLATE as FORMAT

NUM_SAMPLES = 8


def train_tiny_lora(tmp: Path, *, max_steps: int = 6, lr: float = 5e-3) -> Path:
    """A tiny LoRA judge trained a few steps on shipped LLMBar pairs; returns its final checkpoint dir."""
    from judgetrain.train.config import load_config
    from judgetrain.train.trainer import train

    samples = read_shipped("train_llmbar.jsonl")[:NUM_SAMPLES]
    data_dir = tmp / "data"
    prepare_dataset(samples, data_dir, format_name=FORMAT, source="test", seed=0)
    config_path = tmp / "train.yaml"
    config_path.write_text(
        "model: {path: tiny}\n"
        f"data: {{datasets: [{{path: '{data_dir}'}}], format: {FORMAT}, max_seq_len: 2048}}\n"
        "method: {name: lora, lora: {r: 8, alpha: 16, dropout: 0.0}}\n"
        f"optim: {{lr: {lr}, max_steps: {max_steps}, per_device_batch_size: 4, warmup_ratio: 0.0, schedule: constant}}\n"
        "logging: {stdout: true, every_steps: 100}\n"
        "checkpoint: {every_steps: 0, resume: never}\n"
        f"output_dir: '{tmp / 'run'}'\n",
        encoding="utf-8",
    )
    return train(load_config(config_path)).final_dir


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from judgetrain.export import export

    tmp = tmp_path_factory.mktemp("export")
    checkpoint = train_tiny_lora(tmp)
    # An evaluation result in the run dir goes into the card.
    (checkpoint.parent / "eval").mkdir()
    (checkpoint.parent / "eval" / "results.json").write_text(json.dumps({"benchmark": "toy", "metrics": {"accuracy": 0.25}}))
    out = export(checkpoint, tmp / "judge", dtype="fp32", max_new_tokens=6)
    return checkpoint, out


def test_layout_and_card(exported):
    checkpoint, out = exported
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
            "chat_template.jinja", "judge_card.json", "README.md"} <= names
    assert not any(n.startswith("adapter_") for n in names), "a merged export holds no adapter"
    assert not any(p.name.startswith(".") for p in out.parent.iterdir()), "no staging dir left behind"
    card = json.loads((out / "judge_card.json").read_text())
    assert card["format"] == {"family": "mtbench", "template": FORMAT, "version": "v2", "protocols": ["pairwise"],
                              "with_reference": False, "multi_turn": False, "verdict_first": False}
    assert card["decoding"]["max_new_tokens"] == 6 and card["decoding"]["temperature"] == 0.0
    assert card["model"]["lora_merged"] is True and card["model"]["base"] == "tiny"
    record = json.loads((checkpoint / "judgetrain_checkpoint.json").read_text())
    assert card["training_data"]["manifest_hashes"] == record["manifest_hashes"] and record["manifest_hashes"]
    assert card["evaluation"] == [{"path": "eval/results.json", "benchmark": "toy", "metrics": {"accuracy": 0.25}}]
    assert FORMAT in (out / "README.md").read_text()
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["do_sample"] is False and generation["max_new_tokens"] == 6


def test_prompt_from_card_is_the_training_prompt(exported):
    """The prompt a Judge built from the card sends is byte-identical to the prompt part of the training row."""
    from judgetrain.data.tokenize import tokenize_sample
    from judgetrain.judging.judge import Judge
    from judgetrain.models import load_tokenizer

    _, out = exported
    judge = Judge.from_card(out)
    training_tokenizer = load_tokenizer("tiny")
    for sample in read_shipped("train_llmbar.jsonl")[:3]:
        row = tokenize_sample(sample, formats.get(FORMAT), training_tokenizer, max_seq_len=2048)
        num_prompt_tokens = next(i for i, label in enumerate(row["labels"]) if label != -100)
        prompt_text, prompt_ids = judge.backend.prompt_ids(judge.request(sample))
        assert prompt_ids == row["input_ids"][:num_prompt_tokens]
        assert prompt_text.encode() == training_tokenizer.decode(row["input_ids"][:num_prompt_tokens]).encode()


def test_exported_model_generates_what_the_checkpoint_generates(exported):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from judgetrain.models import build_tiny_model, load_model

    checkpoint, out = exported
    merged = AutoModelForCausalLM.from_pretrained(out)  # plain transformers, no peft, no judgetrain
    tokenizer = AutoTokenizer.from_pretrained(out)
    adapter = load_model(str(checkpoint))
    base = build_tiny_model()
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(merged.state_dict()[key], base.state_dict()[key]), "the LoRA delta was merged in"
    sample = read_shipped("train_llmbar.jsonl")[0]
    messages = formats.get(FORMAT).render(sample, include_target=False)
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    settings = dict(max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    with torch.inference_mode():
        from_export = merged.generate(**ids, **settings)
        from_checkpoint = adapter.generate(**ids, **settings)
    assert from_export.tolist() == from_checkpoint.tolist()


def test_refuses_a_dir_that_is_not_an_export(exported, tmp_path):
    from judgetrain.export import export

    checkpoint, _ = exported
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not an earlier export"):
        export(checkpoint, tmp_path, dtype="fp32")
    assert (tmp_path / "notes.txt").read_text() == "keep me"
