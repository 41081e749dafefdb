"""The transformers backend: batched generation with a local model on CPU or GPU.

Prompts are built with the tokenizer's chat template (the plain message texts when it has none),
sorted by token length and cut into batches, so each batch pads little; rows are LEFT-padded, since a
decoder-only model continues from the last position of each row. Outputs come back in request order.
``max_new_tokens`` and stop strings (transformers' ``stop_strings=`` criterion) end generation early,
so a verdict-first format (JudgeLM's score line) generates a few tokens instead of a critique.

Verdict probabilities: for a request with ``verdict_options``, the distribution over the options'
first tokens is read from the first generation step, which is exactly one forward pass over the
prompt (``output_logits``), so it costs no extra pass. Options whose first tokens coincide ("1" and
"10" for a tokenizer that splits digits, as SmolLM2's does) are told apart by one more step: the
next-token distribution after the shared token is read from the generation cache cropped back to the
prompt (one token of compute, :func:`shared_first_token_continuations`), and P("10") = P("1") ·
P("0" | "1"), P("1") = P("1") · (1 − P("0" | "1")). Options that share more than their first token
("10" and "100") are not told apart further: the longer of those keeps only the shorter's share.

Context. A prompt and the tokens generated after it must fit ``max_seq_len`` (by default the model's
context, ``config.max_position_embeddings``). A :class:`~judgetrain.judging.Judge` asks
:meth:`TransformersBackend.prompt_token_budget` and shortens each sample's question first to fit
(:mod:`judgetrain.judging.truncation`), flagging the judgment. A request that still does not fit (one
not built by a Judge) is answered with an error completion naming its size, rather than letting the
model read past the context it was built for.
"""

from __future__ import annotations

import math
import time
from typing import Any, Iterator, Sequence

import torch

from judgetrain.judging.backends.base import Backend, Completion, Decoding, Request

PLAIN_PROMPT_SEPARATOR = "\n\n"
"""Joins the message texts into one prompt for a tokenizer without a chat template."""


def bf16_is_fast(device: str | torch.device = "cpu", *, size: int = 256) -> bool:
    """True when bfloat16 matmuls run faster than float32 on ``device``.

    On CUDA that is bf16 support. On a CPU it depends on native bf16 units (AVX512-BF16, AMX):
    without them torch emulates bf16 and a matmul can be ~100x slower, so it is timed rather than guessed.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False

    def seconds(dtype: torch.dtype) -> float:
        a = torch.randn(size, size, dtype=dtype)
        b = torch.randn(size, size, dtype=dtype)
        a @ b  # warm-up
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
        return best

    return seconds(torch.bfloat16) < 0.8 * seconds(torch.float32)


def resolve_dtype(dtype: str, device: str | torch.device) -> str:
    """``"auto"`` becomes ``"bf16"`` where bf16 is fast on ``device`` and ``"fp32"`` elsewhere."""
    if dtype == "auto":
        return "bf16" if bf16_is_fast(device) else "fp32"
    return dtype


def prompt_text_of(tokenizer: Any, messages: list[dict[str, str]] | tuple[dict[str, str], ...]) -> str:
    """The exact text the model reads: the chat template with the generation prompt, or the message
    texts joined when the tokenizer has no template."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([dict(m) for m in messages], tokenize=False, add_generation_prompt=True)
    return PLAIN_PROMPT_SEPARATOR.join(m["content"] for m in messages)


def option_first_tokens(tokenizer: Any, prompt_text: str, options: dict[str, str],
                        memo: dict[tuple[str, str], int | None] | None = None) -> dict[str, int]:
    """The token id each verdict option's text would be generated as first, right after ``prompt_text``.

    Tokenizers merge across the boundary ("▁8" vs "8"), so the option is tokenized after the prompt's
    tail. Options whose first tokens coincide ("1" and "10" when digits are split) keep only the
    shortest, so no probability is counted twice. ``memo`` caches lookups across prompts.
    """
    memo = {} if memo is None else memo
    tail = prompt_text[-64:]
    out: dict[str, int] = {}
    taken: set[int] = set()
    for verdict, text in sorted(options.items(), key=lambda item: (len(item[1]), item[1])):
        key = (tail, text)
        if key not in memo:
            tail_ids = tokenizer(tail, add_special_tokens=False)["input_ids"]
            full_ids = tokenizer(tail + text, add_special_tokens=False)["input_ids"]
            if full_ids[: len(tail_ids)] == tail_ids and len(full_ids) > len(tail_ids):
                memo[key] = full_ids[len(tail_ids)]
            else:
                alone = tokenizer(text, add_special_tokens=False)["input_ids"]
                memo[key] = alone[0] if alone else None
        token = memo[key]
        if token is not None and token not in taken:
            taken.add(token)
            out[verdict] = token
    return out


def shared_first_token_continuations(tokenizer: Any, prompt_text: str, options: dict[str, str],
                                     first_tokens: dict[str, int]) -> dict[str, tuple[int, dict[str, int]]]:
    """For each option :func:`option_first_tokens` kept whose first token other options start with
    too ("1" of the grades "1" and "10"): ``{kept: (that first token, {longer option: the token it
    goes on with})}``, e.g. ``{"1": (id("1"), {"10": id("0")})}``. Empty when no first token is shared."""
    tail = prompt_text[-64:]
    tail_length = len(tokenizer(tail, add_special_tokens=False)["input_ids"])
    by_token = {token: verdict for verdict, token in first_tokens.items()}
    out: dict[str, tuple[int, dict[str, int]]] = {}
    for verdict, text in options.items():
        if verdict in first_tokens:
            continue
        ids = tokenizer(tail + text, add_special_tokens=False)["input_ids"][tail_length:]
        if len(ids) < 2 or ids[0] not in by_token:
            continue
        kept = by_token[ids[0]]
        out.setdefault(kept, (ids[0], {}))[1][verdict] = ids[1]
    return out


def cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    """``text`` up to the first stop string (excluded), as OpenAI-compatible APIs return it. The last
    generated token may run past the stop string ("7\\nThe"), so the cut is on text, not tokens."""
    cut = len(text)
    for s in stop:
        found = text.find(s)
        if found >= 0:
            cut = min(cut, found)
    return text[:cut]


class TransformersBackend(Backend):
    """Batched generation with a transformers causal LM.

    Args:
        model_or_path: a loaded model (e.g. the live model of a training run) or a name for
            ``judgetrain.models.load_model``: an HF dir or hub id, ``embedded:smollm2-135m``, ``tiny``.
        tokenizer: the model's tokenizer; required with a loaded model, loaded from the path otherwise.
        batch_size: prompts per ``generate`` call.
        dtype: ``fp32``, ``bf16``, ``fp16`` or ``auto`` (bf16 where it is fast); for a path only — a
            loaded model keeps its dtype.
        device: ``cpu``, ``cuda``, …; None keeps a loaded model's device, else CUDA when present.
        sort_by_length: build batches from length-sorted prompts (less padding); False keeps request
            order, for measuring what sorting buys.
        max_seq_len: token budget of a prompt and its generated tokens together; None takes the
            model's context (``config.max_position_embeddings``; no budget when the config has none).

    A loaded model that keeps changing (training) must not be used behind a result cache: the cache
    key holds the model id, not the weights.
    """

    name = "transformers"

    def __init__(self, model_or_path: Any, tokenizer: Any = None, *, batch_size: int = 8, dtype: str = "fp32",
                 device: str | None = None, sort_by_length: bool = True, max_seq_len: int | None = None):
        from judgetrain.models import load_model, load_tokenizer

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.sort_by_length = sort_by_length
        if isinstance(model_or_path, (str, bytes)) or hasattr(model_or_path, "__fspath__"):
            path = str(model_or_path)
            device = device or ("cuda" if torch.cuda.is_available() else "cpu")
            self.dtype = resolve_dtype(dtype, device)
            self.model = load_model(path, dtype=self.dtype)
            self.model.to(device)
            self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(path)
            self.model_id = path
        else:
            if tokenizer is None:
                raise ValueError("TransformersBackend: a loaded model needs its tokenizer (tokenizer=...)")
            self.model = model_or_path
            self.tokenizer = tokenizer
            if device is not None:
                self.model.to(device)
            self.dtype = str(next(self.model.parameters()).dtype).removeprefix("torch.")
            config = getattr(self.model, "config", None)
            self.model_id = getattr(config, "_name_or_path", "") or type(self.model).__name__
        self.device = next(self.model.parameters()).device
        if max_seq_len is None:
            max_seq_len = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        if max_seq_len is not None and (isinstance(max_seq_len, bool) or not isinstance(max_seq_len, int) or max_seq_len < 2):
            raise ValueError(f"max_seq_len must be a whole number of tokens >= 2 (prompt and generation), got {max_seq_len!r}")
        self.max_seq_len: int | None = max_seq_len
        if self.tokenizer.pad_token_id is None:
            raise ValueError("TransformersBackend: the tokenizer has no pad token; load it with judgetrain.models.load_tokenizer")
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_token_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
        self._option_token_cache: dict[tuple[str, str], int | None] = {}

    # --- prompts --------------------------------------------------------------------------------
    def prompt_ids(self, request: Request) -> tuple[str, list[int]]:
        """(prompt text, its token ids) for one request."""
        return self._prompt_of(request.messages)

    def _prompt_of(self, messages: Sequence[dict[str, str]]) -> tuple[str, list[int]]:
        text = prompt_text_of(self.tokenizer, messages)
        # A chat template writes its own special tokens (BOS included); a plain prompt gets the
        # tokenizer's usual ones.
        templated = bool(getattr(self.tokenizer, "chat_template", None))
        ids = self.tokenizer(text, add_special_tokens=not templated)["input_ids"]
        return text, list(ids)

    def num_prompt_tokens(self, messages: Sequence[dict[str, str]]) -> int:
        """The token count of the prompt ``messages`` become (the ids the model reads)."""
        return len(self._prompt_of(messages)[1])

    def prompt_token_budget(self, decoding: Decoding) -> int | None:
        """The most prompt tokens a request with ``decoding`` may have, so that the prompt and its
        ``max_new_tokens`` fit ``max_seq_len``; None when there is no budget."""
        if self.max_seq_len is None:
            return None
        room = self.max_seq_len - decoding.max_new_tokens
        if room < 1:
            raise ValueError(f"decoding.max_new_tokens={decoding.max_new_tokens} leaves no room for a prompt in the "
                             f"max_seq_len={self.max_seq_len} tokens of {self.model_id}: lower max_new_tokens or raise max_seq_len")
        return room

    def _over_budget(self, request: Request, prompt_ids: list[int]) -> str | None:
        """Why ``request`` cannot be generated within ``max_seq_len``, or None when it can."""
        if self.max_seq_len is None or len(prompt_ids) + request.decoding.max_new_tokens <= self.max_seq_len:
            return None
        return (f"the prompt takes {len(prompt_ids)} tokens and max_new_tokens is {request.decoding.max_new_tokens}, over the "
                f"max_seq_len={self.max_seq_len} tokens of {self.model_id}; judge it with judgetrain.Judge (which shortens "
                "the question to fit), shorten the messages, or lower max_new_tokens")

    def option_token_ids(self, prompt_text: str, options: dict[str, str]) -> dict[str, int]:
        """The first token of each verdict option after this prompt (see :func:`option_first_tokens`)."""
        return option_first_tokens(self.tokenizer, prompt_text, options, self._option_token_cache)

    # --- generation -----------------------------------------------------------------------------
    def generate(self, requests: list[Request]) -> list[Completion]:
        out: list[Completion | None] = [None] * len(requests)
        for index, completion in self.generate_iter(requests):
            out[index] = completion
        return out  # type: ignore[return-value]

    def generate_iter(self, requests: list[Request]) -> Iterator[tuple[int, Completion]]:
        """Completions batch by batch (longest prompts first), each yielded with its request index."""
        prompts = [self.prompt_ids(r) for r in requests]
        # Requests with the same decoding can share a generate call; within a group, sort by length.
        groups: dict[Decoding, list[int]] = {}
        for index, request in enumerate(requests):
            too_long = self._over_budget(request, prompts[index][1])
            if too_long is not None:
                yield index, Completion(error=too_long, prompt_text=prompts[index][0], tokens_in=len(prompts[index][1]))
                continue
            groups.setdefault(request.decoding, []).append(index)
        for decoding, indices in groups.items():
            ordered = sorted(indices, key=lambda i: len(prompts[i][1]), reverse=True) if self.sort_by_length else indices
            for start in range(0, len(ordered), self.batch_size):
                batch = ordered[start:start + self.batch_size]
                completions = self._generate_batch([requests[i] for i in batch], [prompts[i] for i in batch], decoding)
                yield from zip(batch, completions)

    def _generation_kwargs(self, decoding: Decoding, want_logits: bool) -> dict[str, Any]:
        sampling = decoding.temperature > 0
        kwargs: dict[str, Any] = dict(
            max_new_tokens=decoding.max_new_tokens, do_sample=sampling, pad_token_id=self.tokenizer.pad_token_id,
            return_dict_in_generate=True, output_logits=want_logits,
            num_return_sequences=decoding.n if sampling else 1,
        )
        if sampling:
            kwargs.update(temperature=decoding.temperature, top_p=decoding.top_p, top_k=None)
        else:
            # Greedy: clear the sampling defaults a model's generation_config may carry.
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if decoding.stop:
            kwargs.update(stop_strings=list(decoding.stop), tokenizer=self.tokenizer)
        return kwargs

    def _num_generated(self, row: list[int]) -> int:
        """Tokens generated in one output row, up to its first EOS or padding (neither counted).

        Many tokenizers pad with their EOS token, so a row that stopped on a stop string inside a batch
        is followed by "EOS" padding; not counting EOS keeps the count the same at any batch size."""
        ends = self.eos_token_ids | {self.tokenizer.pad_token_id}
        for position, token in enumerate(row):
            if token in ends:
                return position
        return len(row)

    def _after_shared_token(self, output: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                            shared: list[dict[str, tuple[int, dict[str, int]]]], *, samples_per_row: int) -> dict[int, torch.Tensor]:
        """Each request row's next-token log-probabilities after its prompt and the first token its
        verdict options share (:func:`shared_first_token_continuations`), read in one step from the
        generation cache cropped back to the prompt. One shared token per request is read (grades
        1-10 have one: "1")."""
        # A row without a shared token is fed padding; its step is computed and not read.
        first_tokens = [next(iter(groups.values()))[0] if groups else int(self.tokenizer.pad_token_id) for groups in shared]
        tokens = torch.tensor([[t] for t in first_tokens for _ in range(samples_per_row)], device=input_ids.device)
        prompt_mask = attention_mask.repeat_interleave(samples_per_row, dim=0)
        mask = torch.cat([prompt_mask, torch.ones_like(prompt_mask[:, :1])], dim=1)
        # Left padding: the new token's position is the row's count of real prompt tokens.
        positions = prompt_mask.sum(dim=1, keepdim=True)
        cache = getattr(output, "cache", None)
        was_training = self.model.training
        self.model.eval()
        try:
            if cache is not None and hasattr(cache, "crop") and hasattr(cache, "get_seq_length"):
                # Back to the prompt: transformers' crop takes the (negative) count of tokens to remove.
                generated_in_cache = cache.get_seq_length() - input_ids.shape[1]
                if generated_in_cache > 0:
                    cache.crop(-generated_in_cache)
                logits = self.model(input_ids=tokens, attention_mask=mask, position_ids=positions, cache=cache,
                                    use_cache=True).logits[:, -1]
            else:  # no cache to crop: read the step over the whole prompt again
                full = torch.cat([input_ids.repeat_interleave(samples_per_row, dim=0), tokens], dim=1)
                full_positions = (mask.long().cumsum(dim=1) - 1).clamp(min=0)
                logits = self.model(input_ids=full, attention_mask=mask, position_ids=full_positions).logits[:, -1]
        finally:
            if was_training:
                self.model.train()
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        return {row: logprobs[row * samples_per_row] for row, groups in enumerate(shared) if groups}

    @torch.inference_mode()
    def _generate_batch(self, requests: list[Request], prompts: list[tuple[str, list[int]]], decoding: Decoding) -> list[Completion]:
        started = time.perf_counter()
        want_logits = any(r.verdict_options for r in requests)
        padded = self.tokenizer.pad({"input_ids": [ids for _, ids in prompts]}, padding=True, padding_side="left",
                                    return_tensors="pt")
        input_ids = padded["input_ids"].to(self.device)
        attention_mask = padded["attention_mask"].to(self.device)
        if decoding.seed is not None:
            torch.manual_seed(decoding.seed)
        was_training = self.model.training
        self.model.eval()
        try:
            output = self.model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                         **self._generation_kwargs(decoding, want_logits))
        finally:
            if was_training:
                self.model.train()
        samples_per_row = decoding.n if decoding.temperature > 0 else 1
        generated = output.sequences[:, input_ids.shape[1]:].tolist()
        first_step_logprobs = None
        shared: list[dict[str, tuple[int, dict[str, int]]]] = [{} for _ in requests]
        if want_logits:
            # Row i's distribution after its own last prompt token: left padding puts every row's last
            # prompt token at the same position, the one generate's first step reads.
            first_step_logprobs = torch.log_softmax(output.logits[0].float(), dim=-1)
            for index, (request, (prompt_text, _)) in enumerate(zip(requests, prompts)):
                if request.verdict_options:
                    shared[index] = shared_first_token_continuations(
                        self.tokenizer, prompt_text, request.verdict_options,
                        self.option_token_ids(prompt_text, request.verdict_options))
        second_step_logprobs = (self._after_shared_token(output, input_ids, attention_mask, shared, samples_per_row=samples_per_row)
                                if any(shared) else {})
        seconds_per_request = (time.perf_counter() - started) / len(requests)
        completions = []
        for row, (request, (prompt_text, prompt_ids)) in enumerate(zip(requests, prompts)):
            rows = generated[row * samples_per_row:(row + 1) * samples_per_row]
            texts, tokens_out = [], 0
            for ids in rows:
                count = self._num_generated(ids)
                tokens_out += count
                text = self.tokenizer.decode(ids[:count], skip_special_tokens=True)
                texts.append(cut_at_stop(text, decoding.stop))
            if decoding.n > 1 and samples_per_row == 1:
                # Greedy decoding gives the same text every time: n copies of the one generation.
                texts = texts * decoding.n
            verdict_logprobs = None
            if request.verdict_options and first_step_logprobs is not None:
                tokens = self.option_token_ids(prompt_text, request.verdict_options)
                logprobs_row = first_step_logprobs[row * samples_per_row]
                verdict_logprobs = {verdict: float(logprobs_row[token]) for verdict, token in tokens.items()}
                # One shared first token per request is told apart (_after_shared_token reads one step).
                for kept, (_, longer) in list(shared[row].items())[:1]:
                    after = second_step_logprobs[row]
                    first = verdict_logprobs[kept]
                    goes_on = {verdict: float(after[token]) for verdict, token in longer.items()}
                    # The shared token's mass is split: each longer option takes P(its next token), the
                    # kept (shortest) option the rest.
                    rest = 1.0 - sum(math.exp(v) for v in goes_on.values())
                    verdict_logprobs[kept] = first + (math.log(rest) if rest > 0 else -math.inf)
                    verdict_logprobs.update({verdict: first + v for verdict, v in goes_on.items()})
            completions.append(Completion(
                text=texts[0], texts=texts, prompt_text=prompt_text, tokens_in=len(prompt_ids), tokens_out=tokens_out,
                latency_seconds=seconds_per_request, verdict_logprobs=verdict_logprobs,
            ))
        return completions
