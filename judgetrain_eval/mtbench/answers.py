"""Answer generation: every question, both turns, through a judging backend's ``generate``.

As FastChat's ``gen_model_answer.py``: each turn is sent with the conversation so far (the second
turn sees the first answer), in the model's own chat template (the transformers backend applies the
tokenizer's; an API applies its own); the temperature is the category's (:data:`TEMPERATURE_CONFIG`,
greedy at 0); choice ``i`` of ``--num-choices`` samples with seed ``i``; each answer is stripped.
Rows are FastChat's: ``question_id``, ``answer_id``, ``model_id``, ``choices`` [{``index``, ``turns``}],
``tstamp``, sorted by question id.

Resume: questions already in the answer file are skipped. Questions are answered a chunk at a time
(all first turns of the chunk in one backend call, then all second turns) and the file is rewritten
atomically after each chunk, so a killed run loses at most one chunk. A question whose generation
failed (an API error) is not written, so the next run asks it again.
"""

from __future__ import annotations

import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judgetrain_eval.mtbench.data import load_answer_file, temperature_of
from judgetrain.atomic import write_jsonl_atomic
from judgetrain.judging.backends.base import Backend, Decoding, Request

DEFAULT_MAX_NEW_TOKENS = 1024
"""FastChat ``gen_model_answer.py --max-new-token`` default."""

DEFAULT_CHUNK_QUESTIONS = 8
"""Questions answered per chunk (written after each)."""


@dataclass
class AnswerRun:
    """What one ``generate_answers`` call did."""

    answer_file: Path
    num_questions: int = 0
    num_skipped: int = 0
    num_answered: int = 0
    num_failed: int = 0
    num_backend_calls: int = 0
    failures: list[str] = field(default_factory=list)


def answer_row(question_id: Any, model_id: str, choice_turns: list[list[str]]) -> dict[str, Any]:
    """One FastChat answer row."""
    return {
        "question_id": question_id,
        "answer_id": uuid.uuid4().hex,
        "model_id": model_id,
        "choices": [{"index": i, "turns": turns} for i, turns in enumerate(choice_turns)],
        "tstamp": time.time(),
    }


def generate_answers(backend: Backend, questions: list[dict[str, Any]], *, model_id: str, answer_file: str | Path,
                     num_choices: int = 1, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                     chunk_questions: int = DEFAULT_CHUNK_QUESTIONS, log=sys.stderr) -> AnswerRun:
    """Answer every question not yet in ``answer_file`` with ``backend`` and (re)write the file."""
    if num_choices < 1:
        raise ValueError(f"--num-choices must be >= 1, got {num_choices}")
    if chunk_questions < 1:
        raise ValueError(f"chunk_questions must be >= 1, got {chunk_questions}")
    answer_file = Path(answer_file)
    existing = load_answer_file(answer_file) if answer_file.is_file() else {}
    run = AnswerRun(answer_file=answer_file, num_questions=len(questions))
    pending = [q for q in questions if q["question_id"] not in existing]
    run.num_skipped = len(questions) - len(pending)
    for start in range(0, len(pending), chunk_questions):
        chunk = pending[start:start + chunk_questions]
        # One conversation per (question, choice): its messages so far and its answers.
        conversations = [(q, choice, [], []) for q in chunk for choice in range(num_choices)]
        failed: set[Any] = set()
        for turn_index in range(max(len(q["turns"]) for q in chunk)):
            live = [c for c in conversations if turn_index < len(c[0]["turns"]) and c[0]["question_id"] not in failed]
            requests = []
            for question, choice, messages, _ in live:
                messages.append({"role": "user", "content": question["turns"][turn_index]})
                decoding = Decoding(max_new_tokens=max_new_tokens, temperature=temperature_of(question), seed=choice)
                requests.append(Request(messages=tuple(dict(m) for m in messages), decoding=decoding))
            if not requests:
                continue
            completions = backend.generate(requests)
            run.num_backend_calls += len(requests)
            for (question, choice, messages, answers), completion in zip(live, completions):
                if completion.error is not None:
                    failed.add(question["question_id"])
                    run.failures.append(f"question {question['question_id']} turn {turn_index + 1}: {completion.error}")
                    continue
                text = completion.text.strip()
                messages.append({"role": "assistant", "content": text})
                answers.append(text)
        for question in chunk:
            qid = question["question_id"]
            if qid in failed:
                run.num_failed += 1
                continue
            choice_turns = [answers for q, _, _, answers in conversations if q is question]
            existing[qid] = answer_row(qid, model_id, choice_turns)
            run.num_answered += 1
        write_jsonl_atomic(answer_file, [existing[k] for k in sorted(existing, key=_sort_key)])
        print(f"answered {run.num_answered + run.num_skipped}/{len(questions)} questions -> {answer_file}", file=log)
    return run


def _sort_key(question_id: Any) -> tuple[int, Any]:
    # FastChat sorts by question id; ids of other benchmarks may be strings.
    return (0, question_id) if isinstance(question_id, int) else (1, str(question_id))
