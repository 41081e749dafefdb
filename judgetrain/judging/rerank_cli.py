"""``judgetrain rerank``: best-of-n. For each prompt, the judge ranks the sampled candidate answers and
the best one is kept.

    judgetrain rerank --judge judges/my-judge --input candidates.jsonl --out ranked.jsonl
    judgetrain rerank --judge http://127.0.0.1:8000 --input candidates.jsonl --out ranked.jsonl

Input rows (JSONL, one prompt a line): ``{"id", "prompt" (or "question"), "candidates": [str, ...]}``
and optionally ``"reference"``. A bad row is an error naming the file, the line and the field, or,
with ``--on-bad-row skip``, skipped and counted in the summary.

The judge is built from its card (:meth:`judgetrain.judging.Judge.from_card`): an export dir, or the
URL of ``judgetrain serve`` (``--card`` gives the card of a server that publishes none, such as
``vllm serve``). A reward judge or a grading judge scores each candidate once; a pairwise judge
plays a round-robin, every pair in both orders (:func:`judgetrain.client.rerank_batch`). Prompts are
judged ``--batch-prompts`` at a time, so a batched backend sees all their calls together.

Output rows: ``{"id", "best_index", "best", "scores" (reward / grade per candidate) or "wins"
(a pairwise judge's tournament points), "ranking", "method", "num_judgments", "num_unread", "judge":
{"name", "template", "kind", "protocol" (generative judges)}}``. When no judgment of a prompt gave a verdict, ``best_index``, ``best`` and
``ranking`` are null: an unread judgment never picks a winner.

Resuming. Rows are appended to ``.OUT.partial`` as each batch of prompts finishes (flushed and
fsynced) and the file is renamed to ``--out`` when the run completes. A run killed midway is
started again with the same command: the prompts already in the partial file are not judged again,
and the calls of the batch that was cut short come from the result cache (``--cache``, default
``$JUDGETRAIN_RESULT_CACHE`` or ``~/.cache/judgetrain/judge-cache.sqlite``; ``--no-cache``), the
same cache ``judgetrain judge`` uses; a reward judge's rewards are stored in it too.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, TextIO

from judgetrain.data.fields import RowError
from judgetrain.data.rows import ON_BAD_ROW_CHOICES, RawRow, ReadReport, iter_file_rows, parse_rows
from judgetrain.judging.backends.base import Completion, Decoding, Request

DEFAULT_BATCH_PROMPTS = 8
"""Prompts judged per judge call; their rows are written when the call returns."""

REWARD_KEY_DECODING = Decoding(max_new_tokens=1)
"""The decoding in a reward's cache key: a reward generates nothing, so one fixed value keeps keys stable."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--judge", required=True, help="an export dir with judge_card.json, or the http:// URL of judgetrain serve")
    parser.add_argument("--card", help="the judge card (export dir or judge_card.json) of a server that publishes none (vllm serve)")
    parser.add_argument("--input", required=True, help='JSONL rows {"id", "prompt" (or "question"), "candidates": [str, ...]}')
    parser.add_argument("--out", required=True, help="ranked rows (JSONL) to write")
    parser.add_argument("--batch-prompts", type=int, default=DEFAULT_BATCH_PROMPTS,
                        help=f"prompts judged together; their rows are written as each batch finishes (default {DEFAULT_BATCH_PROMPTS})")
    parser.add_argument("--batch-size", type=int, default=8, help="local judge: candidates per forward batch; server: requests in flight")
    parser.add_argument("--api-key-env", help="the environment variable holding the server's API key (judgetrain serve --api-key-env)")
    parser.add_argument("--on-bad-row", choices=ON_BAD_ROW_CHOICES, default="error",
                        help="stop at the first bad row (default), or skip bad rows and count them")
    parser.add_argument("--cache", help="result cache file (finished calls are never repeated)")
    parser.add_argument("--no-cache", action="store_true", help="do not use a result cache")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


# --- input rows ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CandidateRow:
    """One prompt and its candidate answers, read from ``where`` (file:line)."""

    id: str | int
    question: str
    candidates: tuple[str, ...]
    reference: str | None
    where: str


def _row_key(row_id: Any) -> str:
    """A key that tells the id 1 from the id "1", as JSON does."""
    return json.dumps(row_id)


def _text_field(row: dict[str, Any], name: str) -> str | None:
    value = row.get(name)
    if value is not None and not isinstance(value, str):
        raise RowError("invalid value", f"{name}: expected a string, got {type(value).__name__} {value!r:.80}")
    return value


def candidate_row(raw: RawRow, judge_format: Any = None) -> CandidateRow:
    """The prompt row ``raw`` holds; a RowError names the bad field. With ``judge_format`` (a generative
    judge's template), a row the template cannot show (no reference where it needs one) is bad too."""
    row = raw.row
    if "id" not in row or row["id"] is None:
        raise RowError("missing field", f"missing required field 'id' (the row has {sorted(row)})")
    row_id = row["id"]
    if isinstance(row_id, bool) or not isinstance(row_id, (str, int)):
        raise RowError("invalid value", f"id: expected a string or an integer, got {type(row_id).__name__} {row_id!r:.80}")
    prompt, question = _text_field(row, "prompt"), _text_field(row, "question")
    if prompt is None and question is None:
        raise RowError("missing field", f"missing required field 'prompt' (or 'question'); the row has {sorted(row)}")
    if prompt is not None and question is not None and prompt != question:
        raise RowError("invalid value", "prompt and question differ; give the prompt once, as 'prompt' or as 'question'")
    text = prompt if prompt is not None else question
    assert text is not None
    if not text.strip():
        raise RowError("invalid value", f"{'prompt' if prompt is not None else 'question'}: expected a non-empty string")
    candidates = row.get("candidates")
    if candidates is None:
        raise RowError("missing field", f"missing required field 'candidates' (the row has {sorted(row)})")
    if not isinstance(candidates, list) or not candidates:
        raise RowError("invalid value", f"candidates: expected a non-empty list of strings, got {candidates!r:.80}")
    for index, candidate in enumerate(candidates):
        if not isinstance(candidate, str):
            raise RowError("invalid value", f"candidates[{index}]: expected a string, got {type(candidate).__name__} {candidate!r:.80}")
    reference = _text_field(row, "reference")
    if judge_format is not None and getattr(judge_format, "with_reference", False) and reference is None:
        raise RowError("missing field", f"missing field 'reference': the judge's template {judge_format.name!r} needs a reference answer")
    return CandidateRow(id=row_id, question=text, candidates=tuple(candidates), reference=reference, where=raw.where)


def read_candidate_rows(path: str | os.PathLike[str], *, on_bad_row: str = "error", report: ReadReport | None = None,
                        judge_format: Any = None) -> list[CandidateRow]:
    """The prompt rows of a JSONL file, in order. A bad row (or a repeated id) raises ValueError naming
    the file, the line and the field; with ``on_bad_row="skip"`` it is skipped and counted in ``report``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--input {path}: no such file; give a JSONL file of candidate rows")
    report = report if report is not None else ReadReport(source="rerank")
    seen: dict[str, str] = {}

    def parse(raw: RawRow) -> CandidateRow:
        built = candidate_row(raw, judge_format)
        key = _row_key(built.id)
        if key in seen:
            raise RowError("duplicate id", f"id {built.id!r} was already given at {seen[key]}")
        seen[key] = raw.where
        return built

    rows = [built for _, built in parse_rows(iter_file_rows(path, report=report, on_bad_row=on_bad_row), parse,
                                             report=report, on_bad_row=on_bad_row)]
    report.samples_built = len(rows)
    return rows


# --- the judge ---------------------------------------------------------------------------------


class CachingRewardScorer:
    """A reward scorer behind the result cache: a conversation already scored is not scored again.

    Each reward is stored as a completion whose text is the reward (``repr``, so it reads back
    exactly), under the :func:`~judgetrain.judging.cache.request_key` of the scored messages, the
    scorer's name and its model id with its token budget. Everything else is the wrapped scorer's."""

    def __init__(self, scorer: Any, cache_path: str | os.PathLike[str]):
        from judgetrain.judging.cache import ResultCache

        self.scorer = scorer
        self.cache = ResultCache(cache_path)
        self.name = scorer.name
        budget = getattr(scorer, "max_seq_len", None)
        # A shorter budget cuts the conversation differently, so it is part of what decides a reward.
        self.model_id = f"{scorer.model_id}@max_seq_len={budget}" if budget is not None else scorer.model_id
        self.num_hits = 0
        self.num_misses = 0

    def __getattr__(self, name: str) -> Any:
        if name == "scorer":  # not set yet: no delegation loop
            raise AttributeError(name)
        return getattr(self.scorer, name)

    def _key(self, messages: Sequence[dict[str, str]]) -> str:
        from judgetrain.judging.cache import request_key

        request = Request(messages=tuple(dict(m) for m in messages), decoding=REWARD_KEY_DECODING)
        return request_key(request, self.name, self.model_id)

    def score(self, conversations: Sequence[Sequence[dict[str, str]]]) -> list[float]:
        """One reward per conversation, in order: stored ones from the cache, the others from the scorer."""
        keys = [self._key(c) for c in conversations]
        rewards: list[float | None] = [None] * len(conversations)
        for index, key in enumerate(keys):
            hit = self.cache.get(key)
            if hit is not None:
                rewards[index] = float(hit.text)
        missing = [i for i, r in enumerate(rewards) if r is None]
        self.num_hits += len(conversations) - len(missing)
        self.num_misses += len(missing)
        if missing:
            for index, reward in zip(missing, self.scorer.score([conversations[i] for i in missing])):
                rewards[index] = reward
                if math.isfinite(reward):
                    self.cache.put(keys[index], Completion(text=repr(float(reward))))
        return rewards  # type: ignore[return-value]

    def close(self) -> None:
        self.scorer.close()
        self.cache.close()


def load_judge(target: str, *, card: str | None = None, cache: Path | None = None, batch_size: int = 8,
               api_key_env: str | None = None, progress: bool = False) -> Any:
    """The judge ``target`` (an export dir or a server URL) describes, its calls going through the
    result cache at ``cache`` (None: no cache). A reward judge's rewards are cached by
    :class:`CachingRewardScorer`; a generative judge's completions by its CachingBackend."""
    from judgetrain.judging.judge import Judge

    options: dict[str, Any] = {"card": card, "batch_size": batch_size, "progress": progress}
    if api_key_env:
        options["api_key_env"] = api_key_env
    judge = Judge.from_card(target, cache=cache, **options)
    if getattr(judge, "kind", None) == "reward" and cache is not None:
        judge.scorer = CachingRewardScorer(judge.scorer, cache)
    return judge


def judge_record(judge: Any) -> dict[str, Any]:
    """What every output row says about the judge: the card's name, template and kind, and for a
    generative judge its protocol (a pairwise judge's points are tournament wins)."""
    card = judge.card
    kind = card.kind if card is not None else getattr(judge, "kind", "generative")
    record: dict[str, Any] = {"name": card.name if card is not None else None,
                              "template": card.template if card is not None else judge.format.name, "kind": kind}
    if kind != "reward":
        record["protocol"] = judge.format.protocol
    return record


def _cache_counts(judge: Any) -> tuple[int, int] | None:
    """(hits, misses) of the judge's result cache, or None without one."""
    owner = judge.scorer if getattr(judge, "kind", None) == "reward" else judge.backend
    if not hasattr(owner, "num_hits"):
        return None
    return owner.num_hits, owner.num_misses


# --- ranking -----------------------------------------------------------------------------------


@dataclass
class RerankSummary:
    """What a run did: prompts ranked (now and by an earlier, killed run), bad rows skipped,
    judgments made and unread, and the result cache's hits and misses."""

    out: Path
    num_prompts: int = 0
    num_resumed: int = 0
    num_ranked_now: int = 0
    num_without_verdict: int = 0
    num_judgments: int = 0
    num_unread: int = 0
    cache_counts: tuple[int, int] | None = None
    judge: dict[str, Any] = field(default_factory=dict)
    method: str | None = None
    read_report: ReadReport = field(default_factory=ReadReport)


def ranked_row(row: CandidateRow, result: Any, record: dict[str, Any]) -> dict[str, Any]:
    """The output row of one prompt from its :class:`~judgetrain.client.RerankResult`."""
    decided = len(row.candidates) == 1 or result.num_unread < len(result.judgments)
    best = result.best_index if decided else None
    points_key = "wins" if record.get("protocol") == "pairwise" else "scores"
    return {"id": row.id, "best_index": best, "best": row.candidates[best] if best is not None else None,
            points_key: result.points, "ranking": result.ranking if decided else None, "method": result.method,
            "num_judgments": len(result.judgments), "num_unread": result.num_unread, "judge": record}


def _read_finished(partial: Path, record: dict[str, Any], wanted: dict[str, CandidateRow]) -> dict[str, dict[str, Any]]:
    """The rows an earlier run of this command finished, by id key. A last line the kill cut short is
    dropped (the file is truncated to the rows before it), so appending continues a whole file."""
    if not partial.is_file():
        return {}
    data = partial.read_bytes()
    finished: dict[str, dict[str, Any]] = {}
    whole_bytes = 0
    for line in data.split(b"\n")[:-1]:  # the piece after the last newline was never finished
        try:
            row = json.loads(line)
        except ValueError:
            break
        if not isinstance(row, dict) or "id" not in row:
            break
        if row.get("judge") != record:
            raise ValueError(f"{partial}: an earlier, unfinished run ranked with judge {row.get('judge')} and this one "
                             f"ranks with {record}; rerun with that judge to finish it, or delete {partial} to start over")
        key = _row_key(row["id"])
        if key not in wanted:
            raise ValueError(f"{partial}: holds id {row['id']!r}, which --input no longer has; delete {partial} to start over")
        finished[key] = row
        whole_bytes += len(line) + 1
    if whole_bytes < len(data):
        with partial.open("r+b") as handle:
            handle.truncate(whole_bytes)
    return finished


def rerank_file(judge: Any, input_path: str | os.PathLike[str], out: str | os.PathLike[str], *,
                batch_prompts: int = DEFAULT_BATCH_PROMPTS, on_bad_row: str = "error") -> RerankSummary:
    """Rank every prompt of ``input_path`` with ``judge`` and write one row per prompt to ``out``
    (see the module doc: written as it goes, resumed after a kill, renamed into place at the end)."""
    from judgetrain.client import rerank_batch

    if batch_prompts < 1:
        raise ValueError(f"--batch-prompts must be >= 1, got {batch_prompts}")
    out = Path(out)
    report = ReadReport(source="rerank")
    judge_format = judge.format if getattr(judge, "kind", None) != "reward" else None
    rows = read_candidate_rows(input_path, on_bad_row=on_bad_row, report=report, judge_format=judge_format)
    if not rows:
        raise ValueError(f"--input {input_path}: no candidate rows to rank")
    record = judge_record(judge)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    finished = _read_finished(partial, record, {_row_key(r.id): r for r in rows})
    todo = [r for r in rows if _row_key(r.id) not in finished]
    summary = RerankSummary(out=out, num_prompts=len(rows), num_resumed=len(finished), judge=record, read_report=report)
    with partial.open("a", encoding="utf-8") as handle:
        for start in range(0, len(todo), batch_prompts):
            batch = todo[start:start + batch_prompts]
            results = rerank_batch(judge, [r.question for r in batch], [list(r.candidates) for r in batch],
                                   references=[r.reference for r in batch])
            for row, result in zip(batch, results):
                ranked = ranked_row(row, result, record)
                handle.write(json.dumps(ranked, ensure_ascii=False) + "\n")
                summary.num_ranked_now += 1
                summary.num_judgments += len(result.judgments)
                summary.num_unread += result.num_unread
                summary.num_without_verdict += ranked["best_index"] is None
                if len(row.candidates) > 1:
                    summary.method = result.method
            # Each finished batch is on disk before the next one starts: a kill loses only the batch in flight.
            handle.flush()
            os.fsync(handle.fileno())
    summary.num_without_verdict += sum(1 for r in finished.values() if r.get("best_index") is None)
    os.replace(partial, out)
    summary.cache_counts = _cache_counts(judge)
    return summary


def print_summary(summary: RerankSummary, file: TextIO | None = None) -> None:
    """The run's summary, a few lines, to ``file`` (default: the standard output at call time)."""
    file = file if file is not None else sys.stdout
    judge = summary.judge
    print(f"ranked {summary.num_prompts} prompts -> {summary.out} "
          f"({summary.num_resumed} by an earlier run, {summary.num_ranked_now} now)", file=file)
    print(f"  judge: {judge.get('name')} ({judge.get('kind')}, template {judge.get('template')}"
          f"{', ' + summary.method if summary.method else ''})", file=file)
    report = summary.read_report
    if report.rows_skipped:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(report.skipped.items()))
        print(f"  bad rows skipped: {report.rows_skipped} ({reasons})", file=file)
        for reason, examples in sorted(report.skipped_examples.items()):
            for example in examples:
                print(f"    {reason}: {example}", file=file)
    print(f"  judgments this run: {summary.num_judgments}, without a verdict: {summary.num_unread}; "
          f"prompts with no verdict at all (best_index null): {summary.num_without_verdict}", file=file)
    if summary.cache_counts is not None:
        hits, misses = summary.cache_counts
        print(f"  result cache: {hits} calls answered from it, {misses} made", file=file)


def run(args: argparse.Namespace) -> int:
    from judgetrain.judging.cache import run_cache_path
    from judgetrain.judging.cli import default_cache_path

    for name in ("batch_prompts", "batch_size"):
        value = getattr(args, name)
        if value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if not Path(args.input).is_file():
        raise ValueError(f"--input {args.input}: no such file; give a JSONL file of candidate rows")
    cache = run_cache_path(args.cache, no_cache=args.no_cache, default=default_cache_path())
    judge = load_judge(args.judge, card=args.card, cache=cache, batch_size=args.batch_size, api_key_env=args.api_key_env,
                       progress=not args.no_progress)
    try:
        summary = rerank_file(judge, args.input, args.out, batch_prompts=args.batch_prompts, on_bad_row=args.on_bad_row)
    finally:
        judge.backend.close()
    print_summary(summary)
    return 0


__all__ = ["configure", "run", "CandidateRow", "candidate_row", "read_candidate_rows", "CachingRewardScorer", "load_judge",
           "judge_record", "ranked_row", "rerank_file", "RerankSummary", "print_summary"]
