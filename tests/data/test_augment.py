"""Swap and reference augmentation: involution and verdict flip for every pairwise template, stored
samples untouched across epochs, per-(seed, id, epoch) seeding, targets matching the prompt variant."""

import dataclasses
import os
import subprocess
import sys

import pytest

from judgetrain import formats
from judgetrain.data import augment
from judgetrain.types import Answer, JudgeSample, Label, Verdict, flip_winner

PAIRWISE_FORMATS = [name for name in formats.names() if formats.get(name).protocol == "pairwise"]
SINGLE_FORMATS = [name for name in formats.names() if formats.get(name).protocol == "single"]


def _label_for(fmt, winner: str) -> Label:
    if fmt.score_scale is None:
        return Label(winner=winner)
    low, high = fmt.score_scale
    scores = {"A": (high, low), "B": (low, high), "tie": (high, high)}[winner]
    return Label(winner=winner, scores=scores, scale=(low, high))


def _bare_sample(fmt, sample_id: str = "q1", winner: str = "A") -> JudgeSample:
    """A pairwise sample this template can render, labelled but without critique text."""
    if fmt.multi_turn:
        question = ("Write a haiku about rain.", "Now make it about snow.")
        answers = (Answer(("Rain taps the window", "Snow hushes the street"), model="m1"),
                   Answer(("Clouds weep", "White quiet"), model="m2"))
    else:
        question = "Write a haiku about rain."
        answers = (Answer("Rain taps the window, soft drums in the night.", model="m1"), Answer("Clouds weep.", model="m2"))
    return JudgeSample(
        id=sample_id, source="test", question=question, answers=answers,
        reference=("A haiku has three lines." if not fmt.multi_turn else ("Three lines.", "Three lines again."))
        if fmt.with_reference else None,
        rubric="Is the poem a haiku about the requested subject?", labels={"gpt4": _label_for(fmt, winner)},
    )


def _judgment_format_name(fmt) -> str:
    """The name stored in meta["judgment_format"]: the template without reference when there is a twin."""
    return fmt.for_reference(False).name


def _prose_names(fmt) -> tuple[str, str] | None:
    """The first pair of answer names a critique uses in prose (verdict markers like "[[A]]" excluded)."""
    return next((pair for pair in fmt.answer_names if not any("[" in name for name in pair)), None)


def judged_sample(fmt, sample_id: str = "q1", winner: str = "A") -> JudgeSample:
    """A sample whose judgment is written in ``fmt``'s own words (its label-built target) plus a
    critique sentence naming both answers the way the family does."""
    bare = _bare_sample(fmt, sample_id, winner)
    target = fmt.target(bare)
    if target is None and winner == "tie":
        pytest.skip(f"{fmt.name} has no tie verdict")
    assert target, f"{fmt.name} builds no target from a label"
    names = _prose_names(fmt)
    if names:
        first, second = names
        sentence = f"{first} is more vivid than {second}."
        target = f"{target}\n{sentence}" if fmt.verdict_first else f"{sentence}\n{target}"
    field = "judgment_with_reference" if fmt.with_reference else "judgment"
    return bare.replace(**{field: target}, meta={"judgment_format": _judgment_format_name(fmt)})


def _parsed(fmt, text: str) -> Verdict:
    verdict = fmt.parse(text, strict=False)
    assert isinstance(verdict, Verdict), f"{fmt.name} could not parse its own target: {verdict}"
    return verdict


@pytest.mark.parametrize("name", PAIRWISE_FORMATS)
@pytest.mark.parametrize("winner", ["A", "B", "tie"])
def test_swap_is_an_involution_and_flips_the_verdict(name, winner):
    fmt = formats.get(name)
    sample = judged_sample(fmt, winner=winner)
    swapped = augment.swap(sample)
    assert augment.swap(swapped) == sample
    assert swapped.swapped and not sample.swapped
    assert swapped.answers == (sample.answers[1], sample.answers[0])
    assert swapped.labels["gpt4"].winner == flip_winner(winner)

    text_field = "judgment_with_reference" if fmt.with_reference else "judgment"
    before = _parsed(fmt, getattr(sample, text_field))
    after = _parsed(fmt, getattr(swapped, text_field))
    assert after.winner == flip_winner(before.winner)
    if before.scores is not None:
        assert after.scores == tuple(reversed(before.scores))
    if _prose_names(fmt):
        first, second = _prose_names(fmt)
        assert f"{second} is more vivid than {first}." in getattr(swapped, text_field)
    # The rendered target follows the swapped sample.
    template = augment.format_for(swapped, name)
    assert template.render(swapped)[-1]["content"] == getattr(swapped, text_field)


def test_every_family_has_a_pairwise_template_under_test():
    assert {formats.get(n).family for n in PAIRWISE_FORMATS} == set(formats.FAMILIES)


def test_swap_flips_every_label_and_reverses_scores():
    sample = JudgeSample(
        id="s", source="test", question="q", answers=(Answer("a"), Answer("b")),
        labels={
            "gpt4": Label(winner="A", scores=(9, 4), scale=(1, 10)),
            "human": Label(winner="tie"),
            "annotator1": Label(winner="B"),
            "grades": Label(scores=(2, None)),
        },
    )
    swapped = augment.swap(sample)
    assert swapped.labels == {
        "gpt4": Label(winner="B", scores=(4, 9), scale=(1, 10)),
        "human": Label(winner="tie"),
        "annotator1": Label(winner="A"),
        "grades": Label(scores=(None, 2)),
    }
    assert augment.swap(swapped) == sample


def test_swap_needs_the_judgment_format_and_two_answers():
    sample = JudgeSample(id="no-format-7", source="test", question="q", answers=(Answer("a"), Answer("b")), judgment="8 2\nfine")
    with pytest.raises(ValueError, match=r"no-format-7.*judgment_format"):
        augment.swap(sample)
    single = JudgeSample(id="one", source="test", question="q", answers=(Answer("a"),), labels={"gpt4": Label(scores=(3,))})
    with pytest.raises(ValueError, match="pairwise"):
        augment.swap(single)
    # Online augmentation leaves single-answer samples in their only order.
    assert all(not augment.apply(single, swap_probability=1.0, p_include_reference=1.0, seed=0, epoch=e).swapped for e in range(3))


def _judgelm_corpus(num_samples: int) -> list[JudgeSample]:
    plain, with_reference = formats.get("judgelm-v1"), formats.get("judgelm-ref-v1")
    samples = []
    for i in range(num_samples):
        winner = ("A", "B", "tie")[i % 3]
        bare = _bare_sample(plain, f"judgelm-{i}", winner).replace(reference=f"Reference {i}: three lines, 5-7-5.")
        samples.append(bare.replace(
            judgment=plain.target(bare) + "\nAssistant 1 rhymes; Assistant 2 does not.",
            judgment_with_reference=with_reference.target(bare) + "\nAssistant 1 follows the reference.",
            labels={"gpt4": bare.labels["gpt4"], "gpt4_with_reference": bare.labels["gpt4"]},
            meta={"judgment_format": "judgelm-v1", "tags": ["kept"]},
        ))
    return samples


def test_online_augmentation_never_changes_stored_samples_across_three_epochs():
    stored = _judgelm_corpus(300)
    snapshot = [s.to_dict() for s in stored]
    swapped_ids_per_epoch = []
    for epoch in range(3):
        swapped_ids = set()
        for sample in stored:
            seen = augment.apply(sample, swap_probability=0.5, p_include_reference=0.5, seed=13, epoch=epoch)
            assert seen == augment.apply(sample, swap_probability=0.5, p_include_reference=0.5, seed=13, epoch=epoch)
            # The label seen is the stored one flipped exactly when this epoch swapped it: never compounded.
            expected = flip_winner(sample.labels["gpt4"].winner) if seen.swapped else sample.labels["gpt4"].winner
            assert seen.labels["gpt4"].winner == expected
            assert seen.answers[0] == (sample.answers[1] if seen.swapped else sample.answers[0])
            if seen.swapped:
                swapped_ids.add(sample.id)
            # Whatever a consumer does to the augmented sample's dicts stays out of the stored one.
            seen.labels["gpt4"] = Label(winner="tie")
            seen.meta["tags"] = ["changed"]
            seen.meta["judgment_format"] = "mutated"
        assert 0.4 < len(swapped_ids) / len(stored) < 0.6
        swapped_ids_per_epoch.append(swapped_ids)
    assert [s.to_dict() for s in stored] == snapshot
    assert swapped_ids_per_epoch[0] != swapped_ids_per_epoch[1] != swapped_ids_per_epoch[2]
    with pytest.raises(dataclasses.FrozenInstanceError):
        stored[0].answers = stored[0].answers[::-1]


def test_augmentation_stream_depends_only_on_seed_id_and_epoch():
    sample = _judgelm_corpus(1)[0]
    outcomes = {
        (seed, epoch): augment.apply(sample, swap_probability=0.5, p_include_reference=0.5, seed=seed, epoch=epoch)
        for seed in range(6) for epoch in range(6)
    }
    assert len({(o.swapped, o.reference_dropped) for o in outcomes.values()}) > 1
    code = "from judgetrain.data.augment import sample_rng; print(sample_rng(7, 'judgelm-0', 2).random())"
    values = set()
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        values.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout)
    assert values == {f"{augment.sample_rng(7, 'judgelm-0', 2).random()}\n"}


def test_materialise_is_epoch_zero_and_leaves_inputs_alone():
    stored = _judgelm_corpus(200)
    snapshot = [s.to_dict() for s in stored]
    built = augment.materialise(stored, swap_probability=0.5, p_include_reference=0.5, seed=3)
    assert built == [augment.apply(s, swap_probability=0.5, p_include_reference=0.5, seed=3, epoch=0) for s in stored]
    assert 0.35 < sum(s.swapped for s in built) / len(built) < 0.65
    assert 0.35 < sum(s.reference_dropped for s in built) / len(built) < 0.65
    assert [s.to_dict() for s in stored] == snapshot


def test_target_matches_the_prompt_variant():
    stored = _judgelm_corpus(40)
    for original, sample in zip(stored, augment.materialise(stored, swap_probability=0.5, p_include_reference=0.5, seed=1)):
        template = augment.format_for(sample, "judgelm-v1")
        messages = template.render(sample)
        prompt = "\n".join(m["content"] for m in messages[:-1])
        if sample.reference_dropped:
            assert sample.reference is None and template.name == "judgelm-v1"
            assert messages[-1]["content"] == sample.judgment
            assert original.reference not in prompt
        else:
            assert template.name == "judgelm-ref-v1"
            assert messages[-1]["content"] == sample.judgment_with_reference
            assert sample.reference in prompt


def test_format_for_pairs_templates_by_reference():
    with_reference, without = _judgelm_corpus(1)[0], augment.drop_reference(_judgelm_corpus(1)[0])
    assert without.reference_dropped and without.reference is None
    for base in ("judgelm-v1", "judgelm-ref-v1"):
        assert augment.format_for(with_reference, base).name == "judgelm-ref-v1"
        assert augment.format_for(without, base).name == "judgelm-v1"
    assert augment.format_for(without, formats.get("judgelm-ref-v1")).name == "judgelm-v1"
    twinned = [formats.get(name) for name in formats.names() if formats.get(name).reference_twin is not None]
    assert len(twinned) == 16  # 8 templates without reference, each with its with-reference twin
    for fmt in twinned:
        plain, ref = fmt.for_reference(False), fmt.for_reference(True)
        assert not plain.with_reference and ref.with_reference and plain.reference_twin == ref.name
        assert plain.protocol == ref.protocol and plain.multi_turn == ref.multi_turn


def test_choose_reference_follows_the_probability_and_the_available_targets():
    import random

    sample = _judgelm_corpus(1)[0]
    rng = random.Random(0)
    assert augment.choose_reference(sample, p_include_reference=1.0, rng=rng) == sample
    dropped = augment.choose_reference(sample, p_include_reference=0.0, rng=rng)
    assert dropped.reference is None and dropped.reference_dropped
    only_plain = sample.replace(judgment_with_reference=None)
    assert augment.choose_reference(only_plain, p_include_reference=1.0, rng=rng).reference_dropped
    only_with_reference = sample.replace(judgment=None)
    assert augment.choose_reference(only_with_reference, p_include_reference=0.0, rng=rng) == only_with_reference
    with pytest.raises(ValueError, match="p_include_reference"):
        augment.choose_reference(sample, p_include_reference=1.5, rng=rng)
    with pytest.raises(ValueError, match="swap_probability"):
        augment.apply(sample, swap_probability=-0.1, p_include_reference=0.5, seed=0, epoch=0)
