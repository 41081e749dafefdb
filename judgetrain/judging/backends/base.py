"""The backend contract: chat requests in, completions out. Judge logic never sees a backend's internals."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Iterator

from judgetrain.decoding import Decoding  # re-exported: the backends' contract names it
from judgetrain.formats.base import Message


@dataclass(frozen=True)
class Request:
    """One chat request. ``verdict_options`` maps a verdict ("A", "B", "tie", or a score "1".."10")
    to the text whose first generated token stands for it, when the caller wants its probability."""

    messages: tuple[Message, ...]
    decoding: Decoding
    verdict_options: dict[str, str] | None = None


@dataclass
class Completion:
    """A backend's answer to one request. ``texts`` holds all ``n`` samples, ``text`` the first.
    ``error`` is set (and ``text`` empty) when the backend gave up on the request."""

    text: str = ""
    texts: list[str] = field(default_factory=list)
    prompt_text: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_seconds: float | None = None
    verdict_logprobs: dict[str, float] | None = None
    cost_usd: float | None = None
    error: str | None = None
    cached: bool = False
    """True when this completion was read from a result cache rather than produced by this run
    (so it cost nothing now); set by :class:`judgetrain.judging.cache.CachingBackend`."""


class Backend(abc.ABC):
    """Something that answers chat requests: a local transformers model, vLLM, or an HTTP API."""

    name: str = ""
    model_id: str = ""

    @abc.abstractmethod
    def generate(self, requests: list[Request]) -> list[Completion]:
        """Answer every request, in order. A request that fails returns a Completion with ``error``."""

    def generate_iter(self, requests: list[Request]) -> Iterator[tuple[int, Completion]]:
        """Answer every request, yielding ``(index into requests, completion)`` as each one finishes,
        in any order. The result cache stores each completion as soon as it is yielded, so a killed
        run loses only what was in flight; a backend that finishes work piece by piece (a batch, an
        HTTP call) should override this. The default yields everything once ``generate`` returns."""
        completions = self.generate(requests)
        assert len(completions) == len(requests), f"{type(self).__name__}.generate must answer every request"
        yield from enumerate(completions)

    def close(self) -> None:
        """Release resources (threads, HTTP connections)."""
