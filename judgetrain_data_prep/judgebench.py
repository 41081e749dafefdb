"""JudgeBench (ScalerLab/JudgeBench ``data/dataset=judgebench,response_model=<model>.jsonl``) → pairwise JudgeSamples.

Fields: ``pair_id``, ``original_id``, ``source`` (mmlu-pro-<subject>, livebench-reasoning /
-math, livecodebench), ``question``, ``response_model``, ``response_A``, ``response_B``, ``label``
("A>B" or "B>A": objective correctness against the source's ground truth, not a preference) →
label ``"gold"`` (A or B). ``category`` is the row's ``source``.
"""

from __future__ import annotations

from typing import Any, Iterator

from judgetrain.data.fields import require_choice, require_text
from judgetrain.data.rows import RawRow, ReadReport, convert_rows, iter_rows
from judgetrain.types import Answer, JudgeSample, Label

SOURCE = "judgebench"
SCHEMA = "judgebench"
WINNER_OF_LABEL = {"A>B": "A", "B>A": "B"}


def convert(raw: RawRow, report: ReadReport) -> JudgeSample:
    row = raw.row
    report.saw_schema(SCHEMA)
    winner = require_choice(row, "label", WINNER_OF_LABEL, "A>B = response_A correct, B>A = response_B correct")
    response_model = row.get("response_model")
    pair_id = row.get("pair_id") or raw.line_number
    return JudgeSample(
        id=f"{SOURCE}:{response_model or raw.origin}:{pair_id}",
        source=SOURCE,
        question=require_text(row, "question"),
        answers=(Answer(require_text(row, "response_A"), model=response_model), Answer(require_text(row, "response_B"), model=response_model)),
        category=row.get("source"),
        labels={"gold": Label(winner=winner)},
        meta={k: row[k] for k in ("pair_id", "original_id", "source", "response_model") if k in row},
    )


def read(input: str, *, split: str | None = None, report: ReadReport, on_bad_row: str = "error", **options: Any) -> Iterator[JudgeSample]:
    """JudgeBench rows as pairwise samples."""
    if options:
        raise ValueError(f"the judgebench reader takes no options, got {sorted(options)}")
    rows = iter_rows(input, split=split, report=report, on_bad_row=on_bad_row)
    return convert_rows(rows, lambda raw: convert(raw, report), report=report, on_bad_row=on_bad_row)
