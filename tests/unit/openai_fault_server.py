"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1 for tests of the HTTP client.

Each request is matched to the first script marker found in its last user message; the marker's list
of behaviours is played one per attempt (then "ok" forever). Behaviours:

- ``ok``: 200 with the reply text (``replies[marker]`` or the default) and a ``usage`` block
- ``429``: 429 with ``Retry-After: <retry_after_value>``
- ``500``: 500 with an error body
- ``hang``: sleep ``hang_seconds`` (past the client's timeout), then answer ok
- ``malformed``: 200 with a truncated JSON body
- ``truncated``: 200 whose ``Content-Length`` promises more bytes than are sent before the connection
  closes (the body is cut off in transit)
- ``drop``: close the connection without any response
- ``echo-auth``: 400 whose body repeats the Authorization header it received

The server counts attempts and successful answers per prompt (a hash of the messages), so a test can
prove that no finished call was repeated. With ``echo_auth_in_errors`` the 429 and 500 bodies repeat
the Authorization header too (as a leaky proxy would), so a client that logs them must scrub the key.

Killing a client mid-run: with ``freeze_after_ok=K`` the server answers K requests and then holds
every later one unanswered (``frozen`` is set), so the test knows exactly which calls finished before
it kills the client; ``unfreeze()`` drops the held connections without an answer (never counted as
finished) and serves normally again. ``reset_script`` replays new faults for a restarted client.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_REPLY = "8 3\nAssistant 1 answers the question; Assistant 2 does not."
PROMPT_TOKENS = 100
COMPLETION_TOKENS = 10


def prompt_key(messages: list[dict]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]


class FaultServer:
    def __init__(self, script: dict[str, list[str]] | None = None, replies: dict[str, str] | None = None, *,
                 hang_seconds: float = 1.5, retry_after_value: str = "0", ignore_n: bool = False,
                 reply_fn=None, echo_auth_in_errors: bool = False, freeze_after_ok: int | None = None):
        self.script = dict(script or {})
        self.replies = dict(replies or {})
        self.hang_seconds = hang_seconds
        self.retry_after_value = retry_after_value
        self.ignore_n = ignore_n
        self.reply_fn = reply_fn  # content -> reply text, overriding the fixed replies
        self.attempts: Counter[str] = Counter()
        self.ok_calls: Counter[str] = Counter()
        self.auth_headers: list[str | None] = []
        self.bodies: list[dict] = []
        self.echo_auth_in_errors = echo_auth_in_errors
        self.freeze_after_ok = freeze_after_ok
        self.frozen = threading.Event()  # set when the last of the freeze_after_ok answers is about to be sent
        self.num_held = 0  # requests held unanswered while frozen
        self._released = threading.Event()
        self._num_ok_reserved = 0
        self._per_marker_attempts: Counter[str] = Counter()
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner._handle(self, body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> "FaultServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._released.set()  # no handler stays held past the server
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def num_ok(self) -> int:
        """Successful answers sent so far, over every prompt."""
        with self._lock:
            return sum(self.ok_calls.values())

    def reset_script(self, script: dict[str, list[str]]) -> None:
        """Play ``script`` from its first behaviour again (for a restarted client)."""
        with self._lock:
            self.script = dict(script)
            self._per_marker_attempts.clear()

    def unfreeze(self) -> None:
        """Drop the held requests without an answer and answer every later request normally."""
        with self._lock:
            self.freeze_after_ok = None
        self._released.set()

    def _hold_if_frozen(self) -> bool:
        """Reserve one successful answer, or (frozen) hold the request until ``unfreeze``: True when held."""
        with self._lock:
            if self.freeze_after_ok is None:
                return False
            if self._num_ok_reserved < self.freeze_after_ok:
                self._num_ok_reserved += 1
                if self._num_ok_reserved == self.freeze_after_ok:
                    self.frozen.set()
                return False
            self.num_held += 1
        self._released.wait()
        return True

    def _behaviour(self, content: str) -> tuple[str, str | None]:
        for marker, plan in self.script.items():
            if marker in content:
                with self._lock:
                    attempt = self._per_marker_attempts[marker]
                    self._per_marker_attempts[marker] += 1
                return (plan[attempt] if attempt < len(plan) else "ok"), marker
        return "ok", next((m for m in self.replies if m in content), None)

    def _handle(self, handler: BaseHTTPRequestHandler, body: dict) -> None:
        messages = body["messages"]
        key = prompt_key(messages)
        content = messages[-1]["content"]
        with self._lock:
            self.attempts[key] += 1
            self.auth_headers.append(handler.headers.get("Authorization"))
            self.bodies.append(body)
        behaviour, marker = self._behaviour(content)
        echoed = f" (request had Authorization: {handler.headers.get('Authorization')})" if self.echo_auth_in_errors else ""
        if behaviour == "429":
            self._send(handler, 429, {"error": {"message": "rate limited" + echoed}}, {"Retry-After": self.retry_after_value})
        elif behaviour == "500":
            self._send(handler, 500, {"error": {"message": "internal error" + echoed}})
        elif behaviour == "malformed":
            self._send_raw(handler, 200, b'{"choices": [{"message": {"content": "8 3')
        elif behaviour == "truncated":
            data = b'{"choices": [{"message": {"role": "assistant", "content": "8 3"}}]}'
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data[: len(data) // 2])
            handler.wfile.flush()
            self._drop(handler)
        elif behaviour == "drop":
            self._drop(handler)
        elif behaviour == "echo-auth":
            self._send(handler, 400, {"error": {"message": f"bad request; you sent {handler.headers.get('Authorization')}"}})
        else:
            if behaviour == "hang":
                time.sleep(self.hang_seconds)
            reply = self.replies.get(marker, DEFAULT_REPLY) if marker else DEFAULT_REPLY
            if self.reply_fn is not None:
                reply = self.reply_fn(content)
            num_choices = 1 if self.ignore_n else int(body.get("n", 1))
            choice_logprobs = None
            if body.get("logprobs"):
                first = reply.split()[0]
                choice_logprobs = {"content": [{"token": first, "logprob": -0.1, "top_logprobs": [
                    {"token": first, "logprob": -0.1}, {"token": "2", "logprob": -2.5}, {"token": "x", "logprob": -5.0}]}]}
            payload = {
                "id": "chatcmpl-test", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": i, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop",
                             "logprobs": choice_logprobs} for i in range(num_choices)],
                "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS * num_choices,
                          "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS * num_choices},
            }
            if self._hold_if_frozen():
                self._drop(handler)  # the client was killed meanwhile: nothing was delivered
                return
            try:
                self._send(handler, 200, payload)
            except (BrokenPipeError, ConnectionResetError):
                return  # the client gave up (timeout): not a finished call
            with self._lock:
                self.ok_calls[key] += 1

    @staticmethod
    def _drop(handler) -> None:
        handler.close_connection = True
        try:
            handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # the peer is already gone

    @staticmethod
    def _send(handler, status: int, payload: dict, headers: dict | None = None) -> None:
        FaultServer._send_raw(handler, status, json.dumps(payload).encode(), headers)

    @staticmethod
    def _send_raw(handler, status: int, data: bytes, headers: dict | None = None) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)
        handler.wfile.flush()
