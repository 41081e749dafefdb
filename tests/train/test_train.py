"""One-process training with the tiny Llama: the loss falls, every trainable weight moves, LoRA
trains only its adapters and merges exactly, gradient accumulation and packing do not change the
token-normalised loss, a resumed run ends where the uninterrupted one does, checkpoints are complete,
and the judge-agreement callback logs its metrics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from judgetrain.data.prepared import Manifest
from judgetrain.data.packing import PACKED_SDPA
from judgetrain.train.checkpoint import CONFIG_FILE, RECORD_FILE, read_record
from judgetrain.train.config import load_config, to_dict
from judgetrain.train.trainer import train

from train_helpers import base_overrides, judge_sample, load_state_dict, logged_losses, write_prepared_dir

# Float32 on one CPU: the same arithmetic in a different grouping (micro-batches, padding vs packing)
# differs by rounding only.
LOSS_RTOL = 1e-4
WEIGHT_ATOL = 1e-5


def run(prepared: Path, output_dir: Path, *, callbacks=None, **extra):
    return train(load_config(None, base_overrides(prepared, output_dir, **extra)), callbacks=callbacks)


@pytest.fixture(scope="module")
def full_run(prepared_dir, tiny_model_dir, tmp_path_factory):
    """30 full fine-tuning steps, checkpoints every 10 (2 kept)."""
    out = tmp_path_factory.mktemp("full") / "run"
    result = run(prepared_dir, out, model__path=tiny_model_dir, model__tokenizer="tiny", optim__max_steps=30,
                 checkpoint__every_steps=10, checkpoint__keep_last=2)
    return out, result


def test_loss_falls_over_30_steps(full_run):
    _, result = full_run
    losses = logged_losses(result.log_history)
    assert len(losses) == 30
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.6 * first, f"loss went from {first:.3f} to {last:.3f}"


def test_every_trainable_parameter_changed(full_run, tiny_model_dir):
    _, result = full_run
    initial = load_state_dict(tiny_model_dir)
    trained = load_state_dict(result.final_dir)
    assert initial.keys() == trained.keys()
    unchanged = [name for name in initial if torch.equal(initial[name], trained[name])]
    assert not unchanged, f"parameters that did not move: {unchanged}"


def test_checkpoints_are_complete_and_recorded(full_run, prepared_dir, tiny_model_dir):
    out, result = full_run
    kept = sorted(p.name for p in out.glob("checkpoint-*"))
    assert kept == ["checkpoint-20", "checkpoint-30"]
    manifest_hash = Manifest.read(prepared_dir).manifest_hash
    for directory in [out / "checkpoint-30", result.final_dir]:
        assert (directory / "model.safetensors").is_file()
        record = read_record(directory)
        assert record["global_step"] == 30
        assert record["manifest_hashes"] == {str(prepared_dir): manifest_hash}
        assert record["git_revision"] is None or len(record["git_revision"].split("-")[0]) == 40
        saved = load_config(directory / CONFIG_FILE)
        assert saved.optim.max_steps == 30 and saved.model.path == str(tiny_model_dir)
        assert to_dict(saved)["output_dir"] == str(out)
    assert not list(out.glob(".final.tmp*"))


def test_lora_trains_only_adapters_and_merges_to_base_plus_update(prepared_dir, tmp_path):
    from judgetrain.models import build_tiny_model, load_model, load_tokenizer

    result = run(prepared_dir, tmp_path / "lora", method__name="lora", method__lora__r=4, method__lora__alpha=8,
                 method__lora__dropout=0.0, optim__max_steps=8, optim__lr=1e-2)
    assert (result.final_dir / "adapter_model.safetensors").is_file()
    assert not (result.final_dir / "model.safetensors").exists()
    adapter_config = json.loads((result.final_dir / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == "tiny"

    base = build_tiny_model(seed=0).state_dict()
    peft_model = load_model(str(result.final_dir)).eval()
    lora_a = {n: p for n, p in peft_model.named_parameters() if "lora_A" in n}
    lora_b = {n: p for n, p in peft_model.named_parameters() if "lora_B" in n}
    assert lora_a and len(lora_a) == len(lora_b)
    # peft starts B at zero: every B moved, so every adapter was trained.
    assert all(p.abs().sum() > 0 for p in lora_b.values())
    # The base weights are exactly the initial ones.
    for name, tensor in peft_model.get_base_model().state_dict().items():
        if "lora_" in name:
            continue
        plain = name.replace(".base_layer", "")
        assert torch.equal(tensor, base[plain]), f"base weight {plain} changed"

    tokenizer = load_tokenizer("tiny")
    ids = tokenizer("Assistant 1 explains rain better.", return_tensors="pt").input_ids
    with torch.no_grad():
        adapted_logits = peft_model(ids).logits
    scale = adapter_config["lora_alpha"] / adapter_config["r"]
    expected = {}
    for name_a, a in lora_a.items():
        module = name_a.split(".lora_A")[0].removeprefix("base_model.model.")
        b = lora_b[name_a.replace("lora_A", "lora_B")]
        expected[module + ".weight"] = base[module + ".weight"] + scale * (b.detach() @ a.detach())
    merged = peft_model.merge_and_unload()
    merged_state = merged.state_dict()
    for name, weight in expected.items():
        torch.testing.assert_close(merged_state[name], weight, atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, adapted_logits, atol=1e-5, rtol=1e-4)


def test_gradient_accumulation_equals_the_larger_batch(prepared_dir, tiny_model_dir, tmp_path):
    common = dict(model__path=tiny_model_dir, model__tokenizer="tiny", optim__max_steps=5)
    big = run(prepared_dir, tmp_path / "b4", optim__per_device_batch_size=4, optim__gradient_accumulation_steps=1, **common)
    accumulated = run(prepared_dir, tmp_path / "b2x2", optim__per_device_batch_size=2, optim__gradient_accumulation_steps=2, **common)
    torch.testing.assert_close(torch.tensor(logged_losses(accumulated.log_history)),
                               torch.tensor(logged_losses(big.log_history)), rtol=LOSS_RTOL, atol=0)
    big_weights, accumulated_weights = load_state_dict(big.final_dir), load_state_dict(accumulated.final_dir)
    for name in big_weights:
        torch.testing.assert_close(accumulated_weights[name], big_weights[name], atol=WEIGHT_ATOL, rtol=0)


class RecordAttention(TrainerCallback):
    """Records, at each step, the attention implementation of the model being trained."""

    def __init__(self):
        self.seen: list[str] = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.seen.append(model.config._attn_implementation)


def test_packing_gives_the_same_loss_on_the_same_samples(tiny_tokenizer, tiny_model_dir, tmp_path):
    # 16 samples, every step's batch is all of them, so packed and padded runs see the same tokens.
    prepared = write_prepared_dir(tmp_path / "judge16", [judge_sample(i) for i in range(16)], tiny_tokenizer)
    common = dict(model__path=tiny_model_dir, model__tokenizer="tiny", optim__max_steps=3)
    padded_probe, packed_probe = RecordAttention(), RecordAttention()
    padded = run(prepared, tmp_path / "padded", callbacks=[padded_probe], data__packing=False, optim__per_device_batch_size=16, **common)
    packed = run(prepared, tmp_path / "packed", callbacks=[packed_probe], data__packing=True, optim__per_device_batch_size=16, **common)
    assert packed.data_stats["num_packed_rows"] < 16  # several samples share a row
    # Packed rows run sdpa per sample; the saved model still names plain sdpa.
    assert padded_probe.seen == ["sdpa"] * 3 and packed_probe.seen == [PACKED_SDPA] * 3
    assert json.loads((packed.final_dir / "config.json").read_text()).get("_attn_implementation") in (None, "sdpa")
    torch.testing.assert_close(torch.tensor(logged_losses(packed.log_history)),
                               torch.tensor(logged_losses(padded.log_history)), rtol=LOSS_RTOL, atol=0)


class RecordCheckpointing(TrainerCallback):
    """Records, at each step, whether the model being trained recomputes its activations."""

    def __init__(self):
        self.seen: list[bool] = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.seen.append(bool(model.is_activation_checkpointing))


def test_gradient_checkpointing_is_on_and_recomputes_to_the_same_losses(prepared_dir, tiny_model_dir, tmp_path):
    common = dict(model__path=tiny_model_dir, model__tokenizer="tiny", optim__max_steps=3, optim__per_device_batch_size=4)
    plain_probe, checkpointed_probe = RecordCheckpointing(), RecordCheckpointing()
    plain = run(prepared_dir, tmp_path / "plain", callbacks=[plain_probe], **common)
    recomputed = run(prepared_dir, tmp_path / "checkpointed", callbacks=[checkpointed_probe], gradient_checkpointing="true", **common)
    assert plain_probe.seen == [False] * 3 and checkpointed_probe.seen == [True] * 3
    assert load_config(recomputed.final_dir / CONFIG_FILE).gradient_checkpointing is True
    # Recomputing activations in the backward pass changes memory, not arithmetic.
    torch.testing.assert_close(torch.tensor(logged_losses(recomputed.log_history)),
                               torch.tensor(logged_losses(plain.log_history)), rtol=LOSS_RTOL, atol=0)


class CrashAt(TrainerCallback):
    """Ends the process's training abruptly after ``step`` (as a kill would, between checkpoints)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"stopped at step {self.step}")
        return control


def test_resumed_run_ends_where_the_uninterrupted_one_does(prepared_dir, tiny_model_dir, tmp_path):
    common = dict(model__path=tiny_model_dir, model__tokenizer="tiny", optim__max_steps=12, checkpoint__every_steps=4,
                  optim__schedule="cosine", optim__warmup_ratio=0.1)
    whole = run(prepared_dir, tmp_path / "whole", **common)
    with pytest.raises(KeyboardInterrupt):
        run(prepared_dir, tmp_path / "cut", callbacks=[CrashAt(6)], **common)
    assert sorted(p.name for p in (tmp_path / "cut").glob("checkpoint-*")) == ["checkpoint-4"]
    # A checkpoint the kill left half-written (no record) is moved aside, never resumed from.
    shutil.copytree(tmp_path / "cut" / "checkpoint-4", tmp_path / "cut" / "checkpoint-8")
    (tmp_path / "cut" / "checkpoint-8" / RECORD_FILE).unlink()
    resumed = run(prepared_dir, tmp_path / "cut", **common)
    assert resumed.resumed_from == str(tmp_path / "cut" / "checkpoint-4")
    assert (tmp_path / "cut" / "incomplete-checkpoint-8").is_dir()
    whole_losses = logged_losses(whole.log_history)
    resumed_losses = logged_losses(resumed.log_history)
    assert resumed.global_step == 12 and len(resumed_losses) == 12
    torch.testing.assert_close(torch.tensor(resumed_losses), torch.tensor(whole_losses), rtol=LOSS_RTOL, atol=0)
    whole_weights, resumed_weights = load_state_dict(whole.final_dir), load_state_dict(resumed.final_dir)
    for name in whole_weights:
        torch.testing.assert_close(resumed_weights[name], whole_weights[name], atol=WEIGHT_ATOL, rtol=0)


def test_online_augmentation_resumes_mid_epoch_with_the_same_draws(tiny_tokenizer, tiny_model_dir, tmp_path):
    # 16 samples, 4 per step: 4 steps an epoch. The kill lands in the second epoch, after checkpoint-6,
    # so the resumed run must redraw epoch 1's swaps and skip the batches it already trained on.
    prepared = write_prepared_dir(tmp_path / "judge16", [judge_sample(i) for i in range(16)], tiny_tokenizer)
    common = dict(model__path=tiny_model_dir, model__tokenizer="tiny", optim__max_steps=10, checkpoint__every_steps=3,
                  optim__per_device_batch_size=4, data__swap_probability=0.5)
    whole = run(prepared, tmp_path / "whole", **common)
    assert whole.data_stats["num_skipped_online"] == 0  # the online (per-epoch augmentation) path ran
    with pytest.raises(KeyboardInterrupt):
        run(prepared, tmp_path / "cut", callbacks=[CrashAt(8)], **common)
    resumed = run(prepared, tmp_path / "cut", **common)
    assert resumed.resumed_from == str(tmp_path / "cut" / "checkpoint-6")
    torch.testing.assert_close(torch.tensor(logged_losses(resumed.log_history)),
                               torch.tensor(logged_losses(whole.log_history)), rtol=LOSS_RTOL, atol=0)
    whole_weights, resumed_weights = load_state_dict(whole.final_dir), load_state_dict(resumed.final_dir)
    for name in whole_weights:
        torch.testing.assert_close(resumed_weights[name], whole_weights[name], atol=WEIGHT_ATOL, rtol=0)
    # Not vacuous: without the swaps the same run trains on other tokens.
    unswapped = run(prepared, tmp_path / "unswapped", **{**common, "data__swap_probability": 0.0})
    assert logged_losses(unswapped.log_history) != logged_losses(whole.log_history)


def test_judge_agreement_callback_logs_agreement_consistency_and_parse_failures(prepared_dir, tmp_path):
    from judgetrain.train.judge_eval import JudgeAgreementCallback

    result = run(prepared_dir, tmp_path / "judged", optim__max_steps=6, data__format="judgelm-v1", data__held_out_fraction=0.1,
                 eval__every_steps=3, eval__judge__num_samples=3, eval__judge__max_new_tokens=6)
    judged = [entry for entry in result.log_history if "judge/accuracy" in entry]
    assert [entry["step"] for entry in judged] == [3, 6]
    for entry in judged:
        assert entry["judge/num_items"] == 3
        for key in ("judge/accuracy", "judge/combined_accuracy", "judge/consistency", "judge/parse_failure_rate"):
            assert 0.0 <= entry[key] <= 1.0
    # The held-out loss is evaluated on the same schedule.
    assert [entry["step"] for entry in result.log_history if "eval_loss" in entry] == [3, 6]
    with pytest.raises(ValueError, match="eval.judge.num_samples needs labelled samples"):
        load_config(None, base_overrides(prepared_dir, tmp_path / "x", eval__every_steps=3, eval__judge__num_samples=3))
    with pytest.raises(ValueError, match="holds no pairwise samples with label 'human'"):
        JudgeAgreementCallback.from_config(
            load_config(None, base_overrides(prepared_dir, tmp_path / "y", eval__every_steps=3, eval__judge__num_samples=3,
                                             eval__judge__data=prepared_dir, eval__judge__label="human")),
            None, None)


def test_agreement_metrics_against_hand_counts():
    from judgetrain.train.judge_eval import agreement_metrics
    from judgetrain.types import BothOrders, Judgment, ParseFailure, Verdict

    def order(winner, swapped=False):
        if winner is None:
            return Judgment(sample_id="x", template="judgelm-v1", parse_failure=ParseFailure(raw_text="??", reason="no scores"),
                            swapped=swapped)
        return Judgment(sample_id="x", template="judgelm-v1", verdict=Verdict(winner=winner), swapped=swapped)

    def both(first, second):
        combined = "parse_failure" if first is None or second is None else first if first == second else "tie"
        record = BothOrders(original=order(first), swapped=order(second, swapped=True), policy="tie", outcome=combined)
        if combined == "parse_failure":
            return Judgment(sample_id="x", template="judgelm-v1", both_orders=record,
                            parse_failure=ParseFailure(raw_text="??", reason="original order: no scores"))
        return Judgment(sample_id="x", template="judgelm-v1", verdict=Verdict(winner=combined), both_orders=record)

    # original verdicts A, B, None, A against gold A, A, B, A: 2 of 4 agree;
    # swapped (mapped back) A, B, B, B: consistent on items 1 and 2 only; 1 failed call of 8;
    # combined A, B, failure, tie: only item 1 is right.
    judgments = [both("A", "A"), both("B", "B"), both(None, "B"), both("A", "B")]
    values = agreement_metrics(judgments, ["A", "A", "B", "A"])
    assert values["judge/accuracy"] == 0.5
    assert values["judge/combined_accuracy"] == 0.25
    assert values["judge/consistency"] == 0.5
    assert values["judge/parse_failure_rate"] == 1 / 8
    assert values["judge/num_items"] == 4
    assert "judge/agreement" not in values
    one_order = agreement_metrics([order("A"), order("B")], ["A", "A"])
    assert one_order == {"judge/accuracy": 0.5, "judge/parse_failure_rate": 0.0, "judge/num_items": 2.0}
