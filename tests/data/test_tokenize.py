"""Loss-masked tokenization: the mask covers exactly the prompt, the supervised tokens are exactly the
target and its end-of-turn token, truncation only ever shortens answers, and skips are counted."""

import copy

import pytest

from judgetrain import formats
from judgetrain.data import augment
from judgetrain.data.tokenize import (
    IGNORE_INDEX,
    SKIP_PROMPT_TOO_LONG,
    SKIP_TARGET_TOO_LONG,
    TRUNCATION_MARKER,
    OnlineJudgeDataset,
    encode_messages,
    raw_prompt_text,
    tokenize_sample,
    tokenize_samples,
    tokenize_with_reason,
)
from judgetrain.types import Answer, JudgeSample, Label

LONG_A = " ".join(f"Step {i}: the rain falls on the quiet town and the river rises." for i in range(60))
LONG_B = " ".join(f"Point {i}: clouds gather." for i in range(90))


def judgelm_sample(sample_id: str = "j1", answers=("Four.", "Five."), judgment_words: int = 1) -> JudgeSample:
    plain, with_reference = formats.get("judgelm-v1"), formats.get("judgelm-ref-v1")
    bare = JudgeSample(
        id=sample_id, source="test", question="What is two plus two? Answer briefly and explain.",
        answers=(Answer(answers[0], model="m1"), Answer(answers[1], model="m2")),
        reference="Two plus two is four.", labels={"gpt4": Label(winner="A", scores=(9, 2), scale=(1, 10))},
    )
    critique = " ".join(["Assistant 1 is correct and Assistant 2 is not."] * judgment_words)
    return bare.replace(
        judgment=plain.target(bare) + "\n" + critique,
        judgment_with_reference=with_reference.target(bare) + "\n" + critique + " Assistant 1 matches the reference.",
        meta={"judgment_format": "judgelm-v1"},
    )


def _supervised(row) -> list[int]:
    return [token for token, label in zip(row["input_ids"], row["labels"]) if label != IGNORE_INDEX]


def test_mask_covers_exactly_the_prompt_and_supervises_target_plus_end_of_turn(tiny_tokenizer):
    sample = judgelm_sample()
    for dropped in (False, True):
        variant = augment.drop_reference(sample) if dropped else sample
        template = augment.format_for(variant, "judgelm-v1")
        row = tokenize_sample(variant, "judgelm-v1", tiny_tokenizer, max_seq_len=4096)
        messages = template.render(variant)
        prompt_text = tiny_tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
        prompt_ids = tiny_tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        num_prompt = len(prompt_ids)
        assert row["input_ids"][:num_prompt] == prompt_ids
        assert row["labels"][:num_prompt] == [IGNORE_INDEX] * num_prompt
        assert IGNORE_INDEX not in row["labels"][num_prompt:]
        assert row["labels"][num_prompt:] == row["input_ids"][num_prompt:]
        target = variant.judgment if dropped else variant.judgment_with_reference
        assert tiny_tokenizer.decode(_supervised(row)) == target + "<|im_end|>"
        assert row["num_target_tokens"] == len(row["input_ids"]) - num_prompt
        assert row["template"] == ("judgelm-v1" if dropped else "judgelm-ref-v1")
        assert not row["truncated"] and row["length"] == len(row["input_ids"])


def test_tokenizer_without_chat_template_gets_the_raw_prompt(tiny_tokenizer):
    raw = copy.deepcopy(tiny_tokenizer)
    raw.chat_template = None
    messages = [{"role": "system", "content": "Judge."}, {"role": "user", "content": "Which is better?"}, {"role": "assistant", "content": "8 3\nThe first."}]
    input_ids, labels = encode_messages(messages, raw)
    num_prompt = labels.count(IGNORE_INDEX)
    assert raw.decode(input_ids[:num_prompt]) == raw_prompt_text(messages[:-1]) == "Judge.\n\nWhich is better?\n\n"
    assert raw.decode(input_ids[num_prompt:]) == "8 3\nThe first.<|im_end|>"
    assert labels[num_prompt:] == input_ids[num_prompt:]


def test_a_template_that_rewrites_the_prompt_is_refused(tiny_tokenizer):
    odd = copy.deepcopy(tiny_tokenizer)
    # Prints the number of messages first, so the prompt is no prefix of the whole conversation.
    odd.chat_template = "{{ messages|length }}" + tiny_tokenizer.chat_template
    messages = [{"role": "user", "content": "Which is better?"}, {"role": "assistant", "content": "The first."}]
    with pytest.raises(ValueError, match="prefix"):
        encode_messages(messages, odd)


def test_truncation_shortens_only_answer_tails(tiny_tokenizer):
    sample = judgelm_sample(answers=(LONG_A, LONG_B))
    full = tokenize_sample(sample, "judgelm-v1", tiny_tokenizer, max_seq_len=100_000)
    max_seq_len = full["length"] // 2
    row = tokenize_sample(sample, "judgelm-v1", tiny_tokenizer, max_seq_len=max_seq_len)
    assert row["truncated"] and row["length"] <= max_seq_len
    assert row["length"] > max_seq_len * 0.9, "truncation should cut little more than the overflow"
    assert tiny_tokenizer.decode(_supervised(row)) == sample.judgment_with_reference + "<|im_end|>"
    text = tiny_tokenizer.decode(row["input_ids"])
    assert sample.question in text and sample.reference in text
    # Re-render the prompt with the answers the row holds: each is a prefix of the original plus the marker.
    prompt = text[: text.index(sample.judgment_with_reference)]
    for original in (LONG_A, LONG_B):
        head = original[:40]
        start = prompt.index(head)
        end = prompt.index(TRUNCATION_MARKER.strip(), start)
        kept = prompt[start:end].rstrip()
        assert original.startswith(kept) and len(kept) < len(original)
    # Both answers lose a similar share of their tokens (proportional cut).
    kept_a = len(prompt[prompt.index(LONG_A[:40]) : prompt.index(TRUNCATION_MARKER.strip())])
    assert 0.2 < kept_a / len(LONG_A) < 0.8


def test_short_answers_are_not_cut(tiny_tokenizer):
    sample = judgelm_sample(answers=(LONG_A, "Four."))
    full = tokenize_sample(sample, "judgelm-v1", tiny_tokenizer, max_seq_len=100_000)
    row = tokenize_sample(sample, "judgelm-v1", tiny_tokenizer, max_seq_len=full["length"] - 50)
    text = tiny_tokenizer.decode(row["input_ids"])
    assert row["truncated"] and text.count(TRUNCATION_MARKER.strip()) == 1 and "Four." in text


def test_samples_that_cannot_fit_are_skipped_with_a_reason(tiny_tokenizer):
    long_target = judgelm_sample("long-target", judgment_words=80)
    row, reason = tokenize_with_reason(long_target, "judgelm-v1", tiny_tokenizer, max_seq_len=200)
    assert row is None and reason == SKIP_TARGET_TOO_LONG
    fits = judgelm_sample("fits")
    empty_answers = tokenize_sample(judgelm_sample(answers=("", "")), "judgelm-v1", tiny_tokenizer, max_seq_len=100_000)
    row, reason = tokenize_with_reason(fits.replace(answers=(Answer(LONG_A), Answer(LONG_B))), "judgelm-v1", tiny_tokenizer,
                                       max_seq_len=empty_answers["length"] - 5)
    assert row is None and reason == SKIP_PROMPT_TOO_LONG


def test_tokenize_samples_counts_and_matches_across_processes(tiny_tokenizer):
    samples = [judgelm_sample(f"s{i}", answers=(LONG_A[: 200 * (i + 1)], LONG_B[: 150 * (i + 1)])) for i in range(8)]
    samples.append(judgelm_sample("too-long", judgment_words=200))
    samples.append(augment.drop_reference(judgelm_sample("no-ref")))
    max_seq_len = 420
    dataset, stats = tokenize_samples(samples, "judgelm-v1", tiny_tokenizer, max_seq_len=max_seq_len, num_proc=1)
    assert stats["num_samples"] == 10 and stats["num_tokenized"] == len(dataset) == 9
    assert stats["num_skipped_target_too_long"] == 1 and stats["skipped"] == [{"id": "too-long", "reason": SKIP_TARGET_TOO_LONG}]
    assert stats["num_truncated"] == sum(dataset["truncated"]) > 0
    assert stats["templates"] == {"judgelm-ref-v1": 8, "judgelm-v1": 1}
    assert stats["length_tokens"]["max"] == max(dataset["length"]) <= max_seq_len
    assert stats["length_tokens"]["p50"] <= stats["length_tokens"]["p90"] <= stats["length_tokens"]["max"]
    expected = {s.id: tokenize_sample(s, "judgelm-v1", tiny_tokenizer, max_seq_len=max_seq_len) for s in samples}
    for row in dataset:
        assert row["input_ids"] == expected[row["id"]]["input_ids"] and row["labels"] == expected[row["id"]]["labels"]
    parallel, parallel_stats = tokenize_samples(samples, formats.get("judgelm-v1"), tiny_tokenizer, max_seq_len=max_seq_len, num_proc=2)
    assert parallel["input_ids"] == dataset["input_ids"] and parallel_stats == stats


def test_online_dataset_augments_per_epoch_without_touching_samples(tiny_tokenizer):
    stored = [judgelm_sample(f"o{i}") for i in range(16)] + [judgelm_sample("huge", judgment_words=200)]
    snapshot = [s.to_dict() for s in stored]
    dataset = OnlineJudgeDataset(stored, "judgelm-v1", tiny_tokenizer, max_seq_len=600, swap_probability=0.5,
                                 p_include_reference=0.5, seed=5)
    assert len(dataset) == 16 and dataset.skipped == [{"id": "huge", "reason": SKIP_TARGET_TOO_LONG}]
    items_per_epoch = []
    for epoch in range(3):
        dataset.set_epoch(epoch)
        items = [dataset[i] for i in range(len(dataset))]
        for i, item in enumerate(items):
            seen = augment.apply(stored[i], swap_probability=0.5, p_include_reference=0.5, seed=5, epoch=epoch)
            expected = tokenize_sample(seen, "judgelm-v1", tiny_tokenizer, max_seq_len=600)
            assert item == {"input_ids": expected["input_ids"], "labels": expected["labels"]}
            target = seen.judgment if seen.reference_dropped else seen.judgment_with_reference
            assert tiny_tokenizer.decode(_supervised(item)) == target + "<|im_end|>"
        items_per_epoch.append(items)
    assert items_per_epoch[0] != items_per_epoch[1]
    assert [s.to_dict() for s in stored] == snapshot


def test_multi_turn_truncation_cuts_every_answer_turn_and_keeps_both_questions(tiny_tokenizer):
    turns_a = (LONG_A, LONG_A.replace("Step", "Stage"))
    turns_b = (LONG_B, LONG_B.replace("Point", "Item"))
    sample = JudgeSample(
        id="mt", source="test", question=("Tell a story about rain.", "Now retell it about snow."),
        answers=(Answer(turns_a, model="m1"), Answer(turns_b, model="m2")), turn=2,
        labels={"gpt4": Label(winner="B")}, judgment="Assistant B keeps the story going. [[B]]",
        meta={"judgment_format": "mtbench-pair-v2-multi-turn"},
    )
    full = tokenize_sample(sample, "mtbench-pair-v2-multi-turn", tiny_tokenizer, max_seq_len=100_000)
    max_seq_len = full["length"] * 2 // 3
    row = tokenize_sample(sample, "mtbench-pair-v2-multi-turn", tiny_tokenizer, max_seq_len=max_seq_len)
    assert row["truncated"] and row["length"] <= max_seq_len
    assert tiny_tokenizer.decode(_supervised(row)) == sample.judgment + "<|im_end|>"
    text = tiny_tokenizer.decode(row["input_ids"])
    assert all(question in text for question in sample.question)
    marker = TRUNCATION_MARKER.strip()
    assert text.count(marker) == 4
    for original in turns_a + turns_b:
        start = text.index(original[:30])
        kept = text[start : text.index(marker, start)].rstrip()
        assert original.startswith(kept) and 0 < len(kept) < len(original)
