"""The playground: judge a typed question and one or two answers with a served judge, an export dir or ``tiny``.

A pairwise sample is judged in both orders (the library's :class:`~judgetrain.judging.Judge` with
``both_orders=True`` and disagreements kept as ``inconsistent``), so the page shows each order's
verdict, raw text and critique next to the aggregate. Backends are built once per judge and kept,
so the second question to the same model does not reload it; one lock lets a single judging run at
a time (a CPU model is not shared between threads).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from judgetrain.types import Answer, JudgeSample, Judgment

DEFAULT_PAIRWISE_FORMAT = "judgelm-v1"
DEFAULT_SINGLE_FORMAT = "judgelm-single-v1"
DEFAULT_MAX_NEW_TOKENS = 128


@dataclass(frozen=True)
class JudgeChoice:
    """Which judge the playground calls: ``kind`` is ``tiny``, ``export`` (a local dir) or ``url``
    (an OpenAI-compatible server such as ``judgetrain serve`` or ``vllm serve``)."""

    kind: str
    target: str = ""
    model: str = ""
    api_key_env: str = ""

    def spec(self) -> str:
        if self.kind == "tiny":
            return "tiny"
        if self.kind == "export":
            if not self.target or not Path(self.target).is_dir():
                raise ValueError(f"export dir {self.target!r} does not exist; give the directory `judgetrain export` wrote")
            return self.target
        if self.kind == "url":
            if not self.target.startswith(("http://", "https://")):
                raise ValueError(f"judge URL {self.target!r} must start with http:// or https:// (e.g. http://127.0.0.1:8000/v1)")
            return f"openai:{self.model}@{self.target}"
        raise ValueError(f"judge kind must be tiny, export or url, got {self.kind!r}")


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


def card_format(export_dir: str) -> str | None:
    """The template an export dir's ``judge_card.json`` names, if any."""
    card = Path(export_dir) / "judge_card.json"
    if not card.is_file():
        return None
    data = json.loads(card.read_text(encoding="utf-8"))
    value = data.get("format") or data.get("template")
    if isinstance(value, dict):
        value = value.get("name")
    return value if isinstance(value, str) else None


class Playground:
    """Builds judges on demand and judges one sample at a time."""

    def __init__(self) -> None:
        self._backends: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _backend(self, choice: JudgeChoice):
        from judgetrain.judging import make_backend

        key = choice.spec()
        if key not in self._backends:
            if choice.kind == "url":
                root = _api_root(choice.target)
                model = choice.model or _served_model(root)
                # No key is sent unless the user names the variable holding one (local servers need none).
                self._backends[key] = make_backend(f"openai:{model}", base_url=root,
                                                   api_key_env=choice.api_key_env or None, max_retries=1)
            else:
                self._backends[key] = make_backend(key)
        return self._backends[key]

    def judge(self, question: str, answers: list[str], choice: JudgeChoice, format_name: str = "",
              max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> Judgment:
        """The Judgment of ``answers`` (one or two) to ``question`` by the chosen judge."""
        from judgetrain import formats
        from judgetrain.judging import Judge, default_decoding

        answers = [a for a in answers if a.strip()]
        if not question.strip():
            raise ValueError("type a question")
        if len(answers) not in (1, 2):
            raise ValueError("type one answer (single grading) or two (pairwise)")
        if not 1 <= max_new_tokens <= 4096:
            raise ValueError(f"max new tokens must be in 1..4096, got {max_new_tokens}")
        protocol = "pairwise" if len(answers) == 2 else "single"
        if not format_name:
            format_name = (card_format(choice.target) if choice.kind == "export" else None) or \
                (DEFAULT_PAIRWISE_FORMAT if protocol == "pairwise" else DEFAULT_SINGLE_FORMAT)
        fmt = formats.get(format_name)
        if fmt.protocol != protocol:
            raise ValueError(f"template {format_name} is {fmt.protocol}, but {len(answers)} answer(s) were given; "
                             f"pick a {protocol} template")
        sample = JudgeSample(id="playground", source="playground", question=question,
                             answers=tuple(Answer(text=a) for a in answers))
        fmt.check_sample(sample)
        with self._lock:
            judge = Judge(fmt, self._backend(choice), default_decoding(fmt, max_new_tokens=max_new_tokens),
                          both_orders=True, disagreement_policy="inconsistent")
            return judge.judge([sample])[0]

    def close(self) -> None:
        for backend in self._backends.values():
            backend.close()
        self._backends.clear()
