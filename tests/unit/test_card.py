"""The judge card module: cards of earlier exports load with their meaning, written cards read back
equal, bad cards fail naming the file and the field, the checkpoint records its template."""

from __future__ import annotations

import copy
import json

import pytest

from judgetrain.card import CARD_FILE, JudgeCard, read_card, write_card
from judgetrain.judging.backends.base import Decoding

# A generative card as `judgetrain export` wrote it before cards had a kind (shape of judge_card_version 1).
GENERATIVE = {
    "judge_card_version": 1, "name": "my-judge", "created_utc": "2026-11-02T10:00:00+00:00", "judgetrain_version": "0.3.0",
    "format": {"family": "mtbench", "template": "mtbench-pair-v2", "version": "v2", "protocols": ["pairwise"],
               "with_reference": False, "multi_turn": False, "verdict_first": False},
    "parser": {"mode": "lenient", "modes": ["strict", "lenient"]},
    "score_scale": None,
    "tie_policy": {"both_orders": True, "disagreement": "tie", "aggregation": "probabilities", "tie_margin": 0.25},
    "decoding": {"max_new_tokens": 6, "temperature": 0.0, "top_p": 1.0, "n": 1, "stop": [], "seed": None, "logprobs": False},
    "model": {"base": "tiny", "method": "lora", "lora_merged": True, "dtype": "float32", "global_step": 6},
    "training_data": {"manifest_hashes": {"data/x": "abc123"}, "git_revision": None},
    "evaluation": [{"path": "eval/results.json", "benchmark": "toy", "metrics": {"accuracy": 0.25}}],
    "serving": {"chat_template": "chat_template.jinja", "vllm": "vllm serve <this dir>",
                "judgetrain": "judgetrain serve --model <this dir>"},
}

REWARD = {
    "judge_card_version": 1, "kind": "reward", "name": "rm", "created_utc": "2026-11-02T10:00:00+00:00",
    "judgetrain_version": "0.3.0",
    "format": {"family": "reward", "template": "reward-chat-v1", "version": 1, "protocols": ["pairwise", "single"],
               "with_reference": False, "multi_turn": True, "verdict_first": False},
    "parser": {"mode": "strict", "modes": ["strict"]},
    "score_scale": None,
    "tie_policy": {"both_orders": True, "disagreement": "tie", "by_construction": True},
    "decoding": {"max_new_tokens": 0},
    "reward": {"tie_margin": 0.4, "tie_margin_source": "chosen on held-out pairs", "max_seq_len": 128,
               "verdict": "A if r_A - r_B > tie_margin, B if r_A - r_B < -tie_margin, else tie",
               "scored_text": "the chat template over the user turns and one answer's assistant turns"},
    "model": {"base": "tiny", "method": "full", "lora_merged": False, "dtype": "float32", "global_step": 12,
              "head": "sequence classification, 1 output"},
    "training_data": {"manifest_hashes": {}, "git_revision": None},
    "evaluation": [],
    "serving": {"chat_template": "chat_template.jinja", "vllm": "vllm serve <this dir> --runner pooling",
                "judgetrain": "judgetrain serve --model <this dir>", "route": "/pooling"},
}


def write_json(directory, content) -> None:
    (directory / CARD_FILE).write_text(json.dumps(content), encoding="utf-8")


def test_an_earlier_generative_card_loads_with_its_judge_settings(tmp_path):
    write_json(tmp_path, GENERATIVE)
    card = read_card(tmp_path)
    assert card.kind == "generative" and card.template == "mtbench-pair-v2" and card.model.global_step == 6
    assert card.judge_options() == {"decoding": Decoding(max_new_tokens=6), "both_orders": True, "disagreement_policy": "tie",
                                    "aggregation": "probabilities", "tie_margin": 0.25, "strict": False}
    # The same JSON comes back, now saying its kind.
    assert card.to_dict() == {**GENERATIVE, "kind": "generative"}
    assert read_card(tmp_path / CARD_FILE) == card


def test_a_card_from_before_aggregation_judges_by_verdicts():
    old = copy.deepcopy(GENERATIVE)
    old["tie_policy"] = {"both_orders": True, "disagreement": "inconsistent"}
    old["parser"] = {"mode": "strict"}
    options = JudgeCard.from_dict(old).judge_options()
    assert (options["aggregation"], options["tie_margin"], options["disagreement_policy"], options["strict"]) == (
        "verdicts", 0.0, "inconsistent", True)


def test_a_reward_card_round_trips_and_has_no_generative_settings(tmp_path):
    write_json(tmp_path, REWARD)
    card = read_card(tmp_path)
    assert card.kind == "reward" and card.decoding is None
    assert (card.reward.tie_margin, card.reward.max_seq_len, card.tie_policy.by_construction) == (0.4, 128, True)
    assert card.to_dict() == REWARD
    with pytest.raises(ValueError, match="reward card"):
        card.judge_options()


def test_write_card_replaces_the_card_atomically(tmp_path):
    card = JudgeCard.from_dict(GENERATIVE)
    write_card(tmp_path, card)
    changed = card.with_decoding(max_new_tokens=9)
    path = write_card(tmp_path, changed)
    assert path == tmp_path / CARD_FILE and [p.name for p in tmp_path.iterdir()] == [CARD_FILE], "no temp file is left"
    assert path.read_text(encoding="utf-8").endswith("}\n")
    assert read_card(tmp_path).decoding.max_new_tokens == 9 and read_card(tmp_path) == changed


def broken(change) -> dict:
    content = copy.deepcopy(GENERATIVE)
    change(content)
    return content


@pytest.mark.parametrize("change, field", [
    (lambda c: c["format"].pop("template"), "field format.template is missing"),
    (lambda c: c.pop("parser"), "field parser is missing"),
    (lambda c: c["parser"].update(mode="loose"), "field parser.mode is 'loose'"),
    (lambda c: c["tie_policy"].pop("both_orders"), "field tie_policy.both_orders is missing"),
    (lambda c: c["tie_policy"].update(both_orders="yes"), "field tie_policy.both_orders is 'yes'"),
    (lambda c: c["tie_policy"].update(tie_margin=-1), "field tie_policy.tie_margin is -1"),
    (lambda c: c["tie_policy"].update(aggregation="mean"), "field tie_policy.aggregation is 'mean'"),
    (lambda c: c["decoding"].update(beams=4), "field decoding.beams is not a decoding setting"),
    (lambda c: c["decoding"].update(max_new_tokens=0), "field decoding is not valid"),
    (lambda c: c.update(judge_card_version=99), "field judge_card_version is 99"),
    (lambda c: c.update(kind="oracle"), "field kind is 'oracle'"),
    (lambda c: c.update(evaluation=["accuracy"]), r"field evaluation\[0\] is str"),
])
def test_a_malformed_card_names_the_file_and_the_field(tmp_path, change, field):
    write_json(tmp_path, broken(change))
    with pytest.raises(ValueError, match=f"^{tmp_path / CARD_FILE}: {field}"):
        read_card(tmp_path)


def test_a_missing_or_unparsable_card_names_the_file(tmp_path):
    with pytest.raises(ValueError, match=f"{tmp_path / CARD_FILE}: no judge card"):
        read_card(tmp_path)
    (tmp_path / CARD_FILE).write_text('{"judge_card_version": 1,\n  "format": }', encoding="utf-8")
    with pytest.raises(ValueError, match=f"{tmp_path / CARD_FILE}:2: invalid JSON"):
        read_card(tmp_path)
    write_json(tmp_path, ["not", "a", "card"])
    with pytest.raises(ValueError, match="a judge card is a JSON object, got list"):
        read_card(tmp_path)


# --- the checkpoint records its template ----------------------------------------------------------


def test_the_checkpoint_records_the_template_and_export_needs_one(tmp_path):
    from judgetrain.data.prepare import prepare_dataset
    from judgetrain.export import export
    from judgetrain.train.checkpoint import RECORD_FILE, read_record, trained_format, write_record
    from judgetrain.train.config import DatasetSpec, TrainConfig
    from judgetrain.types import Answer, JudgeSample

    config = TrainConfig()
    config.model.path = "tiny"
    config.data.format = "pandalm-v1"
    assert trained_format(config) == "pandalm-v1"
    # No data.format: the template the prepared dir was checked against.
    prepared = tmp_path / "prepared"
    prepare_dataset([JudgeSample(id="s", source="test", question="q", answers=(Answer("a"), Answer("b")))], prepared,
                    source="test", format_name="judgelm-v1")
    config.data.format, config.data.datasets = None, [DatasetSpec(path=str(prepared))]
    assert trained_format(config) == "judgelm-v1"
    config.kind = "reward"
    assert trained_format(config) == "reward-chat-v1"

    config.kind = "generative"
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    write_record(checkpoint, config, global_step=3, manifest_hashes={}, revision=None)
    assert read_record(checkpoint)["format"] == "judgelm-v1"
    # A checkpoint of an earlier judgetrain records no template: export asks for --format.
    record = read_record(checkpoint)
    del record["format"]
    (checkpoint / RECORD_FILE).write_text(json.dumps(record), encoding="utf-8")
    with pytest.raises(ValueError, match=f"{checkpoint / RECORD_FILE}: field format is missing.*pass --format"):
        export(checkpoint, tmp_path / "judge", dtype="fp32")
