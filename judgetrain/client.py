"""Use an exported judge: build a Judge from its card, compare two answers, rerank candidates.

    judge = judgetrain.Judge.from_card("judges/my-judge")            # local dir: transformers backend
    judge = judgetrain.Judge.from_card("http://127.0.0.1:8000")      # a server: card from GET /v1/judge_card
    judge.compare("What is 2+2?", "4", "5").winner                    # "A"
    judge.rerank("Name a prime.", ["9", "7", "4"]).best_index         # 1

A card fixes what a judge must be asked with: the template (so the prompt is the one it was trained
on), the parser mode, both-orders judging with its disagreement policy, how the two orders are
aggregated (their verdicts, or their mean verdict probabilities with the card's tie margin), and the
default decoding.
A server (``judgetrain serve`` or ``vllm serve`` of an export dir) applies the export's own chat
template to the messages, so the prompt the model reads is the same in both places. ``vllm serve``
has no card route: give the card with ``card=`` (the export dir or its judge_card.json).
The card is read and checked by :mod:`judgetrain.card`; :meth:`~judgetrain.card.JudgeCard.judge_options`
turns it into the Judge's arguments.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from judgetrain.card import JudgeCard, read_card
from judgetrain.types import Answer, JudgeSample, Judgment

CARD_ROUTE = "/v1/judge_card"


def _api_root(url: str) -> str:
    """``http://host:port`` or ``http://host:port/v1`` → ``http://host:port/v1``."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


def _auth_headers(api_key_env: str | None) -> dict[str, str]:
    """The Authorization header for the key in ``$api_key_env`` (none when unset), as the HTTP backend sends it."""
    import os

    key = os.environ.get(api_key_env, "").strip() if api_key_env else ""
    return {"Authorization": f"Bearer {key}"} if key else {}


def fetch_card(url: str, *, timeout_seconds: float = 30, api_key_env: str | None = None) -> JudgeCard:
    """The judge card a server publishes at ``/v1/judge_card`` (sending the key in ``$api_key_env``, if any)."""
    import httpx

    where = _api_root(url) + CARD_ROUTE.removeprefix("/v1")
    try:
        response = httpx.get(where, timeout=timeout_seconds, headers=_auth_headers(api_key_env))
    except httpx.HTTPError as err:
        raise ValueError(f"{where}: could not fetch the judge card ({type(err).__name__}: {err}); is the server running?") from None
    if response.status_code == 404:
        raise ValueError(f"{where}: the server publishes no judge card (vllm serve does not); pass card=<export dir or judge_card.json>")
    if response.status_code == 401:
        raise ValueError(f"{where}: the server needs an API key; pass api_key_env=<the variable holding it>"
                         + (f" (check the key in ${api_key_env})" if api_key_env else ""))
    if response.status_code != 200:
        raise ValueError(f"{where}: HTTP {response.status_code} while fetching the judge card")
    try:
        published = response.json()
    except ValueError:
        raise ValueError(f"{where}: the server's judge card is not JSON") from None
    return JudgeCard.from_dict(published, where)


def _served_model_id(api_root: str, timeout_seconds: float = 30, api_key_env: str | None = None) -> str:
    import httpx

    response = httpx.get(f"{api_root}/models", timeout=timeout_seconds, headers=_auth_headers(api_key_env))
    response.raise_for_status()
    models = response.json().get("data") or []
    if not models:
        raise ValueError(f"{api_root}/models lists no model")
    return models[0]["id"]


def judge_from_card(judge_cls, path_or_url: str | Path, *, card: str | Path | dict | JudgeCard | None = None,
                    model: str | None = None, batch_size: int = 8, progress: bool = False,
                    api_key_env: str | None = None, **judge_options: Any):
    """A ``judge_cls`` (Judge) set up as the card says: see :meth:`judgetrain.judging.Judge.from_card`.

    ``card`` gives the card when ``path_or_url`` has none to read (a ``vllm serve`` URL): an export
    dir, its judge_card.json, the parsed JSON or a :class:`~judgetrain.card.JudgeCard`. A reward card
    gives a :class:`~judgetrain.reward.judge.RewardJudge` whatever ``judge_cls`` is. ``api_key_env``
    names the environment variable holding a server's API key (``judgetrain serve --api-key-env``,
    ``vllm serve --api-key``); None sends no key."""
    target = str(path_or_url)
    remote = target.startswith(("http://", "https://"))
    if isinstance(card, JudgeCard):
        card_content = card
    elif isinstance(card, dict):
        card_content = JudgeCard.from_dict(card, "card=")
    elif card is not None:
        card_content = read_card(card)
    elif remote:
        card_content = fetch_card(target, api_key_env=api_key_env)
    else:
        card_content = read_card(target)
    if card_content.kind == "reward":
        if remote and api_key_env:
            raise ValueError(f"api_key_env={api_key_env!r}: the reward judge over HTTP sends no API key; serve the "
                             "reward export without --api-key-env, or judge with the export dir")
        return _reward_judge_from_card(target, card_content, remote=remote, model=model, batch_size=batch_size,
                                       progress=progress, **judge_options)
    if remote:
        from judgetrain.judging.backends.openai_http import OpenAIHTTPBackend

        api_root = _api_root(target)
        served_id = model or _served_model_id(api_root, api_key_env=api_key_env)
        # A self-hosted judge bills nothing per token; an unknown price would only warn.
        backend = OpenAIHTTPBackend(served_id, base_url=api_root, api_key_env=api_key_env,
                                    price_table={served_id: (0.0, 0.0)}, max_concurrency=batch_size)
    else:
        from judgetrain.judging.backends.transformers_backend import TransformersBackend

        backend = TransformersBackend(target, batch_size=batch_size)
    options: dict[str, Any] = {**card_content.judge_options(), "progress": progress}
    options.update(judge_options)
    judge = judge_cls(card_content.template, backend, **options)
    judge.card = card_content
    return judge


def _reward_judge_from_card(target: str, card: JudgeCard, *, remote: bool, model: str | None, batch_size: int,
                            progress: bool, **judge_options: Any):
    """The RewardJudge a reward card describes: a local export (transformers) or a server's ``/pooling``."""
    from judgetrain.reward.judge import HTTPRewardScorer, LocalRewardScorer, RewardJudge

    assert card.reward is not None, "a reward card has reward settings"
    if remote:
        root = _api_root(target)
        scorer = HTTPRewardScorer(root, model or _served_model_id(root), max_concurrency=batch_size)
    else:
        scorer = LocalRewardScorer(target, batch_size=batch_size, max_seq_len=card.reward.max_seq_len)
    options: dict[str, Any] = {"tie_margin": card.reward.tie_margin, "progress": progress}
    options.update({k: v for k, v in judge_options.items() if k in ("tie_margin", "both_orders")})
    judge = RewardJudge(scorer, **options)
    judge.card = card
    return judge


# --- pipeline helpers ----------------------------------------------------------------------------


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
    if len(candidates) < 1:
        raise ValueError("rerank needs at least one candidate")
    if len(candidates) == 1:
        return RerankResult(best_index=0, ranking=[0], points=[None], method="only candidate")
    if getattr(judge, "kind", None) == "reward" or judge.format.protocol == "single":
        samples = [JudgeSample(id=f"candidate-{i}", source="client", question=question, answers=(Answer(text),), reference=reference)
                   for i, text in enumerate(candidates)]
        judgments = judge.judge(samples)
        points: list[float | None] = [j.verdict.scores[0] if j.verdict is not None and j.verdict.scores else None for j in judgments]
        method = "reward per candidate" if getattr(judge, "kind", None) == "reward" else "single grade"
    else:
        pairs = list(itertools.combinations(range(len(candidates)), 2))
        samples = [pair_sample(question, candidates[i], candidates[k], sample_id=f"pair-{i}-{k}", reference=reference) for i, k in pairs]
        both = judge.both_orders
        judge.both_orders = True
        try:
            judgments = judge.judge(samples)
        finally:
            judge.both_orders = both
        totals = [0.0] * len(candidates)
        for (i, k), judgment in zip(pairs, judgments):
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
    ranking = sorted(range(len(candidates)), key=lambda i: (-(points[i] if points[i] is not None else float("-inf")), i))
    unread = sum(1 for j in judgments if j.verdict is None)
    return RerankResult(best_index=ranking[0], ranking=ranking, points=points, method=method, judgments=judgments, num_unread=unread)


__all__ = ["CARD_ROUTE", "fetch_card", "judge_from_card", "pair_sample", "compare", "rerank", "RerankResult"]

