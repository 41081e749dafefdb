"""Pairwise samples out of single-answer grades: where a source grades several answers to one question
(the Prometheus MT-bench and Vicuna sets grade 4 answers per question; arena-bench-v1, read by
``arena_bench``, grades 15 models' answers to each of 300 questions), every two answers to the same
question become a pairwise sample whose winner comes from the grade difference.

Options:

- ``grades_from``: the source whose reader reads the graded answers (default ``prometheus``;
  ``arena_bench`` for arena-bench-v1's GPT-4 1-10 grades: reference-guided pairs, the reference kept on
  the pair; ``--split train`` / ``heldout`` goes to that reader, which holds out 10% of the questions).
- ``grade_label``: the label holding the grade (default ``gpt4``; for Prometheus the mean of GPT-4's
  three grades; ``gpt4_1`` takes the first grade alone).
- ``tie_threshold``: a difference of at most this many points is a tie (default 0: only equal grades tie).
- ``ties``: ``keep`` (default) writes tied pairs as ties; ``drop`` leaves them out and counts them in the
  report's notes (for a coarse grade, e.g. AlpacaEval's win / loss against a reference, most pairs tie).

Every other option goes to the ``grades_from`` reader (e.g. ``answers=graded`` for ``alpaca_eval``). A
pair keeps its first answer's ``meta["split_group"]`` when the graded answers carry one, so a held-out
split made per group never puts two pairs of one question on both sides, and their
``meta["question_id"]`` when both answers have the same one.

Answers are grouped by question, reference and rubric, in the order the source gives them; a group
of n answers gives n·(n-1)/2 pairs, the earlier answer as A (swap augmentation handles order). The
label (keyed by ``grade_label``) holds both grades and the winner. Answers to an MT-bench second turn
(``meta["dialogue"]`` from the Prometheus reader) are grouped by the dialogue's user turns, since
each model's first answer differs, and become multi-turn pairs judged on turn 2 with each model's own
first answer. A question with a single graded answer gives no pair and is counted in the notes.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterator

from judgetrain import plugins
from judgetrain.data.rows import ReadReport
from judgetrain.types import Answer, JudgeSample, Label

SOURCE = "pairs-from-grades"


def _reader(name: str):
    sources = plugins.names(plugins.READERS)
    if name == SOURCE or name not in sources:
        choices = [s for s in sources if s != SOURCE]
        raise ValueError(f"option grades_from: unknown source {name!r}; choose one of {choices}")
    return plugins.reader(name)


def _group_key(sample: JudgeSample) -> tuple:
    dialogue = sample.meta.get("dialogue")
    if dialogue:
        return ("dialogue", tuple(dialogue["user_turns"]), sample.reference, sample.rubric)
    return ("question", sample.question, sample.reference, sample.rubric)


def _pair(first: JudgeSample, second: JudgeSample, score_first: float, score_second: float, *, grade_label: str, scale, tie_threshold: float, grades_from: str) -> JudgeSample:
    difference = score_first - score_second
    winner = "tie" if abs(difference) <= tie_threshold else "A" if difference > 0 else "B"
    dialogue_first, dialogue_second = first.meta.get("dialogue"), second.meta.get("dialogue")
    if dialogue_first and dialogue_second:
        user_turns = tuple(dialogue_first["user_turns"])
        question: Any = user_turns
        answers = (
            Answer(tuple(dialogue_first["assistant_turns"]) + (first.answers[0].text,), model=first.answers[0].model),
            Answer(tuple(dialogue_second["assistant_turns"]) + (second.answers[0].text,), model=second.answers[0].model),
        )
        turn: int | None = len(user_turns)
    else:
        question, answers, turn = first.question, (first.answers[0], second.answers[0]), None
    return JudgeSample(
        id=f"{SOURCE}:{first.id}|{second.id}",
        source=SOURCE,
        question=question,
        answers=answers,
        reference=first.reference,
        rubric=first.rubric,
        criteria=first.criteria,
        scenario=first.scenario,
        category=first.category,
        turn=turn,
        labels={grade_label: Label(winner=winner, scores=(score_first, score_second), scale=scale)},
        meta={"grades_from": grades_from, "pair_of": [first.id, second.id], "tie_threshold": tie_threshold,
              **({"split_group": first.meta["split_group"]} if "split_group" in first.meta else {}),
              **({"question_id": first.meta["question_id"]}
                 if "question_id" in first.meta and first.meta["question_id"] == second.meta.get("question_id") else {})},
    )


def read(
    input: str,
    *,
    split: str | None = None,
    report: ReadReport,
    on_bad_row: str = "error",
    grades_from: str = "prometheus",
    grade_label: str = "gpt4",
    tie_threshold: float | str = 0.0,
    ties: str = "keep",
    **options: Any,
) -> Iterator[JudgeSample]:
    """Pairs of graded answers to the same question, winner from the grade difference."""
    try:
        threshold = float(tie_threshold)
    except (TypeError, ValueError):
        raise ValueError(f"option tie_threshold: expected a number of points, got {tie_threshold!r}") from None
    if threshold < 0:
        raise ValueError(f"option tie_threshold: must be 0 or more, got {threshold}")
    if ties not in ("keep", "drop"):
        raise ValueError(f"option ties: expected keep or drop, got {ties!r}")
    reader = _reader(grades_from)
    return _pairs(reader, input, split, report, on_bad_row, grades_from, grade_label, threshold, ties == "drop", options)


def _pairs(reader, input, split, report: ReadReport, on_bad_row, grades_from, grade_label, threshold, drop_ties, options) -> Iterator[JudgeSample]:
    # The graded answers are read under their own report; its row counts and skips are the inputs'.
    inner = ReadReport(source=grades_from)
    groups: dict[tuple, list[tuple[JudgeSample, float]]] = {}
    scale = None
    for sample in reader.read(input, split=split, report=inner, on_bad_row=on_bad_row, **options):
        if sample.protocol != "single":
            raise ValueError(f"sample {sample.id!r} from {grades_from} has two answers; pairs-from-grades needs single-answer grades")
        label = sample.labels.get(grade_label)
        if label is None or label.scores is None or label.scores[0] is None:
            report.note(f"graded answers without a {grade_label!r} score (left out)")
            continue
        if scale is not None and label.scale != scale:
            raise ValueError(f"sample {sample.id!r}: grade scale {label.scale} differs from the earlier {scale}; pairs need one scale")
        scale = label.scale
        groups.setdefault(_group_key(sample), []).append((sample, label.scores[0]))
    report.rows_read += inner.rows_read
    report.input_files.extend(f for f in inner.input_files if f not in report.input_files)
    report.hub_inputs.extend(inner.hub_inputs)
    for reason, count in inner.skipped.items():
        report.skipped[reason] = report.skipped.get(reason, 0) + count
        report.skipped_examples.setdefault(reason, []).extend(inner.skipped_examples.get(reason, []))
    for schema, count in inner.schemas.items():
        report.saw_schema(f"{grades_from}:{schema}", count)
    for what, count in inner.notes.items():
        report.note(what, count)
    report.note("graded answers read", inner.samples_built)
    for members in groups.values():
        if len(members) < 2:
            report.note("questions with a single graded answer (no pair)")
            continue
        for (first, score_first), (second, score_second) in itertools.combinations(members, 2):
            if drop_ties and abs(score_first - score_second) <= threshold:
                report.note("tied pairs left out (ties=drop)")
                continue
            report.samples_built += 1
            yield _pair(first, second, score_first, score_second, grade_label=grade_label, scale=scale, tie_threshold=threshold, grades_from=grades_from)
