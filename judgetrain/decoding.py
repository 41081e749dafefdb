"""Decoding settings: how a generative judge is asked to write, recorded in every judgment and in the judge card.

A leaf module (it imports nothing of judgetrain), so the judge card (:mod:`judgetrain.card`) and the
backends (:mod:`judgetrain.judging.backends`) share the one type without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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


__all__ = ["Decoding"]
