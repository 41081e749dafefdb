"""`judgetrain browse` cannot be made to send a key anywhere by a page on the web.

The real browse server runs on 127.0.0.1 (the CLI in a subprocess, started with ``--api-key-env``
naming a variable that holds a fake secret and ``--allow-base-url`` naming one capture server); two
capture servers on 127.0.0.1 record every request they receive and answer in OpenAI's shape. Each
refused post is the legitimate form with exactly one thing wrong (the Origin, the token, the base
URL, a key variable named in the form, the Host), so each check is shown to hold on its own: the
capture servers receive nothing and the secret is in no response. The legitimate post reaches the
allowed server with the key, so the path the checks guard works.
"""

from __future__ import annotations

import html
import json
import re
import secrets
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

SECRET_ENV = "JUDGETRAIN_BROWSE_TEST_KEY"
SECRET = f"sk-fake-{secrets.token_hex(16)}"
CAPTURE_MODEL = "capture-judge"
CAPTURE_REPLY = "8 3\nAssistant 1 names a prime; Assistant 2 does not."
TOKEN_FIELD = re.compile(r'name="form_token" value="([^"]+)"')
REQUEST_TIMEOUT_SECONDS = 30


class CaptureServer:
    """An OpenAI-compatible server on 127.0.0.1 that records every request it receives (method, path,
    headers, body): ``GET /v1/models`` lists one model, ``POST /v1/chat/completions`` answers
    :data:`CAPTURE_REPLY`; anything else is recorded and answered 404."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                owner.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                       "body": self.rfile.read(length).decode("utf-8", errors="replace")})

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                self._record()
                if self.path == "/v1/models":
                    self._answer(200, {"object": "list", "data": [{"id": CAPTURE_MODEL, "object": "model"}]})
                else:
                    self._answer(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                self._record()
                if self.path != "/v1/chat/completions":
                    self._answer(404, {"error": {"message": f"no route {self.path}"}})
                    return
                self._answer(200, {"id": "chatcmpl-capture", "object": "chat.completion", "model": CAPTURE_MODEL,
                                   "choices": [{"index": 0, "finish_reason": "stop",
                                                "message": {"role": "assistant", "content": CAPTURE_REPLY}}],
                                   "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="capture-server", daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def captures():
    """The allowed capture server and another one the browse server was not told about."""
    allowed, other = CaptureServer(), CaptureServer()
    yield {"allowed": allowed, "other": other}
    allowed.close()
    other.close()


@pytest.fixture(scope="module")
def browse(captures, tmp_path_factory):
    """`judgetrain browse --api-key-env SECRET_ENV --allow-base-url <allowed capture>` on 127.0.0.1,
    with the fake secret in both $SECRET_ENV and $OPENAI_API_KEY (so sending either would be caught)."""
    import os

    log = tmp_path_factory.mktemp("browse-security") / "browse.log"
    env = {**os.environ, SECRET_ENV: SECRET, "OPENAI_API_KEY": SECRET}
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "judgetrain", "browse", "--port", "0", "--api-key-env", SECRET_ENV,
             "--allow-base-url", captures["allowed"].base_url],
            stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
    line = process.stdout.readline()
    if " on http://127.0.0.1:" not in line:
        process.kill()
        pytest.fail(f"judgetrain browse did not start: {line!r} {log.read_text()}")
    url = line.split(" on ")[1].split()[0].rstrip("/")
    yield {"url": url, "port": int(url.rsplit(":", 1)[1]), "log": log}
    process.terminate()
    process.wait(timeout=10)
    assert SECRET not in log.read_text(), "the key's value must never be logged"


@pytest.fixture(autouse=True)
def _fresh_captures(captures):
    for capture in captures.values():
        capture.requests.clear()


def _form_token(url: str) -> str:
    page = httpx.get(f"{url}/playground", timeout=REQUEST_TIMEOUT_SECONDS)
    assert page.status_code == 200
    match = TOKEN_FIELD.search(page.text)
    assert match, "the playground form carries the server's token"
    return match.group(1)


def _legit_form(url: str, base_url: str) -> dict[str, str]:
    """What the playground page posts to judge a pair with an OpenAI-compatible model at ``base_url``."""
    return {"form_token": _form_token(url), "question": "Name a prime number.", "answer_a": "7", "answer_b": "9",
            "kind": "api", "export_dir": "", "base_url": base_url, "model": "", "card": "", "format": "",
            "max_new_tokens": "8"}


def _post(url: str, form: dict[str, str], headers: dict[str, str] | None = None) -> httpx.Response:
    response = httpx.post(f"{url}/playground", data=form, headers=headers or {}, timeout=REQUEST_TIMEOUT_SECONDS)
    assert SECRET not in response.text and SECRET not in str(response.headers), "the key's value must never be answered"
    return response


def _text(response: httpx.Response) -> str:
    """The response's page as its reader sees it (entities decoded)."""
    return html.unescape(response.text)


def _own_origin(browse) -> dict[str, str]:
    return {"Origin": browse["url"]}


def _nothing_sent(captures) -> None:
    for name, capture in captures.items():
        assert capture.requests == [], f"the {name} capture server was reached: {capture.requests}"


def test_form_posted_with_origin_null_is_refused(browse, captures):
    # What a sandboxed iframe or a data: page sends; even with the right token it is refused.
    response = _post(browse["url"], _legit_form(browse["url"], captures["allowed"].base_url), {"Origin": "null"})
    assert response.status_code == 403 and "another site (Origin null)" in _text(response)
    _nothing_sent(captures)


def test_form_posted_from_another_site_is_refused(browse, captures):
    response = _post(browse["url"], _legit_form(browse["url"], captures["allowed"].base_url),
                     {"Origin": "http://evil.example"})
    assert response.status_code == 403 and "another site" in _text(response)
    _nothing_sent(captures)


def test_form_without_a_token_and_without_origin_is_refused(browse, captures):
    form = _legit_form(browse["url"], captures["allowed"].base_url)
    del form["form_token"]
    response = _post(browse["url"], form)
    assert response.status_code == 403 and "token is missing or wrong" in _text(response)
    _nothing_sent(captures)


def test_form_with_a_wrong_token_is_refused(browse, captures):
    form = _legit_form(browse["url"], captures["allowed"].base_url)
    form["form_token"] = secrets.token_urlsafe(32)
    response = _post(browse["url"], form, _own_origin(browse))
    assert response.status_code == 403 and "token is missing or wrong" in _text(response)
    _nothing_sent(captures)


@pytest.mark.parametrize("kind", ["api", "url"])
def test_base_url_not_allowed_at_launch_is_refused(browse, captures, kind):
    form = {**_legit_form(browse["url"], captures["other"].base_url), "kind": kind}
    response = _post(browse["url"], form, _own_origin(browse))
    assert response.status_code == 403
    assert f"base URL {captures['other'].base_url!r} is not allowed" in _text(response)
    _nothing_sent(captures)


def test_a_url_in_another_field_is_refused(browse, captures):
    # The form before launch-time base URLs named the server in a free-text field.
    form = {**_legit_form(browse["url"], captures["allowed"].base_url), "target": captures["other"].base_url}
    response = _post(browse["url"], form, _own_origin(browse))
    assert response.status_code == 400 and "unknown form field(s) 'target'" in _text(response)
    _nothing_sent(captures)


def test_form_naming_a_key_variable_is_refused(browse, captures):
    form = {**_legit_form(browse["url"], captures["allowed"].base_url), "api_key_env": SECRET_ENV}
    response = _post(browse["url"], form, _own_origin(browse))
    assert response.status_code == 403 and "cannot name the API key's environment variable" in _text(response)
    _nothing_sent(captures)


def test_the_old_cross_site_attack_form_reaches_nothing(browse, captures):
    """The form a web page could post before: any server, any variable, no token."""
    attack = {"question": "Q", "answer_a": "A", "answer_b": "B", "kind": "api", "target": captures["other"].base_url,
              "model": CAPTURE_MODEL, "api_key_env": SECRET_ENV}
    for headers in ({"Origin": "null"}, {}):
        assert _post(browse["url"], attack, headers).status_code == 403
    _nothing_sent(captures)


def test_a_host_that_is_not_this_server_is_refused(browse, captures):
    """A DNS-rebound name reaches this port but names another host: no page (so no token) and no judging."""
    evil = f"evil.example:{browse['port']}"
    for path in ("/", "/playground"):
        page = httpx.get(f"{browse['url']}{path}", headers={"Host": evil}, timeout=REQUEST_TIMEOUT_SECONDS)
        assert page.status_code == 421 and "does not answer to the host" in page.text
        assert "form_token" not in page.text
    form = _legit_form(browse["url"], captures["allowed"].base_url)
    response = _post(browse["url"], form, {"Host": evil, "Origin": f"http://{evil}"})
    assert response.status_code == 421
    _nothing_sent(captures)
    # The names of this server itself are answered.
    for name in ("localhost", "127.0.0.1"):
        assert httpx.get(f"{browse['url']}/", headers={"Host": f"{name}:{browse['port']}"},
                         timeout=REQUEST_TIMEOUT_SECONDS).status_code == 200


def test_the_page_judges_with_the_allowed_server_and_the_launch_key(browse, captures):
    """The legitimate post, as a browser sends it from the page, reaches the allowed server with the
    key of --api-key-env (the model id read from /v1/models, then both orders judged)."""
    form = _legit_form(browse["url"], captures["allowed"].base_url)
    response = _post(browse["url"], form, _own_origin(browse))
    assert response.status_code == 200 and "id='error'" not in response.text, response.text
    assert "id='outcome'" in response.text and f"model {CAPTURE_MODEL}" in response.text
    received = captures["allowed"].requests
    assert [(r["method"], r["path"]) for r in received] == [("GET", "/v1/models")] + [("POST", "/v1/chat/completions")] * 2
    assert all(r["headers"].get("Authorization") == f"Bearer {SECRET}" for r in received)
    assert captures["other"].requests == []


def test_without_api_key_env_no_key_is_sent(captures, monkeypatch):
    """Started without --api-key-env, the playground sends no Authorization header, even with
    $OPENAI_API_KEY set (the HTTP backend's own default variable)."""
    from judgetrain.browse.server import start_server

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server, thread = start_server([], [], "127.0.0.1", 0, allowed_base_urls=[captures["allowed"].base_url])
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        form = {**_legit_form(url, captures["allowed"].base_url), "model": CAPTURE_MODEL}
        response = _post(url, form, {"Origin": url})
        assert response.status_code == 200 and "id='error'" not in response.text, response.text
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    received = captures["allowed"].requests
    assert [(r["method"], r["path"]) for r in received] == [("POST", "/v1/chat/completions")] * 2
    assert all("Authorization" not in r["headers"] for r in received)


@pytest.mark.parametrize("argv, message", [
    (["--allow-base-url", "file:///etc/passwd"], "must be http:// or https://"),
    (["--allow-base-url", "http://user:pw@127.0.0.1:1/v1"], "holds credentials"),
    (["--api-key-env", "JUDGETRAIN_BROWSE_UNSET_VARIABLE"], "is not set"),
    (["--api-key-env", "A-B"], "is not an environment variable name"),
])
def test_launch_settings_are_checked(argv, message, capsys, monkeypatch):
    from judgetrain.cli import main

    monkeypatch.delenv("JUDGETRAIN_BROWSE_UNSET_VARIABLE", raising=False)
    assert main(["browse", "--port", "0", *argv]) == 1
    assert message in capsys.readouterr().err
