"""Auto-J (GAIR-NLP/auto-j) data → JudgeSamples. Three schemas, told apart by their fields:

- ``autoj-pairwise-test`` (``data/test/testdata_pairwise.jsonl``, 1392 rows): ``scenario``,
  ``label``, ``prompt``, ``response 1``, ``response 2``. ``label`` is the **human** preference:
  0 = response 1 better, 1 = response 2 better, 2 = tie → label ``"human"`` (A / B / tie).
- ``autoj-single-train`` (``data/training/single_traindata.jsonl``, 960 rows): ``usrmsg`` (the
  README spells it ``usermsg``; both are read), ``target_output`` (GPT-4's critique ending
  "Rating: [[x]]"), ``pred_score`` (GPT-4's 1-10 rating, sometimes a string), ``scenario``,
  ``source_dataset``. Label ``"gpt4"`` holds the score (scale 1-10); ``judgment`` = ``target_output``.
- ``autoj-pairwise-train`` (``data/training/pairwise_traindata.jsonl``, hub / GitHub only):
  ``usermsg``, ``target_output`` (GPT-4's comparison ending "So, the final decision is …"),
  ``gt_label`` (human) and ``pred_label`` (GPT-4), both 0 / 1 / 2 as above → labels ``"human"`` and
  ``"gpt4"``; ``judgment`` = ``target_output``.

The training files hold the whole Auto-J prompt in ``usermsg``; the query and response(s) are read
back out of its data block (``[BEGIN DATA]`` … ``[END DATA]``, fields ``[Query]:``, ``[Response]:`` or
``[Response 1]:`` / ``[Response 2]:`` between ``***`` lines), so a row without that block is an error.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

from judgetrain.data.fields import RowError, as_score, require, require_choice, require_text
from judgetrain.data.rows import RawRow, ReadReport, convert_rows, iter_rows
from judgetrain.types import Answer, JudgeSample, Label

SOURCE = "autoj"
PAIRWISE_JUDGMENT_FORMAT = "autoj-pairwise-v1"
SINGLE_JUDGMENT_FORMAT = "autoj-single-v1"
SCALE = (1.0, 10.0)
WINNER_OF_LABEL = {0: "A", 1: "B", 2: "tie"}
LABEL_MEANING = "0 = response 1 better, 1 = response 2 better, 2 = tie"

# The training rows hold Auto-J's whole prompt; only its data block is read here, by its field markers,
# so none of Auto-J's (unlicensed) instruction sentences is part of this package. The last field is
# matched greedily so a response that itself holds "***" lines is kept whole.
_PAIRWISE_RE = re.compile(r"\[BEGIN DATA\]\n\*\*\*\n\[Query\]: (?P<prompt>.*?)\n\*\*\*\n\[Response 1\]: (?P<response>.*?)"
                          r"\n\*\*\*\n\[Response 2\]: (?P<response_another>.*)\n\*\*\*\n\[END DATA\]", re.DOTALL)
_SINGLE_RE = re.compile(r"\[BEGIN DATA\]\n\*\*\*\n\[Query\]: (?P<prompt>.*?)\n\*\*\*\n\[Response\]: (?P<response>.*)"
                        r"\n\*\*\*\n\[END DATA\]", re.DOTALL)


def _parse_usermsg(row: dict[str, Any], pattern: re.Pattern[str], what: str) -> dict[str, str]:
    name = "usermsg" if "usermsg" in row else "usrmsg"
    text = require_text(row, name)
    match = pattern.search(text)
    if match is None:
        raise RowError("invalid value", f"{name}: does not follow Auto-J's {what} prompt (query and response(s) between [BEGIN DATA] and [END DATA])")
    return match.groupdict()


def _label(row: dict[str, Any], name: str) -> Label:
    value = require(row, name)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return Label(winner=require_choice(row | {name: value}, name, WINNER_OF_LABEL, LABEL_MEANING))


def _schema(row: dict[str, Any]) -> str:
    if "gt_label" in row or "pred_label" in row:
        return "autoj-pairwise-train"
    if "pred_score" in row:
        return "autoj-single-train"
    if "response 1" in row or "label" in row:
        return "autoj-pairwise-test"
    raise RowError(
        "unknown schema",
        f"fields {sorted(row)} match no Auto-J schema: pairwise test (scenario, label, prompt, response 1, response 2), "
        "single training (usrmsg, target_output, pred_score, scenario) or pairwise training (usermsg, target_output, gt_label, pred_label, scenario)",
    )


def convert(raw: RawRow, report: ReadReport) -> JudgeSample:
    row = raw.row
    schema = _schema(row)
    report.saw_schema(schema)
    sample_id = f"{SOURCE}:{raw.origin}:{raw.line_number}"
    scenario = row.get("scenario")
    meta: dict[str, Any] = {"schema": schema}
    if row.get("source_dataset") is not None:
        meta["source_dataset"] = row["source_dataset"]
    if schema == "autoj-pairwise-test":
        return JudgeSample(
            id=sample_id,
            source=SOURCE,
            question=require_text(row, "prompt"),
            answers=(Answer(require_text(row, "response 1")), Answer(require_text(row, "response 2"))),
            scenario=scenario,
            labels={"human": _label(row, "label")},
            meta=meta,
        )
    if schema == "autoj-single-train":
        fields = _parse_usermsg(row, _SINGLE_RE, "single-response")
        score = as_score(require(row, "pred_score"), "pred_score", *SCALE)
        meta["judgment_format"] = SINGLE_JUDGMENT_FORMAT
        return JudgeSample(
            id=sample_id,
            source=SOURCE,
            question=fields["prompt"],
            answers=(Answer(fields["response"]),),
            scenario=scenario,
            labels={"gpt4": Label(scores=(score,), scale=SCALE)},
            judgment=require_text(row, "target_output", allow_empty=False),
            meta=meta,
        )
    fields = _parse_usermsg(row, _PAIRWISE_RE, "pairwise")
    meta["judgment_format"] = PAIRWISE_JUDGMENT_FORMAT
    return JudgeSample(
        id=sample_id,
        source=SOURCE,
        question=fields["prompt"],
        answers=(Answer(fields["response"]), Answer(fields["response_another"])),
        scenario=scenario,
        labels={"human": _label(row, "gt_label"), "gpt4": _label(row, "pred_label")},
        judgment=require_text(row, "target_output", allow_empty=False),
        meta=meta,
    )


def read(input: str, *, split: str | None = None, report: ReadReport, on_bad_row: str = "error", **options: Any) -> Iterator[JudgeSample]:
    """Auto-J pairwise test, single training or pairwise training rows as samples."""
    if options:
        raise ValueError(f"the autoj reader takes no options, got {sorted(options)}")
    rows = iter_rows(input, split=split, report=report, on_bad_row=on_bad_row)
    return convert_rows(rows, lambda raw: convert(raw, report), report=report, on_bad_row=on_bad_row)
