"""Prometheus evaluation sets (prometheus-eval/prometheus-eval ``eval/benchmark/data``) → JudgeSamples.

Schemas, told apart by their fields:

- ``prometheus-absolute`` (``mt_bench_eval.json`` 320 rows, ``vicuna_eval.json`` 320 rows):
  ``idx``, ``response_source``, ``category``, ``instruction`` (a whole Prometheus absolute-grading
  prompt: the instruction to evaluate, the response, a reference answer and a 1-5 rubric),
  ``gpt4_score`` (three GPT-4 grades, 1-5) and ``gpt4_feedback`` (the three critiques). The prompt is
  read back into ``question`` / the one answer / ``reference`` / ``rubric``, each exactly as it appears
  in the prompt, so rendering it again reproduces the published prompt. Labels: ``"gpt4_1"`` …
  ``"gpt4_3"``, one per GPT-4 grade, and ``"gpt4"`` holding their mean (the three grades are one
  teacher sampled three times; their mean is the steadiest single score). ``judgment`` is the first
  critique, written for the grade in ``"gpt4_1"`` (``meta["judgment_label"]``).
- ``prometheus-hhh`` (``hhh_alignment_eval.json``, 221 rows): ``source`` (honest / helpful /
  harmless / other), ``chosen_instruction``, ``rejected_instruction``: two absolute-grading prompts
  that differ only in the response. Read as one pairwise sample with the chosen response as answer A
  and label ``"human"`` = A (HHH's human preference). Order is not randomised here: swap augmentation
  (``judgetrain.data.augment``) and evaluation in both orders handle position.

MT-bench rows grade the second turn: their instruction is "Here is a previous dialogue …" with the
first user turn, the graded model's own first answer and the second user turn. Those turns are kept in
``meta["dialogue"]`` (``user_turns``, ``assistant_turns``) so ``pairs-from-grades`` can build
multi-turn pairs.
"""

from __future__ import annotations

from typing import Any, Iterator

from judgetrain.data.fields import RowError, as_score, require, require_text
from judgetrain.data.rows import RawRow, ReadReport, convert_rows, iter_rows
from judgetrain.types import Answer, JudgeSample, Label

SOURCE = "prometheus"
JUDGMENT_FORMAT = "prometheus-absolute-v1"
SCALE = (1.0, 5.0)

INSTRUCTION_HEADER = "###The instruction to evaluate:\n"
RESPONSE_HEADER = "###Response to evaluate:\n"
REFERENCE_HEADER = "###Reference Answer (Score 5):\n"
RUBRIC_HEADER = "###Score Rubrics:\n"
FEEDBACK_HEADER = "###Feedback: "
SECTION_SEPARATOR = "\n\n"
DIALOGUE_PREFIX = "Here is a previous dialogue between an assistant and an user. Generate a human preferable response by the assistant.\n"


def parse_prompt(prompt: str, field_name: str) -> dict[str, str | None]:
    """The parts of a Prometheus absolute-grading prompt: instruction, response, reference (or None), rubric."""
    headers = [INSTRUCTION_HEADER, RESPONSE_HEADER, REFERENCE_HEADER, RUBRIC_HEADER, FEEDBACK_HEADER]
    positions = {h: prompt.find(h) for h in headers}
    for required in (INSTRUCTION_HEADER, RESPONSE_HEADER, RUBRIC_HEADER, FEEDBACK_HEADER):
        if positions[required] < 0:
            raise RowError("invalid value", f"{field_name}: not a Prometheus absolute-grading prompt (no {required.strip()!r} section)")
    present = sorted((pos, h) for h, pos in positions.items() if pos >= 0)
    if [h for _, h in present] != [h for h in headers if positions[h] >= 0]:
        raise RowError("invalid value", f"{field_name}: the prompt's sections are out of order")
    parts: dict[str, str | None] = {"reference": None}
    names = {INSTRUCTION_HEADER: "instruction", RESPONSE_HEADER: "response", REFERENCE_HEADER: "reference", RUBRIC_HEADER: "rubric"}
    for (pos, header), (next_pos, _) in zip(present, present[1:]):
        body = prompt[pos + len(header) : next_pos]
        # Each section is followed by one blank line before the next header.
        parts[names[header]] = body[: -len(SECTION_SEPARATOR)] if body.endswith(SECTION_SEPARATOR) else body
    return parts


def parse_dialogue(instruction: str) -> dict[str, list[str]] | None:
    """The turns of an MT-bench second-turn instruction, or None for a single-turn instruction."""
    if not instruction.startswith(DIALOGUE_PREFIX + "User: "):
        return None
    body = instruction[len(DIALOGUE_PREFIX + "User: ") :]
    first_answer_at = body.find("\n\nAssistant:")
    second_user_at = body.rfind("\n\nUser: ")
    last_assistant_at = body.rfind("\n\nAssistant:")
    if not 0 <= first_answer_at < second_user_at < last_assistant_at:
        return None
    user_1 = body[:first_answer_at]
    assistant_1 = body[first_answer_at + len("\n\nAssistant:") : second_user_at]
    user_2 = body[second_user_at + len("\n\nUser: ") : last_assistant_at]
    return {"user_turns": [user_1, user_2], "assistant_turns": [assistant_1.removeprefix(" ")]}


def _schema(row: dict[str, Any]) -> str:
    if "chosen_instruction" in row or "rejected_instruction" in row:
        return "prometheus-hhh"
    if "gpt4_score" in row or "instruction" in row:
        return "prometheus-absolute"
    raise RowError(
        "unknown schema",
        f"fields {sorted(row)} match no Prometheus schema: absolute grading (instruction, gpt4_score, gpt4_feedback) "
        "or HHH (source, chosen_instruction, rejected_instruction)",
    )


def _convert_absolute(raw: RawRow) -> JudgeSample:
    row = raw.row
    parts = parse_prompt(require_text(row, "instruction"), "instruction")
    scores = require(row, "gpt4_score")
    if not isinstance(scores, list) or not scores:
        raise RowError("invalid value", f"gpt4_score: expected a list of GPT-4 grades, got {scores!r:.80}")
    grades = [as_score(s, f"gpt4_score[{i}]", *SCALE) for i, s in enumerate(scores)]
    labels = {"gpt4": Label(scores=(sum(grades) / len(grades),), scale=SCALE)}
    labels.update({f"gpt4_{i + 1}": Label(scores=(g,), scale=SCALE) for i, g in enumerate(grades)})
    feedback = row.get("gpt4_feedback")
    if feedback is not None and (not isinstance(feedback, list) or len(feedback) != len(grades) or not all(isinstance(f, str) for f in feedback)):
        raise RowError("invalid value", f"gpt4_feedback: expected {len(grades)} critiques, one per grade, got {feedback!r:.80}")
    meta: dict[str, Any] = {k: row[k] for k in ("idx", "response_source") if k in row}
    if feedback:
        meta["judgment_format"] = JUDGMENT_FORMAT
        meta["judgment_label"] = "gpt4_1"
        meta["gpt4_feedback"] = list(feedback)
    dialogue = parse_dialogue(parts["instruction"] or "")
    if dialogue is not None:
        meta["dialogue"] = dialogue
    return JudgeSample(
        id=f"{SOURCE}:{raw.origin}:{raw.line_number}",
        source=SOURCE,
        question=parts["instruction"],
        answers=(Answer(parts["response"], model=row.get("response_source")),),
        reference=parts["reference"],
        rubric=parts["rubric"],
        category=row.get("category"),
        labels=labels,
        judgment=feedback[0] if feedback else None,
        meta=meta,
    )


def _convert_hhh(raw: RawRow) -> JudgeSample:
    row = raw.row
    chosen = parse_prompt(require_text(row, "chosen_instruction"), "chosen_instruction")
    rejected = parse_prompt(require_text(row, "rejected_instruction"), "rejected_instruction")
    for part in ("instruction", "reference", "rubric"):
        if chosen[part] != rejected[part]:
            raise RowError("invalid value", f"chosen_instruction / rejected_instruction: their {part} differ; they must grade one question")
    return JudgeSample(
        id=f"{SOURCE}:{raw.origin}:{raw.line_number}",
        source=SOURCE,
        question=chosen["instruction"],
        answers=(Answer(chosen["response"]), Answer(rejected["response"])),
        reference=chosen["reference"],
        rubric=chosen["rubric"],
        category=row.get("source"),
        labels={"human": Label(winner="A")},
        meta={"chosen": "A"},
    )


def convert(raw: RawRow, report: ReadReport) -> JudgeSample:
    schema = _schema(raw.row)
    report.saw_schema(schema)
    return _convert_hhh(raw) if schema == "prometheus-hhh" else _convert_absolute(raw)


def read(input: str, *, split: str | None = None, report: ReadReport, on_bad_row: str = "error", **options: Any) -> Iterator[JudgeSample]:
    """Prometheus absolute-grading or HHH rows as samples."""
    if options:
        raise ValueError(f"the prometheus reader takes no options, got {sorted(options)}")
    rows = iter_rows(input, split=split, report=report, on_bad_row=on_bad_row)
    return convert_rows(rows, lambda raw: convert(raw, report), report=report, on_bad_row=on_bad_row)
