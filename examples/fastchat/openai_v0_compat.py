"""The two names of the openai 0.28 API that FastChat's MT-bench judging calls, on the installed openai
client (>= 1.0), so ``fastchat/llm_judge`` (fschat 0.2.36) runs unchanged against ``judgetrain serve``.

FastChat's ``chat_completion_openai`` (``fastchat/llm_judge/common.py``) calls
``openai.ChatCompletion.create(model=..., messages=..., n=1, temperature=..., max_tokens=...)``, reads
``response["choices"][0]["message"]["content"]`` and retries on ``openai.error.OpenAIError``; openai 1.0
removed both names. :func:`install` puts them back: ``ChatCompletion.create`` sends the same request
through ``openai.OpenAI().chat.completions.create`` and returns the response as a dict.

Where the request goes, as openai 0.28 read it: ``openai.api_base`` when FastChat sets it (its
``api_dict``), else ``$OPENAI_API_BASE``, else ``$OPENAI_BASE_URL`` (the 1.x client's own variable);
the key from ``openai.api_key`` or ``$OPENAI_API_KEY`` (any text for a ``judgetrain serve`` without
``--api-key-env``).

One setting is the judge's, not FastChat's: FastChat asks every judgment with ``max_tokens=2048``
(GPT-4's budget). A judgetrain judge is asked with the generation budget its card gives
(``decoding.max_new_tokens`` of the card the server publishes at ``/v1/judge_card``), as every
judgetrain client asks it, when that budget is smaller; a server without a card (``vllm serve``)
gets FastChat's value. Everything else FastChat sends is sent as it is.
"""

from __future__ import annotations

import os
import sys
import types
from typing import Any

import openai

_card_budgets: dict[str, int | None] = {}
"""The generation budget of the judge card each server publishes (None: it publishes none), by API root."""


def api_root() -> str | None:
    """The API root FastChat's requests go to (see the module doc), or None for the client's default."""
    return getattr(openai, "api_base", None) or os.environ.get("OPENAI_API_BASE") or os.environ.get("OPENAI_BASE_URL")


def card_budget(root: str) -> int | None:
    """``decoding.max_new_tokens`` of the judge card the server at ``root`` publishes, or None when it
    publishes none (asked once per server)."""
    if root not in _card_budgets:
        from judgetrain.client import fetch_card

        try:
            card = fetch_card(root, api_key_env="OPENAI_API_KEY")
        except ValueError:  # no card route (vllm serve), or no judgetrain server: FastChat's settings stand
            card = None
        _card_budgets[root] = card.decoding.max_new_tokens if card is not None and card.decoding is not None else None
    return _card_budgets[root]


class ChatCompletion:
    """``openai.ChatCompletion`` of openai 0.28, for the one call FastChat makes."""

    @staticmethod
    def create(**request: Any) -> dict[str, Any]:
        """The chat completion of ``request`` (openai 0.28's keyword arguments), as a dict."""
        root = api_root()
        key = getattr(openai, "api_key", None) or os.environ.get("OPENAI_API_KEY")
        budget = card_budget(root) if root else None
        if budget is not None and request.get("max_tokens", budget) > budget:
            request = {**request, "max_tokens": budget}
        client = openai.OpenAI(base_url=root, api_key=key)
        try:
            return client.chat.completions.create(**request).model_dump()
        finally:
            client.close()


def install() -> None:
    """Give the ``openai`` module the 0.28 names FastChat uses: ``ChatCompletion`` and ``error``."""
    error = types.ModuleType("openai.error")
    error.OpenAIError = openai.OpenAIError
    error.InvalidRequestError = openai.BadRequestError
    error.RateLimitError = openai.RateLimitError
    openai.error = error
    sys.modules["openai.error"] = error
    openai.ChatCompletion = ChatCompletion


__all__ = ["install", "ChatCompletion", "api_root", "card_budget"]
