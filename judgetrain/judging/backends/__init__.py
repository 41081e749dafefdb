"""Judge backends: transformers (CPU/GPU, batched), vLLM (offline, GPU), and OpenAI-compatible HTTP.

``make_backend(spec)`` builds one from a spec string; each backend module is imported only when its
backend is asked for, so choosing the HTTP backend does not import torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from judgetrain.judging.backends.base import Backend, Completion, Decoding, Request

BACKEND_PREFIXES = ("hf", "vllm", "openai")
"""Spec prefixes: ``hf:PATH`` (transformers), ``vllm:PATH``, ``openai:MODEL``."""


def make_backend(spec: str, **options: Any) -> Backend:
    """The backend a spec names.

    - ``hf:PATH`` or a bare local dir, hub id, ``tiny`` or ``embedded:smollm2-135m`` → transformers
      (options: ``batch_size``, ``dtype``, ``device``);
    - ``vllm:PATH`` → offline vLLM (options: ``tensor_parallel_size``, ``dtype``, …; needs the ``vllm`` extra);
    - ``openai:MODEL`` → an OpenAI-compatible chat-completions API (options: ``base_url``,
      ``api_key_env``, ``max_concurrency``, …).

    Options the chosen backend does not take raise TypeError from its constructor; None values are dropped
    so a CLI can pass its unset flags through.
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"backend spec must be a non-empty string such as hf:PATH, vllm:PATH or openai:MODEL, got {spec!r}")
    options = {k: v for k, v in options.items() if v is not None}
    prefix, _, rest = spec.partition(":")
    if prefix == "openai":
        if not rest:
            raise ValueError("openai backend: give the model id, e.g. openai:gpt-4o")
        from judgetrain.judging.backends.openai_http import OpenAIHTTPBackend

        return OpenAIHTTPBackend(rest, **options)
    if prefix == "vllm":
        if not rest:
            raise ValueError("vllm backend: give the model dir or hub id, e.g. vllm:/path/to/export")
        from judgetrain.judging.backends.vllm_backend import VLLMBackend

        return VLLMBackend(rest, **options)
    if prefix == "hf":
        if not rest:
            raise ValueError("hf backend: give the model dir or hub id, e.g. hf:/path/to/export")
        spec = rest
    elif prefix not in ("embedded",) and ":" in spec and not Path(spec).exists():
        raise ValueError(f"unknown backend {prefix!r} in {spec!r}: use hf:PATH, vllm:PATH or openai:MODEL")
    from judgetrain.judging.backends.transformers_backend import TransformersBackend

    return TransformersBackend(spec, **options)


__all__ = ["Backend", "Completion", "Decoding", "Request", "make_backend", "BACKEND_PREFIXES"]
