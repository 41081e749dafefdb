"""The generative judge's data: swap augmentation (both orders of every pair), reference drop in both
mode (a twin without the reference for every sample that shows one), verdict-first targets built from
critiques written for another template, grades on other scales, and pairs with single grades under one
template."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from judgetrain import formats, plugins
from judgetrain.data.augment import (
    NO_REFERENCE_TWIN_SUFFIX,
    PAIR_ID_KEY,
    REFERENCE_TWIN_OF_KEY,
    SWAPPED_TWIN_SUFFIX,
    format_for,
    with_reference_twins,
)
from judgetrain.data.prepare import prepare_dataset
from judgetrain.data.prepared import Manifest, read_samples
from judgetrain.data.rows import ReadReport
from judgetrain.train.data import is_held_out
from judgetrain.types import Answer, JudgeSample, Label, ParseFailure
from judgetrain_data_prep.arena_bench import SHIPPED_DIR

JUDGELM = formats.get("judgelm-v1")


def arena_samples(limit: int = 40) -> list[JudgeSample]:
    """GPT-4's reference-guided grades from the arena-bench copy shipped in the package."""
    report = ReadReport(source="arena_bench")
    return list(plugins.reader("arena_bench").read(str(SHIPPED_DIR), split="train", report=report))[:limit]


def judged_pair(sample_id: str, judgment: str, template: str, *, reference: str | None = None) -> JudgeSample:
    return JudgeSample(
        id=sample_id, source="test", question="Which planet is largest?",
        answers=(Answer("Jupiter is the largest planet.", model="m1"), Answer("Saturn.", model="m2")),
        reference=reference, labels={"gpt4": Label(winner="A", scores=(9.0, 3.0), scale=(1.0, 10.0))},
        judgment=judgment, meta={"judgment_format": template},
    )


# --- swap augmentation --------------------------------------------------------------------------


def test_pair_symmetric_data_holds_both_orders_with_labels_scores_and_names_swapped(tmp_path):
    samples = [
        judged_pair("lm", "9 3\nAssistant 1 names Jupiter; Assistant 2 names Saturn, which is wrong.", "judgelm-v1"),
        judged_pair("aj", "Response 1 is right and Response 2 is not. So, the final decision is Response 1.",
                    "autoj-pairwise-v1"),
    ]
    prepare_dataset(samples, tmp_path / "pairs", format_name="judgelm-v1", pair_symmetric=True)
    written = {s.id: s for s in read_samples(tmp_path / "pairs")}
    assert sorted(written) == ["aj", f"aj{SWAPPED_TWIN_SUFFIX}", "lm", f"lm{SWAPPED_TWIN_SUFFIX}"]
    for original in samples:
        twin = written[f"{original.id}{SWAPPED_TWIN_SUFFIX}"]
        assert twin.meta[PAIR_ID_KEY] == written[original.id].meta[PAIR_ID_KEY] == original.id
        assert twin.answers == (original.answers[1], original.answers[0]) and twin.swapped
        assert twin.labels["gpt4"] == Label(winner="B", scores=(3.0, 9.0), scale=(1.0, 10.0))
    assert written[f"lm{SWAPPED_TWIN_SUFFIX}"].judgment == "3 9\nAssistant 2 names Jupiter; Assistant 1 names Saturn, which is wrong."
    assert written[f"aj{SWAPPED_TWIN_SUFFIX}"].judgment == (
        "Response 2 is right and Response 1 is not. So, the final decision is Response 2.")
    # The swapped twin trains on the swapped score line, first.
    assert JUDGELM.target(written[f"lm{SWAPPED_TWIN_SUFFIX}"]).startswith("3 9\n")


def test_prepared_grade_pairs_hold_both_orders_of_every_pair(shared_data, tmp_path):
    out = tmp_path / "vicuna"
    subprocess.run([sys.executable, "-m", "judgetrain.cli", "prep", "--source", "pairs-from-grades", "--input",
                    str(shared_data / "prometheus-eval" / "vicuna_eval.json"), "--format", "judgelm-v1", "--pair-symmetric",
                    "--reference-twins", "--out", str(out)], check=True, capture_output=True)
    written = {s.id: s for s in read_samples(out)}
    originals = [s for s in written.values() if s.meta[PAIR_ID_KEY] == s.id]
    assert len(originals) * 2 == len(written) == 1920
    for original in originals:
        twin = written[f"{original.id}{SWAPPED_TWIN_SUFFIX}"]
        label, swapped = original.labels["gpt4"], twin.labels["gpt4"]
        assert twin.answers == original.answers[::-1]
        assert swapped.scores == label.scores[::-1] and swapped.winner == {"A": "B", "B": "A", "tie": "tie"}[label.winner]
        assert twin.reference == original.reference
    settings = Manifest.read(out).settings.augmentation
    assert settings.pair_symmetric and settings.reference_twins and settings.num_reference_dropped == 960


# --- reference drop, both mode --------------------------------------------------------------------


def test_a_reference_twin_differs_from_its_source_only_by_the_missing_reference():
    samples = arena_samples()
    out = with_reference_twins(samples)
    assert len(out) == 2 * len(samples)
    for source, twin in zip(out[0::2], out[1::2]):
        assert source is not twin and source.reference is not None
        assert twin.id == f"{source.id}{NO_REFERENCE_TWIN_SUFFIX}"
        assert twin.reference is None and twin.reference_dropped and not source.reference_dropped
        assert twin.meta[REFERENCE_TWIN_OF_KEY] == source.id
        assert twin.meta["split_group"] == source.meta["split_group"]
        differing = {f.name for f in dataclasses.fields(JudgeSample) if getattr(source, f.name) != getattr(twin, f.name)}
        assert differing == {"id", "reference", "reference_dropped", "meta"}
        assert {k: v for k, v in twin.meta.items() if k != REFERENCE_TWIN_OF_KEY} == source.meta
        # The held-out split keeps the two on one side.
        assert is_held_out(twin, 0.3, 0) == is_held_out(source, 0.3, 0)


def test_a_twin_without_a_split_group_joins_its_source_on_the_held_out_side():
    source = judged_pair("p", "9 3\nAssistant 1 is right.", "judgelm-v1", reference="Jupiter.")
    [kept, twin] = with_reference_twins([source])
    assert kept is source and twin.meta["split_group"] == "p"
    for seed in range(20):
        assert is_held_out(twin, 0.5, seed) == is_held_out(source, 0.5, seed)


def test_the_twin_trains_without_the_reference_and_on_the_grade_alone_when_the_critique_cites_it():
    source = arena_samples(1)[0]
    [_, twin] = with_reference_twins([source])
    with_ref, without = format_for(source, JUDGELM), format_for(twin, JUDGELM)
    assert (with_ref.name, without.name) == ("judgelm-single-ref-v1", "judgelm-single-v1")
    source_prompt = with_ref.render(source, include_target=False)[-1]["content"]
    twin_prompt = without.render(twin, include_target=False)[-1]["content"]
    assert "[Reference Answer]" in source_prompt and source.reference in source_prompt
    assert "[Reference Answer]" not in twin_prompt and source.reference not in twin_prompt
    assert source.answers[0].text in twin_prompt and source.question in twin_prompt
    # GPT-4's critique was written beside the reference: the twin's target is the grade line alone.
    grade = f"{source.labels['gpt4'].scores[0]:g}"
    assert with_ref.target(source).startswith(grade + "\n") and len(with_ref.target(source)) > 100
    assert without.target(twin) == grade


def test_prep_writes_reference_twins_and_refuses_them_with_a_reference_probability(tmp_path):
    samples = arena_samples(10)
    prepare_dataset(samples, tmp_path / "twins", format_name="judgelm-single-v1", reference_twins=True)
    written = read_samples(tmp_path / "twins")
    assert [s.id for s in written[1::2]] == [f"{s.id}{NO_REFERENCE_TWIN_SUFFIX}" for s in samples]
    assert Manifest.read(tmp_path / "twins").settings.augmentation.num_reference_dropped == 10
    with pytest.raises(ValueError, match="--reference-twins / --p-include-reference"):
        prepare_dataset(samples, tmp_path / "both", reference_twins=True, p_include_reference=0.5)


def test_twins_are_made_before_both_orders_so_every_twin_is_trained_in_both():
    pair = judged_pair("p", "9 3\nAssistant 1 is right.", "judgelm-v1", reference="Jupiter.")
    from judgetrain.data.augment import both_orders

    ids = [s.id for s in both_orders(with_reference_twins([pair]))]
    assert ids == ["p", f"p{SWAPPED_TWIN_SUFFIX}", f"p{NO_REFERENCE_TWIN_SUFFIX}",
                   f"p{NO_REFERENCE_TWIN_SUFFIX}{SWAPPED_TWIN_SUFFIX}"]
    with pytest.raises(ValueError, match="reference twins first"):
        with_reference_twins(both_orders([pair]))


# --- verdict-first targets ------------------------------------------------------------------------


def test_a_critique_written_for_another_template_trains_verdict_first(shared_data):
    report = ReadReport(source="autoj")
    autoj = list(plugins.reader("autoj").read(str(shared_data / "auto-j" / "training" / "single_traindata.jsonl"), report=report))
    for sample in arena_samples() + autoj[:40]:
        fmt = format_for(sample, JUDGELM)
        target = fmt.target(sample)
        grade_line, critique = target.split("\n", 1)
        assert float(grade_line) == sample.labels["gpt4"].scores[0]
        # The critique is kept, without the rating statement it ended with.
        assert isinstance(formats.get(sample.meta["judgment_format"]).parse(critique, strict=True), ParseFailure)
        assert "Rating: [[" not in critique and len(critique) > 50
        # The judge's own parser reads the grade back from the target.
        assert fmt.parse(target, strict=True).scores == (sample.labels["gpt4"].scores[0],)


def test_a_label_on_another_scale_is_mapped_onto_one_to_ten_keeping_its_winner():
    pair = JudgeSample(id="p", source="test", question="q", answers=(Answer("a"), Answer("b")),
                       labels={"gpt4": Label(winner="A", scores=(13 / 3, 4.0), scale=(1.0, 5.0))})
    assert JUDGELM.target(pair) == "8.5 7.75"
    alpaca = pair.replace(labels={"gpt4": Label(winner="B", scores=(0.0, 1.0), scale=(0.0, 1.0))})
    assert JUDGELM.target(alpaca) == "1 10"
    # Only a declared scale is mapped: a grade without one must already be on 1-10.
    with pytest.raises(ValueError, match="outside 'judgelm-v1'"):
        JUDGELM.target(pair.replace(labels={"gpt4": Label(winner="A", scores=(16.0, 4.0))}))


def test_pairs_and_single_grades_train_under_one_template(tiny_tokenizer):
    from judgetrain.data.tokenize import tokenize_samples

    single = arena_samples(2)
    pair = judged_pair("p", "9 3\nAssistant 1 is right.", "judgelm-v1")
    mixed = with_reference_twins(single) + [pair]
    assert [format_for(s, "judgelm-v1").name for s in mixed] == [
        "judgelm-single-ref-v1", "judgelm-single-v1", "judgelm-single-ref-v1", "judgelm-single-v1", "judgelm-v1"]
    rows, stats = tokenize_samples(mixed, "judgelm-v1", tiny_tokenizer, max_seq_len=4096)
    assert stats["templates"] == {"judgelm-single-ref-v1": 2, "judgelm-single-v1": 2, "judgelm-v1": 1}
    for name in ("judgelm-v1", "judgelm-ref-v1", "judgelm-single-v1", "judgelm-single-ref-v1"):
        fmt = formats.get(name)
        twin = formats.get(fmt.protocol_twin)
        assert twin.protocol_twin == name and twin.with_reference == fmt.with_reference and twin.protocol != fmt.protocol
