"""Pair-symmetric training data: every pair in both answer orders, the two orders never split across the
held-out split, and always in one optimizer step (consecutive rows under the seeded sampler, one packed
row when packing), from `judgetrain prep --pair-symmetric` or built at load time (`data.pair_symmetric`)."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import datasets
import pytest

from judgetrain.cli import main
from judgetrain.data.augment import both_orders, swap
from judgetrain.data.prepare import prepare_dataset
from judgetrain.data.prepared import Manifest, read_samples
from judgetrain.data.packing import pack, split_packed_row
from judgetrain.models import TINY_TOKENIZER_DIR
from judgetrain.train.config import load_config
from judgetrain.train.data import (
    EpochSeededPairGroupedSampler,
    build_train_data,
    is_held_out,
    pair_units,
    split_key,
)
from judgetrain.types import Answer, JudgeSample, Label

FIXTURES = Path(__file__).resolve().parents[1] / "assets" / "fixtures"
TOPICS = ("rain", "bread", "rivers", "chess", "glass", "bees", "maps", "salt")


def pair_sample(index: int, **meta) -> JudgeSample:
    """A JudgeLM-style pairwise sample; answer lengths vary with ``index``."""
    rng = random.Random(index)
    topic = TOPICS[index % len(TOPICS)]
    good = f"{topic.capitalize()} " + " ".join(rng.choice(TOPICS) for _ in range(2 + index % 9)) + "."
    bad = "I do not know."
    first_wins = index % 3 != 0
    answers = (Answer(good), Answer(bad)) if first_wins else (Answer(bad), Answer(good))
    scores = (8.0, 3.0) if first_wins else (3.0, 8.0)
    return JudgeSample(
        id=f"p{index:03d}", source="test", question=f"Explain {topic}.", answers=answers,
        labels={"gpt4": Label(winner="A" if first_wins else "B", scores=scores, scale=(1, 10))},
        judgment=f"{scores[0]:g} {scores[1]:g}\nAssistant {1 if first_wins else 2} explains {topic} better.",
        meta={"judgment_format": "judgelm-v1", **meta},
    )


def single_sample(index: int) -> JudgeSample:
    return JudgeSample(id=f"g{index:03d}", source="test", question=f"Explain {TOPICS[index % 8]}.",
                       answers=(Answer("An answer " + "word " * index),), labels={"gpt4": Label(scores=(7.0,), scale=(1, 10))})


def write_dir(out: Path, samples: list[JudgeSample]) -> Path:
    """A prepared dir without a tokenized/ copy: training tokenizes with judgelm-v1."""
    prepare_dataset(samples, out, source="test", format_name="judgelm-v1")
    return out


def data_config(prepared: Path | list[Path], **overrides):
    paths = prepared if isinstance(prepared, list) else [prepared]
    settings = {"model.path": "tiny", "data.datasets": ",".join(map(str, paths)), "data.max_seq_len": 512,
                "data.pair_symmetric": "true", "optim.per_device_batch_size": 2}
    settings.update(overrides)
    return load_config(None, [f"{k}={v}" for k, v in settings.items()])


# --- both_orders --------------------------------------------------------------------------------


def test_both_orders_follows_each_pair_by_its_swapped_twin():
    samples = [pair_sample(1), single_sample(2), pair_sample(3, split_group="q3")]
    before = [s.to_dict() for s in samples]
    out = both_orders(samples)
    assert [s.id for s in out] == ["p001", "p001~swapped", "g002", "p003", "p003~swapped"]
    assert [s.to_dict() for s in samples] == before, "the inputs are untouched"
    original, twin = out[0], out[1]
    assert original.meta["pair_id"] == twin.meta["pair_id"] == "p001"
    assert twin == swap(original).replace(id="p001~swapped")
    assert twin.swapped and not original.swapped and twin.labels["gpt4"].winner == "B"
    assert "Assistant 2 explains" in twin.judgment
    assert out[2] is samples[1] and "pair_id" not in out[2].meta
    assert out[4].meta["split_group"] == "q3"
    with pytest.raises(ValueError, match="already has meta\\['pair_id'\\]"):
        both_orders(out[:1])


def test_split_key_and_held_out_keep_twins_and_groups_together():
    samples = both_orders([pair_sample(i) for i in range(200)])
    assert split_key(samples[0]) == split_key(samples[1]) == "p000"
    for original, twin in zip(samples[::2], samples[1::2]):
        assert is_held_out(original, 0.3, seed=5) == is_held_out(twin, 0.3, seed=5)
    held = sum(is_held_out(s, 0.3, seed=5) for s in samples[::2])
    assert 30 < held < 90, "about 30% of the pairs are held out"
    # A reader's group comes before the pair: every row of one instruction is on one side.
    grouped = both_orders([pair_sample(i, split_group=f"instr{i % 7}") for i in range(70)])
    side = {}
    for s in grouped:
        assert side.setdefault(s.meta["split_group"], is_held_out(s, 0.5, seed=1)) == is_held_out(s, 0.5, seed=1)
    assert len(set(side.values())) == 2


def test_pair_units_group_prepared_twins_and_build_missing_ones():
    prepared = both_orders([pair_sample(0), pair_sample(1)])
    # Stored in another order, with one twin lost: the units are still original-first couples.
    units = pair_units([prepared[1], single_sample(5), prepared[0], prepared[2], pair_sample(7)])
    assert [[s.id for s in u] for u in units] == [["p000", "p000~swapped"], ["g005"], ["p001", "p001~swapped"],
                                                   ["p007", "p007~swapped"]]
    assert units[2][1] == swap(prepared[2]).replace(id="p001~swapped")


# --- prep --------------------------------------------------------------------------------------


def test_prep_pair_symmetric_writes_both_orders_and_records_it(tmp_path):
    out = tmp_path / "sym"
    assert main(["prep", "--source", "judgelm", "--input", str(FIXTURES / "judgelm_100k_sample.jsonl"), "--out", str(out),
                 "--pair-symmetric", "--format", "judgelm-v1", "--tokenizer", str(TINY_TOKENIZER_DIR)]) == 0
    samples = read_samples(out)
    originals, twins = samples[::2], samples[1::2]
    assert len(samples) == 8 and [t.id for t in twins] == [f"{o.id}~swapped" for o in originals]
    for original, twin in zip(originals, twins):
        assert twin.meta["pair_id"] == original.meta["pair_id"] == original.id
        assert twin.answers == original.answers[::-1]
        assert twin.labels["gpt4"].scores == original.labels["gpt4"].scores[::-1]
    augmentation = Manifest.read(out).settings.augmentation
    assert augmentation.pair_symmetric is True and augmentation.num_pairs == 4 and augmentation.num_swapped == 4
    tokenized = datasets.load_from_disk(str(out / "tokenized"))
    assert sorted(tokenized["id"]) == sorted(s.id for s in samples)
    # Swapping at random on top would break the symmetry.
    assert main(["prep", "--source", "judgelm", "--input", str(FIXTURES / "judgelm_100k_sample.jsonl"), "--out",
                 str(tmp_path / "both"), "--pair-symmetric", "--swap-aug", "0.5"]) == 1


def test_a_pair_symmetric_prepared_dir_is_not_doubled_at_load_time(tmp_path, tiny_tokenizer):
    out = tmp_path / "sym"
    assert main(["prep", "--source", "judgelm", "--input", str(FIXTURES / "judgelm_100k_sample.jsonl"), "--out", str(out),
                 "--pair-symmetric", "--format", "judgelm-v1", "--tokenizer", str(TINY_TOKENIZER_DIR)]) == 0
    config = data_config(out, **{"data.max_seq_len": 2048})
    data = build_train_data(config.data, tiny_tokenizer, tokenizer_name=str(TINY_TOKENIZER_DIR), seed=0)
    ids = data.train_dataset["id"]
    assert sorted(ids) == sorted(s.id for s in read_samples(out))
    assert all(ids[2 * k + 1] == ids[2 * k] + "~swapped" for k in range(len(ids) // 2))


# --- training rows, sampler, packing --------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed_dirs(tmp_path_factory) -> list[Path]:
    tmp = tmp_path_factory.mktemp("pairs")
    return [write_dir(tmp / "a", [pair_sample(i) for i in range(9)]), write_dir(tmp / "b", [pair_sample(i) for i in range(9, 20)])]


def _twin(sample_id: str) -> str:
    return sample_id.removesuffix("~swapped")


def test_unpacked_rows_come_in_couples_and_every_step_holds_both_orders(mixed_dirs, tiny_tokenizer):
    config = data_config(mixed_dirs[:2], **{"data.held_out_fraction": 0.2, "optim.seed": 3})
    data = build_train_data(config.data, tiny_tokenizer, tokenizer_name="tiny", seed=3)
    assert data.pair_symmetric and not data.packed and "pair_unit" not in data.train_dataset.column_names
    ids = data.train_dataset["id"]
    held = {s.id for s in data.held_out_samples}
    assert held and not held & {_twin(i) for i in ids}, "no pair is both trained on and held out"
    assert all("~swapped" not in i for i in held), "the judge evaluation gets each held-out pair once"
    assert sorted(data.eval_dataset["id"]) == sorted([*held, *(f"{i}~swapped" for i in held)])
    lengths = [len(x) for x in data.train_dataset["input_ids"]]
    for rows_per_step in (2, 4, 6):
        sampler = EpochSeededPairGroupedSampler(lengths, batch_size=rows_per_step, seed=3)
        for epoch in (0, 1):
            sampler.set_epoch(epoch)
            order = list(sampler)
            assert sorted(order) == list(range(len(ids)))
            for start in range(0, len(order), rows_per_step):
                step = Counter(_twin(ids[i]) for i in order[start:start + rows_per_step])
                assert set(step.values()) == {2}, f"a pair split across steps: {step}"
    sampler.set_epoch(0)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first, "the order is reshuffled per epoch"
    with pytest.raises(ValueError, match="even"):
        EpochSeededPairGroupedSampler(lengths, batch_size=3, seed=0)


def test_single_answer_rows_are_coupled_so_no_pair_shifts():
    from judgetrain.train.data import _couple_order

    # Units of 2 rows (pairs) and 1 row (single-answer samples), rows numbered in unit order.
    order, units = _couple_order([2, 1, 2, 2, 1, 1, 2, 1])
    assert order == [0, 1, 3, 4, 5, 6, 2, 7, 9, 10, 8, 11]
    assert units == [0, 0, 2, 2, 3, 3, 1, 4, 6, 6, 5, 7]
    # Every couple (2k, 2k+1) is one pair or two singles; the odd single goes last.
    assert all(units[k] == units[k + 1] or {units[k], units[k + 1]} <= {1, 4, 5} for k in range(0, 10, 2))


def test_the_trainer_uses_the_pair_sampler(mixed_dirs, tiny_tokenizer, tmp_path):
    from judgetrain.models import build_tiny_model
    from judgetrain.train.trainer import build_trainer, build_training_args

    config = data_config(mixed_dirs[0], **{"optim.gradient_accumulation_steps": 2, "output_dir": str(tmp_path / "run"),
                                           "logging.stdout": "false"})
    data = build_train_data(config.data, tiny_tokenizer, tokenizer_name="tiny", seed=0)
    args = build_training_args(config, has_eval=False, packed=False)
    trainer = build_trainer(config, build_tiny_model(seed=0), tiny_tokenizer, data, args)
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, EpochSeededPairGroupedSampler) and sampler.batch_size == 4
    ids = data.train_dataset["id"]
    order = list(sampler)
    assert all(_twin(ids[order[k]]) == _twin(ids[order[k + 1]]) for k in range(0, len(order), 2))


def test_mixing_weights_count_pairs(mixed_dirs, tiny_tokenizer):
    config = data_config(mixed_dirs[1], **{"data.datasets": f"[{{path: {mixed_dirs[1]}, weight: 0.5}}]"})
    data = build_train_data(config.data, tiny_tokenizer, tokenizer_name="tiny", seed=0)
    counts = Counter(_twin(i) for i in data.train_dataset["id"])
    assert len(counts) == round(0.5 * 11) and set(counts.values()) == {2}


def test_packed_rows_hold_both_orders_of_each_pair(mixed_dirs, tiny_tokenizer):
    config = data_config(mixed_dirs, **{"data.packing": "true", "optim.per_device_batch_size": 1, "data.max_seq_len": 2048})
    data = build_train_data(config.data, tiny_tokenizer, tokenizer_name="tiny", seed=0)
    assert data.packed and data.pair_symmetric
    seen = []
    for row in data.train_dataset:
        members = Counter(_twin(i) for i in row["sample_ids"])
        assert set(members.values()) == {2}, f"a pair split across packed rows: {row['sample_ids']}"
        seen += row["sample_ids"]
    assert sorted(seen) == sorted([f"p{i:03d}" for i in range(20)] + [f"p{i:03d}~swapped" for i in range(20)])
    assert 1 < len(data.train_dataset) < 20


def test_pack_keeps_pairs_in_one_row_and_grows_the_row_for_a_long_pair():
    rows = datasets.Dataset.from_dict({
        "id": ["a", "a~s", "b", "b~s", "c", "c~s"],
        "input_ids": [[1] * 6, [2] * 6, [3] * 2, [4] * 3, [5] * 4, [6] * 4],
        "labels": [[1] * 6, [2] * 6, [3] * 2, [4] * 3, [5] * 4, [6] * 4],
        "pair": ["a", "a", "b", "b", "c", "c"],
    })
    packed = pack(rows, max_seq_len=8, pair_column="pair")
    by_row = [list(r["sample_ids"]) for r in packed]
    for members in by_row:
        assert Counter(m[0] for m in members) == Counter({m[0]: 2 for m in members})
    # Pair a (12 tokens) exceeds max_seq_len=8: every row may now hold 12 tokens, and b + c (13) do not fit one.
    assert max(packed["length"]) == 12 and sorted(map(sorted, by_row)) == [["a", "a~s"], ["b", "b~s"], ["c", "c~s"]]
    for row in packed:
        assert sum(len(p["input_ids"]) for p in split_packed_row(row)) == row["length"]
    # Without pairs, a 6-token row next to its twin would be packed apart.
    assert any(set(r["sample_ids"]) not in ({"a", "a~s"}, {"b", "b~s"}, {"c", "c~s"})
               for r in pack(rows.remove_columns("pair"), max_seq_len=8))
    with pytest.raises(ValueError, match="no 'pairs' column"):
        pack(rows, max_seq_len=8, pair_column="pairs")


# --- config -------------------------------------------------------------------------------------


def test_config_requires_an_even_step_and_no_online_augmentation(tmp_path):
    base = {"model.path": "tiny", "data.datasets": str(tmp_path), "data.pair_symmetric": "true"}

    def config(**extra):
        return load_config(None, [f"{k}={v}" for k, v in {**base, **extra}.items()])

    with pytest.raises(ValueError, match="must be even"):
        config(**{"optim.per_device_batch_size": 3})
    with pytest.raises(ValueError, match="must be even"):
        config(**{"optim.per_device_batch_size": 1, "optim.gradient_accumulation_steps": 3})
    assert config(**{"optim.per_device_batch_size": 1, "optim.gradient_accumulation_steps": 2}).data.pair_symmetric
    assert config(**{"optim.per_device_batch_size": 1, "data.packing": "true"}).data.packing, "packed pairs share a row"
    for online in ({"data.swap_probability": 0.5}, {"data.p_include_reference": 0.5}):
        with pytest.raises(ValueError, match="pair_symmetric"):
            config(**{"optim.per_device_batch_size": 2, **online})
