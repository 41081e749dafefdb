"""MT-bench files: FastChat's layout, its schemas and constants, read with errors that name file and line.

Constants are FastChat's (``fastchat/llm_judge/common.py``): the per-category sampling temperature
of answer generation, the categories whose judge prompt shows the GPT-4 reference answer
(``NEED_REF_CATS``) and ``TIE_DELTA``, within which two single grades are a tie.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path
from typing import Any, Iterable

from judgetrain_data_prep.mtbench import NEED_REF_CATS
from judgetrain.data.rows import read_jsonl

DEFAULT_BENCH = "mt_bench"
REFERENCE_MODEL = "gpt-4"
"""FastChat's reference answers are ``reference_answer/gpt-4.jsonl``."""

CATEGORIES = ("writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities")
"""MT-bench's eight categories (ten questions each), in FastChat's radar-plot order."""

TEMPERATURE_CONFIG: dict[str, float] = {
    "writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0, "coding": 0.0, "reasoning": 0.0,
    "stem": 0.1, "humanities": 0.1,
}
"""FastChat ``temperature_config``: the answer-generation temperature of each category."""

DEFAULT_TEMPERATURE = 0.7
"""FastChat's temperature for a category not in :data:`TEMPERATURE_CONFIG` (e.g. another benchmark's)."""

TIE_DELTA = 0.1
"""FastChat: two single grades closer than this (``<=``) are a tie when compared as a pair."""

__all__ = ["NEED_REF_CATS", "DEFAULT_BENCH", "CATEGORIES", "TEMPERATURE_CONFIG", "TIE_DELTA"]


def packaged_data_dir() -> Path:
    """The data dir shipped in the package: ``judgetrain/resources`` (holds ``mt_bench/``)."""
    return Path(str(importlib.resources.files("judgetrain").joinpath("resources")))


def bench_dir(data_dir: str | os.PathLike[str] | None, bench: str = DEFAULT_BENCH) -> Path:
    """``<data dir>/<bench>`` (the packaged data dir when ``data_dir`` is None)."""
    return Path(data_dir) / bench if data_dir is not None else packaged_data_dir() / bench


def temperature_of(question: dict[str, Any]) -> float:
    """FastChat's sampling temperature for a question: by its category."""
    return TEMPERATURE_CONFIG.get(question.get("category"), DEFAULT_TEMPERATURE)


def _turns(value: Any, where: str, field_name: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
        raise ValueError(f"{where}: field {field_name!r} must be a non-empty list of strings (one per turn), got {value!r:.80}")
    return value


def load_questions(data_dir: str | os.PathLike[str] | None, bench: str = DEFAULT_BENCH) -> list[dict[str, Any]]:
    """The questions of ``<data dir>/<bench>/question.jsonl``, each with ``question_id``, ``category``, ``turns``."""
    path = bench_dir(data_dir, bench) / "question.jsonl"
    if not path.is_file():
        raise ValueError(f"no questions at {path}: give --data-dir DIR holding {bench}/question.jsonl (FastChat's layout)")
    questions, seen = [], set()
    for number, row in read_jsonl(path):
        where = f"{path}:{number}"
        if "question_id" not in row:
            raise ValueError(f"{where}: missing field 'question_id'")
        _turns(row.get("turns"), where, "turns")
        if row["question_id"] in seen:
            raise ValueError(f"{where}: question_id {row['question_id']!r} appears twice; question ids must be unique")
        seen.add(row["question_id"])
        questions.append(row)
    return questions


def select_questions(questions: list[dict[str, Any]], *, question_ids: Iterable[Any] | None = None,
                     limit: int | None = None) -> list[dict[str, Any]]:
    """The questions named by ``question_ids`` (in file order), then the first ``limit`` of them."""
    if question_ids:
        wanted = {str(q) for q in question_ids}
        chosen = [q for q in questions if str(q["question_id"]) in wanted]
        missing = wanted - {str(q["question_id"]) for q in chosen}
        if missing:
            raise ValueError(f"--question-id {sorted(missing)}: no such question in this benchmark")
        questions = chosen
    if limit is not None:
        if limit < 1:
            raise ValueError(f"--question-limit must be >= 1, got {limit}")
        questions = questions[:limit]
    return questions


def load_answer_file(path: str | os.PathLike[str]) -> dict[Any, dict[str, Any]]:
    """question_id -> answer row of one FastChat answer file (later rows of a question win, as in FastChat)."""
    answers = {}
    for number, row in read_jsonl(path):
        where = f"{path}:{number}"
        if "question_id" not in row:
            raise ValueError(f"{where}: missing field 'question_id'")
        choices = row.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ValueError(f"{where}: field 'choices' must be a list of {{'index', 'turns'}} objects, got {choices!r:.80}")
        _turns(choices[0].get("turns"), where, "choices[0].turns")
        answers[row["question_id"]] = row
    return answers


def load_model_answers(answer_dirs: Iterable[Path]) -> dict[str, dict[Any, dict[str, Any]]]:
    """model name -> question_id -> answer row, from every ``*.jsonl`` of the dirs (the first dir
    holding a model wins). As in FastChat a model is named by its file name, not its ``model_id``."""
    out: dict[str, dict[Any, dict[str, Any]]] = {}
    for directory in answer_dirs:
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.jsonl")):
            out.setdefault(path.stem, load_answer_file(path))
    return out


def load_reference_answers(data_dir: str | os.PathLike[str] | None, bench: str = DEFAULT_BENCH) -> dict[Any, list[str]]:
    """question_id -> the reference answer's turns (``reference_answer/gpt-4.jsonl``); {} when absent."""
    path = bench_dir(data_dir, bench) / "reference_answer" / f"{REFERENCE_MODEL}.jsonl"
    if not path.is_file():
        return {}
    return {qid: row["choices"][0]["turns"] for qid, row in load_answer_file(path).items()}
