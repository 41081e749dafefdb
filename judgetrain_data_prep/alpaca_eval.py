"""AlpacaEval annotations (tatsu-lab/alpaca_eval ``results/<model>/<annotator>/annotations.json``) →
pairwise JudgeSamples.

Fields: ``instruction``, ``output_1`` / ``generator_1`` (the reference model's answer), ``output_2`` /
``generator_2`` (the evaluated model's answer), ``preference`` (the annotator's verdict: 1 = output_1
better, 2 = output_2 better, 1.5 = tie; written as an int, a float or a string) and ``annotator``.
The verdict becomes the label ``"gpt4"`` for the GPT-4 annotators (``alpaca_eval_gpt4``,
``alpaca_eval_gpt4_turbo_fn``, …) and ``"annotator"`` otherwise, with the annotator's name in ``meta``.

A preference of 0, 0.0 or null means the annotator gave no usable verdict: that is a bad row (error,
or skipped and counted with ``--on-bad-row skip``), never a tie.

Option ``answers``: ``pairs`` (default) gives each row as a pair (reference answer A, evaluated
model's answer B). ``graded`` gives each evaluated model's answer alone, graded against the shared
reference (label ``"gpt4"``, scale 0-1: 1 = GPT-4 preferred it to the reference, 0 = it preferred the
reference, 0.5 = a tie). Through ``pairs-from-grades`` (``--option grades_from=alpaca_eval --option
answers=graded``) two models' answers to one instruction then become a pair won by the one that beat
the shared reference when the other did not: pairs between the evaluated models themselves, where the
reference answer's own style is in neither answer.

The same 805 instructions recur in every model's file, so a dev split must be made by instruction,
not by row: ``meta["split_group"]`` (a stable hash of the instruction) is what judgetrain's held-out
split is decided on (:func:`judgetrain.train.data.split_key`).
The data is CC BY-NC 4.0: usable to train a judge, not to redistribute.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterator

from judgetrain.data.fields import RowError, require_text
from judgetrain.data.rows import RawRow, ReadReport, convert_rows, iter_rows
from judgetrain.types import Answer, JudgeSample, Label

SOURCE = "alpaca_eval"
SCHEMA = "alpaca_eval_annotations"
WINNER_OF_PREFERENCE = {1.0: "A", 2.0: "B", 1.5: "tie"}
"""AlpacaEval's preference value → the winner (output_1 is answer A)."""
GRADE_OF_WINNER = {"B": 1.0, "A": 0.0, "tie": 0.5}
"""``answers=graded``: the evaluated answer's (output_2's) grade against the reference."""
GRADE_SCALE = (0.0, 1.0)
ANSWER_MODES = ("pairs", "graded")


def instruction_id(instruction: str) -> str:
    """A short stable id of an instruction, shared by every model's row for it."""
    return hashlib.sha256(instruction.encode("utf-8")).hexdigest()[:12]


def winner_of(value: Any) -> str:
    """The winner an AlpacaEval ``preference`` names; 0 / null / anything else is a RowError."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if number not in WINNER_OF_PREFERENCE:
        hint = " (0 or null: the annotator gave no usable verdict)" if number in (None, 0.0) else ""
        raise RowError("label out of range", f"preference: expected 1 (output_1 better), 2 (output_2 better) or 1.5 (tie), got {value!r}{hint}")
    return WINNER_OF_PREFERENCE[number]


def convert(raw: RawRow, report: ReadReport, *, graded: bool = False) -> JudgeSample:
    row = raw.row
    report.saw_schema(SCHEMA)
    winner = winner_of(row.get("preference"))
    instruction = require_text(row, "instruction", allow_empty=False)
    annotator = str(row.get("annotator") or "")
    label_key = "gpt4" if "gpt4" in annotator or not annotator else "annotator"
    generators = (str(row.get("generator_1") or "") or None, str(row.get("generator_2") or "") or None)
    # The held-out split is decided per split_group, so every model's row for one instruction lands on one side.
    meta = {"annotator": annotator, "split_group": f"{SOURCE}:{instruction_id(instruction)}"}
    if graded:
        meta["graded_against"] = generators[0]
        return JudgeSample(
            id=f"{SOURCE}:{raw.origin}:{raw.line_number}",
            source=SOURCE,
            question=instruction,
            answers=(Answer(require_text(row, "output_2"), model=generators[1]),),
            category=str(row.get("dataset") or "") or None,
            labels={label_key: Label(scores=(GRADE_OF_WINNER[winner],), scale=GRADE_SCALE)},
            meta=meta,
        )
    return JudgeSample(
        id=f"{SOURCE}:{raw.origin}:{raw.line_number}",
        source=SOURCE,
        question=instruction,
        answers=(Answer(require_text(row, "output_1"), model=generators[0]),
                 Answer(require_text(row, "output_2"), model=generators[1])),
        category=str(row.get("dataset") or "") or None,
        labels={label_key: Label(winner=winner)},
        meta=meta,
    )


def read(input: str, *, split: str | None = None, report: ReadReport, on_bad_row: str = "error", answers: str = "pairs",
         **options: Any) -> Iterator[JudgeSample]:
    """AlpacaEval annotation rows (one ``annotations.json``, or a directory of them) as pairwise samples,
    or with ``answers=graded`` as the evaluated answers graded against the reference."""
    if options:
        raise ValueError(f"the alpaca_eval reader takes only the option answers, got {sorted(options)}")
    if answers not in ANSWER_MODES:
        raise ValueError(f"option answers: expected one of {ANSWER_MODES}, got {answers!r}")
    graded = answers == "graded"
    rows = iter_rows(input, split=split, report=report, on_bad_row=on_bad_row)
    return convert_rows(rows, lambda raw: convert(raw, report, graded=graded), report=report, on_bad_row=on_bad_row)


__all__ = ["read", "convert", "winner_of", "instruction_id"]
