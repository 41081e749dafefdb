"""Packing: every token and label kept, positions restart per sample, and a packed row trains exactly
like its samples run one by one under sdpa, per-sample sdpa and eager attention (no cross-sample
attention, no cross-sample labels)."""

import copy

import datasets
import pytest
import torch
from transformers import DataCollatorWithFlattening

from judgetrain.data.packing import PACKED_SDPA, PackedCollator, pack, packing_efficiency, split_packed_row, use_packed_sdpa
from judgetrain.data.tokenize import IGNORE_INDEX, encode_messages


def _conversation(i: int) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You are a fair judge."},
        {"role": "user", "content": f"Question {i}: " + "which answer is better? " * (1 + i % 4)},
        {"role": "assistant", "content": f"{1 + i % 9} {9 - i % 9}\nAssistant {1 + i % 2} is better." + " Detail." * (i % 3)},
    ]


@pytest.fixture(scope="module")
def tokenized(tiny_tokenizer) -> datasets.Dataset:
    rows = {"id": [], "input_ids": [], "labels": [], "length": []}
    for i in range(12):
        input_ids, labels = encode_messages(_conversation(i), tiny_tokenizer)
        rows["id"].append(f"s{i}")
        rows["input_ids"].append(input_ids)
        rows["labels"].append(labels)
        rows["length"].append(len(input_ids))
    return datasets.Dataset.from_dict(rows)


@pytest.mark.parametrize("shuffled", [False, True], ids=["in-order", "shuffled-view"])
def test_pack_keeps_every_token_and_label_and_restarts_positions(tokenized, shuffled):
    max_seq_len = 160
    # A shuffled dataset is an index view over its table: packing must follow the view's rows.
    packed = pack(tokenized.shuffle(seed=1) if shuffled else tokenized, max_seq_len=max_seq_len)
    original = {row["id"]: row for row in tokenized}
    seen = []
    for row in packed:
        assert len(row["input_ids"]) == len(row["labels"]) == len(row["position_ids"]) == row["length"] <= max_seq_len
        pieces = split_packed_row(row)
        assert len(pieces) == len(row["sample_ids"])
        for sample_id, piece in zip(row["sample_ids"], pieces):
            assert piece["input_ids"] == original[sample_id]["input_ids"]
            # Tokenized samples open with prompt tokens, so forcing the first label to -100 changes nothing.
            assert piece["labels"] == original[sample_id]["labels"]
        starts = [i for i, p in enumerate(row["position_ids"]) if p == 0]
        for a, b in zip(starts, starts[1:] + [row["length"]]):
            assert row["position_ids"][a:b] == list(range(b - a))
        seen.extend(row["sample_ids"])
    assert sorted(seen) == sorted(original)
    assert len(packed) < len(tokenized)
    total_tokens = sum(tokenized["length"])
    assert packing_efficiency(packed, max_seq_len) == pytest.approx(total_tokens / (len(packed) * max_seq_len))
    # Best-fit decreasing needs at most one row more than the volume bound here.
    assert len(packed) <= -(-total_tokens // max_seq_len) + 1


def test_first_label_of_each_sample_never_predicted_from_the_previous_sample():
    rows = datasets.Dataset.from_dict({"input_ids": [[5, 6, 7], [8, 9], [10, 11, 12, 13]], "labels": [[5, 6, 7], [8, 9], [10, 11, 12, 13]]})
    packed = pack(rows, max_seq_len=9)
    assert len(packed) == 1
    row = packed[0]
    starts = [i for i, p in enumerate(row["position_ids"]) if p == 0]
    assert len(starts) == 3
    for i, (token, label) in enumerate(zip(row["input_ids"], row["labels"])):
        assert label == (IGNORE_INDEX if i in starts else token)


def test_pack_rejects_a_row_longer_than_max_seq_len(tokenized):
    with pytest.raises(ValueError, match="max_seq_len"):
        pack(tokenized, max_seq_len=10)


def test_packed_collator_matches_the_flattening_collator_on_the_samples(tokenized):
    packed = pack(tokenized, max_seq_len=300)
    by_id = {row["id"]: row for row in tokenized}
    batch = PackedCollator()([packed[0], packed[1]])
    samples = [{"input_ids": by_id[i]["input_ids"], "labels": by_id[i]["labels"]} for r in (packed[0], packed[1]) for i in r["sample_ids"]]
    reference = DataCollatorWithFlattening()(samples)
    for key in ("input_ids", "labels", "position_ids"):
        assert torch.equal(batch[key], reference[key])
    assert batch["use_cache"] is False


def _sum_loss(model, **inputs) -> tuple[torch.Tensor, torch.Tensor]:
    out = model(**inputs)
    labels = inputs["labels"]
    # The model's loss is a mean over supervised (shifted) tokens; turn it back into a sum.
    num_supervised = (labels[:, 1:] != IGNORE_INDEX).sum()
    return out.loss * num_supervised, out.logits


@pytest.mark.parametrize("attention", ["sdpa", PACKED_SDPA, "eager"])
def test_packed_loss_and_logits_equal_separate_runs(tiny_model, tokenized, attention):
    model = copy.deepcopy(tiny_model).eval()
    if attention == PACKED_SDPA:
        assert use_packed_sdpa(model)
    else:
        model.set_attn_implementation(attention)
    rows = [tokenized[i] for i in (0, 5, 7)]
    packed = pack(datasets.Dataset.from_list(rows), max_seq_len=sum(r["length"] for r in rows))
    assert len(packed) == 1
    batch = PackedCollator()([packed[0]])
    by_id = {r["id"]: r for r in rows}
    with torch.no_grad():
        packed_sum, packed_logits = _sum_loss(model, **batch)
        separate_sum = torch.zeros(())
        offset = 0
        for sample_id in packed[0]["sample_ids"]:
            row = by_id[sample_id]
            loss_sum, logits = _sum_loss(model, input_ids=torch.tensor([row["input_ids"]]), labels=torch.tensor([row["labels"]]))
            separate_sum += loss_sum
            n = row["length"]
            torch.testing.assert_close(packed_logits[0, offset : offset + n], logits[0], atol=1e-5, rtol=1e-4)
            offset += n
        torch.testing.assert_close(packed_sum, separate_sum, atol=1e-4, rtol=1e-5)

        # The equality is not vacuous: the same tokens without restarting positions attend across samples.
        naive = {"input_ids": batch["input_ids"], "labels": batch["labels"]}
        naive_sum, _ = _sum_loss(model, **naive)
        assert not torch.allclose(naive_sum, separate_sum, atol=1e-3)


def test_packed_sdpa_reads_the_sample_boundaries_from_the_batch(tiny_model, tokenized):
    model = copy.deepcopy(tiny_model).eval()
    assert use_packed_sdpa(model)
    rows = [tokenized[i] for i in (0, 5)]
    batch = PackedCollator()([pack(datasets.Dataset.from_list(rows), max_seq_len=400)[0]])
    total = batch["input_ids"].shape[1]
    with torch.no_grad():
        per_sample = model(**batch).logits
        # Boundaries saying "one sample" make the second sample attend to the first: other logits.
        one_span = torch.tensor([0, total], dtype=torch.int32)
        joined = model(**{**batch, "cu_seq_lens_q": one_span, "cu_seq_lens_k": one_span}).logits
        first = rows[0]["length"] if batch["position_ids"][0, rows[0]["length"]] == 0 else rows[1]["length"]
        torch.testing.assert_close(joined[0, :first], per_sample[0, :first])
        assert not torch.allclose(joined[0, first:], per_sample[0, first:], atol=1e-3)
        short = torch.tensor([0, total - 1], dtype=torch.int32)
        with pytest.raises(ValueError, match="does not cover"):
            model(**{**batch, "cu_seq_lens_q": short, "cu_seq_lens_k": short})


def test_packed_sdpa_leaves_padded_batches_and_generation_as_sdpa(tiny_model, tiny_tokenizer):
    plain = copy.deepcopy(tiny_model).eval()
    switched = copy.deepcopy(tiny_model).eval()
    assert use_packed_sdpa(switched) and not use_packed_sdpa(switched)  # already switched: left as is
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.padding_side = "left"
    inputs = tokenizer(["a short prompt", "a somewhat longer prompt than that"], return_tensors="pt", padding=True)
    with torch.no_grad():
        torch.testing.assert_close(switched(**inputs).logits, plain(**inputs).logits)
        generated = switched.generate(**inputs, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        expected = plain.generate(**inputs, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert torch.equal(generated, expected)
