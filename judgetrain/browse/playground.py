"""The playground: judge a typed question and one or two answers with ``tiny``, an export dir, a
served judge or any OpenAI-compatible chat model.

An export dir and a served judge (``judgetrain serve`` of an export, or ``vllm serve`` with the
export's card given) are built from their card by :func:`judgetrain.judging.protocol.judge_from_card`
(either kind: a generative judge, or a reward judge scoring each answer), and a pair is judged with
the judge's ``compare``: the template, parser mode, tie policy and decoding are the card's, so the
page shows what the client returns. ``tiny``
and a plain OpenAI-compatible model (``api``) have no card: the template is picked on the form and
a disagreement between the two orders is kept as ``inconsistent``.

Where requests may go is fixed when the playground is made, never by a request: the base URLs a
served judge or an API model may be reached at (``allowed_base_urls``), and the environment
variable whose key is sent to them as a Bearer token (``api_key_env``; None sends no key at all).
A choice naming another URL is refused with :class:`RefusedChoice`.

Either way a pair is judged in both orders and the page shows each order's verdict, raw text and
critique next to the aggregate. Judges are built once and kept, so the second question to the same
model does not reload it; one lock lets a single judging run at a time (a CPU model is not shared
between threads).
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

from judgetrain.types import Answer, JudgeSample, Judgment

DEFAULT_PAIRWISE_FORMAT = "judgelm-v1"
DEFAULT_SINGLE_FORMAT = "judgelm-single-v1"
DEFAULT_MAX_NEW_TOKENS = 128
"""The generation budget of a judge without a card when the form leaves it empty."""
CARD_BATCH_SIZE = 2
"""Requests a card judge runs at once: the two orders of one pair."""

JUDGE_KINDS = ("tiny", "export", "url", "api")
REMOTE_KINDS = ("url", "api")
"""The kinds whose ``target`` is a base URL (one of the playground's allowed base URLs)."""

ENV_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class RefusedChoice(ValueError):
    """A judge choice the playground was not started to allow (a base URL outside its list)."""


@dataclass(frozen=True)
class JudgeChoice:
    """Which judge the playground calls.

    ``kind`` is ``tiny`` (the random test model), ``export`` (``target`` is a dir written by
    ``judgetrain export``), ``url`` (``target`` is a server of an exported judge; ``card`` names
    the export dir or judge_card.json when the server publishes no card, as ``vllm serve``) or
    ``api`` (``target`` is any OpenAI-compatible server; ``model`` empty asks ``/v1/models``).
    For ``url`` and ``api``, ``target`` must be one of the playground's allowed base URLs; the key
    sent (if any) is the playground's, never the choice's.
    """

    kind: str
    target: str = ""
    model: str = ""
    card: str = ""

    def key(self) -> tuple[str, ...]:
        """What identifies the judge built for this choice (checked: a ValueError says what to fix)."""
        if self.kind not in JUDGE_KINDS:
            raise ValueError(f"judge kind must be one of {', '.join(JUDGE_KINDS)}, got {self.kind!r}")
        if self.kind == "tiny":
            return ("tiny",)
        if self.kind == "export":
            if not self.target or not Path(self.target).is_dir():
                raise ValueError(f"export dir {self.target!r} does not exist; give the directory `judgetrain export` wrote")
            return ("export", str(Path(self.target).resolve()))
        if not self.target.startswith(("http://", "https://")):
            raise ValueError(f"judge URL {self.target!r} must start with http:// or https:// (e.g. http://127.0.0.1:8000/v1)")
        if self.kind == "url":
            return ("url", _api_root(self.target), self.model, self.card)
        return ("api", _api_root(self.target), self.model)


def _api_root(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def checked_base_url(url: str) -> str:
    """``url`` as an allowed base URL (trailing ``/`` dropped), checked: http(s), a host, and no
    credentials, query or fragment (a ValueError says what to fix)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"allowed base URL {url!r} must be http:// or https:// with a host, e.g. http://127.0.0.1:8000/v1")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"allowed base URL {url!r} holds credentials; give the key with --api-key-env NAME instead")
    if parts.query or parts.fragment:
        raise ValueError(f"allowed base URL {url!r} has a query or fragment; give the server's root, e.g. {parts.scheme}://{parts.netloc}/v1")
    return url.strip().rstrip("/")


def checked_api_key_env(name: str) -> str:
    """``name`` as the environment variable holding the API key, checked: a variable name that is set."""
    if not ENV_VAR_NAME.fullmatch(name):
        raise ValueError(f"--api-key-env {name!r} is not an environment variable name (letters, digits, _), e.g. OPENAI_API_KEY")
    if not os.environ.get(name, "").strip():
        raise ValueError(f"--api-key-env {name}: ${name} is not set; export {name}=... before starting, or leave --api-key-env out to send no key")
    return name


def _key_headers(api_key_env: str | None) -> dict[str, str]:
    key = os.environ.get(api_key_env, "").strip() if api_key_env else ""
    return {"Authorization": f"Bearer {key}"} if key else {}


def _served_model(api_root: str, api_key_env: str | None) -> str:
    """The first model a server lists on ``/v1/models`` (a judge server serves one)."""
    import httpx

    try:
        listing = httpx.get(f"{api_root}/models", headers=_key_headers(api_key_env), timeout=10).json()
        return str(listing["data"][0]["id"])
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as err:
        # Only the error's type: an HTTP library may quote request headers (the key) in its message.
        raise ValueError(f"could not read the model id from {api_root}/models ({type(err).__name__}); type the model name") from None


class Playground:
    """Builds judges on demand, keeps them, and judges one sample at a time.

    ``allowed_base_urls`` are the only servers a ``url`` or ``api`` choice may reach (none: neither
    kind can be used); ``api_key_env`` names the variable whose key is sent to them as a Bearer
    token by an ``api`` judge (None: no key is sent, whatever the environment holds)."""

    def __init__(self, allowed_base_urls: Sequence[str] = (), api_key_env: str | None = None) -> None:
        self.allowed_base_urls = tuple(dict.fromkeys(checked_base_url(u) for u in allowed_base_urls))
        self._allowed_api_roots = {_api_root(u) for u in self.allowed_base_urls}
        self.api_key_env = api_key_env or None
        self._judges: dict[tuple[str, ...], Any] = {}
        self._backends: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()

    def check_choice(self, choice: JudgeChoice) -> None:
        """Refuse (:class:`RefusedChoice`) a ``url`` or ``api`` choice whose base URL is not allowed."""
        if choice.kind not in REMOTE_KINDS:
            return
        if not self.allowed_base_urls:
            raise RefusedChoice("no base URL is allowed: start judgetrain browse with --allow-base-url URL "
                                "to judge with a served judge or an API model")
        if _api_root(choice.target) not in self._allowed_api_roots:
            raise RefusedChoice(f"base URL {choice.target!r} is not allowed; pick one of {', '.join(self.allowed_base_urls)} "
                                "or start judgetrain browse with --allow-base-url for it")

    def card_judge(self, choice: JudgeChoice):
        """The judge an export dir or a served judge's card describes, of either kind (built once per choice)."""
        from judgetrain.judging.protocol import judge_from_card

        assert choice.kind in ("export", "url"), "only exports and served judges have a card"
        self.check_choice(choice)
        key = choice.key()
        if key not in self._judges:
            options: dict[str, Any] = {"batch_size": CARD_BATCH_SIZE}
            if choice.kind == "url":
                options.update(model=choice.model or None, card=choice.card or None)
            self._judges[key] = judge_from_card(choice.target, **options)
        return self._judges[key]

    def _backend(self, choice: JudgeChoice):
        """The backend of a judge without a card (``tiny`` or an OpenAI-compatible model)."""
        from judgetrain.judging import make_backend

        self.check_choice(choice)
        key = choice.key()
        if key not in self._backends:
            if choice.kind == "api":
                from judgetrain.judging.backends.openai_http import OpenAIHTTPBackend

                root = _api_root(choice.target)
                model = choice.model or _served_model(root, self.api_key_env)
                # Built directly: make_backend drops a None api_key_env, and the backend's default
                # would then send $OPENAI_API_KEY to whatever server was picked.
                self._backends[key] = OpenAIHTTPBackend(model, base_url=root, api_key_env=self.api_key_env, max_retries=1)
            else:
                self._backends[key] = make_backend("tiny")
        return self._backends[key]

    def judge(self, question: str, answers: list[str], choice: JudgeChoice, format_name: str = "",
              max_new_tokens: int | None = None) -> Judgment:
        """The Judgment of ``answers`` (one or two) to ``question`` by the chosen judge.

        ``format_name`` empty takes the judge card's template (export, url) or judgelm's; a card
        judge refuses any other. ``max_new_tokens`` None takes the card's budget, else
        :data:`DEFAULT_MAX_NEW_TOKENS`."""
        from judgetrain import formats
        from judgetrain.judging import Judge, default_decoding

        answers = [a for a in answers if a.strip()]
        if not question.strip():
            raise ValueError("type a question")
        if len(answers) not in (1, 2):
            raise ValueError("type one answer (single grading) or two (pairwise)")
        if max_new_tokens is not None and not 1 <= max_new_tokens <= 4096:
            raise ValueError(f"max new tokens must be in 1..4096, got {max_new_tokens}")
        protocol = "pairwise" if len(answers) == 2 else "single"
        sample = JudgeSample(id="playground", source="playground", question=question,
                             answers=tuple(Answer(text=a) for a in answers))
        with self._lock:
            if choice.kind in ("export", "url"):
                judge = self.card_judge(choice)
                if format_name and format_name != judge.format.name:
                    raise ValueError(f"this judge's card fixes the template {judge.format.name} (the one it was trained on); "
                                     "leave the template on default")
                if judge.kind == "reward" and max_new_tokens is not None:
                    raise ValueError("a reward judge generates nothing; leave max new tokens empty")
                if judge.kind != "reward":  # a reward judge grades one answer or compares two
                    _check_protocol(judge.format, protocol, len(answers))
                judge.format.check_sample(sample)
                if max_new_tokens is not None and max_new_tokens != judge.decoding.max_new_tokens:
                    # Same backend and card settings; only the generation budget differs.
                    card = judge.card.with_decoding(max_new_tokens=max_new_tokens)
                    judge = Judge(judge.format, judge.backend, **card.judge_options())
                if protocol == "pairwise":
                    return judge.compare(question, answers[0], answers[1])
                return judge.judge([sample])[0]
            fmt = formats.get(format_name or (DEFAULT_PAIRWISE_FORMAT if protocol == "pairwise" else DEFAULT_SINGLE_FORMAT))
            _check_protocol(fmt, protocol, len(answers))
            fmt.check_sample(sample)
            judge = Judge(fmt, self._backend(choice), default_decoding(fmt, max_new_tokens=max_new_tokens or DEFAULT_MAX_NEW_TOKENS),
                          both_orders=True, disagreement_policy="inconsistent")
            return judge.judge([sample])[0]

    def close(self) -> None:
        for judge in self._judges.values():
            judge.backend.close()
        for backend in self._backends.values():
            backend.close()
        self._judges.clear()
        self._backends.clear()


def _check_protocol(fmt, protocol: str, num_answers: int) -> None:
    if fmt.protocol != protocol:
        raise ValueError(f"template {fmt.name} is {fmt.protocol}, but {num_answers} answer(s) were given; "
                         f"{'type a second answer' if fmt.protocol == 'pairwise' else 'pick a ' + protocol + ' template'}")
