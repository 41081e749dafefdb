"""What every judge of the protocol can do with its ``judge`` call: compare two answers, rerank candidates.

:func:`compare` judges a pair in both orders (whatever the judge's own setting); :func:`rerank` and
:func:`rerank_batch` pick the best of n candidates: a grading or reward judge grades each candidate
once, a pairwise judge plays a round-robin with every pair in both orders. They take any judge of
:class:`judgetrain.judging.protocol.JudgeProtocol` (the generative :class:`~judgetrain.judging.Judge`
or the :class:`~judgetrain.reward.judge.RewardJudge`), whose ``compare`` / ``rerank`` methods call
them; they need nothing but the judge's ``judge``, ``format`` and ``both_orders``, so this module
imports neither judge kind.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Sequence

from judgetrain.types import Answer, JudgeSample, Judgment


def pair_sample(question: str, answer_a: str, answer_b: str, *, sample_id: str = "compare", reference: str | None = None) -> JudgeSample:
    """A pairwise sample of two answers to ``question``."""
    return JudgeSample(id=sample_id, source="client", question=question, answers=(Answer(answer_a), Answer(answer_b)),
                       reference=reference)


def compare(judge, question: str, answer_a: str, answer_b: str, *, reference: str | None = None) -> Judgment:
    """Which of two answers is better, judged in both orders (whatever the judge's own setting) and
    aggregated: ``.winner`` is "A", "B", "tie" or None (a parse failure or error, never a tie);
    ``both_orders`` (:class:`~judgetrain.types.BothOrders`) holds each order and whether they agreed."""
    if judge.format.protocol != "pairwise":
        raise ValueError(f"compare needs a pairwise judge; {judge.format.name!r} grades one answer (use rerank)")
    sample = pair_sample(question, answer_a, answer_b, reference=reference)
    both = judge.both_orders
    judge.both_orders = True
    try:
        return judge.judge([sample])[0]
    finally:
        judge.both_orders = both


@dataclass
class RerankResult:
    """What :func:`rerank` decided.

    ``points[i]`` is candidate i's score: its grade (single grading) or its tournament points (1 per
    win, 0.5 per tie, over both orders aggregated per pair). ``ranking`` lists candidate indices,
    best first (equal points keep the candidates' order). ``judgments`` are every judgment made.
    """

    best_index: int
    ranking: list[int]
    points: list[float | None]
    method: str
    judgments: list[Judgment] = field(default_factory=list)
    num_unread: int = 0
    """Judgments that gave no verdict (parse failures, errors): they award no points."""


def rerank(judge, question: str, candidates: Sequence[str], *, reference: str | None = None) -> RerankResult:
    """Best-of-n: the judge's pick among ``candidates``.

    A single-grading judge grades each candidate once and the highest grade wins. A pairwise judge
    plays a round-robin tournament: every pair is judged in both orders (n·(n-1) calls), a win scores
    1 and a tie (including a both-orders disagreement under the tie policy) 0.5 to each.
    """
    return rerank_batch(judge, [question], [candidates], references=[reference])[0]


def rerank_batch(judge, questions: Sequence[str], candidate_lists: Sequence[Sequence[str]], *,
                 references: Sequence[str | None] | None = None) -> list[RerankResult]:
    """:func:`rerank` for several prompts at once: one result per question, in order.

    Every prompt's judge calls go to the judge in one ``judge`` call, so a batched backend (the
    transformers one, an HTTP server's queue) sees the calls of all prompts together."""
    if len(candidate_lists) != len(questions) or (references is not None and len(references) != len(questions)):
        raise ValueError(f"rerank_batch: {len(questions)} questions, {len(candidate_lists)} candidate lists and "
                         f"{len(references) if references is not None else 'no'} references; give one of each per prompt")
    for index, candidates in enumerate(candidate_lists):
        if len(candidates) < 1:
            raise ValueError(f"rerank needs at least one candidate (prompt {index} has none)")
    references = list(references) if references is not None else [None] * len(questions)
    by_reward = getattr(judge, "kind", None) == "reward" or judge.format.protocol == "single"
    plans: list[list[tuple[int, ...]]] = []  # per prompt: the candidate(s) each of its judgments is about
    samples: list[JudgeSample] = []
    for question, candidates, reference in zip(questions, candidate_lists, references):
        if len(candidates) == 1:
            plans.append([])
        elif by_reward:
            plans.append([(i,) for i in range(len(candidates))])
            samples += [JudgeSample(id=f"candidate-{i}", source="client", question=question, answers=(Answer(text),),
                                    reference=reference) for i, text in enumerate(candidates)]
        else:
            pairs = list(itertools.combinations(range(len(candidates)), 2))
            plans.append(pairs)
            samples += [pair_sample(question, candidates[i], candidates[k], sample_id=f"pair-{i}-{k}", reference=reference)
                        for i, k in pairs]
    both = judge.both_orders
    judge.both_orders = both or not by_reward  # a tournament judges every pair in both orders
    try:
        judgments = judge.judge(samples) if samples else []
    finally:
        judge.both_orders = both
    results, start = [], 0
    for candidates, plan in zip(candidate_lists, plans):
        results.append(_rerank_result(judge, len(candidates), plan, judgments[start:start + len(plan)], by_reward=by_reward))
        start += len(plan)
    return results


def _rerank_result(judge, num_candidates: int, plan: list[tuple[int, ...]], judgments: list[Judgment], *,
                   by_reward: bool) -> RerankResult:
    """The RerankResult of one prompt from its judgments (``plan[j]`` is what judgment j was about)."""
    if num_candidates == 1:
        return RerankResult(best_index=0, ranking=[0], points=[None], method="only candidate")
    if by_reward:
        points: list[float | None] = [j.verdict.scores[0] if j.verdict is not None and j.verdict.scores else None for j in judgments]
        method = "reward per candidate" if getattr(judge, "kind", None) == "reward" else "single grade"
    else:
        totals = [0.0] * num_candidates
        for (i, k), judgment in zip(plan, judgments):
            winner = judgment.winner
            if winner == "A":
                totals[i] += 1
            elif winner == "B":
                totals[k] += 1
            elif winner == "tie":
                totals[i] += 0.5
                totals[k] += 0.5
        points = list(totals)
        method = "pairwise round-robin, both orders"
    ranking = sorted(range(num_candidates), key=lambda i: (-(points[i] if points[i] is not None else float("-inf")), i))
    unread = sum(1 for j in judgments if j.verdict is None)
    return RerankResult(best_index=ranking[0], ranking=ranking, points=points, method=method, judgments=judgments, num_unread=unread)


__all__ = ["pair_sample", "compare", "rerank", "rerank_batch", "RerankResult"]
