"""PandaLM (WeOpenML/PandaLM) data → pairwise JudgeSamples. Schemas, told apart by their fields:

- ``pandalm-test`` (``data/testset-v1.json``, 999 rows): ``idx``, ``motivation_app``, ``cmp_key``
  ("<model of response1>_<model of response2>"), ``instruction``, ``input``, ``response1``,
  ``response2``, ``annotator1..3`` (each 0 = tie, 1 = response 1 better, 2 = response 2 better).
  Each annotator's vote is its own label (``"annotator1"`` …) and the gold label
  ``"human_majority"`` is the vote at least two annotators agree on (every row of the published file
  has one; a row without is kept without that label and counted in the report's notes).
- ``pandalm-train`` (the README's training format): ``{"inputs": {instruction, input, response1,
  response2}, "outputs": {evaluation_result "1" / "2" / "Tie", evaluation_reason, reference_response}}``.
- ``pandalm-train-flat``: the same fields flattened into one object (``instruction``, ``input``,
  ``response1``, ``response2``, ``output``), where ``output`` is PandaLM's generated text
  ("1" / "2" / "Tie", then "### Reason: …" and optionally "### Reference: …").

Training rows get label ``"gpt35"`` (PandaLM's training verdicts come from gpt-3.5-turbo),
``judgment`` = the evaluation reason, and ``meta["judgment_format"]`` = ``pandalm-v1``; PandaLM's
generated reference answer is a judge *output*, not an input, so it is kept in
``meta["reference_response"]`` and never shown as ``reference``.

Six responses of the published test file are JSON booleans (a response that was the word "True");
they are read as the text "True" and counted in the report's notes.

The question of these Alpaca-style rows is the instruction, then a blank line and the input when the
input is not empty; ``meta["instruction"]`` and ``meta["input"]`` keep the two apart for PandaLM's
prompt, which shows them in separate sections.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Iterator

from judgetrain.data.fields import RowError, alpaca_question, require, require_choice, require_text
from judgetrain.data.rows import RawRow, ReadReport, convert_rows, iter_rows
from judgetrain.types import Answer, JudgeSample, Label

SOURCE = "pandalm"
JUDGMENT_FORMAT = "pandalm-v1"
ANNOTATORS = ("annotator1", "annotator2", "annotator3")
WINNER_OF_VOTE = {0: "tie", 1: "A", 2: "B"}
VOTE_MEANING = "0 = tie, 1 = response 1 better, 2 = response 2 better"
WINNER_OF_RESULT = {"1": "A", "2": "B", "Tie": "tie"}
_OUTPUT_RE = re.compile(r"\A\s*(?P<result>1|2|Tie)\s*(?:\n|$)(?P<rest>.*)\Z", re.DOTALL)
_REASON_RE = re.compile(r"###\s*Reason:\s*(?P<reason>.*?)\s*(?:###\s*Reference:\s*(?P<reference>.*?)\s*)?\Z", re.DOTALL)


def _schema(row: dict[str, Any]) -> str:
    if any(a in row for a in ANNOTATORS) or "cmp_key" in row:
        return "pandalm-test"
    if "inputs" in row and "outputs" in row:
        return "pandalm-train"
    if "output" in row and "response1" in row:
        return "pandalm-train-flat"
    raise RowError(
        "unknown schema",
        f"fields {sorted(row)} match no PandaLM schema: test (instruction, input, response1, response2, annotator1..3), "
        "training ({inputs: {...}, outputs: {evaluation_result, evaluation_reason, reference_response}}) "
        "or flat training (instruction, input, response1, response2, output)",
    )


def _vote(row: dict[str, Any], name: str) -> str:
    value = require(row, name)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return require_choice(row | {name: value}, name, WINNER_OF_VOTE, VOTE_MEANING)


def _response(row: dict[str, Any], name: str, report: ReadReport) -> str:
    value = require(row, name)
    if isinstance(value, bool):
        # The published test file stores 6 responses that were the word "True" as JSON booleans.
        report.note(f"{name} stored as a JSON boolean, read as its text")
        return "True" if value else "False"
    return require_text(row, name)


def _models(cmp_key: Any) -> tuple[str | None, str | None]:
    if isinstance(cmp_key, str) and cmp_key.count("_") == 1:
        first, second = cmp_key.split("_")
        return first, second
    return None, None


def _task_parts(row: dict[str, Any]) -> dict[str, str]:
    """The instruction and input kept apart in meta: PandaLM's prompt shows them in separate sections."""
    task_input = row.get("input")
    return {"instruction": require_text(row, "instruction"), "input": task_input if isinstance(task_input, str) else ""}


def _convert_test(raw: RawRow, report: ReadReport) -> JudgeSample:
    row = raw.row
    votes = {name: _vote(row, name) for name in ANNOTATORS}
    labels = {name: Label(winner=winner) for name, winner in votes.items()}
    top, top_count = Counter(votes.values()).most_common(1)[0]
    if top_count >= 2:
        labels = {"human_majority": Label(winner=top), **labels}
    else:
        report.note("rows without a majority vote (kept without a human_majority label)")
    model1, model2 = _models(row.get("cmp_key"))
    natural_id = row.get("idx", raw.line_number)
    return JudgeSample(
        id=f"{SOURCE}:{raw.origin}:{natural_id}",
        source=SOURCE,
        question=alpaca_question(require_text(row, "instruction"), row.get("input")),
        answers=(Answer(_response(row, "response1", report), model=model1), Answer(_response(row, "response2", report), model=model2)),
        category=row.get("motivation_app"),
        labels=labels,
        meta={**{k: row[k] for k in ("idx", "motivation_app", "cmp_key") if k in row}, **_task_parts(row)},
    )


def _parse_output(text: str) -> tuple[str, str | None, str | None]:
    """(result, reason, reference) out of PandaLM's generated text."""
    match = _OUTPUT_RE.match(text)
    if match is None:
        raise RowError("label out of range", f"output: expected it to start with 1, 2 or Tie, got {text[:40]!r}")
    rest = match.group("rest").strip()
    if not rest:
        return match.group("result"), None, None
    parts = _REASON_RE.search(rest)
    if parts is None:
        raise RowError("invalid value", f"output: expected '### Reason: …' after the verdict, got {rest[:60]!r}")
    return match.group("result"), parts.group("reason") or None, parts.group("reference")


def _convert_train(raw: RawRow, schema: str) -> JudgeSample:
    row = raw.row
    if schema == "pandalm-train":
        inputs, outputs = require(row, "inputs"), require(row, "outputs")
        if not isinstance(inputs, dict) or not isinstance(outputs, dict):
            raise RowError("invalid value", "inputs / outputs: expected objects")
        result = require(outputs, "evaluation_result")
        result = str(result).strip() if isinstance(result, (int, str)) else result
        winner = require_choice({"evaluation_result": result}, "evaluation_result", WINNER_OF_RESULT, "1, 2 or Tie")
        reason = outputs.get("evaluation_reason")
        reference_response = outputs.get("reference_response")
    else:
        inputs = row
        result, reason, reference_response = _parse_output(require_text(row, "output"))
        winner = WINNER_OF_RESULT[result]
    meta: dict[str, Any] = _task_parts(inputs)
    if reason:
        meta["judgment_format"] = JUDGMENT_FORMAT
    if reference_response:
        meta["reference_response"] = reference_response
    return JudgeSample(
        id=f"{SOURCE}:{raw.origin}:{raw.line_number}",
        source=SOURCE,
        question=alpaca_question(require_text(inputs, "instruction"), inputs.get("input")),
        answers=(Answer(require_text(inputs, "response1")), Answer(require_text(inputs, "response2"))),
        labels={"gpt35": Label(winner=winner)},
        judgment=reason or None,
        meta=meta,
    )


def convert(raw: RawRow, report: ReadReport) -> JudgeSample:
    schema = _schema(raw.row)
    report.saw_schema(schema)
    if schema == "pandalm-test":
        return _convert_test(raw, report)
    return _convert_train(raw, schema)


def read(input: str, *, split: str | None = None, report: ReadReport, on_bad_row: str = "error", **options: Any) -> Iterator[JudgeSample]:
    """PandaLM test or training rows as pairwise samples."""
    if options:
        raise ValueError(f"the pandalm reader takes no options, got {sorted(options)}")
    rows = iter_rows(input, split=split, report=report, on_bad_row=on_bad_row)
    return convert_rows(rows, lambda raw: convert(raw, report), report=report, on_bad_row=on_bad_row)
