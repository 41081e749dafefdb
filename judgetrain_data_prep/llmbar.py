"""LLMBar (princeton-nlp/LLMBar ``Dataset/<set>/dataset.json``) → pairwise JudgeSamples.

Fields: ``input`` (the instruction), ``output_1``, ``output_2``, ``label`` (1 or 2: the output that
is objectively better, curated by the authors; no ties) → label ``"gold"`` (A or B). The set a row
comes from (``LLMBar/Natural``, ``LLMBar/Adversarial/Neighbor``, ``Processed/MT-Bench`` …) is the
path below ``Dataset/`` (or the file's directory name) and is kept in ``category`` and in ids, so a
whole ``Dataset/`` directory can be read at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from judgetrain.data.fields import require, require_choice, require_text
from judgetrain.data.rows import RawRow, ReadReport, convert_rows, iter_rows
from judgetrain.types import Answer, JudgeSample, Label

SOURCE = "llmbar"
SCHEMA = "llmbar"
WINNER_OF_LABEL = {1: "A", 2: "B"}


def set_name(file: str) -> str:
    """The LLMBar set of a file: the directories between ``Dataset/`` and the file, or its directory."""
    parts = Path(file).parts
    if "Dataset" in parts:
        below = parts[len(parts) - 1 - parts[::-1].index("Dataset") + 1 : -1]
        if below:
            return "/".join(below)
    return Path(file).parent.name or Path(file).stem


def convert(raw: RawRow, report: ReadReport) -> JudgeSample:
    row = raw.row
    report.saw_schema(SCHEMA)
    name = set_name(raw.file)
    label = require(row, "label")
    if isinstance(label, str) and label.strip().isdigit():
        label = int(label)
    winner = require_choice(row | {"label": label}, "label", WINNER_OF_LABEL, "1 = output_1 better, 2 = output_2 better")
    return JudgeSample(
        id=f"{SOURCE}:{name}:{raw.line_number}",
        source=SOURCE,
        question=require_text(row, "input"),
        answers=(Answer(require_text(row, "output_1")), Answer(require_text(row, "output_2"))),
        category=name,
        labels={"gold": Label(winner=winner)},
        meta={"llmbar_set": name},
    )


def read(input: str, *, split: str | None = None, report: ReadReport, on_bad_row: str = "error", **options: Any) -> Iterator[JudgeSample]:
    """LLMBar rows (one set's dataset.json, or a directory of sets) as pairwise samples."""
    if options:
        raise ValueError(f"the llmbar reader takes no options, got {sorted(options)}")
    rows = iter_rows(input, split=split, report=report, on_bad_row=on_bad_row)
    return convert_rows(rows, lambda raw: convert(raw, report), report=report, on_bad_row=on_bad_row)
