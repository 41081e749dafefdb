"""The reward judge (``kind: reward``) on the tiny model: pair rows, the Bradley-Terry loss, training
with frozen lower layers, the tie margin chosen on held-out pairs, export, the judge built from the
card, and position-free verdicts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from judgetrain.data.augment import swap
from judgetrain.data.prepare import prepare_dataset
from judgetrain.reward.data import RewardPairCollator, encode_conversation, pair_rows, reward_messages
from judgetrain.reward.judge import RewardJudge, LocalRewardScorer, winner_of_margin
from judgetrain.reward.loss import bradley_terry_loss
from judgetrain.types import Answer, JudgeSample, Label
from train_helpers import TOPICS


def reward_sample(index: int, winner: str = "A") -> JudgeSample:
    """A pair whose better answer is a sentence on the topic and whose worse one is a refusal."""
    topic = TOPICS[index % len(TOPICS)]
    good, bad = f"{topic.capitalize()} are common and useful every day.", "I do not know."
    answers = (Answer(good), Answer(bad)) if winner == "A" else (Answer(bad), Answer(good))
    if winner == "tie":
        answers = (Answer(good), Answer(good + " Indeed."))
    return JudgeSample(id=f"r{index:04d}", source="test", question=f"Tell me about {topic}.", answers=answers,
                       labels={"gpt4": Label(winner=winner)})


def prepared(tmp_path: Path, samples: list[JudgeSample]) -> Path:
    out = tmp_path / "pairs"
    prepare_dataset(samples, out, source="test")
    return out


def test_pair_rows_put_the_winner_first_and_count_ties_and_unlabelled_pairs(tiny_tokenizer):
    samples = [reward_sample(0, "A"), reward_sample(1, "B"), reward_sample(2, "tie"),
               reward_sample(3, "A").replace(labels={})]
    rows, stats = pair_rows(samples, tiny_tokenizer, max_seq_len=256)
    assert stats["num_pairs"] == 2 and stats["num_ties"] == 1 and stats["num_without_winner"] == 1
    good_first = encode_conversation(tiny_tokenizer, reward_messages(samples[0], 0), 256)[0]
    good_second = encode_conversation(tiny_tokenizer, reward_messages(samples[1], 1), 256)[0]
    assert rows[0]["chosen_input_ids"] == good_first
    assert rows[1]["chosen_input_ids"] == good_second
    assert rows[1]["length"] == max(len(rows[1]["chosen_input_ids"]), len(rows[1]["rejected_input_ids"]))


def test_a_long_answer_is_cut_to_the_budget_and_the_question_kept(tiny_tokenizer):
    sample = reward_sample(0).replace(answers=(Answer("word " * 400), Answer("short")))
    ids, truncated = encode_conversation(tiny_tokenizer, reward_messages(sample, 0), 64)
    assert truncated and len(ids) <= 64
    assert "Tell me about" in tiny_tokenizer.decode(ids)


def test_collator_puts_chosen_rows_then_rejected_rows_right_padded():
    batch = RewardPairCollator(pad_token_id=0)([{"chosen_input_ids": [5, 6, 7], "rejected_input_ids": [8]},
                                                {"chosen_input_ids": [9], "rejected_input_ids": [10, 11]}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [9, 0, 0], [8, 0, 0], [10, 11, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0], [1, 0, 0], [1, 1, 0]]


def test_bradley_terry_loss_is_the_mean_negative_log_sigmoid_of_the_margin():
    chosen, rejected = torch.tensor([2.0, 0.0, -1.0]), torch.tensor([0.0, 0.0, 1.0])
    expected = sum(-math.log(1 / (1 + math.exp(-(c - r)))) for c, r in zip(chosen.tolist(), rejected.tolist())) / 3
    assert bradley_terry_loss(chosen, rejected).item() == pytest.approx(expected, rel=1e-6)


def test_winner_of_margin_is_symmetric():
    for margin in (-2.0, -0.3, -0.1, 0.0, 0.1, 0.3, 2.0):
        for tie_margin in (0.0, 0.1, 0.3):
            mirrored = winner_of_margin(-margin, tie_margin)
            assert mirrored == {"A": "B", "B": "A", "tie": "tie"}[winner_of_margin(margin, tie_margin)]


def _train(tmp_path: Path, samples, *overrides: str):
    from judgetrain.train.config import load_config
    from judgetrain.train.trainer import train

    data = prepared(tmp_path, samples)
    config_file = tmp_path / "reward.yaml"
    config_file.write_text("kind: reward\nmodel: {path: tiny}\n", encoding="utf-8")
    config = load_config(config_file, [f"data.datasets={data}", "data.max_seq_len=128", "optim.lr=3e-3",
                                       "optim.schedule=constant", "optim.warmup_ratio=0", "optim.per_device_batch_size=4",
                                       "optim.max_steps=12", "logging.every_steps=1", "logging.stdout=false", "checkpoint.every_steps=0",
                                       f"output_dir={tmp_path / 'run'}", *overrides])
    return train(config)


def test_reward_training_learns_the_pairs_and_freezes_the_lower_layers(tmp_path):
    from judgetrain.reward.train import build_reward_model
    from judgetrain.train.config import TrainConfig

    samples = [reward_sample(i, "A" if i % 2 else "B") for i in range(32)]
    result = _train(tmp_path, samples, "method.trainable_layers=1")
    losses = [entry["loss"] for entry in result.log_history if "loss" in entry]
    assert losses[-1] < losses[0] - 0.1, losses
    config = TrainConfig()
    config.kind, config.model.path = "reward", "tiny"
    initial = build_reward_model(config).state_dict()
    from transformers import AutoModelForSequenceClassification

    trained = AutoModelForSequenceClassification.from_pretrained(result.final_dir).state_dict()
    # Layer 0 of 2 was frozen; layer 1, the final norm and the head trained.
    assert all(torch.equal(initial[k], trained[k]) for k in initial if k.startswith("model.layers.0.") or "embed" in k)
    assert not torch.equal(initial["score.weight"], trained["score.weight"])
    assert not torch.equal(initial["model.layers.1.mlp.down_proj.weight"], trained["model.layers.1.mlp.down_proj.weight"])
    judge = RewardJudge(LocalRewardScorer(result.final_dir, max_seq_len=128, dtype="fp32"))
    judgments = judge.judge(samples)
    assert sum(j.winner == s.labels["gpt4"].winner for j, s in zip(judgments, samples)) >= 28


def test_a_reward_verdict_does_not_depend_on_the_answer_order(tiny_tokenizer):
    from judgetrain.reward.train import build_reward_model
    from judgetrain.train.config import TrainConfig

    config = TrainConfig()
    config.kind, config.model.path = "reward", "tiny"
    judge = RewardJudge(LocalRewardScorer(build_reward_model(config), tiny_tokenizer, batch_size=1), tie_margin=0.001)
    samples = [reward_sample(i, "A" if i % 2 else "B") for i in range(8)]
    straight = judge.judge(samples)
    swapped = judge.judge([swap(s) for s in samples])
    for a, b in zip(straight, swapped):
        assert b.winner == {"A": "B", "B": "A", "tie": "tie"}[a.winner]
        assert b.verdict.scores == tuple(reversed(a.verdict.scores))
        assert a.both_orders.consistent is True and a.both_orders.by_construction is True


def test_tie_margin_is_chosen_on_held_out_pairs_exported_and_used_by_the_card_judge(tmp_path):
    import judgetrain
    from judgetrain.card import read_card
    from judgetrain.export import export
    from judgetrain.reward.margin import read_tie_margin

    samples = [reward_sample(i, "A" if i % 2 else "B") for i in range(40)] + [reward_sample(100 + i, "tie") for i in range(8)]
    result = _train(tmp_path, samples, "data.held_out_fraction=0.3")
    chosen = read_tie_margin(result.final_dir)
    assert chosen is not None and chosen["num_pairs"] > 0 and chosen["tie_margin"] >= 0
    out = export(result.final_dir, tmp_path / "judge", dtype="fp32")
    assert read_card(out).kind == "reward" and read_card(out).reward.tie_margin == chosen["tie_margin"]
    card = read_card(out).to_dict()
    judge = judgetrain.Judge.from_card(out)
    assert isinstance(judge, RewardJudge) and judge.tie_margin == chosen["tie_margin"]
    # A card with a huge margin makes every pair a tie; margin 0 makes none.
    card["reward"]["tie_margin"] = 1e6
    (out / "judge_card.json").write_text(json.dumps(card), encoding="utf-8")
    assert {judgetrain.Judge.from_card(out).compare("Tell me about salt.", "Salt is useful.", "I do not know.").winner} == {"tie"}
    card["reward"]["tie_margin"] = 0.0
    (out / "judge_card.json").write_text(json.dumps(card), encoding="utf-8")
    assert judgetrain.Judge.from_card(out).compare("Tell me about salt.", "Salt is useful.", "I do not know.").winner in ("A", "B")
    best = judgetrain.Judge.from_card(out).rerank("Tell me about salt.", ["I do not know.", "Salt is common and useful every day."])
    assert best.method == "reward per candidate" and len(best.points) == 2


def test_eval_of_a_reward_export_judges_as_the_card_judge(tmp_path, shared_data):
    import judgetrain
    from judgetrain_eval.runner import run_benchmark
    from judgetrain.export import export

    result = _train(tmp_path, [reward_sample(i, "A" if i % 2 else "B") for i in range(16)], "optim.max_steps=2")
    out = export(result.final_dir, tmp_path / "judge", dtype="fp32")
    by_dir = run_benchmark("pandalm-test", judge=str(out), data_dir=shared_data, limit=12, num_resamples=0)
    by_card = run_benchmark("pandalm-test", judge=judgetrain.Judge.from_card(out), data_dir=shared_data, limit=12, num_resamples=0)
    assert [r.verdict for r in by_dir.rows] == [r.verdict for r in by_card.rows]
    assert [r.scores for r in by_dir.rows] == [r.scores for r in by_card.rows]
    assert by_dir.headline()["consistency"] == 1.0


def test_a_served_reward_export_scores_on_pooling_and_the_url_judge_matches_the_local_one(tmp_path):
    import httpx

    import judgetrain
    from judgetrain.export import export
    from judgetrain.serve import start_server

    result = _train(tmp_path, [reward_sample(i, "A" if i % 2 else "B") for i in range(16)], "optim.max_steps=4")
    out = export(result.final_dir, tmp_path / "judge", dtype="fp32")
    server, _ = start_server(str(out), port=0)
    try:
        url = server.url
        local = judgetrain.Judge.from_card(out).compare("Tell me about salt.", "Salt is useful.", "I do not know.")
        remote_judge = judgetrain.Judge.from_card(url)
        remote = remote_judge.compare("Tell me about salt.", "Salt is useful.", "I do not know.")
        assert remote.winner == local.winner
        assert remote.verdict.scores == pytest.approx(local.verdict.scores, abs=1e-5)
        chat = httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 400 and "/pooling" in chat.json()["error"]["message"]
        bad = httpx.post(f"{url}/pooling", json={"model": "x", "messages": [{"role": "robot", "content": "hi"}]})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "messages[0].role"
        raw = httpx.post(f"{url}/pooling", json={"input": "hi"})
        assert raw.status_code == 400 and raw.json()["error"]["param"] == "input"
    finally:
        server.shutdown()
        server.server_close()


def test_eval_reads_a_card_through_the_card_module(tmp_path):
    from judgetrain_eval.runner import get_benchmark, is_export_dir, judge_factory

    (tmp_path / "judge_card.json").write_text(json.dumps({"kind": "reward", "format": {"template": "reward-chat-v1"}}),
                                              encoding="utf-8")
    assert is_export_dir(str(tmp_path)) and not is_export_dir(str(tmp_path / "nowhere"))
    # A hand-written card without the fields a judge needs is refused before any model loads, naming the field.
    with pytest.raises(ValueError, match="judge_card.json: field judge_card_version"):
        judge_factory(str(tmp_path), None, get_benchmark("pandalm-test"))


def test_held_out_pairs_follow_the_mixing_weights(tmp_path, tiny_tokenizer):
    from judgetrain.reward.train import build_reward_data
    from judgetrain.train.config import load_config
    from judgetrain.train.data import is_held_out

    samples = [reward_sample(i, "A" if i % 2 else "B") for i in range(400)]
    full, thin = prepared(tmp_path / "full", samples), prepared(tmp_path / "thin", samples)
    config_file = tmp_path / "reward.yaml"
    config_file.write_text("kind: reward\nmodel: {path: tiny}\n", encoding="utf-8")
    config = load_config(config_file, [f"data.datasets=[{{path: {full}, weight: 2.0}}, {{path: {thin}, weight: 0.25}}]",
                                       "data.max_seq_len=128", "data.held_out_fraction=0.2", f"output_dir={tmp_path / 'run'}"])
    data = build_reward_data(config, tiny_tokenizer, seed=0)
    split = sum(is_held_out(s, 0.2, 0) for s in samples)
    counts = {path: entry["num_held_out"] for path, entry in data.stats["datasets"].items()}
    # Weight 2 repeats nothing in the held-out split; weight 0.25 keeps a quarter of it.
    assert counts[str(full)] == split and counts[str(thin)] == round(0.25 * split)
    assert len(data.held_out_samples) == split + round(0.25 * split)
    assert not {s.id for s in data.held_out_samples} - {s.id for s in samples if is_held_out(s, 0.2, 0)}


def test_drop_long_leaves_out_and_counts_a_pair_with_an_answer_over_the_budget(tiny_tokenizer):
    long_pair = reward_sample(0).replace(answers=(Answer("word " * 400), Answer("short")))
    samples = [long_pair, reward_sample(1, "B")]
    cut, cut_stats = pair_rows(samples, tiny_tokenizer, max_seq_len=64)
    assert len(cut) == 2 and cut_stats["num_truncated_answers"] == 1 and cut_stats["num_long_pairs_dropped"] == 0
    whole, stats = pair_rows(samples, tiny_tokenizer, max_seq_len=64, drop_long=True)
    assert whole["id"] == ["r0001"]
    assert stats["num_long_pairs_dropped"] == 1 and stats["num_truncated_answers"] == 0 and stats["num_pairs"] == 1


def test_long_pairs_drop_keeps_long_pairs_out_of_training_but_not_out_of_the_held_out_split(tmp_path, tiny_tokenizer):
    from judgetrain.reward.train import build_reward_data
    from judgetrain.train.config import load_config

    samples = [reward_sample(i, "A" if i % 2 else "B") for i in range(60)]
    samples = [s.replace(answers=(Answer("word " * 300), s.answers[1])) if i % 3 == 0 else s for i, s in enumerate(samples)]
    data_dir = prepared(tmp_path, samples)
    config_file = tmp_path / "reward.yaml"
    config_file.write_text("kind: reward\nmodel: {path: tiny}\n", encoding="utf-8")
    overrides = [f"data.datasets={data_dir}", "data.max_seq_len=96", "data.held_out_fraction=0.2", f"output_dir={tmp_path / 'run'}"]
    kept = build_reward_data(load_config(config_file, overrides), tiny_tokenizer, seed=0)
    dropped = build_reward_data(load_config(config_file, [*overrides, "data.long_pairs=drop"]), tiny_tokenizer, seed=0)
    held_out_ids = {s.id for s in kept.held_out_samples}
    long_ids = {s.id for i, s in enumerate(samples) if i % 3 == 0} - held_out_ids
    assert long_ids and long_ids <= set(kept.train_dataset["id"])
    assert not long_ids & set(dropped.train_dataset["id"])
    assert dropped.stats["datasets"][str(data_dir)]["num_long_pairs_dropped"] == len(long_ids)
    assert {s.id for s in dropped.held_out_samples} == held_out_ids


def test_long_pairs_is_a_reward_setting(tmp_path):
    from judgetrain.train.config import load_config

    config_file = tmp_path / "generative.yaml"
    config_file.write_text("model: {path: tiny}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="data.long_pairs=drop applies to kind=reward"):
        load_config(config_file, ["data.long_pairs=drop"])
    with pytest.raises(ValueError, match="data.long_pairs"):
        load_config(config_file, ["kind=reward", "data.long_pairs=cut"])


def test_the_new_head_of_a_pretrained_base_is_drawn_from_the_seed(tmp_path):
    """The untrained model judged "before training" (benchmark, quickstart) is the one training starts
    from: the head added to a pretrained base depends on optim.seed alone, not on what ran before."""
    from transformers import AutoModelForCausalLM

    from judgetrain.models import load_tokenizer, tiny_config
    from judgetrain.reward.train import build_reward_model
    from judgetrain.train.config import TrainConfig

    tokenizer = load_tokenizer("tiny")
    base = AutoModelForCausalLM.from_config(tiny_config(len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                                        eos_token_id=tokenizer.eos_token_id, bos_token_id=None))
    base.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")

    def new_head(seed: int, draws_before: int) -> torch.Tensor:
        config = TrainConfig()
        config.kind, config.model.path, config.optim.seed = "reward", str(tmp_path / "base"), seed
        torch.rand(draws_before)  # the global RNG's state before the build must not matter
        return build_reward_model(config).score.weight.detach().clone()

    assert torch.equal(new_head(0, 1), new_head(0, 5))
    assert not torch.equal(new_head(0, 1), new_head(1, 1))
