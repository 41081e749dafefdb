"""Length-balanced training pools (``data.length_balance``): as many pairs the shorter answer wins as
pairs the longer answer wins (resample), or loss weights to that effect (weight), for reward and
generative runs; the two orders of a pair stay together, ties and equal-length pairs stay as they are."""

from __future__ import annotations

import logging
import random
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml

from judgetrain.data.augment import PAIR_ID_KEY, both_orders
from judgetrain.data.length_balance import (EQUAL_LENGTH, LONGER_WINS, NO_WINNER, SHORTER_WINS, balance_by_length,
                                            length_side, twin_units)
from judgetrain.data.prepare import prepare_dataset
from judgetrain.reward.loss import PAIR_WEIGHT_COLUMN, PAIR_WEIGHTS_KEY, PairWeightCollator, bradley_terry_loss
from judgetrain.types import Answer, JudgeSample, Label
from train_helpers import TOPICS, write_prepared_dir

WORDS = ("water", "stone", "light", "paper", "sound", "earth", "metal", "cloud")


def gpt4_winner(sample: JudgeSample) -> str | None:
    label = sample.labels.get("gpt4")
    return label.winner if label is not None else None


def constructed_pair(index: int, *, longer_wins: bool, rng: random.Random) -> JudgeSample:
    """A pairwise sample whose winner (at a random position) is the longer answer or the shorter one,
    with a JudgeLM-style judgment so it renders with judgelm-v1 and swaps."""
    topic = TOPICS[index % len(TOPICS)]
    short_words, long_words = rng.randint(2, 4), rng.randint(6, 9)
    short = " ".join(rng.choice(WORDS) for _ in range(short_words)) + "."
    long = " ".join(rng.choice(WORDS) for _ in range(long_words)) + "."
    winner_text, loser_text = (long, short) if longer_wins else (short, long)
    winner = rng.choice("AB")
    answers = (Answer(winner_text), Answer(loser_text)) if winner == "A" else (Answer(loser_text), Answer(winner_text))
    scores = (8.0, 3.0) if winner == "A" else (3.0, 8.0)
    return JudgeSample(
        id=f"p{index:04d}", source="test", question=f"Say something about {topic}.", answers=answers,
        labels={"gpt4": Label(winner=winner, scores=scores, scale=(1, 10))},
        judgment=f"{scores[0]:g} {scores[1]:g}\nAssistant {1 if winner == 'A' else 2} answers better.",
        meta={"judgment_format": "judgelm-v1"},
    )


def constructed_pool(num_pairs: int = 100, longer_wins_share: float = 0.7, seed: int = 7) -> list[JudgeSample]:
    """A seeded draw of pairs of which exactly ``longer_wins_share`` are won by the longer answer."""
    rng = random.Random(seed)
    longer = set(rng.sample(range(num_pairs), round(longer_wins_share * num_pairs)))
    return [constructed_pair(i, longer_wins=i in longer, rng=rng) for i in range(num_pairs)]


def untouched_pairs() -> list[JudgeSample]:
    """Ties and pairs of equal length (one with a winner): never balanced."""
    tie = JudgeSample(id="tie0", source="test", question="Name a colour.", answers=(Answer("Red."), Answer("Blue, surely.")),
                      labels={"gpt4": Label(winner="tie")})
    equal = JudgeSample(id="equal0", source="test", question="Name a metal.", answers=(Answer("Iron."), Answer("Gold.")),
                        labels={"gpt4": Label(winner="B")})
    return [tie, equal, equal.replace(id="equal1", labels={"gpt4": Label(winner="A")})]


def sides_of(samples) -> Counter:
    return Counter(length_side(s, gpt4_winner(s)) for s in samples)


def test_the_side_compares_the_winner_with_the_other_answer_in_characters_over_all_turns():
    pair = JudgeSample(id="x", source="test", question=["Hi.", "More?"], answers=(Answer(["ab", "cd"]), Answer(["abc"])),
                       labels={})
    # Answer A has 2 + 2 = 4 characters over its turns, B has 3.
    assert length_side(pair, "A") == LONGER_WINS and length_side(pair, "B") == SHORTER_WINS
    assert length_side(pair, "tie") == NO_WINNER and length_side(pair, None) == NO_WINNER
    equal = pair.replace(answers=(Answer("ab"), Answer("éé")))  # characters, not UTF-8 bytes
    assert length_side(equal, "A") == EQUAL_LENGTH
    single = JudgeSample(id="s", source="test", question="Hi.", answers=(Answer("Hello."),), labels={})
    assert length_side(single, "A") == NO_WINNER


def test_resample_leaves_as_many_shorter_wins_as_longer_wins_pairs_seeded():
    pool = constructed_pool()
    assert sides_of(pool) == {LONGER_WINS: 70, SHORTER_WINS: 30}
    balance = balance_by_length(pool, gpt4_winner, mode="resample", seed=0)
    kept = [pool[i] for i in balance.row_indices]
    assert sides_of(kept) == {LONGER_WINS: 30, SHORTER_WINS: 30}
    # Every shorter-wins pair stays; only longer-wins pairs are left out, counted.
    assert {s.id for s in pool if length_side(s, gpt4_winner(s)) == SHORTER_WINS} <= {s.id for s in kept}
    assert balance.stats["num_longer_wins"] == 70 and balance.stats["num_shorter_wins"] == 30
    assert balance.stats["num_pairs_dropped"] == 40 and balance.stats["subsampled_side"] == LONGER_WINS
    assert balance.row_indices == sorted(balance.row_indices)
    same = balance_by_length(pool, gpt4_winner, mode="resample", seed=0)
    other = balance_by_length(pool, gpt4_winner, mode="resample", seed=1)
    assert same.row_indices == balance.row_indices
    assert other.row_indices != balance.row_indices and len(other.row_indices) == 60


def test_resample_and_weight_leave_ties_and_equal_length_pairs_as_they_are():
    pool = constructed_pool() + untouched_pairs()
    untouched = {"tie0", "equal0", "equal1"}
    resampled = balance_by_length(pool, gpt4_winner, mode="resample", seed=0)
    assert untouched <= {pool[i].id for i in resampled.row_indices}
    assert resampled.stats["num_no_winner"] == 1 and resampled.stats["num_equal_length"] == 2
    weighted = balance_by_length(pool, gpt4_winner, mode="weight", seed=0)
    assert all(weighted.row_weights[i] == 1.0 for i, s in enumerate(pool) if s.id in untouched)


def test_weight_gives_longer_wins_and_shorter_wins_pairs_the_same_total_weight():
    pool = constructed_pool() + untouched_pairs()
    balance = balance_by_length(pool, gpt4_winner, mode="weight", seed=0)
    assert balance.row_indices == list(range(len(pool)))
    total = Counter()
    for sample, weight in zip(pool, balance.row_weights):
        total[length_side(sample, gpt4_winner(sample))] += weight
    assert total[LONGER_WINS] == pytest.approx(total[SHORTER_WINS])
    assert total[LONGER_WINS] == pytest.approx(50.0)  # (70 + 30) / 2: the balanced pairs keep their total weight
    assert sum(balance.row_weights) / len(pool) == pytest.approx(1.0)


def test_the_two_orders_of_a_pair_are_kept_or_left_out_together():
    pool = both_orders(constructed_pool())
    # Scattered, and one pair drawn twice (a mixing weight above 1): each order still finds its twin.
    pool = pool + pool[:2]
    random.Random(3).shuffle(pool)
    units = twin_units(pool)
    assert all(len(unit) == 2 and pool[unit[0]].meta[PAIR_ID_KEY] == pool[unit[1]].meta[PAIR_ID_KEY]
               and pool[unit[0]].id != pool[unit[1]].id for unit in units)
    for seed in range(5):
        balance = balance_by_length(pool, gpt4_winner, mode="resample", seed=seed)
        kept = Counter(pool[i].meta[PAIR_ID_KEY] for i in balance.row_indices)
        assert set(kept.values()) <= {2, 4}, "a pair kept in one order only"
        sides = Counter(length_side(pool[u[0]], gpt4_winner(pool[u[0]])) for u in balance.kept_units)
        assert sides[LONGER_WINS] == sides[SHORTER_WINS]
        assert balance.stats["num_rows_dropped"] == 2 * balance.stats["num_pairs_dropped"]


def test_a_pool_without_pairs_on_one_side_is_an_error():
    pool = [constructed_pair(i, longer_wins=True, rng=random.Random(i)) for i in range(10)]
    with pytest.raises(ValueError, match="none where the shorter one does.*data.length_balance=none"):
        balance_by_length(pool, gpt4_winner, mode="resample", seed=0)
    assert balance_by_length(pool, gpt4_winner, mode="none", seed=0).row_indices == list(range(10))


def test_length_balance_is_checked_by_the_config(tmp_path):
    from judgetrain.train.config import load_config

    assert load_config(None, []).data.length_balance == "none"
    with pytest.raises(ValueError, match="data.length_balance='resampl' is not one of none, resample, weight.*resample"):
        load_config(None, ["data.length_balance=resampl"])
    with pytest.raises(ValueError, match="data.length_balance=weight weighs the per-pair loss of kind=reward.*"
                                         "use data.length_balance=resample"):
        load_config(None, ["data.length_balance=weight"])
    assert load_config(None, ["kind=reward", "data.length_balance=weight"]).data.length_balance == "weight"


def test_generative_pair_symmetric_pool_is_balanced_with_both_orders_in_one_couple(tmp_path, tiny_tokenizer):
    from judgetrain.train.config import load_config
    from judgetrain.train.data import PAIR_UNIT_COLUMN, build_train_data

    pool = constructed_pool(num_pairs=40)
    prepared = write_prepared_dir(tmp_path / "pairs", pool, tiny_tokenizer)
    config = load_config(None, [f"data.datasets={prepared}", "data.pair_symmetric=true", "data.length_balance=resample",
                                "optim.per_device_batch_size=2"])
    data = build_train_data(config.data, tiny_tokenizer, tokenizer_name="tiny", seed=0)
    ids = data.train_dataset["id"]
    by_id = {s.id: s for s in both_orders(pool)}
    # Rows 2k and 2k+1 are the two orders of one pair.
    for first, second in zip(ids[::2], ids[1::2]):
        assert second == f"{first}~swapped"
    kept = [by_id[i] for i in ids[::2]]
    assert sides_of(kept) == {LONGER_WINS: 12, SHORTER_WINS: 12}
    stats = data.stats["length_balance"]
    assert (stats["mode"], stats["num_longer_wins"], stats["num_shorter_wins"]) == ("resample", 28, 12)
    assert stats["num_pairs_dropped"] == 16 and stats["num_rows_dropped"] == 32
    assert data.stats["num_train_samples"] == 48
    assert PAIR_UNIT_COLUMN not in data.train_dataset.column_names


def test_online_swap_augmentation_trains_on_a_balanced_pool_in_every_epoch(tmp_path, tiny_tokenizer):
    from judgetrain.train.config import load_config
    from judgetrain.train.data import build_train_data

    prepared = write_prepared_dir(tmp_path / "pairs", constructed_pool(num_pairs=40), tiny_tokenizer)
    config = load_config(None, [f"data.datasets={prepared}", "data.swap_probability=0.5", "data.length_balance=resample"])
    data = build_train_data(config.data, tiny_tokenizer, tokenizer_name="tiny", seed=0)
    assert data.online and data.stats["length_balance"]["num_pairs_dropped"] == 16
    for epoch in (0, 1):
        data.train_dataset.set_epoch(epoch)
        shown = [data.train_dataset.augmented(i) for i in range(len(data.train_dataset))]
        assert sum(s.swapped for s in shown) > 0
        assert sides_of(shown) == {LONGER_WINS: 12, SHORTER_WINS: 12}


def test_weighted_bradley_terry_loss_is_the_mean_of_each_pair_loss_times_its_weight():
    chosen, rejected = torch.tensor([2.0, 0.0, -1.0]), torch.tensor([0.0, 0.0, 1.0])
    weights = torch.tensor([0.5, 1.0, 1.5])
    pair_losses = torch.nn.functional.softplus(rejected - chosen)
    assert bradley_terry_loss(chosen, rejected, weights).item() == pytest.approx(float((pair_losses * weights).sum() / 3))
    assert bradley_terry_loss(chosen, rejected, torch.ones(3)).item() == pytest.approx(bradley_terry_loss(chosen, rejected).item())
    with pytest.raises(ValueError, match="one weight per pair"):
        bradley_terry_loss(chosen, rejected, torch.ones(2))


def test_the_weight_collator_adds_weights_only_to_rows_that_carry_them():
    from judgetrain.reward.data import RewardPairCollator

    collate = PairWeightCollator(RewardPairCollator(pad_token_id=0))
    rows = [{"chosen_input_ids": [5, 6], "rejected_input_ids": [7], PAIR_WEIGHT_COLUMN: 0.75},
            {"chosen_input_ids": [8], "rejected_input_ids": [9], PAIR_WEIGHT_COLUMN: 1.5}]
    assert collate(rows)[PAIR_WEIGHTS_KEY].tolist() == [0.75, 1.5]
    assert PAIR_WEIGHTS_KEY not in collate([{k: v for k, v in r.items() if k != PAIR_WEIGHT_COLUMN} for r in rows])


def _reward_config(tmp_path: Path, *overrides: str):
    from judgetrain.train.config import load_config

    data = tmp_path / "pairs"
    if not data.exists():
        prepare_dataset(constructed_pool(num_pairs=40) + untouched_pairs(), data, source="test")
    return load_config(None, ["kind=reward", "model.path=tiny", f"data.datasets={data}", "data.max_seq_len=96",
                              "optim.lr=3e-3", "optim.schedule=constant", "optim.warmup_ratio=0", "logging.every_steps=1",
                              "logging.stdout=false", "checkpoint.every_steps=0", *overrides])


def test_a_reward_run_with_resample_trains_on_a_balanced_pool_and_logs_the_counts(tmp_path, caplog):
    from judgetrain.train.checkpoint import CONFIG_FILE
    from judgetrain.train.trainer import train

    config = _reward_config(tmp_path, "data.length_balance=resample", "optim.per_device_batch_size=4", "optim.max_steps=4",
                            f"output_dir={tmp_path / 'run'}")
    with caplog.at_level(logging.WARNING):
        result = train(config)
    stats = result.data_stats["length_balance"]
    # 40 constructed pairs (28 longer-wins, 12 shorter-wins), a tie (never a reward row) and two equal-length pairs.
    assert stats == {"mode": "resample", "length_unit": "characters", "num_longer_wins": 28, "num_shorter_wins": 12,
                     "num_equal_length": 2, "num_no_winner": 0, "subsampled_side": LONGER_WINS, "num_pairs_dropped": 16,
                     "num_rows_dropped": 16}
    assert result.data_stats["num_train_pairs"] == 12 + 12 + 2
    assert "28 pairs where the longer answer wins, 12 where the shorter does; 16 of the longer_wins pairs (16 rows) left out" in caplog.text
    assert "'length_balance': {'mode': 'resample'" in caplog.text  # the run's data summary line
    assert result.global_step == 4 and all(torch.isfinite(torch.tensor(e["loss"])) for e in result.log_history if "loss" in e)
    recorded = yaml.safe_load((result.final_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    assert recorded["data"]["length_balance"] == "resample"


def test_a_reward_run_with_weight_takes_the_weighted_mean_of_the_pair_losses(tmp_path):
    """One step over the whole pool in one batch: its logged loss is the weighted mean of the pair
    losses of the initial model, whatever the order of the rows."""
    from judgetrain.models import load_tokenizer
    from judgetrain.reward.train import build_reward_data, build_reward_model, score_pairs
    from judgetrain.train.trainer import train

    overrides = ["optim.per_device_batch_size=42", "optim.max_steps=1"]
    config = _reward_config(tmp_path, "data.length_balance=weight", *overrides, f"output_dir={tmp_path / 'weighted'}")
    data = build_reward_data(config, load_tokenizer("tiny"), seed=0)
    assert len(data.train_dataset) == 42  # every pair with a winner is kept
    chosen, rejected = score_pairs(build_reward_model(config), data.data_collator, data.train_dataset, batch_size=42)
    weights = torch.tensor(data.train_dataset[PAIR_WEIGHT_COLUMN])
    expected = float((torch.nn.functional.softplus(rejected - chosen) * weights).mean())
    unweighted = float(torch.nn.functional.softplus(rejected - chosen).mean())
    assert abs(expected - unweighted) > 1e-3, "the weights must change this pool's loss for the test to tell them apart"

    logged = [e["loss"] for e in train(config).log_history if "loss" in e]
    assert logged[0] == pytest.approx(expected, rel=1e-4)
