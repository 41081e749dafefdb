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

Limits, each a clear JSON error rather than a dropped connection:

- ``--max-concurrency`` (default 64) chat requests may be in progress at once (queued for a batch
  or being generated), under a semaphore. One more is refused at once with 503 and
  ``Retry-After: 1`` rather than left waiting: the OpenAI client and judgetrain's HTTP backend
  retry it with backoff, and a server that is behind on its work does not pile up more of it.
  The cheap GET routes are never limited, so ``/health`` answers under any load.
- A request body over ``--max-body-bytes`` (default 8 MiB) gets 413, whether it declares its
  length or streams in chunks; the server stops reading it at the limit.
- The body must be JSON (``Content-Type: application/json``; 415 otherwise, which also keeps a
  web page's plain form posts away from a server on this machine).
- Malformed JSON, a missing field, a value of the wrong type or out of range gets 400 naming the
  field (``param``); messages plus ``max_tokens`` longer than the model's context gets 400
  ``context_length_exceeded`` (without ``max_tokens``, the reply gets up to 512 tokens, fewer
  when the context has less room).

Every error is OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, with ``type``
``invalid_request_error`` (4xx) or ``server_error`` (5xx) and a short string ``code``; no
traceback ever reaches a client (it goes to the server's log). A batch whose generation fails is
retried one request at a time, so one bad request cannot fail the others queued with it.

The request's ``model`` is not checked (one model is served). ``logprobs`` / ``top_logprobs``
(at most 20) are served for transformers models: the log-probability of each token of the returned
text (as the tokenizer splits it) under the model's own distribution, before temperature and
top_p, as vLLM reports them by default, scored in one forward pass over the prompt and the text.
Other request fields (``tools``, ``response_format``, penalties, …) are ignored.

A reward export (its judge card says ``kind: reward``) is served on ``POST /pooling`` instead, in
vLLM's pooling API shape: ``{"model", "messages"}`` in (the conversation to score: the question turns
and one answer's turns), ``{"data": [{"index": 0, "object": "pooling", "data": [reward]}], "usage"}``
out. Chat completions then answer 400 pointing there, since a reward model writes no text. The
same limits (concurrency, body size, JSON checks, error shape) apply; rewards are computed in a
worker thread, one request at a time.
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations at run time
# (a string annotation naming build_app's local import of Request would not resolve).
import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import socket
import threading
import time
import uuid
from http import HTTPStatus
from pathlib import Path
from typing import Any

from judgetrain.card import has_card, read_card
from judgetrain.judging.backends.base import Backend, Completion, Decoding, Request

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_CONCURRENCY = 64
MAX_SAMPLES_PER_REQUEST = 16
MAX_TOP_LOGPROBS = 20  # as OpenAI's chat API
DEFAULT_MAX_TOKENS = 512
RETRY_AFTER_SECONDS = 1
GRACEFUL_SHUTDOWN_SECONDS = 10
LISTEN_BACKLOG = 2048  # connections the kernel holds before the loop accepts them (uvicorn's default)
ROLES = ("system", "user", "assistant")
ROUTES = "POST /v1/chat/completions (or POST /pooling for a reward model), GET /v1/models, GET /v1/judge_card and GET /health"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="a model dir (an export or checkpoint), an HF hub id, 'tiny' or 'embedded:smollm2-135m'")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (0 picks a free one)")
    parser.add_argument("--batch-size", type=int, default=8, help="most requests answered together in one batch")
    parser.add_argument("--served-model-name", default=None, help="model id reported by /v1/models (default: --model)")
    parser.add_argument("--max-concurrency", type=int, default=DEFAULT_MAX_CONCURRENCY,
                        help="chat requests in progress at once (queued or generating); more get 503 with Retry-After "
                             f"(default {DEFAULT_MAX_CONCURRENCY})")
    parser.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES,
                        help=f"largest request body accepted; larger gets 413 (default {MAX_BODY_BYTES})")


def run(args: argparse.Namespace) -> int:
    # A dev server shows its access log (one line per request) on stderr.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    server, thread = start_server(args.model, args.host, args.port, batch_size=args.batch_size,
                                  served_model_name=args.served_model_name, max_concurrency=args.max_concurrency,
                                  max_body_bytes=args.max_body_bytes)
    print(f"judgetrain serve: {server.served_model_name} on {server.url}/v1 (Ctrl-C stops)", flush=True)
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
    text = repr(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


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
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise _bad(f"'seed' must be an integer, got {_shown(seed)}", "seed")
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
            raise _bad(f"{where}.content must be a string or a list of text parts, got {type(content).__name__}",
                       f"{where}.content")
        out.append({"role": role, "content": content})
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
    """Answers a batch of jobs with the backend; called on one worker thread at a time.

    For a transformers model it also checks each prompt against the model's context and scores
    logprobs. A batch whose ``generate`` raises is answered again one request at a time, so the
    error reaches only the request that caused it."""

    def __init__(self, backend: Backend):
        from judgetrain.judging.backends.transformers_backend import TransformersBackend

        self.backend = backend
        self.transformers = backend if isinstance(backend, TransformersBackend) else None
        config = getattr(self.transformers.model, "config", None) if self.transformers is not None else None
        self.context_tokens: int | None = getattr(config, "max_position_embeddings", None)

    @property
    def serves_logprobs(self) -> bool:
        return self.transformers is not None

    def answer(self, jobs: list[ChatJob]) -> list[ChatAnswer | APIError]:
        results: list[ChatAnswer | APIError | None] = [None] * len(jobs)
        ready: list[tuple[int, Request]] = []
        for index, job in enumerate(jobs):
            try:
                ready.append((index, self._fit_to_context(job)))
            except APIError as err:
                results[index] = err
        for (index, request), completion in zip(ready, self._generate([request for _, request in ready])):
            if isinstance(completion, Exception):
                results[index] = APIError(HTTPStatus.INTERNAL_SERVER_ERROR, f"generation failed: "
                                          f"{type(completion).__name__}: {completion}", code="generation_failed")
            elif completion.error is not None:
                results[index] = APIError(HTTPStatus.INTERNAL_SERVER_ERROR, f"generation failed: {completion.error}",
                                          code="generation_failed")
            else:
                top = jobs[index].top_logprobs
                try:
                    scored = None if top is None else self._choice_logprobs(request, completion, top)
                except Exception as err:  # noqa: BLE001 - this request's failure, reported to it alone
                    logger.exception("scoring logprobs failed")
                    results[index] = APIError(HTTPStatus.INTERNAL_SERVER_ERROR,
                                              f"scoring logprobs failed: {type(err).__name__}: {err}", code="generation_failed")
                    continue
                results[index] = ChatAnswer(request, completion, scored)
        assert all(r is not None for r in results), "every job is answered"
        return results  # type: ignore[return-value]

    def _fit_to_context(self, job: ChatJob) -> Request:
        """The job's request with its max tokens resolved against the model's context (400 when it cannot fit)."""
        request = job.request
        if self.context_tokens is None:
            return request
        _, prompt_ids = self.transformers.prompt_ids(request)
        room = self.context_tokens - len(prompt_ids)
        if room < 1:
            raise _bad(f"the messages take {len(prompt_ids)} tokens, which fills the model's context of "
                       f"{self.context_tokens} tokens; shorten them", "messages", "context_length_exceeded")
        if job.max_tokens is None:
            max_new_tokens = min(DEFAULT_MAX_TOKENS, room)
        elif job.max_tokens > room:
            raise _bad(f"'max_tokens' is {job.max_tokens}, but the messages take {len(prompt_ids)} of the model's "
                       f"{self.context_tokens} context tokens, leaving {room}; lower max_tokens or shorten the messages",
                       "max_tokens", "context_length_exceeded")
        else:
            return request
        return dataclasses.replace(request, decoding=dataclasses.replace(request.decoding, max_new_tokens=max_new_tokens))

    def _generate(self, requests: list[Request]) -> list[Completion | Exception]:
        if not requests:
            return []
        try:
            return list(self.backend.generate(requests))
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
            try:
                results = await anyio.to_thread.run_sync(self.runner.answer, [job for job, _ in batch])
            except Exception as err:  # noqa: BLE001 - a bug in answer(): every waiter hears of it, the server lives on
                logger.exception("answering a batch of %d failed", len(batch))
                results = [APIError(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {type(err).__name__}",
                                    code="internal_error")] * len(batch)
            for (_, future), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)


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


def build_app(backend: Backend | None, served_model_name: str, *, batch_size: int = 8,
              max_concurrency: int = DEFAULT_MAX_CONCURRENCY, max_body_bytes: int = MAX_BODY_BYTES,
              judge_card: dict[str, Any] | None = None, reward_scorer: Any = None) -> Any:
    """The FastAPI app serving ``backend`` under ``served_model_name`` (see the module docstring); with
    ``reward_scorer`` (and no backend), a reward model on ``POST /pooling``."""
    try:
        from fastapi import FastAPI
        from fastapi import Request as HTTPRequest
        from fastapi.responses import JSONResponse
        from starlette.exceptions import HTTPException
    except ImportError as err:
        raise ImportError("judgetrain serve needs FastAPI and uvicorn: pip install 'judgetrain[api]'") from err
    for name, value, low in (("batch_size", batch_size, 1), ("max_concurrency", max_concurrency, 1),
                             ("max_body_bytes", max_body_bytes, 1)):
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
    # Requests in progress (queued or generating). A request that finds it full is refused, not queued.
    slots = asyncio.Semaphore(max_concurrency)
    in_progress = [0]  # the same count, for /health (the loop is one thread: no lock needed)
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
        return error_response(APIError(HTTPStatus.INTERNAL_SERVER_ERROR,
                                       f"internal error ({type(err).__name__}); see the server's log", code="internal_error"))

    def model_card() -> dict[str, Any]:
        return {"id": served_model_name, "object": "model", "created": created, "owned_by": "judgetrain"}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": served_model_name, "requests_in_progress": in_progress[0],
                "max_concurrency": max_concurrency}

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
            body = json.loads(raw) if raw.strip() else None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            detail = f"{err.msg} at char {err.pos}" if isinstance(err, json.JSONDecodeError) else "it is not UTF-8"
            raise _bad(f"the body is not valid JSON: {detail}", None, "invalid_json") from None
        if body is None:
            raise _bad("the body is empty: send a JSON object with 'messages'", None, "invalid_body")
        return body

    def refuse_when_full() -> None:
        if slots.locked():
            raise APIError(HTTPStatus.SERVICE_UNAVAILABLE,
                           f"judgetrain serve is busy: {max_concurrency} requests are in progress, its limit "
                           f"(--max-concurrency); retry in {RETRY_AFTER_SECONDS} s", code="server_overloaded",
                           headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

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
        refuse_when_full()

        def score() -> tuple[float, int]:
            with reward_lock:
                return reward_scorer.score([messages])[0], len(reward_scorer.encode(messages))

        async with slots:
            in_progress[0] += 1
            try:
                reward, num_tokens = await asyncio.to_thread(score)
            finally:
                in_progress[0] -= 1
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
        refuse_when_full()
        async with slots:
            in_progress[0] += 1
            try:
                result = await batcher.submit(job)
            finally:
                in_progress[0] -= 1
        if isinstance(result, APIError):
            raise result
        return JSONResponse(_response_body(result, served_model_name))

    return _IgnoreTrailingSlash(app)


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


def start_server(model: str | Backend, host: str = "127.0.0.1", port: int = 0, *, batch_size: int = 8,
                 served_model_name: str | None = None, max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
                 max_body_bytes: int = MAX_BODY_BYTES) -> tuple[JudgeHTTPServer, threading.Thread]:
    """Start serving ``model`` (a model name/dir for the transformers backend, or a ready Backend) on a
    background thread. Port 0 picks a free port: read it from ``server.server_address[1]``. Stop with
    ``server.shutdown(); server.server_close()``."""
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    if max_concurrency < 1:
        raise ValueError(f"--max-concurrency must be at least 1, got {max_concurrency}")
    if max_body_bytes < 1:
        raise ValueError(f"--max-body-bytes must be at least 1, got {max_body_bytes}")
    card = None
    if isinstance(model, (str, os.PathLike)) and Path(model).is_dir() and has_card(model):
        # An export dir: publish its card so a client can set itself up from the URL alone (a bad
        # card is refused here, naming the field, rather than handed to every client).
        card = read_card(model)
    backend, reward_scorer = None, None
    if isinstance(model, Backend):
        backend = model
        name = served_model_name or backend.model_id or "judge"
    elif card is not None and card.kind == "reward":
        from judgetrain.reward.judge import LocalRewardScorer

        assert card.reward is not None, "a reward card has reward settings"
        reward_scorer = LocalRewardScorer(model, batch_size=1, max_seq_len=card.reward.max_seq_len)
        name = served_model_name or str(model)
    else:
        from judgetrain.judging.backends.transformers_backend import TransformersBackend

        backend = TransformersBackend(model, batch_size=batch_size)
        name = served_model_name or str(model)
    app = build_app(backend, name, batch_size=batch_size, max_concurrency=max_concurrency,
                    max_body_bytes=max_body_bytes, judge_card=card.to_dict() if card is not None else None,
                    reward_scorer=reward_scorer)
    server = JudgeHTTPServer(app, host, port, name)
    thread = server.start()
    return server, thread


__all__ = ["configure", "run", "start_server", "serve_until_interrupted", "build_app", "parse_chat_request",
           "JudgeHTTPServer", "BatchingQueue", "ModelRunner", "ChatJob", "ChatAnswer", "APIError",
           "MAX_BODY_BYTES", "DEFAULT_MAX_CONCURRENCY"]
