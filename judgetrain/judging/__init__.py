"""Judging: a Judge is a format plus a backend; everything that produces verdicts goes through it.

``Judge(format, backend, decoding, both_orders=..., cache=...)`` with ``judge(samples) -> list[Judgment]``;
``make_backend("hf:DIR" | "vllm:DIR" | "openai:MODEL" | "tiny" | "embedded:smollm2-135m")`` builds a backend;
``ResultCache`` / ``CachingBackend`` make runs resumable. Importing this package does not import torch.
"""

from judgetrain.judging.backends import Backend, Completion, Decoding, Request, make_backend
from judgetrain.judging.cache import CachingBackend, ResultCache, cached_generate, request_key
from judgetrain.judging.judge import (
    DISAGREEMENT_POLICIES,
    Judge,
    default_decoding,
    outcome_of,
    per_order,
    summarize,
    verdict_options,
)

__all__ = [
    "Backend", "Completion", "Decoding", "Request", "make_backend",
    "CachingBackend", "ResultCache", "cached_generate", "request_key",
    "DISAGREEMENT_POLICIES", "Judge", "default_decoding", "outcome_of", "per_order",
    "summarize", "verdict_options",
]
