"""MT-bench (FastChat ``llm_judge``) → multi-turn pairwise JudgeSamples. Two schemas:

- ``fastchat-answers``: a FastChat data directory (``fastchat/llm_judge/data/mt_bench``) holding
  ``question.jsonl`` (``question_id``, ``category``, ``turns``), ``model_answer/<model>.jsonl``
  (``question_id``, ``choices[0].turns``) and optionally ``reference_answer/gpt-4.jsonl``. Every pair
  of models answering a question becomes one sample per judged turn (``turn`` 1 and 2), with the
  whole conversation as ``question`` / answer turns and no label: these are the samples a judge (or a
  teacher) is asked to judge. As in FastChat, a model is named by its answer file's name (the
  ``model_id`` inside can differ), and the GPT-4 reference answer is attached only to questions in
  FastChat's reference-needing categories (math, reasoning, coding).
  Options: ``models`` (comma-separated names; default every answer file), ``baseline`` (pair each
  model only with this one, FastChat's pairwise-baseline mode; default: all pairs), ``turns``
  (default ``"1,2"``).
- ``mt-bench-human-judgments`` (hub ``lmsys/mt_bench_human_judgments``, splits ``human`` and
  ``gpt4_pair``): ``question_id``, ``model_a``, ``model_b``, ``winner`` (model_a / model_b / tie /
  tie (bothbad)), ``judge``, ``conversation_a`` / ``conversation_b`` (the messages of each
  conversation: ``{"role": "user" | "assistant", "content": …}``), ``turn``. Each row is one
  sample with ``turn`` set and one label: ``"gpt4"`` when the judge is GPT-4, else ``"human"``, with
  the judge id in ``meta["judge"]``. As in FastChat's ``compute_agreement.py``, every winner that
  contains "tie" is a tie: "tie (bothbad)" (a human found both answers bad) and "tie (inconsistent)"
  (the ``gpt4_pair`` split: GPT-4's two orders disagreed); the kind is kept in ``meta["tie_kind"]``
  (``"bothbad"``, ``"inconsistent"``). Rows are kept one per vote (several judges can vote on the
  same pair and turn).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any, Iterator

from judgetrain.data.fields import RowError, require, require_text
from judgetrain.data.rows import RawRow, ReadReport, convert_rows, is_local, iter_file_rows, iter_rows, parse_rows
from judgetrain.types import Answer, JudgeSample, Label

SOURCE = "mtbench"
NEED_REF_CATS = ("math", "reasoning", "coding")
"""FastChat's categories whose judge prompt shows the GPT-4 reference answer (llm_judge/common.py)."""
WINNER_OF_VOTE = {"model_a": "A", "model_b": "B", "tie": "tie"}
"""The winners a vote names outright; any other winner containing "tie" is a tie too (:func:`vote_winner`)."""


# --- FastChat question + model answer files ------------------------------------------------------


def _turns(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
        raise RowError("invalid value", f"{name}: expected a non-empty list of strings (one per turn), got {value!r:.80}")
    return tuple(value)


def _parse_question(raw: RawRow) -> tuple[Any, dict[str, Any]]:
    row = raw.row
    question_id = require(row, "question_id")
    return question_id, {"question_id": question_id, "category": row.get("category"), "turns": _turns(require(row, "turns"), "turns")}


def _parse_answer(raw: RawRow) -> tuple[Any, tuple[str, ...]]:
    row = raw.row
    choices = require(row, "choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise RowError("invalid value", f"choices: expected a list of {{'turns': [...]}}, got {choices!r:.80}")
    return require(row, "question_id"), _turns(require(choices[0], "turns"), "choices[0].turns")


def collect_by_question_id(path: Path, parse, report: ReadReport, on_bad_row: str, what: str) -> dict[Any, Any]:
    """``{question_id: value}`` of a FastChat file whose rows ``parse`` turns into ``(question_id, value)``;
    a question id seen twice is a bad row (``what`` names the file's kind in the message)."""
    out: dict[Any, Any] = {}
    rows = iter_file_rows(path, report=report, on_bad_row=on_bad_row)
    for raw, (key, value) in parse_rows(rows, parse, report=report, on_bad_row=on_bad_row):
        if key in out:
            message = f"question_id {key!r} appears twice in this {what} file"
            if on_bad_row == "skip":
                report.skip("duplicate id", raw.where, message)
                continue
            raise ValueError(f"{raw.where}: {message}. Fix the file, or pass --on-bad-row skip to skip and count it")
        out[key] = value
    return out


def _option_list(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(f"option {name}: expected a comma-separated list, got {value!r}")


def read_fastchat(
    root: Path, *, report: ReadReport, on_bad_row: str, models: Any = None, baseline: str | None = None, turns: Any = "1,2"
) -> Iterator[JudgeSample]:
    """Pairs of model answers to the MT-bench questions in a FastChat data directory."""
    answer_dir = root / "model_answer"
    if not (root / "question.jsonl").is_file() or not answer_dir.is_dir():
        raise ValueError(f"{root}: a FastChat MT-bench dir needs question.jsonl and model_answer/<model>.jsonl")
    judged_turns = [int(t) for t in _option_list(str(turns), "turns")]
    answer_files = {p.stem: p for p in sorted(answer_dir.glob("*.jsonl"))}
    chosen = _option_list(models, "models") if models is not None else sorted(answer_files)
    unknown = sorted(set(chosen + ([baseline] if baseline else [])) - set(answer_files))
    if unknown:
        raise ValueError(f"option models/baseline: no answer file for {unknown} in {answer_dir}; available: {sorted(answer_files)}")
    report.saw_schema("fastchat-answers")
    questions = collect_by_question_id(root / "question.jsonl", _parse_question, report, on_bad_row, "question")
    references: dict[Any, tuple[str, ...]] = {}
    reference_file = root / "reference_answer" / "gpt-4.jsonl"
    if reference_file.is_file():
        references = collect_by_question_id(reference_file, _parse_answer, report, on_bad_row, "reference answer")
    answers = {model: collect_by_question_id(answer_files[model], _parse_answer, report, on_bad_row, "model answer") for model in sorted(set(chosen) | ({baseline} if baseline else set()))}
    if baseline:
        pairs = [(baseline, m) for m in chosen if m != baseline]
    else:
        pairs = list(itertools.combinations(sorted(chosen), 2))
    for question_id, question in questions.items():
        n_turns = len(question["turns"])
        bad_turns = [t for t in judged_turns if not 1 <= t <= n_turns]
        if bad_turns:
            raise ValueError(f"option turns: question {question_id} has {n_turns} turn(s), cannot judge turn(s) {bad_turns}")
        reference = references.get(question_id) if question["category"] in NEED_REF_CATS else None
        for model_a, model_b in pairs:
            if question_id not in answers[model_a] or question_id not in answers[model_b]:
                missing = model_a if question_id not in answers[model_a] else model_b
                report.note(f"question/model pairs without an answer (model {missing})")
                continue
            turns_a, turns_b = answers[model_a][question_id], answers[model_b][question_id]
            if len(turns_a) != n_turns or len(turns_b) != n_turns:
                short = model_a if len(turns_a) != n_turns else model_b
                raise ValueError(f"{answer_files[short]}: question {question_id} has {n_turns} turns, the answer has {len(answers[short][question_id])}")
            for turn in judged_turns:
                report.samples_built += 1
                yield JudgeSample(
                    id=f"{SOURCE}:{question_id}:{model_a}:{model_b}:turn{turn}",
                    source=SOURCE,
                    question=question["turns"],
                    answers=(Answer(turns_a, model=model_a), Answer(turns_b, model=model_b)),
                    reference=reference,
                    category=question["category"],
                    turn=turn,
                    meta={"question_id": question_id},
                )


# --- lmsys/mt_bench_human_judgments --------------------------------------------------------------


def vote_winner(value: Any, name: str = "winner") -> tuple[str, str | None]:
    """(``"A"`` | ``"B"`` | ``"tie"``, the tie kind) of an MT-bench vote's winner field ``name``.

    FastChat counts every winner containing "tie" as a tie (``convertvote`` in
    ``compute_agreement.py``), so "tie (bothbad)" and "tie (inconsistent)" are ties of kind
    ``"bothbad"`` and ``"inconsistent"``; another form containing "tie" is its own kind, and a plain
    "tie" has none (None). Anything else outside ``model_a`` / ``model_b`` raises RowError naming
    the field and the value."""
    if isinstance(value, str) and value in WINNER_OF_VOTE:
        return WINNER_OF_VOTE[value], None
    if isinstance(value, str) and "tie" in value:
        named = re.fullmatch(r"tie \((.+)\)", value.strip())
        return "tie", named.group(1) if named else value
    allowed = ", ".join(repr(k) for k in WINNER_OF_VOTE)
    raise RowError("label out of range", f"{name}: expected one of {allowed} or a tie kind such as "
                                         f"'tie (bothbad)', got {value!r:.80}")


def _conversation(row: dict[str, Any], name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    messages = require(row, name)
    if not isinstance(messages, list) or not messages:
        raise RowError("invalid value", f"{name}: expected a list of messages, got {messages!r:.80}")
    user, assistant = [], []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant") or not isinstance(message.get("content"), str):
            raise RowError("invalid value", f"{name}[{i}]: expected {{'role': 'user' | 'assistant', 'content': string}}, got {message!r:.80}")
        expected = "user" if i % 2 == 0 else "assistant"
        if message["role"] != expected:
            raise RowError("invalid value", f"{name}[{i}]: expected a {expected} message (turns alternate, user first), got {message['role']}")
        (user if expected == "user" else assistant).append(message["content"])
    if len(user) != len(assistant):
        raise RowError("invalid value", f"{name}: the last user turn has no assistant answer")
    return tuple(user), tuple(assistant)


def _judge_id(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return "/".join(value)
    raise RowError("invalid value", f"judge: expected a judge id (string), got {value!r:.80}")


def convert_judgment(raw: RawRow, report: ReadReport) -> JudgeSample:
    row = raw.row
    report.saw_schema("mt-bench-human-judgments")
    user_a, turns_a = _conversation(row, "conversation_a")
    user_b, turns_b = _conversation(row, "conversation_b")
    if user_a != user_b:
        raise RowError("invalid value", "conversation_a / conversation_b: their user turns differ; both must answer the same question")
    turn = require(row, "turn")
    if isinstance(turn, bool) or not isinstance(turn, int) or not 1 <= turn <= len(user_a):
        raise RowError("label out of range", f"turn: expected a turn number in 1..{len(user_a)}, got {turn!r}")
    winner, tie_kind = vote_winner(require_text(row, "winner"))
    judge = _judge_id(require(row, "judge"))
    label_key = "gpt4" if "gpt-4" in judge.lower() or "gpt4" in judge.lower() else "human"
    meta: dict[str, Any] = {"question_id": require(row, "question_id"), "judge": judge}
    if tie_kind is not None:
        meta["tie_kind"] = tie_kind
    return JudgeSample(
        id=f"{SOURCE}:{raw.origin}:{raw.line_number}",
        source=SOURCE,
        question=user_a,
        answers=(Answer(turns_a, model=require_text(row, "model_a")), Answer(turns_b, model=require_text(row, "model_b"))),
        turn=turn,
        labels={label_key: Label(winner=winner)},
        meta=meta,
    )


def read(
    input: str, *, split: str | None = None, report: ReadReport, on_bad_row: str = "error", **options: Any
) -> Iterator[JudgeSample]:
    """A FastChat MT-bench data dir (questions + model answers) or human-judgment rows (local or hub)."""
    if is_local(input) and Path(input).is_dir() and (Path(input) / "question.jsonl").is_file():
        unknown = sorted(set(options) - {"models", "baseline", "turns"})
        if unknown:
            raise ValueError(f"the mtbench reader takes options models, baseline, turns for a FastChat dir, got {unknown}")
        return read_fastchat(Path(input), report=report, on_bad_row=on_bad_row, **options)
    if options:
        raise ValueError(f"the mtbench reader takes no options for human-judgment rows, got {sorted(options)}")
    rows = iter_rows(input, split=split, report=report, on_bad_row=on_bad_row)
    return convert_rows(rows, lambda raw: convert_judgment(raw, report), report=report, on_bad_row=on_bad_row)
