"""The backend contract: chat requests in, completions out. Judge logic never sees a backend's internals."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Iterator

from judgetrain.formats.base import Message


@dataclass(frozen=True)
class Decoding:
    """Decoding settings, recorded in every judgment.

    ``temperature == 0`` means greedy. ``n`` > 1 asks for several samples (API judges that drift);
    ``stop`` ends generation early (verdict-first formats). ``logprobs`` asks for the log-probabilities
    of the verdict tokens where the backend can give them.
    """

    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: bool = False

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"decoding.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"decoding.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"decoding.top_p must be in (0, 1], got {self.top_p}")
        if self.n < 1:
            raise ValueError(f"decoding.n must be >= 1, got {self.n}")
        object.__setattr__(self, "stop", tuple(self.stop))

    def to_dict(self) -> dict[str, Any]:
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "top_p": self.top_p,
                "n": self.n, "stop": list(self.stop), "seed": self.seed, "logprobs": self.logprobs}


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
