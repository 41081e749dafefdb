"""Use an exported judge: build it from its card, compare two answers, rerank candidates.

    judge = judgetrain.Judge.from_card("judges/my-judge")            # local dir: transformers backend
    judge = judgetrain.Judge.from_card("http://127.0.0.1:8000")      # a server: card from GET /v1/judge_card
    judge.compare("What is 2+2?", "4", "5").winner                    # "A"
    judge.rerank("Name a prime.", ["9", "7", "4"]).best_index         # 1

A card fixes what a judge must be asked with: the template (so the prompt is the one it was trained
on), the parser mode, both-orders judging with its disagreement policy, how the two orders are
aggregated (their verdicts, or their mean verdict probabilities with the card's tie margin), and the
default decoding; a reward card gives a :class:`~judgetrain.reward.judge.RewardJudge`.
A server (``judgetrain serve`` or ``vllm serve`` of an export dir) applies the export's own chat
template to the messages, so the prompt the model reads is the same in both places. ``vllm serve``
has no card route: give the card with ``card=`` (the export dir or its judge_card.json).

This module gathers the client's names; they live below it: the factory of both judge kinds in
:mod:`judgetrain.judging.protocol`, card fetching in :mod:`judgetrain.judging.card_target`, compare
and rerank in :mod:`judgetrain.judging.ranking`. The card is read and checked by :mod:`judgetrain.card`.
"""

from __future__ import annotations

from judgetrain.judging.card_target import CARD_ROUTE, fetch_card
from judgetrain.judging.protocol import JudgeProtocol, judge_from_card
from judgetrain.judging.ranking import RerankResult, compare, pair_sample, rerank, rerank_batch

__all__ = ["CARD_ROUTE", "fetch_card", "judge_from_card", "JudgeProtocol", "pair_sample", "compare", "rerank", "rerank_batch",
           "RerankResult"]
