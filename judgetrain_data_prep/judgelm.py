"""JudgeLM-100K and its 5K validation set (hub ``BAAI/JudgeLM-100K``) → pairwise JudgeSamples.

Fields (JudgeLM's README): ``question_id``, ``question_body``, ``answer1_body``, ``answer2_body``,
``answer1_model_id``, ``answer2_model_id``, ``reference`` (``{"text": …}``), ``text`` (GPT-4's
judgment without reference: "s1 s2" then the explanation), ``score`` ([s1, s2] on 1-10),
``text_w_reference`` and ``score_w_reference`` (the same with the reference shown).

Schemas, told apart by their fields and counted in the report:

- ``judgelm-judged-with-reference``: both judgments (the training set).
- ``judgelm-judged``: ``text`` / ``score`` only.
- ``judgelm-unjudged``: questions, answers and reference only (what a judge is asked to judge).

Labels: ``"gpt4"`` from ``score`` and ``"gpt4_with_reference"`` from ``score_w_reference``; each
holds both scores (scale 1-10) and the winner they imply (higher score wins, equal scores tie, as in
JudgeLM's own evaluation). ``judgment`` = ``text``, ``judgment_with_reference`` = ``text_w_reference``,
``meta["judgment_format"]`` = ``judgelm-v1`` (its with-reference twin is ``judgelm-ref-v1``).
Rows whose GPT-4 call failed (judgment ``"error"``, or scores ``[-1, -1]``) are teacher failures:
skipped and counted under "teacher error", whatever ``on_bad_row`` says.
"""

from __future__ import annotations

from typing import Any, Iterator

from judgetrain.data.fields import RowError, SkipRow, as_score, require, require_text
from judgetrain.data.rows import RawRow, ReadReport, convert_rows, iter_rows
from judgetrain.types import Answer, JudgeSample, Label

SOURCE = "judgelm"
JUDGMENT_FORMAT = "judgelm-v1"
SCALE = (1.0, 10.0)


def _is_teacher_error(text: Any, score: Any) -> bool:
    if isinstance(text, str) and text.strip().lower() == "error":
        return True
    return isinstance(score, (list, tuple)) and len(score) == 2 and all(s == -1 for s in score)


def _label(row: dict[str, Any], name: str) -> Label:
    score = require(row, name)
    if not isinstance(score, (list, tuple)) or len(score) != 2:
        raise RowError("invalid value", f"{name}: expected [score of answer 1, score of answer 2], got {score!r:.80}")
    s1 = as_score(score[0], f"{name}[0]", *SCALE)
    s2 = as_score(score[1], f"{name}[1]", *SCALE)
    winner = "A" if s1 > s2 else "B" if s2 > s1 else "tie"
    return Label(winner=winner, scores=(s1, s2), scale=SCALE)


def _reference(row: dict[str, Any]) -> str | None:
    ref = row.get("reference")
    if ref is None:
        return None
    if isinstance(ref, str):
        return ref
    if isinstance(ref, dict):
        text = ref.get("text")
        if text is None or isinstance(text, str):
            return text
    raise RowError("invalid value", f"reference: expected {{'text': string}} or a string, got {ref!r:.80}")


def convert(raw: RawRow, report: ReadReport) -> JudgeSample:
    row = raw.row
    if "text_w_reference" in row or "score_w_reference" in row:
        schema = "judgelm-judged-with-reference"
    elif "text" in row or "score" in row:
        schema = "judgelm-judged"
    else:
        schema = "judgelm-unjudged"
    report.saw_schema(schema)
    question_id = require(row, "question_id")
    question = require_text(row, "question_body")
    answers = (
        Answer(require_text(row, "answer1_body"), model=_model(row, "answer1_model_id")),
        Answer(require_text(row, "answer2_body"), model=_model(row, "answer2_model_id")),
    )
    reference = _reference(row)
    labels: dict[str, Label] = {}
    judgment = judgment_with_reference = None
    if schema != "judgelm-unjudged":
        if _is_teacher_error(row.get("text"), row.get("score")):
            raise SkipRow("teacher error", "GPT-4's judgment `text` is 'error' (its call failed)")
        judgment = require_text(row, "text")
        labels["gpt4"] = _label(row, "score")
    if schema == "judgelm-judged-with-reference":
        if _is_teacher_error(row.get("text_w_reference"), row.get("score_w_reference")):
            raise SkipRow("teacher error", "GPT-4's judgment `text_w_reference` is 'error' (its call failed)")
        if reference is None:
            raise RowError("missing field", "missing required field 'reference' (text_w_reference was judged with one)")
        judgment_with_reference = require_text(row, "text_w_reference")
        labels["gpt4_with_reference"] = _label(row, "score_w_reference")
    meta: dict[str, Any] = {"question_id": question_id}
    if judgment is not None:
        meta["judgment_format"] = JUDGMENT_FORMAT
    return JudgeSample(
        id=f"{SOURCE}:{raw.origin}:{question_id}",
        source=SOURCE,
        question=question,
        answers=answers,
        reference=reference,
        labels=labels,
        judgment=judgment,
        judgment_with_reference=judgment_with_reference,
        meta=meta,
    )


def _model(row: dict[str, Any], name: str) -> str | None:
    value = row.get(name)
    return None if value is None else str(value)


def read(input: str, *, split: str | None = None, report: ReadReport, on_bad_row: str = "error", **options: Any) -> Iterator[JudgeSample]:
    """JudgeLM rows (local JSONL/JSON/parquet or hub ``BAAI/JudgeLM-100K``) as pairwise samples."""
    if options:
        raise ValueError(f"the judgelm reader takes no options, got {sorted(options)}")
    rows = iter_rows(input, split=split, report=report, on_bad_row=on_bad_row)
    return convert_rows(rows, lambda raw: convert(raw, report), report=report, on_bad_row=on_bad_row)
