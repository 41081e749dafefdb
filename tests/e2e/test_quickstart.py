"""`judgetrain quickstart --tiny` end to end, for both judge kinds: data, eval before/after, training
(a reward judge, or LoRA on a generative one), export, serve, summary."""

import json

import pytest

from judgetrain.cli import main


@pytest.mark.parametrize("kind", ["reward", "generative"])
def test_quickstart_tiny(tmp_path, capsys, kind):
    out = tmp_path / "qs"
    assert main(["quickstart", "--tiny", "--kind", kind, "--out", str(out)]) == 0
    printed = capsys.readouterr().out

    # The summary table, with both evaluations beside the two baselines.
    assert "| judge | accuracy | combined_accuracy | consistency | parse_failure_rate |" in printed
    for row in ("| before training |", "| after training |", "| majority class (", "| longer answer wins |"):
        assert row in printed
    assert str(out / "report.md") in printed

    results = json.loads((out / "results.json").read_text())
    assert results["num_train"] == 16 and results["num_eval"] == 6 and results["train_steps"] == 4
    for name in ("before training", "after training"):
        row = results["rows"][name]
        assert 0.0 <= row["parse_failure_rate"] <= 1.0 and row["num_items"] == 6
        assert set(row) == {"num_items", "accuracy", "combined_accuracy", "consistency", "parse_failure_rate"}
    # The baselines are computed from the held-out labels, not made up.
    eval_ids = {j["sample_id"] for j in map(json.loads, (out / "run" / "eval" / "judgments_after.jsonl").read_text().splitlines())}
    assert len(eval_ids) == 6
    train_ids = {json.loads(line)["id"] for shard in (out / "data" / "train" / "samples").glob("*.jsonl")
                 for line in shard.read_text().splitlines()}
    assert not eval_ids & train_ids and all(i.startswith("pandalm:") for i in eval_ids)
    assert not any(i.startswith("pandalm:") for i in train_ids), "PandaLM test items are never trained on"

    card = json.loads((out / "judge" / "judge_card.json").read_text())
    assert card["format"]["template"] == results["template"] and card["evaluation"][0]["metrics"] == results["rows"]["after training"]
    assert (out / "judge" / "model.safetensors").is_file()
    served = results["served_example"]
    assert served["url"].startswith("http://127.0.0.1:") and served["both_orders"]["policy"] == "tie"
    if kind == "generative":
        assert (out / "run" / "final" / "adapter_config.json").is_file()
        # Verdict first, pairs decided by both orders' verdict probabilities with the margin chosen on held-out pairs.
        assert card["format"]["template"] == "judgelm-v1" and card["tie_policy"]["aggregation"] == "probabilities"
        assert card["tie_policy"]["tie_margin"] == results["tie_margin"]
        assert any(i.endswith("~swapped") for i in train_ids) and any("~noref" in i for i in train_ids)
    else:
        # A reward judge's orders cannot disagree: each answer is scored alone.
        assert card["kind"] == "reward" and results["rows"]["after training"]["consistency"] == 1.0
        assert served["both_orders"]["by_construction"] is True
    assert "# judgetrain quickstart" in (out / "report.md").read_text()


def test_reward_quickstart_trains_on_the_recipes_choices(tmp_path):
    """The default quickstart's reward judge follows the CPU judge recipe: LLMBar's evaluated sets
    (Natural, Adversarial) stay out of training, the MT-bench grade pairs are in, and a pair whose
    answer exceeds the token budget is left out (data.long_pairs: drop), not cut."""
    from judgetrain import quickstart as qs
    from judgetrain.data.prepared import read_samples
    from judgetrain.reward.data import pair_rows
    from judgetrain.models import load_tokenizer
    from judgetrain.train.config import load_config

    assert qs.FULL.kind == "reward" and qs.FULL.num_train is None
    size = qs.Size(**{**qs.FULL.__dict__, "model": "tiny", "num_eval": 2})
    train_dir, train, held_out = qs.build_data(tmp_path, size, tokenizer=None, seed=0)
    sets = {s.meta.get("llmbar_set") for s in train if s.source == "llmbar"}
    assert sets and all(name.startswith("CaseStudy/") for name in sets), sets
    shipped = [s for name in qs.REWARD_TRAIN_FILES for s in qs.read_shipped(name)]
    left_out = [s for s in shipped if s.meta.get("llmbar_set", "").startswith(qs.REWARD_LEFT_OUT_LLMBAR_SETS)]
    assert left_out and len(train) == len(shipped) - len(left_out)
    assert any("mt_bench_eval" in s.id for s in train) and any("vicuna_eval" in s.id for s in train)
    assert {s.id for s in held_out}.isdisjoint(s.id for s in train)

    config_path = tmp_path / "train_config.yaml"
    config_path.write_text(qs.train_config_text(size, train_dir, tmp_path / "run", config_path, seed=0), encoding="utf-8")
    config = load_config(config_path)
    assert config.kind == "reward" and config.data.long_pairs == "drop" and config.data.max_seq_len == 512
    # The budget leaves some shipped pairs out whole, and none of the kept answers is cut.
    _, stats = pair_rows(read_samples(train_dir)[:200], load_tokenizer("tiny"), max_seq_len=config.data.max_seq_len, drop_long=True)
    assert stats["num_long_pairs_dropped"] > 0 and stats["num_truncated_answers"] == 0 and stats["num_pairs"] > 0
