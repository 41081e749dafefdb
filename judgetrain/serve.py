"""``judgetrain serve``: an OpenAI-compatible HTTP server over a judge, for CPU and development.

Endpoints: ``POST /v1/chat/completions`` (no streaming), ``GET /v1/models``, ``GET /health``, and
``GET /v1/judge_card`` (the served export's judge_card.json; 404 when the model dir has none). It is
the standard library's ``ThreadingHTTPServer``: one thread per connection, with a small batching
queue in front of the model so concurrent requests are answered together in one batched
``generate`` (the transformers backend pads and sorts them) and the model is never entered by two
threads at once. The request's ``model`` is not checked (one model is served) and ``logprobs`` are
not returned (null). It binds 127.0.0.1 unless told otherwise. Production serving is
``vllm serve <export dir>``, which speaks the same API, so the same client works against both.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from judgetrain.judging.backends.base import Backend, Completion, Decoding, Request

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_SAMPLES_PER_REQUEST = 16
ROLES = ("system", "user", "assistant")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="a model dir (an export or checkpoint), an HF hub id, 'tiny' or 'embedded:smollm2-135m'")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (0 picks a free one)")
    parser.add_argument("--batch-size", type=int, default=8, help="most requests answered together in one batch")
    parser.add_argument("--served-model-name", default=None, help="model id reported by /v1/models (default: --model)")


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    # A dev server shows its access log (one line per request) on stderr.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    server, thread = start_server(args.model, args.host, args.port, batch_size=args.batch_size,
                                  served_model_name=args.served_model_name)
    host, port = server.server_address[:2]
    print(f"judgetrain serve: {server.served_model_name} on http://{host}:{port}/v1 (Ctrl-C stops)", flush=True)
    serve_until_interrupted(server, thread)
    return 0


def serve_until_interrupted(server: ThreadingHTTPServer, thread: threading.Thread) -> None:
    """Wait on a started server's thread until Ctrl-C, then stop the server and close its socket."""
    try:
        thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()


class BatchingQueue:
    """Collects requests from many HTTP threads and answers them in batches on one worker thread.

    The worker takes the first waiting request, then whatever else is already waiting (up to
    ``batch_size``), and calls ``backend.generate`` once for all of them.
    """

    def __init__(self, backend: Backend, batch_size: int):
        self.backend = backend
        self.batch_size = batch_size
        self._queue: queue.Queue[tuple[Request, Future] | None] = queue.Queue()
        self._worker = threading.Thread(target=self._loop, name="judgetrain-serve-batcher", daemon=True)
        self._worker.start()

    def submit(self, request: Request) -> Future:
        future: Future = Future()
        self._queue.put((request, future))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=30)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self.batch_size:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(nxt)
            try:
                completions = self.backend.generate([request for request, _ in batch])
                for (_, future), completion in zip(batch, completions):
                    future.set_result(completion)
            except Exception as err:  # noqa: BLE001 - every waiting client gets the error, the server lives on
                logger.exception("generation failed for a batch of %d", len(batch))
                for _, future in batch:
                    if not future.done():
                        future.set_exception(err)


class JudgeHTTPServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that holds the batching queue and the served model's name."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], backend: Backend, served_model_name: str, batch_size: int,
                 judge_card: dict[str, Any] | None = None):
        super().__init__(address, _Handler)
        self.backend = backend
        self.judge_card = judge_card
        self.served_model_name = served_model_name
        self.batcher = BatchingQueue(backend, batch_size)
        self.created = int(time.time())

    def server_close(self) -> None:
        super().server_close()
        self.batcher.close()


class _BadRequest(Exception):
    pass


def _decoding_from(body: dict[str, Any]) -> Decoding:
    """Our Decoding from an OpenAI request body; a bad field raises _BadRequest naming it."""
    def number(name: str, default: float, low: float, high: float) -> float:
        value = body.get(name, default)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise _BadRequest(f"'{name}' must be a number in [{low}, {high}], got {value!r}")
        return float(value)

    max_tokens = body.get("max_completion_tokens", body.get("max_tokens", 512))
    if max_tokens is None:
        max_tokens = 512
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise _BadRequest(f"'max_tokens' must be a positive integer, got {max_tokens!r}")
    n = body.get("n")
    n = 1 if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SAMPLES_PER_REQUEST:
        raise _BadRequest(f"'n' must be an integer in [1, {MAX_SAMPLES_PER_REQUEST}], got {n!r}")
    stop = body.get("stop") or ()
    if isinstance(stop, str):
        stop = (stop,)
    if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) and s for s in stop):
        raise _BadRequest(f"'stop' must be a string or a list of non-empty strings, got {stop!r}")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise _BadRequest(f"'seed' must be an integer, got {seed!r}")
    temperature = number("temperature", 0.0, 0.0, 2.0)
    top_p = number("top_p", 1.0, 0.0, 1.0)
    if top_p == 0:
        raise _BadRequest("'top_p' must be above 0")
    return Decoding(max_new_tokens=max_tokens, temperature=temperature, top_p=top_p, n=n, stop=tuple(stop), seed=seed)


def _messages_from(body: dict[str, Any]) -> tuple[dict[str, str], ...]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest("'messages' must be a non-empty list of {role, content} objects")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _BadRequest(f"messages[{i}] must be an object with 'role' and 'content'")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise _BadRequest(f"messages[{i}].role must be one of {list(ROLES)}, got {role!r}")
        if isinstance(content, list):
            # The content-parts form: only text parts make sense for a text judge.
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content):
                raise _BadRequest(f"messages[{i}].content: only text parts are supported")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise _BadRequest(f"messages[{i}].content must be a string, got {type(content).__name__}")
        out.append({"role": role, "content": content})
    return tuple(out)


class _Handler(BaseHTTPRequestHandler):
    server: JudgeHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        logger.info("%s - %s", self.address_string(), format % args)

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, status: int, message: str, error_type: str) -> None:
        self._send_json(status, {"error": {"message": message, "type": error_type, "code": status}})

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/health":
            self._send_json(HTTPStatus.OK, {"status": "ok", "model": self.server.served_model_name})
        elif path == "/v1/models":
            self._send_json(HTTPStatus.OK, {"object": "list", "data": [
                {"id": self.server.served_model_name, "object": "model", "created": self.server.created, "owned_by": "judgetrain"}]})
        elif path == "/v1/judge_card" and self.server.judge_card is not None:
            self._send_json(HTTPStatus.OK, self.server.judge_card)
        else:
            self._send_error(HTTPStatus.NOT_FOUND, f"no route GET {path}; try /v1/models or /health", "not_found")

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        path = self.path.split("?", 1)[0].rstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._send_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY_BYTES} bytes", "invalid_request_error")
            return
        raw = self.rfile.read(length) if length else b""
        if path != "/v1/chat/completions":
            self._send_error(HTTPStatus.NOT_FOUND, f"no route POST {path}; use /v1/chat/completions", "not_found")
            return
        try:
            body = json.loads(raw or b"null")
            if not isinstance(body, dict):
                raise _BadRequest("the body must be a JSON object")
            if body.get("stream"):
                raise _BadRequest("streaming is not supported by judgetrain serve; send stream=false")
            model = body.get("model")
            if model is not None and not isinstance(model, str):
                raise _BadRequest(f"'model' must be a string, got {model!r}")
            request = Request(messages=_messages_from(body), decoding=_decoding_from(body))
        except json.JSONDecodeError as err:
            self._send_error(HTTPStatus.BAD_REQUEST, f"body is not valid JSON: {err.msg} at char {err.pos}", "invalid_request_error")
            return
        except _BadRequest as err:
            self._send_error(HTTPStatus.BAD_REQUEST, str(err), "invalid_request_error")
            return
        try:
            completion: Completion = self.server.batcher.submit(request).result()
        except Exception as err:  # noqa: BLE001 - reported to the client as a server error
            self._send_error(HTTPStatus.INTERNAL_SERVER_ERROR, f"generation failed: {type(err).__name__}: {err}", "server_error")
            return
        if completion.error is not None:
            self._send_error(HTTPStatus.INTERNAL_SERVER_ERROR, f"generation failed: {completion.error}", "server_error")
            return
        self._send_json(HTTPStatus.OK, _response_body(completion, request, self.server.served_model_name))


def _response_body(completion: Completion, request: Request, model_name: str) -> dict[str, Any]:
    texts = completion.texts or [completion.text]
    tokens_in, tokens_out = completion.tokens_in or 0, completion.tokens_out or 0
    # The backend reports tokens out over all samples; a sample that used the whole budget stopped on length.
    per_sample_out = tokens_out / max(1, len(texts))
    finish_reason = "length" if per_sample_out >= request.decoding.max_new_tokens else "stop"
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_name,
        "choices": [{"index": i, "message": {"role": "assistant", "content": text}, "logprobs": None,
                     "finish_reason": finish_reason} for i, text in enumerate(texts)],
        "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out},
    }


def start_server(model: str | Backend, host: str = "127.0.0.1", port: int = 0, *, batch_size: int = 8,
                 served_model_name: str | None = None) -> tuple[JudgeHTTPServer, threading.Thread]:
    """Start serving ``model`` (a model name/dir for the transformers backend, or a ready Backend) on a
    background thread. Port 0 picks a free port: read it from ``server.server_address[1]``. Stop with
    ``server.shutdown(); server.server_close()``."""
    if isinstance(model, Backend):
        backend = model
        name = served_model_name or backend.model_id or "judge"
    else:
        from judgetrain.judging.backends.transformers_backend import TransformersBackend

        backend = TransformersBackend(model, batch_size=batch_size)
        name = served_model_name or model
    judge_card = None
    if isinstance(model, (str, os.PathLike)) and (Path(model) / "judge_card.json").is_file():
        # An export dir: publish its card so a client can set itself up from the URL alone.
        judge_card = json.loads((Path(model) / "judge_card.json").read_text(encoding="utf-8"))
    server = JudgeHTTPServer((host, port), backend, name, batch_size, judge_card=judge_card)
    thread = threading.Thread(target=server.serve_forever, name="judgetrain-serve", daemon=True)
    thread.start()
    return server, thread


__all__ = ["configure", "run", "start_server", "JudgeHTTPServer", "BatchingQueue"]
