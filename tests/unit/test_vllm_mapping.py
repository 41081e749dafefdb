"""The vLLM backend's pure parts, tested without vLLM (it needs a CUDA machine): Decoding ->
SamplingParams arguments, prompt building with the chat template, verdict log-probabilities from a
step's top log-probabilities, and the clear error when vLLM is missing."""

import importlib.util
from dataclasses import dataclass

import pytest

from judgetrain.judging.backends.base import Decoding, Request
from judgetrain.judging.backends.vllm_backend import (
    VLLMBackend,
    build_prompt,
    sampling_params_kwargs,
    verdict_logprobs_from,
)


def test_greedy_decoding_maps_to_sampling_params():
    kwargs = sampling_params_kwargs(Decoding(max_new_tokens=32, stop=("\n",), logprobs=True), want_logprobs=True)
    assert kwargs == {"n": 1, "temperature": 0.0, "top_p": 1.0, "max_tokens": 32, "stop": ["\n"], "seed": None,
                      "logprobs": 20}


def test_sampling_decoding_maps_n_seed_and_top_p():
    decoding = Decoding(max_new_tokens=256, temperature=0.7, top_p=0.9, n=5, seed=13)
    kwargs = sampling_params_kwargs(decoding, want_logprobs=False)
    assert kwargs == {"n": 5, "temperature": 0.7, "top_p": 0.9, "max_tokens": 256, "stop": [], "seed": 13}
    # Log-probabilities only when the request wants verdict probabilities and the decoding asks for them.
    assert "logprobs" not in sampling_params_kwargs(Decoding(logprobs=False), want_logprobs=True)
    assert sampling_params_kwargs(Decoding(logprobs=True), want_logprobs=True, num_logprobs=5)["logprobs"] == 5
    with pytest.raises(ValueError, match="num_logprobs"):
        sampling_params_kwargs(Decoding(logprobs=True), want_logprobs=True, num_logprobs=0)


def test_build_prompt_applies_the_chat_template_once(tiny_tokenizer):
    request = Request(messages=({"role": "system", "content": "Judge."}, {"role": "user", "content": "Which?"}),
                      decoding=Decoding())
    text, ids = build_prompt(tiny_tokenizer, request)
    assert text == "<|im_start|>system\nJudge.<|im_end|>\n<|im_start|>user\nWhich?<|im_end|>\n<|im_start|>assistant\n"
    assert tiny_tokenizer.decode(ids) == text


@dataclass
class Logprob:  # the shape of vllm.sequence.Logprob: what a step's top log-probabilities hold
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


def test_verdict_logprobs_from_a_step_keep_only_options_in_the_top_k():
    step = {11: Logprob(-0.5), 12: Logprob(-1.5), 99: Logprob(-2.0)}
    assert verdict_logprobs_from(step, {"A": 11, "B": 12, "tie": 13}) == {"A": -0.5, "B": -1.5}
    assert verdict_logprobs_from({11: -0.25}, {"A": 11}) == {"A": -0.25}
    assert verdict_logprobs_from(step, {"tie": 13}) is None
    assert verdict_logprobs_from(None, {"A": 11}) is None


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_missing_vllm_names_the_extra():
    with pytest.raises(ImportError, match=r"judgetrain\[vllm\]"):
        VLLMBackend("some/model")
