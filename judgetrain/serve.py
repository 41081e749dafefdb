"""``judgetrain serve``: an OpenAI-compatible HTTP server over a judge, for CPU and development.

Endpoints: ``POST /v1/chat/completions`` (no streaming), ``GET /v1/models``, ``GET /v1/models/{id}``,
``GET /health``, and ``GET /v1/judge_card`` (the served export's judge_card.json; 404 when the
model dir has none). A trailing slash on a path is ignored. It binds 127.0.0.1 unless told otherwise.
Production serving is ``vllm serve <export dir>``, which speaks the same API, so the same client
works against both.

The HTTP stack is FastAPI on uvicorn (the ``api`` extra), as in vLLM's and FastChat's OpenAI
servers: one event loop answers every connection, and the model runs off it, in a worker thread,
one batch at a time. Requests that arrive while a batch is generating wait in a queue and are
answered together in the next batched ``generate`` (the transformers backend pads and sorts them),
so the model is never entered by two threads at once.

Who may ask, each refusal a clear JSON error:

- ``--api-key-env NAME``: every route but ``/health`` needs ``Authorization: Bearer <key>``, the key
  read from the environment variable NAME at launch (as vLLM's ``--api-key``); without it or with
  another key, 401 ``invalid_api_key``. The key is compared in constant time and never logged.
  Started on an address beyond loopback without a key, the server warns: anyone who reaches it can use it.
- The ``Host`` header must name this server: a loopback name (``localhost``, ``127.0.0.1``,
  ``[::1]``), the bound host or the address the request arrived at, with the port it arrived on;
  anything else gets 421 ``invalid_host`` (a web page whose name was re-pointed at this machine
  cannot read from it). ``--allowed-host NAME`` (any port) or ``NAME:PORT`` adds a name, for a
  deployment behind a proxy or a DNS name; ``--allowed-host '*'`` turns the check off.
- Nothing served names a path of this machine: a model dir is served under its last component
  (``--served-model-name`` overrides), and absolute paths in the served judge card and in error
  messages are cut to their last component.

Limits, each a clear JSON error rather than a dropped connection:

- ``--max-concurrency`` (default 64) requests are in progress at once (in the batching loop or being
  generated); up to ``--max-queue`` (default 1024) more wait their turn, in arrival order. Only a
  request that finds the queue full is refused, with 503 and ``Retry-After: 1`` (the OpenAI client
  and judgetrain's HTTP backend retry it with backoff). ``--max-queue 0`` refuses as soon as every
  place is taken. The cheap GET routes are never queued, so ``/health`` answers under any load.
- A request body over ``--max-body-bytes`` (default 8 MiB) gets 413, whether it declares its
  length or streams in chunks; the server stops reading it at the limit.
- The body must be JSON (``Content-Type: application/json``; 415 otherwise, which also keeps a
  web page's plain form posts away from a server on this machine).
- Every request is checked alone before it joins a batch, so what one client sends fails only that
  request, with 400 naming the field (``param``): malformed JSON, JSON nested too deeply, an integer
  of more digits than any field takes, a missing field, a value of the wrong type or out of range
  (``seed`` is a 64-bit integer), text that is not valid Unicode (a lone surrogate such as
  ``"\\ud800"``), messages the model's chat template or tokenizer refuses, and messages plus
  ``max_tokens`` longer than the model's context (``context_length_exceeded``; without
  ``max_tokens``, the reply gets up to 512 tokens, fewer when the context has less room).

Every error is OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, with ``type``
``invalid_request_error`` (4xx) or ``server_error`` (5xx) and a short string ``code``; no
traceback ever reaches a client (it goes to the server's log). A batch whose generation still fails
is retried one request at a time, so one request the model cannot answer cannot fail the others
queued with it.

The request's ``model`` is not checked (one model is served). ``logprobs`` / ``top_logprobs``
(at most 20) are served for transformers models: the log-probability of each token of the returned
text (as the tokenizer splits it) under the model's own distribution, before temperature and
top_p, as vLLM reports them by default, scored in one forward pass over the prompt and the text.
Other request fields (``tools``, ``response_format``, penalties, …) are ignored.

A reward export (its judge card says ``kind: reward``) is served on ``POST /pooling`` instead, in
vLLM's pooling API shape: ``{"model", "messages"}`` in (the conversation to score: the question turns
and one answer's turns), ``{"data": [{"index": 0, "object": "pooling", "data": [reward]}], "usage"}``
out. Chat completions then answer 400 pointing there, since a reward model writes no text. The
same checks (key, host, queue, body size, JSON checks, error shape) apply; rewards are computed in a
worker thread, one request at a time.
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations at run time
# (a string annotation naming build_app's local import of Request would not resolve).
import argparse
import asyncio
import contextlib
import copy
import dataclasses
import hmac
import ipaddress
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

from judgetrain.card import has_card, read_card
from judgetrain.judging.backends.base import Backend, Completion, Decoding, Request

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_CONCURRENCY = 64
DEFAULT_MAX_QUEUE = 1024
SEED_RANGE = (-2**63, 2**63 - 1)  # a 64-bit integer, as OpenAI's and vLLM's seed
MAX_INTEGER_DIGITS = 100  # no field takes more than 20 digits; longer ones are never converted to int
MAX_SAMPLES_PER_REQUEST = 16
MAX_TOP_LOGPROBS = 20  # as OpenAI's chat API
DEFAULT_MAX_TOKENS = 512
RETRY_AFTER_SECONDS = 1
GRACEFUL_SHUTDOWN_SECONDS = 10
LISTEN_BACKLOG = 2048  # connections the kernel holds before the loop accepts them (uvicorn's default)
ROLES = ("system", "user", "assistant")
LOOPBACK_HOST_NAMES = ("localhost", "127.0.0.1", "[::1]")
WILDCARD_HOSTS = ("", "0.0.0.0", "::")
OPEN_PATHS = ("/health",)  # answered without an API key, so a load balancer can probe the server
ROUTES = "POST /v1/chat/completions (or POST /pooling for a reward model), GET /v1/models, GET /v1/judge_card and GET /health"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="a model dir (an export or checkpoint), an HF hub id, 'tiny' or 'embedded:smollm2-135m'")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (0 picks a free one)")
    parser.add_argument("--batch-size", type=int, default=8, help="most requests answered together in one batch")
    parser.add_argument("--served-model-name", default=None, help="model id reported by /v1/models (default: --model; a local dir by its last component)")
    parser.add_argument("--max-concurrency", type=int, default=DEFAULT_MAX_CONCURRENCY,
                        help="requests in progress at once (in the batching loop or generating); more wait in the queue "
                             f"(default {DEFAULT_MAX_CONCURRENCY})")
    parser.add_argument("--max-queue", type=int, default=DEFAULT_MAX_QUEUE,
                        help="requests waiting for a place beyond --max-concurrency; when it is full, 503 with "
                             f"Retry-After (default {DEFAULT_MAX_QUEUE}; 0 refuses once every place is taken)")
    parser.add_argument("--api-key-env", default=None, metavar="NAME",
                        help="require 'Authorization: Bearer <key>' on every route but /health; the key is read from "
                             "the environment variable NAME at launch")
    parser.add_argument("--allowed-host", action="append", default=[], metavar="NAME[:PORT]",
                        help="a Host header name to answer besides the loopback names and the bound address "
                             "(repeatable; NAME alone allows any port; '*' allows every name)")
    parser.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES,
                        help=f"largest request body accepted; larger gets 413 (default {MAX_BODY_BYTES})")


def run(args: argparse.Namespace) -> int:
    # A dev server shows its access log (one line per request) on stderr.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    server, thread = start_server(args.model, args.host, args.port, batch_size=args.batch_size,
                                  served_model_name=args.served_model_name, max_concurrency=args.max_concurrency,
                                  max_queue=args.max_queue, max_body_bytes=args.max_body_bytes,
                                  api_key_env=args.api_key_env, allowed_hosts=args.allowed_host)
    key_note = f", API key from ${args.api_key_env}" if args.api_key_env else ""
    print(f"judgetrain serve: {server.served_model_name} on {server.url}/v1 (Ctrl-C stops{key_note})", flush=True)
    serve_until_interrupted(server, thread)
    return 0


def serve_until_interrupted(server: Any, thread: threading.Thread) -> None:
    """Wait on a started server's thread until Ctrl-C, then stop the server and close its socket.
    Any server with ``shutdown()`` and ``server_close()`` (this one, or a standard-library one)."""
    try:
        thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()


# --- errors -----------------------------------------------------------------------------------


class APIError(Exception):
    """An error answered to the client in OpenAI's shape; ``param`` names the request field at fault."""

    def __init__(self, status: int, message: str, *, code: str, param: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = int(status)
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error_type = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": error_type, "param": self.param, "code": self.code}}


def _bad(message: str, param: str | None, code: str = "invalid_value") -> APIError:
    return APIError(HTTPStatus.BAD_REQUEST, message, param=param, code=code)


def _shown(value: Any) -> str:
    """A short repr of a bad value for an error message (never the whole of a large one)."""
    simple = (str, int, float, bool, type(None), OversizedInteger)
    text = repr(value) if isinstance(value, simple) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


@dataclasses.dataclass(frozen=True)
class OversizedInteger:
    """A JSON integer of more than ``MAX_INTEGER_DIGITS`` digits, kept as its length: converting it
    costs time quadratic in its digits (Python refuses past 4300), and no field takes one, so the field
    holding it is refused by its own check, by name."""

    num_digits: int

    def __repr__(self) -> str:
        return f"an integer of {self.num_digits} digits, longer than any field takes"


def _json_integer(digits: str) -> int | OversizedInteger:
    length = len(digits.lstrip("-"))
    return int(digits) if length <= MAX_INTEGER_DIGITS else OversizedInteger(length)


# An absolute POSIX path of two or more parts (a bare "/pooling" is a route, not a path), with an
# optional file:// scheme; "https://host/a/b" is left alone (its slashes follow ":", "/" or a word).
_ABSOLUTE_PATH = re.compile(r"(?:file://|(?<![\w.~:/-]))(?:/[^\s/'\"`<>|,;:()\[\]{}]+){2,}/?")


def without_local_paths(value: Any) -> Any:
    """``value`` (a string, or JSON-like lists and dicts of them, keys included) with every absolute
    path cut to its last component: ``/home/me/judges/my-judge`` → ``my-judge``,
    ``/home/me/judges/my-judge/tokenizer.json`` → ``tokenizer.json``. What the server sends never shows
    how this machine's disks are laid out."""
    if isinstance(value, str):
        return _ABSOLUTE_PATH.sub(lambda match: match.group(0).rstrip("/").rsplit("/", 1)[-1], value)
    if isinstance(value, list):
        return [without_local_paths(item) for item in value]
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            shown = without_local_paths(key)
            # Two dirs of one name ("…/a/data", "…/b/data") keep both entries.
            while shown in out:
                shown = f"{shown} (again)"
            out[shown] = without_local_paths(item)
        return out
    return value


def _checked_text(text: str, param: str) -> str:
    """``text`` when it is valid Unicode; a JSON string may hold a lone surrogate (``"\\ud800"``),
    which no tokenizer takes and no UTF-8 encodes, so it is refused here, for this request alone."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise _bad(f"{param} holds a lone surrogate (U+{ord(text[err.start]):04X}) at character {err.start}, which is "
                   "not text; send valid Unicode (pair the surrogate or drop it)", param, "invalid_text") from None
    return text


# --- the request ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ChatJob:
    """One validated chat request: what the model is asked, and what the reply must carry.
    ``max_tokens`` is None when the client gave none (the server picks, see ``DEFAULT_MAX_TOKENS``);
    ``top_logprobs`` is None when no logprobs were asked for."""

    request: Request
    max_tokens: int | None
    top_logprobs: int | None


def _decoding_from(body: dict[str, Any]) -> tuple[Decoding, int | None]:
    """Our Decoding from an OpenAI request body, and the max_tokens the client gave (None: none)."""
    def number(name: str, default: float, low: float, high: float) -> float:
        value = body.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise _bad(f"'{name}' must be a number in [{low}, {high}], got {_shown(value)}", name)
        return float(value)

    name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = body.get(name)
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise _bad(f"'{name}' must be a positive integer, got {_shown(max_tokens)}", name)
    n = body.get("n")
    n = 1 if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SAMPLES_PER_REQUEST:
        raise _bad(f"'n' must be an integer in [1, {MAX_SAMPLES_PER_REQUEST}], got {_shown(n)}", "n")
    stop = body.get("stop")
    stop = () if stop is None else (stop,) if isinstance(stop, str) else stop
    if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) and s for s in stop):
        raise _bad(f"'stop' must be a string or a list of non-empty strings, got {_shown(stop)}", "stop")
    stop = [_checked_text(s, "stop") for s in stop]
    seed = body.get("seed")
    low, high = SEED_RANGE
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not low <= seed <= high):
        raise _bad(f"'seed' must be a 64-bit integer, in [-2**63, 2**63 - 1], got {_shown(seed)}", "seed")
    temperature = number("temperature", 0.0, 0.0, 2.0)
    top_p = number("top_p", 1.0, 0.0, 1.0)
    if top_p == 0:
        raise _bad("'top_p' must be above 0", "top_p")
    decoding = Decoding(max_new_tokens=max_tokens or DEFAULT_MAX_TOKENS, temperature=temperature, top_p=top_p, n=n,
                        stop=tuple(stop), seed=seed)
    return decoding, max_tokens


def _messages_from(body: dict[str, Any]) -> tuple[dict[str, str], ...]:
    if "messages" not in body:
        raise _bad("'messages' is required: a non-empty list of {role, content} objects", "messages", "missing_field")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise _bad(f"'messages' must be a non-empty list of {{role, content}} objects, got {_shown(messages)}", "messages")
    out = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _bad(f"{where} must be an object with 'role' and 'content', got {_shown(message)}", where)
        for key in ("role", "content"):
            if key not in message:
                raise _bad(f"{where}.{key} is required", f"{where}.{key}", "missing_field")
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise _bad(f"{where}.role must be one of {list(ROLES)}, got {_shown(role)}", f"{where}.role")
        if isinstance(content, list):
            # The content-parts form: only text parts make sense for a text judge.
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content):
                raise _bad(f"{where}.content: only text parts ({{'type': 'text', 'text': ...}}) are supported",
                           f"{where}.content")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise _bad(f"{where}.content must be a string or a list of text parts, got {_shown(content)}",
                       f"{where}.content")
        out.append({"role": role, "content": _checked_text(content, f"{where}.content")})
    return tuple(out)


def parse_chat_request(body: Any) -> ChatJob:
    """A validated :class:`ChatJob` from a decoded JSON body; raises :class:`APIError` (400) naming the bad field."""
    if not isinstance(body, dict):
        raise _bad(f"the body must be a JSON object with 'messages', got {type(body).__name__}", None, "invalid_body")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _bad(f"'stream' must be a boolean, got {_shown(stream)}", "stream")
    if stream:
        raise _bad("streaming is not supported by judgetrain serve; send stream=false", "stream", "unsupported")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise _bad(f"'model' must be a string, got {_shown(model)}", "model")
    logprobs = body.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise _bad(f"'logprobs' must be a boolean, got {_shown(logprobs)}", "logprobs")
    top = body.get("top_logprobs")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= MAX_TOP_LOGPROBS):
        raise _bad(f"'top_logprobs' must be an integer in [0, {MAX_TOP_LOGPROBS}], got {_shown(top)}", "top_logprobs")
    if top is not None and not logprobs:
        raise _bad("'top_logprobs' needs 'logprobs': true", "top_logprobs")
    messages = _messages_from(body)
    decoding, max_tokens = _decoding_from(body)
    return ChatJob(Request(messages=messages, decoding=decoding), max_tokens, (top or 0) if logprobs else None)


# --- the model side: batches on a worker thread --------------------------------------------------


@dataclasses.dataclass
class ChatAnswer:
    """What the model gave for one job: the request as generated (max tokens resolved), the
    completion, and per choice the OpenAI ``logprobs`` object (None when not asked for)."""

    request: Request
    completion: Completion
    choice_logprobs: list[dict[str, Any]] | None = None


class ModelRunner:
    """Checks each job on its arrival and answers batches of checked jobs with the backend.

    :meth:`check` (for a transformers model) renders and tokenizes the job's prompt and fits it to the
    model's context, on a thread of its own with its own copy of the tokenizer, so a request the
    tokenizer refuses is answered 400 before it joins a batch, while the batch before it generates.
    :meth:`answer` runs on one worker thread at a time and also scores logprobs; a batch whose
    ``generate`` raises is answered again one request at a time, so the error reaches only the
    request that caused it."""

    def __init__(self, backend: Backend):
        from judgetrain.judging.backends.transformers_backend import TransformersBackend

        self.backend = backend
        self.transformers = backend if isinstance(backend, TransformersBackend) else None
        config = getattr(self.transformers.model, "config", None) if self.transformers is not None else None
        self.context_tokens: int | None = getattr(config, "max_position_embeddings", None)
        self._checking: Any = None
        self._check_pool: ThreadPoolExecutor | None = None
        if self.transformers is not None:
            # A fast tokenizer is a Rust object that two threads must not use at once, and the worker
            # thread uses the backend's while it generates: the checks get their own copy (the same
            # vocabulary and chat template; the model is shared, never run here).
            self._checking = copy.copy(self.transformers)
            self._checking.tokenizer = copy.deepcopy(self.transformers.tokenizer)
            self._check_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="judgetrain-serve-check")

    @property
    def serves_logprobs(self) -> bool:
        return self.transformers is not None

    async def checked(self, job: ChatJob) -> ChatJob:
        """:meth:`check` off the event loop (on the checking thread); raises :class:`APIError` (400)."""
        if self._check_pool is None:
            return job
        return await asyncio.get_running_loop().run_in_executor(self._check_pool, self.check, job)

    def check(self, job: ChatJob) -> ChatJob:
        """The job with its prompt checked and its max tokens resolved against the model's context
        (400 when the model's chat template or tokenizer refuses the messages, or they cannot fit)."""
        if self._checking is None:
            return job
        try:
            _, prompt_ids = self._checking.prompt_ids(job.request)
        except Exception as err:  # noqa: BLE001 - whatever the template or tokenizer refuses is this request's
            detail = without_local_paths(f"{type(err).__name__}: {err}")[:300]
            raise _bad(f"the messages cannot be made into this model's prompt ({detail}); check their roles and text",
                       "messages", "invalid_prompt") from None
        return dataclasses.replace(job, request=self._fit_to_context(job, len(prompt_ids)))

    def close(self) -> None:
        if self._check_pool is not None:
            self._check_pool.shutdown(wait=False, cancel_futures=True)

    def answer(self, jobs: list[ChatJob]) -> list[ChatAnswer | APIError]:
        """The answer to each job (checked by :meth:`check`), or the error that reaches it alone."""
        results: list[ChatAnswer | APIError | None] = [None] * len(jobs)
        ready = [(index, job.request) for index, job in enumerate(jobs)]
        for (index, request), completion in zip(ready, self._generate([request for _, request in ready])):
            if isinstance(completion, Exception):
                detail = without_local_paths(f"{type(completion).__name__}: {completion}")
                results[index] = APIError(HTTPStatus.INTERNAL_SERVER_ERROR, f"generation failed: {detail}",
                                          code="generation_failed")
            elif completion.error is not None:
                results[index] = APIError(HTTPStatus.INTERNAL_SERVER_ERROR,
                                          f"generation failed: {without_local_paths(completion.error)}",
                                          code="generation_failed")
            else:
                top = jobs[index].top_logprobs
                try:
                    scored = None if top is None else self._choice_logprobs(request, completion, top)
                except Exception as err:  # noqa: BLE001 - this request's failure, reported to it alone
                    logger.exception("scoring logprobs failed")
                    detail = without_local_paths(f"{type(err).__name__}: {err}")
                    results[index] = APIError(HTTPStatus.INTERNAL_SERVER_ERROR, f"scoring logprobs failed: {detail}",
                                              code="generation_failed")
                    continue
                results[index] = ChatAnswer(request, completion, scored)
        assert all(r is not None for r in results), "every job is answered"
        return results  # type: ignore[return-value]

    def _fit_to_context(self, job: ChatJob, num_prompt_tokens: int) -> Request:
        """The job's request with its max tokens resolved against the model's context (400 when it cannot fit)."""
        request = job.request
        if self.context_tokens is None:
            return request
        room = self.context_tokens - num_prompt_tokens
        if room < 1:
            raise _bad(f"the messages take {num_prompt_tokens} tokens, which fills the model's context of "
                       f"{self.context_tokens} tokens; shorten them", "messages", "context_length_exceeded")
        if job.max_tokens is None:
            max_new_tokens = min(DEFAULT_MAX_TOKENS, room)
        elif job.max_tokens > room:
            raise _bad(f"'max_tokens' is {_shown(job.max_tokens)}, but the messages take {num_prompt_tokens} of the "
                       f"model's {self.context_tokens} context tokens, leaving {room}; lower max_tokens or shorten the "
                       "messages", "max_tokens", "context_length_exceeded")
        else:
            return request
        return dataclasses.replace(request, decoding=dataclasses.replace(request.decoding, max_new_tokens=max_new_tokens))

    def _generate(self, requests: list[Request]) -> list[Completion | Exception]:
        if not requests:
            return []
        try:
            completions = list(self.backend.generate(requests))
            if len(completions) != len(requests):
                raise RuntimeError(f"the {self.backend.name or 'model'} backend returned {len(completions)} completions "
                                   f"for {len(requests)} requests")
            return completions
        except Exception as err:  # noqa: BLE001 - isolate the request that caused it
            if len(requests) == 1:
                logger.exception("generation failed")
                return [err]
            logger.warning("generation failed for a batch of %d (%s: %s); answering its requests one at a time",
                           len(requests), type(err).__name__, err)
            return [completion for request in requests for completion in self._generate([request])]

    def _choice_logprobs(self, request: Request, completion: Completion, top: int) -> list[dict[str, Any]] | None:
        if self.transformers is None:
            return None
        _, prompt_ids = self.transformers.prompt_ids(request)
        scored: dict[str, dict[str, Any]] = {}
        texts = completion.texts or [completion.text]
        for text in texts:
            if text not in scored:  # greedy n > 1 repeats one text
                scored[text] = self._text_logprobs(prompt_ids, text, top)
        return [scored[text] for text in texts]

    def _text_logprobs(self, prompt_ids: list[int], text: str, top: int) -> dict[str, Any]:
        """OpenAI's ``logprobs`` object for ``text`` after the prompt: teacher-forced, one forward pass."""
        import torch

        backend = self.transformers
        tokenizer, model = backend.tokenizer, backend.model
        text_ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        if not text_ids:
            return {"content": [], "refusal": None}
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                ids = torch.tensor([prompt_ids + text_ids], device=backend.device)
                # Position p's logits predict token p + 1: the text's tokens are read off the rows
                # from the last prompt token to the one before the text's last token.
                logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1:-1].float()
        finally:
            if was_training:
                model.train()
        logprobs = torch.log_softmax(logits, dim=-1)
        chosen = logprobs.gather(1, torch.tensor(text_ids, device=logprobs.device)[:, None])[:, 0].tolist()
        top_values, top_ids = logprobs.topk(top, dim=-1) if top else (None, None)

        def entry(token_id: int, logprob: float) -> dict[str, Any]:
            token = tokenizer.decode([token_id])
            return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}

        content = []
        for position, (token_id, logprob) in enumerate(zip(text_ids, chosen)):
            item = entry(token_id, logprob)
            item["top_logprobs"] = [] if top_ids is None else [
                entry(i, v) for i, v in zip(top_ids[position].tolist(), top_values[position].tolist())]
            content.append(item)
        return {"content": content, "refusal": None}


class BatchingQueue:
    """Collects chat jobs from the event loop and answers them in batches on a worker thread.

    :meth:`run` (a task on the server's loop) takes the first waiting job, then whatever else is
    already waiting (up to ``batch_size``), and answers them with one ``ModelRunner.answer`` call
    in a thread, one batch at a time: the loop stays free to accept and queue more meanwhile."""

    def __init__(self, runner: ModelRunner, batch_size: int):
        self.runner = runner
        self.batch_size = batch_size
        self._queue: asyncio.Queue[tuple[ChatJob, asyncio.Future]] = asyncio.Queue()

    async def submit(self, job: ChatJob) -> ChatAnswer | APIError:
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((job, future))
        return await future

    async def run(self) -> None:
        import anyio.to_thread

        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            # A waiter already cancelled (uvicorn cancels what is left past the shutdown grace period) costs nothing.
            batch = [(job, future) for job, future in batch if not future.done()]
            if not batch:
                continue
            jobs = [job for job, _ in batch]
            try:
                results = await anyio.to_thread.run_sync(self.runner.answer, jobs)
            except Exception as err:  # noqa: BLE001 - a bug in answer(): the server lives on
                logger.exception("answering a batch of %d failed", len(batch))
                if len(jobs) == 1:
                    results = [_internal_error(err)]
                else:
                    # Answered again one by one, so only the job that trips the bug fails.
                    results = [await self._answer_alone(job) for job in jobs]
            for (_, future), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)


    async def _answer_alone(self, job: ChatJob) -> ChatAnswer | APIError:
        import anyio.to_thread

        try:
            return (await anyio.to_thread.run_sync(self.runner.answer, [job]))[0]
        except Exception as err:  # noqa: BLE001 - this job's failure, reported to it alone
            logger.exception("answering one request failed")
            return _internal_error(err)


def _internal_error(err: Exception) -> APIError:
    return APIError(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error ({type(err).__name__}); see the server's log",
                    code="internal_error")


# --- the HTTP app ------------------------------------------------------------------------------


def _response_body(answer: ChatAnswer, model_name: str) -> dict[str, Any]:
    completion, request = answer.completion, answer.request
    texts = completion.texts or [completion.text]
    tokens_in, tokens_out = completion.tokens_in or 0, completion.tokens_out or 0
    # The backend reports tokens out over all samples; a sample that used the whole budget stopped on length.
    per_sample_out = tokens_out / max(1, len(texts))
    finish_reason = "length" if per_sample_out >= request.decoding.max_new_tokens else "stop"
    logprobs = answer.choice_logprobs or [None] * len(texts)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_name,
        "choices": [{"index": i, "message": {"role": "assistant", "content": text}, "logprobs": logprobs[i],
                     "finish_reason": finish_reason} for i, text in enumerate(texts)],
        "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out},
    }


async def _read_body(http_request: Any, max_body_bytes: int) -> bytes:
    """The request body, refused with 413 past ``max_body_bytes``: at once when Content-Length says
    so, else as soon as the chunks read add up to more (nothing past the limit is kept)."""
    too_large = APIError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                         f"the request body is over this server's limit of {max_body_bytes} bytes (--max-body-bytes)",
                         code="body_too_large")
    declared = http_request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_body_bytes:
        raise too_large
    chunks, size = [], 0
    async for chunk in http_request.stream():
        size += len(chunk)
        if size > max_body_bytes:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class _IgnoreTrailingSlash:
    """ASGI middleware: ``/health/`` is ``/health`` (as the standard-library server had it), without a redirect."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and len(scope["path"]) > 1 and scope["path"].endswith("/"):
            scope = {**scope, "path": scope["path"].rstrip("/") or "/"}
            scope.pop("raw_path", None)
        await self.app(scope, receive, send)


class RequestQueue:
    """The bounded queue in front of the batching loop (and the reward worker).

    At most ``max_in_progress`` requests hold a turn at once; up to ``max_waiting`` more wait for one,
    in arrival order (asyncio's semaphore wakes its waiters first come, first served). A request that
    finds every turn and every waiting place taken is refused at once with 503 and Retry-After: a
    client backs off rather than the server piling up work it cannot finish. The counts are read by
    ``/health``; the event loop is one thread, so they need no lock."""

    def __init__(self, max_in_progress: int, max_waiting: int):
        self.max_in_progress = max_in_progress
        self.max_waiting = max_waiting
        self.num_in_progress = 0
        self.num_waiting = 0
        self._turns = asyncio.Semaphore(max_in_progress)

    @contextlib.asynccontextmanager
    async def place(self) -> AsyncIterator["QueuePlace"]:
        """A place in the queue (503 when there is none), held until the request is answered; the
        request may be checked while it waits, then awaits :meth:`QueuePlace.turn`."""
        if self.num_in_progress + self.num_waiting >= self.max_in_progress + self.max_waiting:
            raise APIError(HTTPStatus.SERVICE_UNAVAILABLE,
                           f"judgetrain serve is busy: {self.num_in_progress} requests are in progress (--max-concurrency "
                           f"{self.max_in_progress}) and {self.num_waiting} are waiting (--max-queue {self.max_waiting}); "
                           f"retry in {RETRY_AFTER_SECONDS} s", code="server_overloaded",
                           headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        self.num_waiting += 1
        place = QueuePlace(self)
        try:
            yield place
        finally:
            if place.has_turn:
                self.num_in_progress -= 1
                self._turns.release()
            else:
                self.num_waiting -= 1


class QueuePlace:
    """One request's place in a :class:`RequestQueue`."""

    def __init__(self, queue: RequestQueue):
        self.queue = queue
        self.has_turn = False

    async def turn(self) -> None:
        """Wait until this request may go in progress (a cancelled wait holds nothing)."""
        assert not self.has_turn, "a place takes one turn"
        await self.queue._turns.acquire()
        # No await between acquiring and recording it: a cancellation cannot leak the turn.
        self.queue.num_waiting -= 1
        self.queue.num_in_progress += 1
        self.has_turn = True


def _split_host(host: str) -> tuple[str, str | None]:
    """A Host header's name and port: ``"[::1]:8000"`` → ``("[::1]", "8000")``, ``"a"`` → ``("a", None)``."""
    if host.startswith("["):
        end = host.find("]")
        name, rest = (host, "") if end < 0 else (host[:end + 1], host[end + 1:])
        return name, rest[1:] if rest.startswith(":") else None
    name, colon, port = host.rpartition(":")
    return (name, port) if colon else (host, None)


def _host_literal(address: str) -> str:
    """An address as a Host header writes it (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


class _HostCheck:
    """ASGI middleware: only requests whose ``Host`` header names this server are answered.

    A web page can point a name it controls at 127.0.0.1 and then read a local server as its own
    site; the Host header still carries the page's name, so naming a host other than this server's is
    refused (421, in OpenAI's error shape). Starlette's TrustedHostMiddleware drops the port and
    answers in plain text, hence this. Allowed: the loopback names, ``bound_names`` and the address the
    connection arrived at, each with the port it arrived on; ``allowed_hosts`` entries ``NAME`` (any
    port) or ``NAME:PORT``; ``"*"`` allows every Host."""

    def __init__(self, app: Any, bound_names: Sequence[str], allowed_hosts: Sequence[str]):
        from starlette.responses import JSONResponse

        self.app = app
        self._response = JSONResponse
        self.any_host = "*" in allowed_hosts
        self.bound_names = {name.lower() for name in (*LOOPBACK_HOST_NAMES, *bound_names)}
        entries = [entry.strip().lower() for entry in allowed_hosts if entry.strip() not in ("", "*")]
        self.names_any_port = {entry for entry in entries if _split_host(entry)[1] is None}
        self.names_with_port = {entry for entry in entries if _split_host(entry)[1] is not None}

    def allowed(self, host: str, server: tuple[str, int] | None) -> bool:
        name, port = _split_host(host)
        if name in self.names_any_port or host in self.names_with_port:
            return True
        if server is None:  # not served over TCP (e.g. an in-process test client): loopback names only
            return name in self.bound_names
        local_address, local_port = server[0], int(server[1])
        names = self.bound_names | {_host_literal(local_address).lower()}
        # A Host without a port means the scheme's default one (80 for http).
        return name in names and (port == str(local_port) if port is not None else local_port == 80)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.any_host:
            await self.app(scope, receive, send)
            return
        host = next((value.decode("latin-1") for key, value in scope["headers"] if key == b"host"), "").strip().lower()
        server = scope.get("server")
        if self.allowed(host, server):
            await self.app(scope, receive, send)
            return
        port = f":{server[1]}" if server else ""
        answered = ", ".join(f"{name}{port}" for name in sorted(self.bound_names | self.names_any_port))
        message = (f"the Host header {host!r} names no host this server answers ({answered}); reach it by one of those "
                   f"names, or start it with --allowed-host {_split_host(host)[0] or 'NAME'}" if host else
                   f"send a Host header naming this server ({answered})")
        error = APIError(HTTPStatus.MISDIRECTED_REQUEST, message, code="invalid_host")
        await self._response(error.body(), status_code=error.status)(scope, receive, send)


class _BearerAuth:
    """ASGI middleware: every route but ``OPEN_PATHS`` needs ``Authorization: Bearer <api_key>`` (401
    otherwise, in OpenAI's error shape, as vLLM's ``--api-key``). The comparison takes the same time
    whatever the key sent, so timing does not tell how much of it was right."""

    def __init__(self, app: Any, api_key: str):
        from starlette.responses import JSONResponse

        assert api_key, "an empty key would let every request in"
        self.app = app
        self._response = JSONResponse
        self._key = api_key.encode("utf-8")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        header = next((value for key, value in scope["headers"] if key == b"authorization"), None)
        scheme, _, token = (header or b"").partition(b" ")
        if header is None or scheme.lower() != b"bearer":
            message = "this server needs an API key: send the header 'Authorization: Bearer <key>'"
        elif not hmac.compare_digest(token.strip(), self._key):
            message = "the API key sent is not this server's; send 'Authorization: Bearer <key>' with its key"
        else:
            await self.app(scope, receive, send)
            return
        error = APIError(HTTPStatus.UNAUTHORIZED, message, code="invalid_api_key")
        await self._response(error.body(), status_code=error.status, headers={"WWW-Authenticate": "Bearer"})(
            scope, receive, send)


def build_app(backend: Backend | None, served_model_name: str, *, batch_size: int = 8,
              max_concurrency: int = DEFAULT_MAX_CONCURRENCY, max_queue: int = DEFAULT_MAX_QUEUE,
              max_body_bytes: int = MAX_BODY_BYTES, judge_card: dict[str, Any] | None = None,
              reward_scorer: Any = None, api_key: str | None = None, bound_names: Sequence[str] = (),
              allowed_hosts: Sequence[str] = ()) -> Any:
    """The FastAPI app serving ``backend`` under ``served_model_name`` (see the module docstring); with
    ``reward_scorer`` (and no backend), a reward model on ``POST /pooling``.

    ``api_key`` (None: no key) is the key every route but ``/health`` needs; ``bound_names`` (the
    host the server binds) and ``allowed_hosts`` (``--allowed-host``) are the Host names answered
    besides the loopback ones. ``judge_card`` is served as given (see :func:`without_local_paths`)."""
    try:
        from fastapi import FastAPI
        from fastapi import Request as HTTPRequest
        from fastapi.responses import JSONResponse
        from starlette.exceptions import HTTPException
    except ImportError as err:
        raise ImportError("judgetrain serve needs FastAPI and uvicorn: pip install 'judgetrain[api]'") from err
    for name, value, low in (("batch_size", batch_size, 1), ("max_concurrency", max_concurrency, 1),
                             ("max_queue", max_queue, 0), ("max_body_bytes", max_body_bytes, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer of at least {low}, got {value!r}")
    if max_concurrency < batch_size:
        logger.warning("max_concurrency %d is below batch_size %d: batches never hold more than %d requests",
                       max_concurrency, batch_size, max_concurrency)
    if (backend is None) == (reward_scorer is None):
        raise ValueError("build_app serves either a generative backend or a reward_scorer")
    runner = ModelRunner(backend) if backend is not None else None
    batcher = BatchingQueue(runner, batch_size) if runner is not None else None
    reward_lock = threading.Lock()  # the reward model is entered by one worker thread at a time
    requests = RequestQueue(max_concurrency, max_queue)
    created = int(time.time())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if batcher is None:
            yield
            return
        worker = asyncio.create_task(batcher.run(), name="judgetrain-serve-batcher")
        yield
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
        runner.close()

    app = FastAPI(title="judgetrain serve", version="1", lifespan=lifespan,
                  description=f"OpenAI-compatible chat completions from the judge {served_model_name}.")

    def error_response(err: APIError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    @app.exception_handler(APIError)
    async def on_api_error(_: HTTPRequest, err: APIError) -> JSONResponse:
        return error_response(err)

    @app.exception_handler(HTTPException)
    async def on_http_error(http_request: HTTPRequest, err: HTTPException) -> JSONResponse:
        route = f"{http_request.method} {http_request.url.path}"
        if err.status_code == HTTPStatus.NOT_FOUND:
            message, code = f"no route {route}; this server answers {ROUTES}", "not_found"
        elif err.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
            allowed = (err.headers or {}).get("Allow", "")
            message = f"{route} is not allowed; {http_request.url.path} answers {allowed or 'another method'}"
            code = "method_not_allowed"
        else:
            message, code = f"{route}: {err.detail}", HTTPStatus(err.status_code).phrase.lower().replace(" ", "_")
        return error_response(APIError(err.status_code, message, code=code, headers=dict(err.headers or {})))

    @app.exception_handler(Exception)
    async def on_unexpected(http_request: HTTPRequest, err: Exception) -> JSONResponse:
        # The traceback goes to the server's log (Starlette re-raises it to uvicorn); the client gets a line.
        logger.error("%s %s failed: %s: %s", http_request.method, http_request.url.path, type(err).__name__, err)
        return error_response(_internal_error(err))

    def model_card() -> dict[str, Any]:
        return {"id": served_model_name, "object": "model", "created": created, "owned_by": "judgetrain"}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": served_model_name, "requests_in_progress": requests.num_in_progress,
                "requests_waiting": requests.num_waiting, "max_concurrency": max_concurrency, "max_queue": max_queue}

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}")
    async def retrieve_model(model_id: str) -> dict[str, Any]:
        if model_id != served_model_name:
            raise APIError(HTTPStatus.NOT_FOUND, f"the model {model_id!r} does not exist; this server serves "
                           f"{served_model_name!r}", param="model", code="model_not_found")
        return model_card()

    @app.get("/v1/judge_card")
    async def get_judge_card() -> dict[str, Any]:
        if judge_card is None:
            raise APIError(HTTPStatus.NOT_FOUND, f"{served_model_name!r} has no judge card (the model dir holds no "
                           "judge_card.json); pass the card to the client", code="not_found")
        return judge_card

    async def json_body(http_request: HTTPRequest) -> Any:
        content_type = http_request.headers.get("content-type")
        if not _is_json(content_type):
            raise APIError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the body as JSON with 'Content-Type: application/json' "
                           f"(got {content_type or 'no Content-Type'})", code="unsupported_media_type")
        raw = await _read_body(http_request, max_body_bytes)
        try:
            body = json.loads(raw, parse_int=_json_integer) if raw.strip() else None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            detail = f"{err.msg} at char {err.pos}" if isinstance(err, json.JSONDecodeError) else "it is not UTF-8"
            raise _bad(f"the body is not valid JSON: {detail}", None, "invalid_json") from None
        except RecursionError:
            # The decoder recurses once per level; a chat request is a few levels deep.
            raise _bad("the body is JSON nested too deeply to read; a chat request's objects and lists nest a few "
                       "levels deep", None, "invalid_json") from None
        if body is None:
            raise _bad("the body is empty: send a JSON object with 'messages'", None, "invalid_body")
        return body

    @app.post("/pooling")
    async def pooling(http_request: HTTPRequest) -> JSONResponse:
        if reward_scorer is None:
            raise APIError(HTTPStatus.BAD_REQUEST, f"{served_model_name!r} is a generative judge: POST /v1/chat/completions",
                           code="unsupported")
        body = await json_body(http_request)
        if not isinstance(body, dict):
            raise _bad(f"the body must be a JSON object, got {_shown(body)}", None, "invalid_body")
        if "input" in body and "messages" not in body:
            raise _bad("send the conversation to score as 'messages' (a list of {role, content}); raw 'input' text is "
                       "not taken, since the reward model scores its own chat template", "input", "unsupported")
        messages = list(_messages_from(body))

        def score() -> tuple[float, int] | APIError:
            with reward_lock:
                try:
                    num_tokens = len(reward_scorer.encode(messages))
                except Exception as err:  # noqa: BLE001 - what the template or tokenizer refuses is this request's
                    detail = without_local_paths(f"{type(err).__name__}: {err}")[:300]
                    return _bad(f"the messages cannot be made into this model's input ({detail}); check their roles "
                                "and text", "messages", "invalid_prompt")
                return reward_scorer.score([messages])[0], num_tokens

        async with requests.place() as place:
            await place.turn()
            scored = await asyncio.to_thread(score)
        if isinstance(scored, APIError):
            raise scored
        reward, num_tokens = scored
        return JSONResponse({"id": f"pool-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()),
                             "model": served_model_name, "data": [{"index": 0, "object": "pooling", "data": [reward]}],
                             "usage": {"prompt_tokens": num_tokens, "total_tokens": num_tokens}})

    @app.post("/v1/chat/completions")
    async def chat_completions(http_request: HTTPRequest) -> JSONResponse:
        if runner is None:
            raise APIError(HTTPStatus.BAD_REQUEST, f"{served_model_name!r} is a reward model: it writes no text; "
                           "POST /pooling with the conversation to score", code="unsupported")
        body = await json_body(http_request)
        job = parse_chat_request(body)
        if job.top_logprobs is not None and not runner.serves_logprobs:
            raise _bad(f"logprobs are not available from this server's {backend.name or type(backend).__name__} backend",
                       "logprobs", "unsupported")
        async with requests.place() as place:
            job = await runner.checked(job)  # while it waits: a request the tokenizer refuses never joins a batch
            await place.turn()
            result = await batcher.submit(job)
        if isinstance(result, APIError):
            raise result
        return JSONResponse(_response_body(result, served_model_name))

    guarded: Any = app if api_key is None else _BearerAuth(app, api_key)
    return _IgnoreTrailingSlash(_HostCheck(guarded, bound_names, allowed_hosts))


# --- the server -------------------------------------------------------------------------------


class JudgeHTTPServer:
    """uvicorn serving the app on a socket bound at construction (so port 0's pick is known at once).

    ``server_address`` is the bound ``(host, port)``; :meth:`start` serves on a background thread;
    ``shutdown()`` stops it (requests in flight get up to ``GRACEFUL_SHUTDOWN_SECONDS`` to finish)
    and ``server_close()`` closes the socket, as with the standard library's servers."""

    def __init__(self, app: Any, host: str, port: int, served_model_name: str):
        try:
            import uvicorn
        except ImportError as err:
            raise ImportError("judgetrain serve needs FastAPI and uvicorn: pip install 'judgetrain[api]'") from err
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        self.socket = socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
        self.server_address = self.socket.getsockname()[:2]
        self.served_model_name = served_model_name
        # log_config=None leaves logging to the application: `judgetrain serve` shows uvicorn's access
        # log through its basicConfig, and a test or a notebook keeps its own setup.
        config = uvicorn.Config(app, log_config=None, access_log=True, lifespan="on", backlog=LISTEN_BACKLOG,
                                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS)
        self._uvicorn = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        # Set when serving has ended. shutdown() waits on it rather than on Thread.join(): a join
        # that Ctrl-C interrupted can report the thread finished while it still runs.
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        host, port = self.server_address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def serve_forever(self) -> None:
        try:
            self._uvicorn.run(sockets=[self.socket])
        finally:
            self._stopped.set()

    def start(self, timeout_seconds: float = 60) -> threading.Thread:
        """Serve on a daemon thread; returns once the server accepts requests."""
        self._thread = threading.Thread(target=self.serve_forever, name="judgetrain-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_seconds
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.shutdown()
                self.server_close()
                raise RuntimeError("judgetrain serve did not start; its log above says why")
            time.sleep(0.01)
        return self._thread

    def shutdown(self) -> None:
        self._uvicorn.should_exit = True
        if self._thread is None or self._thread is threading.current_thread():
            return
        # Past the grace period uvicorn cancels what is left, but a batch already generating runs to its end.
        if not self._stopped.wait(timeout=GRACEFUL_SHUTDOWN_SECONDS + 60):
            logger.warning("judgetrain serve: the server thread is still finishing a batch; leaving it")

    def server_close(self) -> None:
        self.socket.close()


def read_api_key(env_name: str) -> str:
    """The API key held by the environment variable ``env_name`` (surrounding whitespace dropped, as
    the client drops it); a ValueError when the variable is unset or empty."""
    if not env_name or not env_name.strip():
        raise ValueError("--api-key-env: give the name of the environment variable that holds the key, e.g. JUDGE_API_KEY")
    key = os.environ.get(env_name, "").strip()
    if not key:
        raise ValueError(f"--api-key-env {env_name}: the environment variable {env_name} is unset or empty; put the key "
                         f"in it (e.g. export {env_name}=$(openssl rand -hex 32)) or leave --api-key-env out")
    return key


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve beyond this machine
        return False


def exposure_warning(host: str, api_key_required: bool) -> str | None:
    """The warning a server bound at ``host`` deserves: one beyond loopback that takes no API key is
    open to whoever reaches it. None when there is nothing to warn about."""
    if api_key_required or is_loopback(host):
        return None
    return (f"judgetrain serve binds {host or 'every address'}, beyond this machine, and asks no API key: whoever "
            "reaches it can use the model; start it with --api-key-env NAME (the key in $NAME), or bind 127.0.0.1")


def default_served_name(model: str | os.PathLike) -> str:
    """The model id a model is served under by default: a local dir by its last component (no path of
    this machine is served), anything else (a hub id, ``tiny``) as given."""
    if Path(model).exists():
        return Path(model).resolve().name
    return str(model)


def start_server(model: str | Backend, host: str = "127.0.0.1", port: int = 0, *, batch_size: int = 8,
                 served_model_name: str | None = None, max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
                 max_queue: int = DEFAULT_MAX_QUEUE, max_body_bytes: int = MAX_BODY_BYTES,
                 api_key_env: str | None = None,
                 allowed_hosts: Sequence[str] = ()) -> tuple[JudgeHTTPServer, threading.Thread]:
    """Start serving ``model`` (a model name/dir for the transformers backend, or a ready Backend) on a
    background thread. Port 0 picks a free port: read it from ``server.server_address[1]``. Stop with
    ``server.shutdown(); server.server_close()``.

    ``api_key_env`` names the environment variable holding the key every route but ``/health``
    needs (read now); ``allowed_hosts`` are Host names answered besides the loopback ones and ``host``."""
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    if max_concurrency < 1:
        raise ValueError(f"--max-concurrency must be at least 1, got {max_concurrency}")
    if max_queue < 0:
        raise ValueError(f"--max-queue must be at least 0 (0 refuses once every place is taken), got {max_queue}")
    if max_body_bytes < 1:
        raise ValueError(f"--max-body-bytes must be at least 1, got {max_body_bytes}")
    api_key = read_api_key(api_key_env) if api_key_env is not None else None
    card = None
    if isinstance(model, (str, os.PathLike)) and Path(model).is_dir() and has_card(model):
        # An export dir: publish its card so a client can set itself up from the URL alone (a bad
        # card is refused here, naming the field, rather than handed to every client).
        card = read_card(model)
    backend, reward_scorer = None, None
    if isinstance(model, Backend):
        backend = model
        name = served_model_name or default_served_name(backend.model_id or "judge")
    elif card is not None and card.kind == "reward":
        from judgetrain.reward.judge import LocalRewardScorer

        assert card.reward is not None, "a reward card has reward settings"
        reward_scorer = LocalRewardScorer(model, batch_size=1, max_seq_len=card.reward.max_seq_len)
        name = served_model_name or default_served_name(model)
    else:
        from judgetrain.judging.backends.transformers_backend import TransformersBackend

        backend = TransformersBackend(model, batch_size=batch_size)
        name = served_model_name or default_served_name(model)
    warning = exposure_warning(host, api_key is not None)
    if warning is not None:
        logger.warning("%s", warning)
    bound_names = [] if host.strip() in WILDCARD_HOSTS else [_host_literal(host.strip())]
    app = build_app(backend, name, batch_size=batch_size, max_concurrency=max_concurrency, max_queue=max_queue,
                    max_body_bytes=max_body_bytes, reward_scorer=reward_scorer, api_key=api_key,
                    judge_card=without_local_paths(card.to_dict()) if card is not None else None,
                    bound_names=bound_names, allowed_hosts=allowed_hosts)
    server = JudgeHTTPServer(app, host, port, name)
    thread = server.start()
    return server, thread


__all__ = ["configure", "run", "start_server", "serve_until_interrupted", "build_app", "parse_chat_request",
           "JudgeHTTPServer", "BatchingQueue", "RequestQueue", "QueuePlace", "ModelRunner", "ChatJob", "ChatAnswer",
           "APIError", "OversizedInteger", "without_local_paths", "read_api_key", "is_loopback", "exposure_warning",
           "default_served_name", "MAX_BODY_BYTES", "DEFAULT_MAX_CONCURRENCY", "DEFAULT_MAX_QUEUE"]
