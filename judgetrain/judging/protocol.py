"""The judge protocol both judge kinds speak, and the one factory that builds either from its card.

A judge is anything with :class:`JudgeProtocol`'s members: the generative
:class:`~judgetrain.judging.Judge` (a format plus a backend: it writes a judgment and parses it) and
the :class:`~judgetrain.reward.judge.RewardJudge` (one score per answer from a sequence-classification
head). Both take samples and give one :class:`~judgetrain.types.Judgment` per sample, compare two
answers in both orders, rerank candidates (:mod:`judgetrain.judging.ranking`), are built from a judge
card (``from_card``) and release what they hold (``close``).

:func:`judge_from_card` is how every command that takes a judge builds it (``judgetrain judge``,
``eval --judge``, ``rerank``, ``mtbench judge``, the playground, the client): from an export dir or a
served judge's URL, the card says which kind it is and how it must be asked. A setting that
contradicts the card (a template other than the card's, a generative backend or a generation budget
for a reward judge) is a ValueError that says so and how to judge with it instead.

Layering: this module sits above both judge kinds (it imports them to build them); they import
only what lies below them (:mod:`judgetrain.judging.card_target`, :mod:`judgetrain.judging.ranking`,
:mod:`judgetrain.card`), so no import goes back up.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Protocol, Sequence, runtime_checkable

from judgetrain.card import JudgeCard
from judgetrain.judging.card_target import card_where, check_against_card, load_card
from judgetrain.types import JudgeSample, Judgment

if TYPE_CHECKING:
    from judgetrain.judging.ranking import RerankResult


@runtime_checkable
class JudgeProtocol(Protocol):
    """What every judge offers, whatever its kind.

    ``kind`` is the card's kind (``"generative"`` or ``"reward"``); ``format`` is what the judge
    shows and reads (a :class:`~judgetrain.formats.base.JudgeFormat`, or the reward template's
    description, which has a name and protocols but no prompt or parser); ``card`` the card it was
    built from (None when built by hand); ``both_orders`` whether pairs are judged in both orders."""

    kind: str
    format: Any
    card: JudgeCard | None
    both_orders: bool

    @classmethod
    def from_card(cls, path_or_url: Any, **options: Any) -> "JudgeProtocol":
        """The judge an export dir or a served judge's URL describes."""
        ...

    def judge(self, samples: Sequence[JudgeSample]) -> list[Judgment]:
        """One Judgment per sample, in order."""
        ...

    def compare(self, question: str, answer_a: str, answer_b: str, **options: Any) -> Judgment:
        """Which of two answers is better, judged in both orders."""
        ...

    def rerank(self, question: str, candidates: Sequence[str], **options: Any) -> "RerankResult":
        """The best of ``candidates``."""
        ...

    def close(self) -> None:
        """Release the model, threads or connections the judge holds."""
        ...


def judge_from_card(card_or_url: str | os.PathLike[str], *, card: Any = None, format_name: str | None = None,
                    backend_name: str | None = None, model: str | None = None, batch_size: int = 8,
                    dtype: str | None = None, max_new_tokens: int | None = None, api_key_env: str | None = None,
                    progress: bool = False, **options: Any) -> JudgeProtocol:
    """The judge ``card_or_url`` describes, of the kind its card says.

    Args:
        card_or_url: an export dir (or its judge_card.json), or the ``http://`` URL of a server of one
            (``judgetrain serve``; its card from ``GET /v1/judge_card``).
        card: the card when the target publishes none (``vllm serve``): an export dir, a
            judge_card.json, the parsed JSON or a :class:`~judgetrain.card.JudgeCard`.
        format_name: the template the caller expects; it must be the card's (None: the card's).
        backend_name: for a generative export dir ``hf`` (default) or ``vllm``; for a URL ``openai``
            (default); a reward judge takes none.
        model: the served model id (default: the first ``/v1/models`` lists).
        batch_size: prompts (or conversations) per batch locally; requests in flight to a server.
        dtype: the weights' dtype for a local model (fp32, bf16, auto).
        max_new_tokens: replaces the card's generation budget (generative only).
        api_key_env: the environment variable holding a server's API key.
        progress: show a progress bar while judging.
        options: the judge's own arguments over the card's (e.g. ``cache=``, ``both_orders=``).
    """
    target = str(card_or_url)
    loaded = load_card(target, card=card, api_key_env=api_key_env)
    check_against_card(loaded, target, where=card_where(target, card), format_name=format_name, backend_name=backend_name,
                       max_new_tokens=max_new_tokens)
    common = dict(model=model, batch_size=batch_size, dtype=dtype, api_key_env=api_key_env, progress=progress)
    if loaded.kind == "reward":
        from judgetrain.reward.judge import RewardJudge

        return RewardJudge.from_card(target, card=loaded, **common, **options)
    from judgetrain.judging.judge import Judge

    if max_new_tokens is not None:
        loaded = loaded.with_decoding(max_new_tokens=max_new_tokens)
    return Judge.from_card(target, card=loaded, backend_name=backend_name, **common, **options)


__all__ = ["JudgeProtocol", "check_against_card", "judge_from_card"]
