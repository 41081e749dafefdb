"""Where a judge lives: an export dir (or its ``judge_card.json``) or the URL of a server of one.

Every judge built from a card starts here: :func:`load_card` reads the card of either target (the
file of an export dir, or ``GET /v1/judge_card`` of ``judgetrain serve``; ``card=`` gives it for a
server that publishes none, such as ``vllm serve``), and :func:`generative_backend` builds the backend
a generative card's judge runs on (transformers or vLLM for a dir, the server's chat route for a URL).
A reward card's scorer is built by :mod:`judgetrain.reward.judge`. :func:`check_against_card` refuses
settings that contradict a card; :func:`refuse_reward_model_dir` refuses a reward model without a
card where a generative model is expected.

This module sits under both judge kinds (:mod:`judgetrain.judging.judge`,
:mod:`judgetrain.reward.judge`) and imports neither; it reads cards only through :mod:`judgetrain.card`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from judgetrain.card import JudgeCard, card_path, read_card

CARD_ROUTE = "/v1/judge_card"
"""Where ``judgetrain serve`` publishes the served export's card."""

LOCAL_BACKENDS = ("hf", "vllm")
"""Backends that run a generative export dir on this machine (``hf``: transformers, the default)."""
SERVED_BACKEND = "openai"
"""The backend of a served judge: its OpenAI-compatible chat route."""


def is_served(target: str | os.PathLike[str]) -> bool:
    """Whether ``target`` is the URL of a server (``http://`` or ``https://``) rather than a local path."""
    return str(target).startswith(("http://", "https://"))


def api_root(url: str) -> str:
    """``http://host:port`` or ``http://host:port/v1`` → ``http://host:port/v1``."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


def auth_headers(api_key_env: str | None) -> dict[str, str]:
    """The Authorization header for the key in ``$api_key_env`` (none when unset), as the HTTP backend sends it."""
    key = os.environ.get(api_key_env, "").strip() if api_key_env else ""
    return {"Authorization": f"Bearer {key}"} if key else {}


def fetch_card(url: str, *, timeout_seconds: float = 30, api_key_env: str | None = None) -> JudgeCard:
    """The judge card a server publishes at ``/v1/judge_card`` (sending the key in ``$api_key_env``, if any)."""
    import httpx

    where = api_root(url) + CARD_ROUTE.removeprefix("/v1")
    try:
        response = httpx.get(where, timeout=timeout_seconds, headers=auth_headers(api_key_env))
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


def served_model_id(root: str, *, timeout_seconds: float = 30, api_key_env: str | None = None) -> str:
    """The first model a server lists at ``/v1/models`` (the one ``judgetrain serve`` serves)."""
    import httpx

    try:
        response = httpx.get(f"{root}/models", timeout=timeout_seconds, headers=auth_headers(api_key_env))
    except httpx.HTTPError as err:
        raise ValueError(f"{root}/models: {type(err).__name__}: {err}; is the server running?") from None
    if response.status_code != 200:
        raise ValueError(f"{root}/models: HTTP {response.status_code}; pass model=<the served model id>")
    models = response.json().get("data") or []
    if not models:
        raise ValueError(f"{root}/models lists no model; pass model=<the served model id>")
    return models[0]["id"]


def load_card(target: str | os.PathLike[str], *, card: str | os.PathLike[str] | dict | JudgeCard | None = None,
              api_key_env: str | None = None) -> JudgeCard:
    """The judge card of ``target`` (an export dir, its judge_card.json, or a server's URL).

    ``card`` gives the card instead (an export dir, a judge_card.json, the parsed JSON or a
    :class:`~judgetrain.card.JudgeCard`): needed for a server that publishes none."""
    if isinstance(card, JudgeCard):
        return card
    if isinstance(card, dict):
        return JudgeCard.from_dict(card, "card=")
    if card is not None:
        return read_card(card)
    if is_served(target):
        return fetch_card(str(target), api_key_env=api_key_env)
    return read_card(target)


def model_dir(target: str | os.PathLike[str]) -> str:
    """The model dir of a local target: the export dir itself, or the dir holding the given judge_card.json."""
    path = Path(target)
    return str(path if path.is_dir() else card_path(path).parent)


def card_where(target: str | os.PathLike[str], card: Any = None) -> str:
    """How errors name the card of ``target``: the card file, or the server's card route."""
    if card is not None and not isinstance(card, (dict, JudgeCard)):
        return str(card_path(card))
    if is_served(target):
        return api_root(str(target)) + CARD_ROUTE.removeprefix("/v1")
    return str(card_path(target))


def check_against_card(card: JudgeCard, target: str, *, where: str, format_name: str | None = None,
                       backend_name: str | None = None, max_new_tokens: int | None = None) -> None:
    """ValueError when a setting contradicts ``card`` (the card of ``target``, read from ``where``):
    ``format_name`` other than the card's template, a ``backend_name`` or a ``max_new_tokens`` for a
    reward judge (it is scored by its own head and generates nothing)."""
    if card.kind == "reward":
        what = (f"{target} is a reward judge (its judge card {where} says kind reward, template {card.template}): "
                "it scores each answer's conversation alone with its sequence-classification head and writes no judgment")
        how = "its card sets it up, e.g. `judgetrain judge --model " + f"{target} --input SAMPLES.jsonl --out JUDGMENTS.jsonl`"
        if format_name is not None and format_name != card.template:
            raise ValueError(f"--format {format_name}: {what}, so it cannot judge with {format_name}; drop --format ({how})")
        if backend_name is not None:
            route = "the server's /pooling route" if is_served(target) else "transformers on this machine"
            raise ValueError(f"--backend {backend_name}: {what}; it is scored through {route}, not by a generative backend; "
                             f"drop --backend ({how})")
        if max_new_tokens is not None:
            raise ValueError(f"--max-new-tokens {max_new_tokens}: {what}, so it generates nothing; drop --max-new-tokens")
        return
    if format_name is not None and format_name != card.template:
        raise ValueError(f"--format {format_name}: the judge card {where} fixes the template {card.template} (the one the "
                         "judge was trained on); drop --format, or give a judge trained on " + format_name)


def refuse_reward_model_dir(model: str, format_name: str) -> None:
    """ValueError when ``model`` is a local sequence-classification (reward) model without a judge card:
    loaded as a causal LM it would be its untrained base model writing ``format_name`` judgments."""
    import json

    path = Path(model)
    if not path.is_dir():
        return
    architectures: list[str] = []
    if (path / "config.json").is_file():
        architectures = json.loads((path / "config.json").read_text(encoding="utf-8")).get("architectures") or []
    adapter_task = None
    if (path / "adapter_config.json").is_file():
        adapter_task = json.loads((path / "adapter_config.json").read_text(encoding="utf-8")).get("task_type")
    if adapter_task == "SEQ_CLS" or (architectures and all(a.endswith("ForSequenceClassification") for a in architectures)):
        raise ValueError(f"{model} is a reward model (a sequence-classification head, no judge card): it scores "
                         f"answers and cannot write {format_name} judgments. Export it (`judgetrain export --checkpoint {model} "
                         "--out DIR`) and judge with the export dir as its judge card says (no --format)")


def generative_backend(target: str | os.PathLike[str], *, backend_name: str | None = None, model: str | None = None,
                       batch_size: int = 8, dtype: str | None = None, api_key_env: str | None = None) -> Any:
    """The backend a generative card's judge runs on: for an export dir, transformers (``backend_name``
    None or ``hf``) or vLLM (``vllm``); for a URL, the server's OpenAI-compatible chat route
    (``backend_name`` None or ``openai``; ``model`` None asks ``/v1/models``). A backend that cannot
    run the target is a ValueError saying which one can."""
    if is_served(target):
        if backend_name not in (None, SERVED_BACKEND):
            raise ValueError(f"backend {backend_name!r}: {target} is a served judge, reached over HTTP "
                             f"(backend {SERVED_BACKEND!r}); drop the backend, or give the export dir to run it here")
        if dtype is not None:
            raise ValueError(f"dtype={dtype!r}: {target} is a served judge; its server chose the dtype")
        from judgetrain.judging.backends.openai_http import OpenAIHTTPBackend

        root = api_root(str(target))
        served_id = model or served_model_id(root, api_key_env=api_key_env)
        # A self-hosted judge bills nothing per token; an unknown price would only warn.
        return OpenAIHTTPBackend(served_id, base_url=root, api_key_env=api_key_env, price_table={served_id: (0.0, 0.0)},
                                 max_concurrency=batch_size)
    if backend_name not in (None, *LOCAL_BACKENDS):
        raise ValueError(f"backend {backend_name!r}: {target} is an export dir, run on this machine with "
                         f"{' or '.join(LOCAL_BACKENDS)}; serve it (judgetrain serve) to judge it over HTTP")
    if api_key_env is not None:
        raise ValueError(f"api_key_env={api_key_env!r}: {target} is an export dir, judged on this machine; "
                         "a key goes with a served judge's URL")
    options = {"dtype": dtype} if dtype is not None else {}
    if backend_name == "vllm":
        from judgetrain.judging.backends.vllm_backend import VLLMBackend

        return VLLMBackend(model_dir(target), **options)
    from judgetrain.judging.backends.transformers_backend import TransformersBackend

    return TransformersBackend(model_dir(target), batch_size=batch_size, **options)


__all__ = ["CARD_ROUTE", "LOCAL_BACKENDS", "SERVED_BACKEND", "is_served", "api_root", "auth_headers", "fetch_card",
           "served_model_id", "load_card", "model_dir", "card_where", "check_against_card", "refuse_reward_model_dir",
           "generative_backend"]
