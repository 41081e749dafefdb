"""Judging MT-bench answers with FastChat's judge prompts, writing FastChat's judgment files.

Matches are FastChat ``gen_judgment.py``'s: ``single`` grades every model's answer on turn 1
(``single-v1``) and turn 2 (``single-v1-multi-turn``); ``pairwise-baseline`` compares each model
(``model_1``) with the baseline (``model_2``); ``pairwise-all`` compares every pair of models, in
the order the model list gives them. Questions in ``NEED_REF_CATS`` (math, reasoning, coding) use
the reference-guided prompts (``single-math-v1``, ``pair-math-v1`` and their multi-turn forms) with
the GPT-4 reference answers. Pairwise matches are judged in both orders (the library's
``Judge(both_orders=True)``): ``g1`` is the order as listed, ``g2`` the swapped one, both winners
named in the match's own terms (``model_1`` / ``model_2`` / ``tie``; ``error`` when the output did not
parse), exactly as FastChat writes them.

Rows (FastChat's fields first, so its ``show_result.py`` and browsers read them):

- single: ``question_id``, ``model``, ``judge`` [judge name, prompt name], ``user_prompt``,
  ``judgment``, ``score`` (-1 when the output has no rating, FastChat's convention), ``turn``, ``tstamp``;
- pair: ``question_id``, ``model_1``, ``model_2``, ``g1_winner``, ``g2_winner``, ``judge``,
  ``g1_user_prompt``, ``g1_judgment``, ``g2_user_prompt``, ``g2_judgment``, ``turn``, ``tstamp``;

and, after them, what this run recorded: ``template`` (``mtbench-<prompt>``), ``backend``, ``decoding``
and, for an output that did not parse, ``parse_failure`` (the reason).

Resume: a match already in the output file (same question, model(s), turn and judge) is not judged
again; the file is rewritten atomically after each chunk of matches; every backend call goes through
the result cache, so a call finished before a kill is not paid for twice.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from judgetrain_eval.mtbench.data import NEED_REF_CATS, read_jsonl
from judgetrain.atomic import write_jsonl_atomic
from judgetrain.judging.backends.base import Backend
from judgetrain.types import Answer, JudgeSample, Judgment

MODES = ("single", "pairwise-baseline", "pairwise-all")
DEFAULT_BASELINE = "gpt-3.5-turbo"
"""FastChat's baseline model of ``pairwise-baseline``."""

DEFAULT_JUDGE_MAX_NEW_TOKENS = 2048
"""FastChat asks its judge for at most 2048 tokens, at temperature 0."""

DEFAULT_CHUNK_MATCHES = 32
"""Matches judged per chunk (the file is rewritten after each)."""

WINNER_NAMES = {"A": "model_1", "B": "model_2", "tie": "tie", None: "error"}
"""A verdict winner in the match's own order, as FastChat names it."""


@dataclass(frozen=True)
class Match:
    """One judging match: a question, one model (single) or two (pair), the judged turn, the prompt."""

    question: dict[str, Any]
    models: tuple[str, ...]
    turn: int
    prompt_name: str
    reference: tuple[str, ...] | None

    @property
    def protocol(self) -> str:
        return "single" if len(self.models) == 1 else "pairwise"


def prompt_name_for(protocol: str, category: str | None, turn: int) -> str:
    """FastChat's judge prompt for a protocol, a question category and a judged turn: the general
    prompt of that protocol and turn, or its reference-guided twin for a category that needs a reference."""
    from judgetrain import formats

    general = formats.get(("mtbench-single-v1" if protocol == "single" else "mtbench-pair-v2") + ("-multi-turn" if turn == 2 else ""))
    return general.for_reference(category in NEED_REF_CATS).fastchat_name


def model_pairs(mode: str, models: Sequence[str], baseline: str | None) -> list[tuple[str, ...]]:
    """The (model) or (model_1, model_2) tuples a mode judges, in FastChat's order."""
    if mode == "single":
        return [(m,) for m in models]
    if mode == "pairwise-baseline":
        if not baseline:
            raise ValueError("--mode pairwise-baseline needs --baseline MODEL")
        return [(m, baseline) for m in models if m != baseline]
    if mode == "pairwise-all":
        return [(models[i], models[j]) for i in range(len(models)) for j in range(i + 1, len(models))]
    raise ValueError(f"--mode must be one of {MODES}, got {mode!r}")


def make_matches(mode: str, questions: list[dict[str, Any]], answers: dict[str, dict[Any, dict[str, Any]]],
                 models: Sequence[str], *, baseline: str | None = None,
                 references: dict[Any, list[str]] | None = None) -> list[Match]:
    """Every match of ``mode`` over ``questions``; ValueError naming what is missing (an answer file,
    an answer to a question, a reference answer a category needs)."""
    references = references or {}
    tuples = model_pairs(mode, models, baseline)
    needed = sorted({m for t in tuples for m in t})
    unknown = [m for m in needed if m not in answers]
    if unknown:
        raise ValueError(f"no answer file for model(s) {unknown}; answer files found: {sorted(answers)}. "
                         f"Run `judgetrain mtbench gen-answers --model-id ID` first")
    matches = []
    for question in questions:
        qid = question["question_id"]
        missing = [m for m in needed if qid not in answers[m]]
        if missing:
            raise ValueError(f"model(s) {missing} have no answer to question {qid}; answer it, or limit the questions "
                             f"with --question-id / --question-limit")
        category = question.get("category")
        reference = None
        if category in NEED_REF_CATS:
            if qid not in references:
                raise ValueError(f"question {qid} ({category}) needs a reference answer: add it to "
                                 f"reference_answer/gpt-4.jsonl of the benchmark dir")
            reference = tuple(references[qid])
        for turn in range(1, min(len(question["turns"]), 2) + 1):
            for models_of_match in tuples:
                matches.append(Match(question, models_of_match, turn,
                                     prompt_name_for("single" if mode == "single" else "pairwise", category, turn),
                                     reference))
    return matches


def match_key(judge_name: str, prompt_name: str, question_id: Any, models: Sequence[str], turn: int) -> tuple:
    return (judge_name, prompt_name, str(question_id), tuple(models), int(turn))


def row_key(row: dict[str, Any], where: str) -> tuple:
    """The match key of a judgment row (single or pair); ValueError naming the missing field."""
    models_fields = ("model",) if "model" in row else ("model_1", "model_2")
    for name in ("question_id", "judge", "turn", *models_fields):
        if name not in row:
            raise ValueError(f"{where}: missing field {name!r} of a FastChat judgment row")
    judge = row["judge"]
    if not isinstance(judge, list) or len(judge) != 2:
        raise ValueError(f"{where}: field 'judge' must be [judge name, prompt name], got {judge!r:.80}")
    return match_key(judge[0], judge[1], row["question_id"], [row[f] for f in models_fields], row["turn"])


def sample_of(match: Match, answers: dict[str, dict[Any, dict[str, Any]]]) -> JudgeSample:
    """The canonical sample a match is judged as (the whole conversation, the judged turn set)."""
    question = match.question
    qid = question["question_id"]
    turns = tuple(question["turns"][:2])
    shown = tuple(Answer(tuple(answers[m][qid]["choices"][0]["turns"][:len(turns)]), model=m) for m in match.models)
    return JudgeSample(
        id=f"mtbench:{qid}:{':'.join(match.models)}:turn{match.turn}", source="mtbench", question=turns,
        answers=shown, reference=match.reference[:len(turns)] if match.reference else None,
        category=question.get("category"), turn=match.turn, meta={"question_id": qid},
    )


def _user_prompt(judgment: Judgment) -> str:
    return next(m["content"] for m in judgment.prompt_messages if m["role"] == "user")


def _recorded(judgment: Judgment) -> dict[str, Any]:
    out = {"template": judgment.template, "backend": judgment.backend, "decoding": judgment.decoding}
    if judgment.parse_failure is not None:
        out["parse_failure"] = judgment.parse_failure.reason
    elif judgment.error is not None:
        out["parse_failure"] = f"backend error: {judgment.error}"
    return out


def single_row(match: Match, judgment: Judgment, judge_name: str) -> dict[str, Any]:
    """FastChat's single-grading row for one judged match."""
    score = judgment.verdict.scores[0] if judgment.verdict is not None and judgment.verdict.scores else -1
    return {"question_id": match.question["question_id"], "model": match.models[0],
            "judge": [judge_name, match.prompt_name], "user_prompt": _user_prompt(judgment),
            "judgment": judgment.raw_text, "score": score, "turn": match.turn, "tstamp": time.time(),
            **_recorded(judgment)}


def pair_row(match: Match, judgment: Judgment, judge_name: str) -> dict[str, Any]:
    """FastChat's pairwise row for one match judged in both orders."""
    from judgetrain.judging.judge import per_order

    original, swapped = per_order(judgment)
    failures = [f"g{i}: {j.parse_failure.reason if j.parse_failure else j.error}"
                for i, j in ((1, original), (2, swapped)) if j.verdict is None]
    row = {"question_id": match.question["question_id"], "model_1": match.models[0], "model_2": match.models[1],
           # The swapped order's winner is already mapped back to the match's order (Judge.aggregate).
           "g1_winner": WINNER_NAMES[original.winner], "g2_winner": WINNER_NAMES[swapped.winner],
           "judge": [judge_name, match.prompt_name],
           "g1_user_prompt": _user_prompt(original), "g1_judgment": original.raw_text,
           "g2_user_prompt": _user_prompt(swapped), "g2_judgment": swapped.raw_text,
           "turn": match.turn, "tstamp": time.time(),
           "template": judgment.template, "backend": judgment.backend, "decoding": judgment.decoding}
    if failures:
        row["parse_failure"] = "; ".join(failures)
    return row


@dataclass
class JudgeRun:
    """What one ``judge_matches`` call did."""

    output_file: Path
    num_matches: int = 0
    num_skipped: int = 0
    num_judged: int = 0
    num_parse_failures: int = 0


def output_file_name(judge_name: str, mode: str) -> str:
    """FastChat's judgment file name: ``<judge>_single.jsonl`` or ``<judge>_pair.jsonl``."""
    return f"{judge_name}_{'single' if mode == 'single' else 'pair'}.jsonl"


def judge_matches(matches: list[Match], answers: dict[str, dict[Any, dict[str, Any]]], backend: Backend | None, *,
                  judge_name: str, output_file: str | Path, max_new_tokens: int = DEFAULT_JUDGE_MAX_NEW_TOKENS,
                  cache: Any = None, chunk_matches: int = DEFAULT_CHUNK_MATCHES, log=sys.stderr,
                  judge_for: Callable[[str], Any] | None = None) -> JudgeRun:
    """Judge every match not yet in ``output_file`` and (re)write the file, chunk by chunk.

    ``judge_for`` (a FastChat prompt name → the judge of its matches) replaces the judges built here
    on ``backend`` with FastChat's prompts: a judge built from a judge card brings its own."""
    from judgetrain import formats
    from judgetrain.judging import CachingBackend, Judge, default_decoding

    output_file = Path(output_file)
    rows: list[dict[str, Any]] = []
    done: set[tuple] = set()
    if output_file.is_file():
        for number, row in read_jsonl(output_file):
            done.add(row_key(row, f"{output_file}:{number}"))
            rows.append(row)
    run = JudgeRun(output_file=output_file, num_matches=len(matches))
    pending = [m for m in matches if match_key(judge_name, m.prompt_name, m.question["question_id"], m.models, m.turn) not in done]
    run.num_skipped = len(matches) - len(pending)
    if cache is not None and backend is not None and not isinstance(backend, CachingBackend):
        backend = CachingBackend(backend, cache)
    judges: dict[str, Judge] = {}

    def prompt_judge(prompt_name: str) -> Judge:
        if prompt_name not in judges:
            fmt = formats.get(f"mtbench-{prompt_name}")
            decoding = default_decoding(fmt, max_new_tokens=max_new_tokens)
            judges[prompt_name] = Judge(fmt, backend, decoding, both_orders=fmt.protocol == "pairwise")
        return judges[prompt_name]

    for start in range(0, len(pending), chunk_matches):
        chunk = pending[start:start + chunk_matches]
        by_prompt: dict[str, list[Match]] = {}
        for match in chunk:
            by_prompt.setdefault(match.prompt_name, []).append(match)
        for prompt_name, group in by_prompt.items():
            judgments = (judge_for or prompt_judge)(prompt_name).judge([sample_of(m, answers) for m in group])
            for match, judgment in zip(group, judgments):
                row = (single_row if match.protocol == "single" else pair_row)(match, judgment, judge_name)
                run.num_parse_failures += int("parse_failure" in row)
                rows.append(row)
                run.num_judged += 1
        write_jsonl_atomic(output_file, rows)
        print(f"judged {run.num_judged + run.num_skipped}/{len(matches)} matches -> {output_file}", file=log)
    if not pending and not output_file.is_file():
        write_jsonl_atomic(output_file, rows)
    return run
