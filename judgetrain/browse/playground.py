"""The playground: judge a typed question and one or two answers with ``tiny``, an export dir, a
served judge or any OpenAI-compatible chat model.

An export dir and a served judge (``judgetrain serve`` of an export, or ``vllm serve`` with the
export's card given) are built with :meth:`judgetrain.Judge.from_card` (the card read and checked by
:mod:`judgetrain.card`), and a pair is judged with :meth:`~judgetrain.judging.Judge.compare`: the template, parser
mode, tie policy and decoding are the card's, so the page shows what the client returns. ``tiny``
and a plain OpenAI-compatible model (``api``) have no card: the template is picked on the form and
a disagreement between the two orders is kept as ``inconsistent``.

Either way a pair is judged in both orders and the page shows each order's verdict, raw text and
critique next to the aggregate. Judges are built once and kept, so the second question to the same
model does not reload it; one lock lets a single judging run at a time (a CPU model is not shared
between threads).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from judgetrain.types import Answer, JudgeSample, Judgment

DEFAULT_PAIRWISE_FORMAT = "judgelm-v1"
DEFAULT_SINGLE_FORMAT = "judgelm-single-v1"
DEFAULT_MAX_NEW_TOKENS = 128
"""The generation budget of a judge without a card when the form leaves it empty."""
CARD_BATCH_SIZE = 2
"""Requests a card judge runs at once: the two orders of one pair."""

JUDGE_KINDS = ("tiny", "export", "url", "api")


@dataclass(frozen=True)
class JudgeChoice:
    """Which judge the playground calls.

    ``kind`` is ``tiny`` (the random test model), ``export`` (``target`` is a dir written by
    ``judgetrain export``), ``url`` (``target`` is a server of an exported judge; ``card`` names
    the export dir or judge_card.json when the server publishes no card, as ``vllm serve``) or
    ``api`` (``target`` is any OpenAI-compatible server; ``model`` empty asks ``/v1/models``;
    ``api_key_env`` names the environment variable holding its key, if it needs one).
    """

    kind: str
    target: str = ""
    model: str = ""
    api_key_env: str = ""
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
            return ("url", self.target, self.model, self.card)
        return ("api", self.target, self.model, self.api_key_env)


def _api_root(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def _served_model(api_root: str) -> str:
    """The first model a server lists on ``/v1/models`` (a judge server serves one)."""
    import httpx

    try:
        listing = httpx.get(f"{api_root}/models", timeout=10).json()
        return str(listing["data"][0]["id"])
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as err:
        raise ValueError(f"could not read the model id from {api_root}/models ({err}); type the model name") from None


class Playground:
    """Builds judges on demand, keeps them, and judges one sample at a time."""

    def __init__(self) -> None:
        self._judges: dict[tuple[str, ...], Any] = {}
        self._backends: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()

    def card_judge(self, choice: JudgeChoice):
        """The Judge an export dir or a served judge's card describes (built once per choice)."""
        from judgetrain import Judge

        key = choice.key()
        assert choice.kind in ("export", "url"), "only exports and served judges have a card"
        if key not in self._judges:
            options: dict[str, Any] = {"batch_size": CARD_BATCH_SIZE}
            if choice.kind == "url":
                options.update(model=choice.model or None, card=choice.card or None)
            self._judges[key] = Judge.from_card(choice.target, **options)
        return self._judges[key]

    def _backend(self, choice: JudgeChoice):
        """The backend of a judge without a card (``tiny`` or an OpenAI-compatible model)."""
        from judgetrain.judging import make_backend

        key = choice.key()
        if key not in self._backends:
            if choice.kind == "api":
                root = _api_root(choice.target)
                model = choice.model or _served_model(root)
                # No key is sent unless the user names the variable holding one (local servers need none).
                self._backends[key] = make_backend(f"openai:{model}", base_url=root,
                                                   api_key_env=choice.api_key_env or None, max_retries=1)
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
