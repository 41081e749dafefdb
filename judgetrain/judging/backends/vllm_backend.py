"""The vLLM backend: offline batched generation with ``vllm.LLM`` (GPU), behind the ``vllm`` extra.

Our :class:`Decoding` maps to ``vllm.SamplingParams`` (:func:`sampling_params_kwargs`). Prompts are
built with the model's own chat template (the same :func:`prompt_text_of` as the transformers
backend) and handed to vLLM as token ids, so vLLM does not add a second BOS to a templated prompt.
vLLM schedules and batches everything it is given, so all requests go in one ``generate`` call.

Verdict probabilities come from the first generated token's log-probabilities: vLLM returns the top
``num_logprobs`` tokens (bounded by the engine's ``max_logprobs``) plus the chosen one; an option
outside them is left out of ``verdict_logprobs`` rather than guessed.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

from judgetrain.judging.backends.base import Backend, Completion, Decoding, Request
from judgetrain.judging.backends.transformers_backend import cut_at_stop, option_first_tokens, prompt_text_of

DEFAULT_NUM_LOGPROBS = 20
"""Top log-probabilities asked for per generated token (vLLM's default ``max_logprobs`` is 20)."""


def _import_vllm():
    try:
        import vllm
    except ImportError as err:
        raise ImportError(
            "the vllm backend needs vLLM (a CUDA GPU machine): pip install 'judgetrain[vllm]'; "
            "on a CPU use the transformers backend (hf:PATH) or serve the model with `judgetrain serve`"
        ) from err
    return vllm


def sampling_params_kwargs(decoding: Decoding, *, want_logprobs: bool, num_logprobs: int = DEFAULT_NUM_LOGPROBS) -> dict[str, Any]:
    """The ``vllm.SamplingParams`` keyword arguments for ``decoding``.

    temperature 0 is vLLM's greedy; ``max_new_tokens`` is ``max_tokens``; stop strings are excluded
    from the output (vLLM's default, as OpenAI-compatible APIs do); ``logprobs`` is the number of top
    tokens returned per step, asked for only when verdict probabilities are wanted.
    """
    kwargs: dict[str, Any] = {
        "n": decoding.n,
        "temperature": decoding.temperature,
        "top_p": decoding.top_p,
        "max_tokens": decoding.max_new_tokens,
        "stop": list(decoding.stop),
        "seed": decoding.seed,
    }
    if want_logprobs and decoding.logprobs:
        if num_logprobs < 1:
            raise ValueError(f"num_logprobs must be >= 1, got {num_logprobs}")
        kwargs["logprobs"] = num_logprobs
    return kwargs


def build_prompt(tokenizer: Any, request: Request) -> tuple[str, list[int]]:
    """(prompt text, token ids) for one request: the chat template with the generation prompt; a
    templated prompt carries its own special tokens, a plain one gets the tokenizer's."""
    text = prompt_text_of(tokenizer, request.messages)
    templated = bool(getattr(tokenizer, "chat_template", None))
    return text, list(tokenizer(text, add_special_tokens=not templated)["input_ids"])


def verdict_logprobs_from(first_step: Mapping[int, Any] | None, option_tokens: Mapping[str, int]) -> dict[str, float] | None:
    """The log-probability of each verdict option's first token from one step's top log-probabilities
    (``{token_id: Logprob}`` as vLLM returns them, or plain floats). Options absent from the top-k are left out."""
    if not first_step:
        return None
    out: dict[str, float] = {}
    for verdict, token in option_tokens.items():
        if token in first_step:
            value = first_step[token]
            out[verdict] = float(getattr(value, "logprob", value))
    return out or None


class VLLMBackend(Backend):
    """Offline generation with ``vllm.LLM``.

    Args:
        model: an HF model dir or hub id (an export dir from ``judgetrain export``).
        tensor_parallel_size: GPUs to shard the model over.
        dtype: vLLM's dtype (``auto``, ``bfloat16``, ``float16``, ``float32``).
        num_logprobs: top log-probabilities per token when verdict probabilities are asked for.
        llm_options: further ``vllm.LLM`` arguments (``gpu_memory_utilization``, ``max_model_len``, …).
    """

    name = "vllm"
    #: Requests per call behind a result cache: vLLM batches best with many requests at once, and a
    #: kill loses at most this many finished calls.
    preferred_chunk_size = 256

    def __init__(self, model: str, *, tensor_parallel_size: int = 1, dtype: str = "auto",
                 num_logprobs: int = DEFAULT_NUM_LOGPROBS, seed: int = 0, **llm_options: Any):
        if tensor_parallel_size < 1:
            raise ValueError(f"tensor_parallel_size must be >= 1, got {tensor_parallel_size}")
        vllm = _import_vllm()
        from judgetrain.models import resolve_model_path

        self.model_id = model
        self.num_logprobs = num_logprobs
        self._vllm = vllm
        llm_options.setdefault("max_logprobs", max(num_logprobs, DEFAULT_NUM_LOGPROBS))
        self.llm = vllm.LLM(model=resolve_model_path(model), tensor_parallel_size=tensor_parallel_size, dtype=dtype,
                            seed=seed, **llm_options)
        self.tokenizer = self.llm.get_tokenizer()
        self._option_token_cache: dict[tuple[str, str], int | None] = {}

    def generate(self, requests: list[Request]) -> list[Completion]:
        if not requests:
            return []
        prompts = [build_prompt(self.tokenizer, r) for r in requests]
        params = [self._vllm.SamplingParams(**sampling_params_kwargs(r.decoding, want_logprobs=bool(r.verdict_options),
                                                                     num_logprobs=self.num_logprobs))
                  for r in requests]
        started = time.perf_counter()
        outputs = self.llm.generate([{"prompt_token_ids": ids} for _, ids in prompts], params, use_tqdm=False)
        seconds_per_request = (time.perf_counter() - started) / len(requests)
        completions = []
        for request, (prompt_text, prompt_ids), output in zip(requests, prompts, outputs):
            samples = list(output.outputs)
            texts = [cut_at_stop(s.text, request.decoding.stop) for s in samples]
            verdict_logprobs = None
            if request.verdict_options and samples and samples[0].logprobs:
                tokens = option_first_tokens(self.tokenizer, prompt_text, request.verdict_options, self._option_token_cache)
                verdict_logprobs = verdict_logprobs_from(samples[0].logprobs[0], tokens)
            completions.append(Completion(
                text=texts[0] if texts else "", texts=texts, prompt_text=prompt_text, tokens_in=len(prompt_ids),
                tokens_out=sum(len(s.token_ids) for s in samples), latency_seconds=seconds_per_request,
                verdict_logprobs=verdict_logprobs,
            ))
        return completions

    def close(self) -> None:
        self.__dict__.pop("llm", None)
