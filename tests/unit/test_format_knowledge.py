"""What a judge format knows about itself, asked of the format: the verdicts it gives and how it
writes them, its with/without-reference twin, the label it trains on (chosen, or its default order),
and the one parse skeleton every family runs, so strict and lenient mode mean the same everywhere."""

from __future__ import annotations

import pytest

from judgetrain import formats
from judgetrain.data.tokenize import IGNORE_INDEX, tokenize_sample, tokenize_samples
from judgetrain.formats.base import DEFAULT_TARGET_LABELS, JudgeFormat
from judgetrain.formats.cli import example_sample
from judgetrain.types import JudgeSample, Label, ParseFailure, Verdict

ALL = [formats.get(name) for name in formats.names()]
PAIRWISE = [fmt for fmt in ALL if fmt.protocol == "pairwise"]


def _stated(fmt: JudgeFormat, verdict: str) -> Label:
    """A label stating ``verdict``: a winner A / B (with scores that give it, for graded pairwise
    templates), or a grade for a single-answer template."""
    if fmt.protocol == "single":
        return Label(scores=(float(verdict),), scale=fmt.score_scale)
    if fmt.score_scale is None:
        return Label(winner=verdict)
    low, high = fmt.score_scale
    return Label(winner=verdict, scores=(high, low) if verdict == "A" else (low, high), scale=fmt.score_scale)


def _two_verdicts(fmt: JudgeFormat) -> tuple[str, str]:
    return ("A", "B") if fmt.protocol == "pairwise" else ("5", "2")


def _read(fmt: JudgeFormat, verdict: Verdict) -> str:
    return verdict.winner if fmt.protocol == "pairwise" else format(verdict.scores[0], "g")


def _sample(fmt: JudgeFormat, labels: dict[str, Label], **changes) -> JudgeSample:
    return example_sample(fmt).replace(labels=labels, **changes)


# --- the label a target is built from ------------------------------------------------------------

@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_the_chosen_target_label_decides_the_verdict_of_a_label_built_target(fmt):
    teacher, human = _two_verdicts(fmt)
    sample = _sample(fmt, {"gpt4": _stated(fmt, teacher), "human": _stated(fmt, human)})
    by_default = fmt.parse(fmt.render(sample)[-1]["content"])
    chosen = fmt.parse(fmt.render(sample, target_label="human")[-1]["content"])
    assert isinstance(by_default, Verdict) and isinstance(chosen, Verdict)
    assert _read(fmt, by_default) == teacher  # gpt4 comes first in every template's default order
    assert _read(fmt, chosen) == human


@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_a_sample_without_the_chosen_label_is_an_error_naming_it_and_its_labels(fmt):
    sample = _sample(fmt, {"gpt4": _stated(fmt, _two_verdicts(fmt)[0]), "human": _stated(fmt, _two_verdicts(fmt)[1])})
    with pytest.raises(ValueError, match=r"sample 'example-1' has no label 'gold'.*\(its labels: gpt4, human\)"):
        fmt.render(sample, target_label="gold")
    # A judgment the sample carries does not excuse the missing label: the run asked for that label.
    with pytest.raises(ValueError, match="its labels: none"):
        fmt.render(_sample(fmt, {}, judgment="A critique."), target_label="gold")
    # Rendering without the target (judging) never asks for a label.
    assert fmt.render(sample, include_target=False, target_label="gold")[-1]["role"] == "user"


def test_default_orders_put_each_templates_own_teacher_first():
    labels = {key: Label(winner="A") for key in ("gpt4_with_reference", "gpt35", "gpt4_1", *DEFAULT_TARGET_LABELS)}
    sample = example_sample(formats.get("judgelm-v1")).replace(labels=labels)
    teachers = {"judgelm-v1": "gpt4", "judgelm-ref-v1": "gpt4_with_reference", "pandalm-v1": "gpt35",
                "prometheus-relative-v1": "gpt4_1", "autoj-pairwise-v1": "gpt4", "mtbench-pair-v2": "gpt4"}
    for name, teacher in teachers.items():
        fmt = formats.get(name)
        assert fmt.target_labels[0] == teacher and fmt.target_labels[-len(DEFAULT_TARGET_LABELS):] == DEFAULT_TARGET_LABELS
        assert fmt.target_label_of(sample) is labels[teacher]
    only = sample.replace(labels={"crowd": Label(winner="B")})
    assert formats.get("mtbench-pair-v2").target_label_of(only) is only.labels["crowd"]  # a sample's only label
    assert formats.get("mtbench-pair-v2").target_label_of(only.replace(labels={})) is None


def test_tokenized_targets_follow_the_chosen_label(tiny_tokenizer):
    fmt = formats.get("mtbench-pair-v2")
    sample = _sample(fmt, {"gpt4": Label(winner="A"), "human": Label(winner="B")})

    def target_text(row) -> str:
        return tiny_tokenizer.decode([t for t, label in zip(row["input_ids"], row["labels"]) if label != IGNORE_INDEX])

    assert "[[A]]" in target_text(tokenize_sample(sample, fmt, tiny_tokenizer, max_seq_len=1024))
    assert "[[B]]" in target_text(tokenize_sample(sample, fmt, tiny_tokenizer, max_seq_len=1024, target_label="human"))
    default_rows, _ = tokenize_samples([sample], fmt, tiny_tokenizer, max_seq_len=1024)
    human_rows, _ = tokenize_samples([sample], fmt, tiny_tokenizer, max_seq_len=1024, target_label="human")
    assert default_rows[0]["labels"] != human_rows[0]["labels"]
    with pytest.raises(ValueError, match="sample 'example-1' has no label 'gold'"):
        tokenize_samples([sample], fmt, tiny_tokenizer, max_seq_len=1024, target_label="gold")


# --- verdict options -----------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_every_verdict_option_reads_back_as_its_verdict(fmt):
    options = fmt.verdict_options()
    # JudgeLM's pairwise verdict line starts with Assistant 1's grade: its options are that grade.
    first_grade = fmt.family == "judgelm" and fmt.protocol == "pairwise"
    if fmt.protocol == "pairwise" and not first_grade:
        expected = {"A", "B"} | ({"tie"} if fmt.family != "prometheus" else set())
    else:
        expected = {str(grade) for grade in range(int(fmt.score_scale[0]), int(fmt.score_scale[1]) + 1)}
    assert set(options) == expected
    for verdict, text in options.items():
        if first_grade:
            parsed = fmt.parse(f"{text} 1\nExplanation.")
            assert isinstance(parsed, Verdict) and parsed.scores[0] == float(verdict)
            continue
        # A verdict-first template's verdict opens the judgment; the others close it.
        parsed = fmt.parse(f"{text}\nExplanation." if fmt.verdict_first else f"Both answers were read closely.\n{text}")
        assert isinstance(parsed, Verdict) and not parsed.lenient, (verdict, text, parsed)
        assert _read(fmt, parsed) == verdict


@pytest.mark.parametrize("fmt", [f for f in PAIRWISE if f.family != "judgelm"], ids=lambda f: f.name)
def test_label_built_pairwise_targets_write_the_verdict_options(fmt):
    for winner in ("A", "B"):
        target = fmt.render(_sample(fmt, {"gpt4": _stated(fmt, winner)}))[-1]["content"]
        assert fmt.verdict_options()[winner] in target


# --- reference twins -----------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_the_reference_twin_is_the_same_template_with_or_without_the_reference(fmt):
    if fmt.reference_twin is None:
        assert fmt.for_reference(True) is fmt and fmt.for_reference(False) is fmt
        return
    twin = formats.get(fmt.reference_twin)
    assert twin.reference_twin == fmt.name and twin.with_reference != fmt.with_reference
    assert fmt.for_reference(fmt.with_reference) is fmt and fmt.for_reference(not fmt.with_reference) is twin
    assert (twin.family, twin.protocol, twin.multi_turn, twin.verdict_options()) == (
        fmt.family, fmt.protocol, fmt.multi_turn, fmt.verdict_options())


@pytest.mark.parametrize("fmt", [f for f in ALL if f.family != "pandalm"], ids=lambda f: f.name)
def test_the_judgment_a_template_trains_on_is_the_one_written_for_its_prompt(fmt):
    # PandaLM keeps only whole evaluations as they are, so its bare critiques are not compared here.
    verdict = _two_verdicts(fmt)[0]
    written = {field: fmt.render(_sample(fmt, {"gpt4": _stated(fmt, verdict)}))[-1]["content"] + f" ({field})"
               for field in ("judgment", "judgment_with_reference")}
    sample = _sample(fmt, {"gpt4": _stated(fmt, verdict)}, **written)
    assert fmt.judgment_field == ("judgment_with_reference" if fmt.with_reference else "judgment")
    assert fmt.render(sample)[-1]["content"] == written[fmt.judgment_field]


# --- the parse skeleton --------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ALL, ids=lambda f: f.name)
def test_strict_and_lenient_mean_the_same_in_every_family(fmt):
    assert fmt.markers.strict and fmt.markers.lenient and fmt.markers.expected
    for strict in (True, False):
        empty = fmt.parse(" \n", strict=strict)
        assert isinstance(empty, ParseFailure) and empty.reason == "empty output" and empty.template == fmt.name
        unread = fmt.parse("I would rather not say.", strict=strict)
        assert isinstance(unread, ParseFailure) and unread.raw_text == "I would rather not say."
        assert unread.reason.endswith("(strict)" if strict else "(lenient)"), unread.reason
    # The contract reads the same in both modes and is never flagged lenient: the near-miss patterns
    # are tried only when no strict one matches.
    target = fmt.render(_sample(fmt, {"gpt4": _stated(fmt, _two_verdicts(fmt)[0])}))[-1]["content"]
    strict_verdict, lenient_verdict = fmt.parse(target, strict=True), fmt.parse(target, strict=False)
    assert isinstance(strict_verdict, Verdict) and strict_verdict == lenient_verdict and not lenient_verdict.lenient
