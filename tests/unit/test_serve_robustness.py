"""`judgetrain serve` under bad input and load, over real HTTP on 127.0.0.1.

Malformed JSON, missing fields, wrong types, wrong content type and oversized bodies get a 4xx in
OpenAI's error shape naming the field, never a traceback; so do the bodies that once took the
server down to a 500 (a lone surrogate, a seed past 64 bits, JSON 100,000 levels deep, a 5,000-digit
integer), each failing alone beside good requests sent with it. Requests beyond ``--max-concurrency``
wait in the queue; only one that finds ``--max-queue`` full gets 503 with Retry-After, while /health
keeps answering; a failing request does not fail the others batched with it; 200 concurrent requests
are all answered and the server is up after. The API key and the Host check refuse whom they must.
"""

import asyncio
import json
import logging
import threading
import time

import httpx
import pytest

from judgetrain.judging.backends.base import Backend, Completion

MAX_BODY_BYTES = 64 * 1024
ERROR_KEYS = {"message", "type", "param", "code"}


@pytest.fixture(scope="module")
def tiny_server():
    from judgetrain.serve import start_server

    server, thread = start_server("tiny", "127.0.0.1", 0, batch_size=16, max_concurrency=256, max_body_bytes=MAX_BODY_BYTES)
    yield server.url
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def roomy_tiny_server():
    """The tiny model behind the default body limit (8 MiB), room for a body 100,000 levels deep."""
    from judgetrain.serve import start_server

    server, thread = start_server("tiny", "127.0.0.1", 0, batch_size=8)
    yield server.url
    _stop(server, thread)


class FakeBackend(Backend):
    """Answers "ok" after ``gate`` opens (when given) and ``seconds_per_batch``; raises on a message
    containing "poison". Records the size of every batch it was asked."""

    name = "fake"
    model_id = "fake"

    def __init__(self, gate: threading.Event | None = None, seconds_per_batch: float = 0.0):
        self.gate = gate
        self.seconds_per_batch = seconds_per_batch
        self.batch_sizes: list[int] = []

    def generate(self, requests):
        self.batch_sizes.append(len(requests))
        if self.gate is not None:
            assert self.gate.wait(timeout=60), "the test never opened the gate"
        time.sleep(self.seconds_per_batch)
        if any("poison" in m["content"] for r in requests for m in r.messages):
            raise ValueError("poisoned prompt")
        return [Completion(text="ok", texts=["ok"] * r.decoding.n, tokens_in=3, tokens_out=1) for r in requests]


def _start_fake(backend: Backend, **options):
    from judgetrain.serve import start_server

    return start_server(backend, "127.0.0.1", 0, **options)


def _stop(server, thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def _chat(content: str = "Which answer is better?", **extra) -> dict:
    return {"model": "tiny", "messages": [{"role": "user", "content": content}], "max_tokens": 4, **extra}


def _assert_openai_error(response: httpx.Response, status: int, fragment: str, param=None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "Traceback" not in response.text
    error = response.json()["error"]
    assert set(error) == ERROR_KEYS, error
    assert fragment in error["message"], error["message"]
    assert error["type"] == ("invalid_request_error" if status < 500 else "server_error")
    assert isinstance(error["code"], str) and error["code"]
    if param is not None:
        assert error["param"] == param
    return error


def _post_raw(url: str, content: bytes, content_type: str | None = "application/json") -> httpx.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    return httpx.post(f"{url}/v1/chat/completions", content=content, headers=headers, timeout=60)


# --- malformed and invalid bodies ------------------------------------------------------------


@pytest.mark.parametrize("content, fragment, code", [
    (b"{nope", "not valid JSON", "invalid_json"),
    (b'{"messages": [{"role": "user", "content": "hi"}]', "not valid JSON", "invalid_json"),
    (b"\xff\xfe\x00", "not valid JSON", "invalid_json"),
    (b"", "the body is empty", "invalid_body"),
    (b"   ", "the body is empty", "invalid_body"),
    (b"[1, 2]", "must be a JSON object", "invalid_body"),
    (b'"hello"', "must be a JSON object", "invalid_body"),
    (b"null", "the body is empty", "invalid_body"),
])
def test_malformed_json_is_400_with_a_message(tiny_server, content, fragment, code):
    error = _assert_openai_error(_post_raw(tiny_server, content), 400, fragment)
    assert error["code"] == code


@pytest.mark.parametrize("payload, param, fragment", [
    ({"model": "tiny"}, "messages", "'messages' is required"),
    ({"messages": [{"content": "hi"}]}, "messages[0].role", "is required"),
    ({"messages": [{"role": "user"}]}, "messages[0].content", "is required"),
    ({"messages": []}, "messages", "non-empty list"),
])
def test_missing_fields_are_400_naming_the_field(tiny_server, payload, param, fragment):
    response = httpx.post(f"{tiny_server}/v1/chat/completions", json=payload, timeout=30)
    _assert_openai_error(response, 400, fragment, param)


@pytest.mark.parametrize("payload, param", [
    ({"messages": "hi"}, "messages"),
    ({"messages": ["hi"]}, "messages[0]"),
    ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}]}, "messages[0].content"),
    ({"messages": [{"role": 1, "content": "hi"}]}, "messages[0].role"),
    (_chat(max_tokens="4"), "max_tokens"),
    (_chat(max_tokens=2.5), "max_tokens"),
    (_chat(max_tokens=True), "max_tokens"),
    (_chat(max_completion_tokens=-1), "max_completion_tokens"),
    (_chat(temperature="hot"), "temperature"),
    (_chat(temperature=3), "temperature"),
    (_chat(top_p=0), "top_p"),
    (_chat(n=True), "n"),
    (_chat(n=17), "n"),
    (_chat(stop=5), "stop"),
    (_chat(stop=["ok", ""]), "stop"),
    (_chat(seed="1"), "seed"),
    (_chat(model=3), "model"),
    (_chat(stream="yes"), "stream"),
    (_chat(stream=True), "stream"),
    (_chat(logprobs="yes"), "logprobs"),
    (_chat(logprobs=True, top_logprobs=21), "top_logprobs"),
    (_chat(top_logprobs=2), "top_logprobs"),
])
def test_wrong_types_and_values_are_400_naming_the_field(tiny_server, payload, param):
    response = httpx.post(f"{tiny_server}/v1/chat/completions", json=payload, timeout=30)
    _assert_openai_error(response, 400, param.split("[")[0], param)


def test_a_prompt_that_cannot_fit_the_context_is_400(tiny_server):
    response = httpx.post(f"{tiny_server}/v1/chat/completions", json=_chat(max_tokens=5000), timeout=30)
    error = _assert_openai_error(response, 400, "context tokens", "max_tokens")
    assert error["code"] == "context_length_exceeded"


def test_a_body_that_is_not_json_is_415(tiny_server):
    body = b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}'
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded"):
        _assert_openai_error(_post_raw(tiny_server, body, content_type), 415, "Content-Type: application/json")
    assert _post_raw(tiny_server, body, "application/json; charset=utf-8").status_code == 200


def test_oversized_bodies_are_413_declared_or_chunked(tiny_server):
    # A body of exactly the limit is read (and here is bad JSON); one byte more is refused.
    _assert_openai_error(_post_raw(tiny_server, b"x" * MAX_BODY_BYTES), 400, "not valid JSON")
    _assert_openai_error(_post_raw(tiny_server, b"x" * (MAX_BODY_BYTES + 1)), 413, f"limit of {MAX_BODY_BYTES} bytes")
    _assert_openai_error(_post_raw(tiny_server, b"x" * (4 * 1024 * 1024)), 413, "--max-body-bytes")

    def chunks():  # no Content-Length: sent chunked, counted as it arrives
        for _ in range(40):
            yield b"y" * 4096

    response = httpx.post(f"{tiny_server}/v1/chat/completions", content=chunks(),
                          headers={"Content-Type": "application/json"}, timeout=30)
    assert "content-length" not in response.request.headers
    _assert_openai_error(response, 413, "--max-body-bytes")
    # The connection that sent the oversized body still serves the next request.
    with httpx.Client(timeout=30) as client:
        over = client.post(f"{tiny_server}/v1/chat/completions", content=b"x" * (MAX_BODY_BYTES + 10),
                           headers={"Content-Type": "application/json"})
        assert over.status_code == 413
        assert client.post(f"{tiny_server}/v1/chat/completions", json=_chat()).status_code == 200


def test_unknown_routes_and_methods_are_json_errors(tiny_server):
    _assert_openai_error(httpx.get(f"{tiny_server}/v1/nothing"), 404, "no route GET /v1/nothing")
    _assert_openai_error(httpx.post(f"{tiny_server}/v1/completions", json=_chat()), 404, "POST /v1/chat/completions")
    _assert_openai_error(httpx.get(f"{tiny_server}/v1/chat/completions"), 405, "answers POST")
    _assert_openai_error(httpx.get(f"{tiny_server}/v1/models/other"), 404, "does not exist", "model")
    _assert_openai_error(httpx.get(f"{tiny_server}/v1/judge_card"), 404, "no judge card")
    assert httpx.get(f"{tiny_server}/v1/models/tiny").json()["id"] == "tiny"
    # A trailing slash is ignored, as it always was.
    assert httpx.get(f"{tiny_server}/health/").json()["status"] == "ok"
    assert httpx.post(f"{tiny_server}/v1/chat/completions/", json=_chat(), timeout=30).status_code == 200


# --- load ------------------------------------------------------------------------------------


async def _fire(url: str, payloads: list[dict], timeout_seconds: float) -> list[httpx.Response]:
    """Send every payload at once over its own connection; all must be answered within the time."""
    limits = httpx.Limits(max_connections=len(payloads), max_keepalive_connections=len(payloads))
    async with httpx.AsyncClient(limits=limits, timeout=timeout_seconds) as client:
        calls = [client.post(f"{url}/v1/chat/completions", json=payload) for payload in payloads]
        return await asyncio.wait_for(asyncio.gather(*calls), timeout=timeout_seconds)


def test_200_concurrent_requests_are_all_answered(tiny_server):
    payloads = [_chat(f"Question {i}: is answer {i % 7} right?") for i in range(200)]
    started = time.perf_counter()
    responses = asyncio.run(_fire(tiny_server, payloads, timeout_seconds=240))
    seconds = time.perf_counter() - started
    assert [r.status_code for r in responses] == [200] * 200, [r.text for r in responses if r.status_code != 200][:3]
    assert all(isinstance(r.json()["choices"][0]["message"]["content"], str) for r in responses)
    print(f"200 concurrent requests answered in {seconds:.1f} s")
    health = httpx.get(f"{tiny_server}/health", timeout=10).json()
    assert health["status"] == "ok" and health["requests_in_progress"] == 0
    assert httpx.post(f"{tiny_server}/v1/chat/completions", json=_chat(), timeout=30).status_code == 200


def test_requests_beyond_the_limit_wait_in_the_queue_and_a_full_queue_gets_503_with_retry_after():
    gate = threading.Event()
    backend = FakeBackend(gate)
    server, thread = _start_fake(backend, batch_size=2, max_concurrency=4, max_queue=2)
    url = server.url
    try:
        answered: list[httpx.Response] = []

        def ask() -> None:
            answered.append(httpx.post(f"{url}/v1/chat/completions", json=_chat(), timeout=60))

        askers = [threading.Thread(target=ask) for _ in range(6)]
        for asker in askers:
            asker.start()
        deadline = time.monotonic() + 30
        while (health := httpx.get(f"{url}/health").json())["requests_waiting"] < 2:
            assert time.monotonic() < deadline, f"the 6 requests never all arrived: {health}"
            time.sleep(0.02)
        assert health["requests_in_progress"] == 4 and health["max_queue"] == 2
        refused = httpx.post(f"{url}/v1/chat/completions", json=_chat(), timeout=10)
        error = _assert_openai_error(refused, 503, "--max-queue 2")
        assert "--max-concurrency 4" in error["message"]
        assert error["code"] == "server_overloaded" and refused.headers["retry-after"] == "1"
        assert httpx.get(f"{url}/health", timeout=5).json()["status"] == "ok"  # GETs are never queued
        gate.set()
        for asker in askers:
            asker.join(timeout=30)
        assert [r.status_code for r in answered] == [200] * 6  # the two that waited were answered too
        assert httpx.post(f"{url}/v1/chat/completions", json=_chat(), timeout=10).status_code == 200
        assert max(backend.batch_sizes) <= 2
        health = httpx.get(f"{url}/health", timeout=5).json()
        assert health["requests_in_progress"] == 0 and health["requests_waiting"] == 0
    finally:
        gate.set()
        _stop(server, thread)


def test_a_burst_past_the_queue_is_answered_200_or_503_and_the_server_stays_up():
    backend = FakeBackend(seconds_per_batch=0.2)
    server, thread = _start_fake(backend, batch_size=8, max_concurrency=16, max_queue=16)
    try:
        responses = asyncio.run(_fire(server.url, [_chat(f"q{i}") for i in range(200)], timeout_seconds=120))
        statuses = [r.status_code for r in responses]
        # The first 32 to arrive all hold a place (16 in progress, 16 waiting).
        assert set(statuses) <= {200, 503} and statuses.count(200) >= 32 and 503 in statuses
        for response in responses:
            if response.status_code == 503:
                _assert_openai_error(response, 503, "--max-queue")
        assert httpx.get(f"{server.url}/health", timeout=5).json()["requests_in_progress"] == 0
        assert httpx.post(f"{server.url}/v1/chat/completions", json=_chat(), timeout=10).status_code == 200
    finally:
        _stop(server, thread)


def _held_first_then_batched(backend: FakeBackend, gate: threading.Event, names: tuple[str, str]) -> dict[str, httpx.Response]:
    """Send "first" (held at the gate while it generates), then ``names``, which queue behind it and
    make one batch of two; returns every response by name."""
    server, thread = _start_fake(backend, batch_size=4, max_concurrency=8)
    url = server.url
    try:
        results: dict[str, httpx.Response] = {}

        def ask(name: str) -> None:
            results[name] = httpx.post(f"{url}/v1/chat/completions", json=_chat(name), timeout=60)

        first = threading.Thread(target=ask, args=("first",))
        first.start()
        while not backend.batch_sizes:  # "first" is generating (held at the gate): the next two queue together
            time.sleep(0.01)
        rest = [threading.Thread(target=ask, args=(name,)) for name in names]
        for asker in rest:
            asker.start()
        while httpx.get(f"{url}/health").json()["requests_in_progress"] < 3:
            time.sleep(0.01)
        gate.set()
        for asker in [first, *rest]:
            asker.join(timeout=30)
        return results
    finally:
        gate.set()
        _stop(server, thread)


def test_a_failing_request_does_not_fail_the_others_in_its_batch():
    gate = threading.Event()
    backend = FakeBackend(gate)
    results = _held_first_then_batched(backend, gate, ("poison pill", "good"))
    assert results["first"].status_code == 200 and results["good"].status_code == 200
    _assert_openai_error(results["poison pill"], 500, "generation failed: ValueError: poisoned prompt")
    assert backend.batch_sizes == [1, 2, 1, 1]  # the failed batch of two, retried one by one


class _MiscountingBackend(FakeBackend):
    """Leaves out the completion of a request containing "drop" (a backend bug: fewer answers than asked)."""

    def generate(self, requests):
        self.batch_sizes.append(len(requests))
        if self.gate is not None:
            assert self.gate.wait(timeout=60), "the test never opened the gate"
        return [Completion(text="ok", texts=["ok"] * r.decoding.n, tokens_in=3, tokens_out=1) for r in requests
                if not any("drop" in m["content"] for m in r.messages)]


def test_a_backend_that_answers_too_few_fails_only_the_request_it_left_out():
    gate = threading.Event()
    backend = _MiscountingBackend(gate)
    results = _held_first_then_batched(backend, gate, ("drop me", "good"))
    assert results["first"].status_code == 200 and results["good"].status_code == 200
    assert results["good"].json()["choices"][0]["message"]["content"] == "ok"
    _assert_openai_error(results["drop me"], 500, "returned 0 completions for 1 requests")
    assert backend.batch_sizes == [1, 2, 1, 1]


class _BrokenBackend(Backend):
    """Returns a completion the server cannot read (token counts that are not numbers): a server bug."""

    name = "broken"
    model_id = "broken"

    def generate(self, requests):
        return [Completion(text="ok", texts=["ok"], tokens_in="3", tokens_out=1) for _ in requests]


def test_an_internal_error_is_a_json_500_without_traceback():
    server, thread = _start_fake(_BrokenBackend())
    try:
        response = httpx.post(f"{server.url}/v1/chat/completions", json=_chat(), timeout=30)
        error = _assert_openai_error(response, 500, "internal error (TypeError); see the server's log")
        assert error["code"] == "internal_error"
        assert httpx.get(f"{server.url}/health", timeout=5).json()["status"] == "ok"
    finally:
        _stop(server, thread)


def test_shutdown_lets_a_request_in_flight_finish():
    gate = threading.Event()
    server, thread = _start_fake(FakeBackend(gate))
    answered: list[httpx.Response] = []
    asker = threading.Thread(target=lambda: answered.append(
        httpx.post(f"{server.url}/v1/chat/completions", json=_chat(), timeout=30)))
    asker.start()
    while httpx.get(f"{server.url}/health").json()["requests_in_progress"] < 1:
        time.sleep(0.01)
    threading.Timer(0.3, gate.set).start()
    _stop(server, thread)
    asker.join(timeout=10)
    assert [r.status_code for r in answered] == [200] and not thread.is_alive()


def test_ctrl_c_stops_the_serve_command_gracefully():
    import signal
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "judgetrain", "serve", "--model", "tiny", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        line = process.stdout.readline()
        assert "(Ctrl-C stops)" in line, line
        base_url = line.split("on ", 1)[1].split()[0]
        assert httpx.post(f"{base_url}/chat/completions", json=_chat(), timeout=30).status_code == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        log = process.stderr.read()
        # uvicorn's own shutdown ran (not a daemon thread killed at exit), and the access log was on.
        assert "Shutting down" in log and "Finished server process" in log, log
        assert '"POST /v1/chat/completions HTTP/1.1" 200' in log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()


def test_settings_are_checked():
    from judgetrain.serve import start_server

    for option in ({"max_concurrency": 0}, {"max_body_bytes": 0}, {"batch_size": 0}):
        with pytest.raises(ValueError, match="at least 1"):
            start_server(FakeBackend(), "127.0.0.1", 0, **option)
    with pytest.raises(ValueError, match="--max-queue must be at least 0"):
        start_server(FakeBackend(), "127.0.0.1", 0, max_queue=-1)


def test_parse_chat_request_without_a_server():
    from judgetrain.serve import APIError, parse_chat_request

    job = parse_chat_request({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                                        {"type": "text", "text": "b"}]}],
                              "max_completion_tokens": 7, "stop": "x", "logprobs": True, "top_logprobs": 3})
    assert job.request.messages == ({"role": "user", "content": "ab"},)
    assert job.max_tokens == 7 and job.request.decoding.max_new_tokens == 7 and job.request.decoding.stop == ("x",)
    assert job.top_logprobs == 3
    assert parse_chat_request(_chat(logprobs=True)).top_logprobs == 0
    assert parse_chat_request({"messages": [{"role": "user", "content": "hi"}]}).max_tokens is None
    with pytest.raises(APIError) as caught:
        parse_chat_request({"messages": [{"role": "robot", "content": "hi"}]})
    assert caught.value.status == 400 and caught.value.param == "messages[0].role"


# --- requests that once failed their whole batch or the server ---------------------------------


async def _fire_bodies(url: str, bodies: list[bytes], timeout_seconds: float) -> list[httpx.Response]:
    """Send every raw JSON body at once over its own connection."""
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=len(bodies))
    async with httpx.AsyncClient(limits=limits, timeout=timeout_seconds) as client:
        calls = [client.post(f"{url}/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
                 for body in bodies]
        return await asyncio.wait_for(asyncio.gather(*calls), timeout=timeout_seconds)


def _json_bytes(payload: dict) -> bytes:
    # json.dumps writes a lone surrogate as the escape "\ud800" (ASCII), the way a client sends it.
    return json.dumps(payload).encode("ascii")


def test_a_lone_surrogate_fails_alone_and_the_good_requests_sent_with_it_get_their_answers(roomy_tiny_server):
    url = roomy_tiny_server
    good = [_chat(f"Question {i}: is {i} an even number?") for i in range(4)]
    expected = [httpx.post(f"{url}/v1/chat/completions", json=payload, timeout=60).json()["choices"][0]["message"]
                ["content"] for payload in good]
    poisoned = _chat("Which answer is better? \ud800")
    bodies = [_json_bytes(good[0]), _json_bytes(good[1]), _json_bytes(poisoned), _json_bytes(good[2]), _json_bytes(good[3])]
    responses = asyncio.run(_fire_bodies(url, bodies, timeout_seconds=120))
    answers = [r for i, r in enumerate(responses) if i != 2]
    assert [r.status_code for r in answers] == [200] * 4, [r.text for r in answers]
    # Greedy decoding: what each good request gets is what it gets alone.
    assert [r.json()["choices"][0]["message"]["content"] for r in answers] == expected
    error = _assert_openai_error(responses[2], 400, "lone surrogate (U+D800) at character 24", "messages[0].content")
    assert error["code"] == "invalid_text"


def _with_integer(field: str, digits: int) -> bytes:
    return (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "' + field.encode() + b'": '
            + b"7" * digits + b"}")


@pytest.mark.parametrize("body, fragment, param", [
    (_json_bytes(_chat(seed=2**70)), "'seed' must be a 64-bit integer", "seed"),
    (_json_bytes(_chat(seed=-2**63 - 1)), "'seed' must be a 64-bit integer", "seed"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply", None),
    (b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply", None),
    (_with_integer("seed", 5000), "got an integer of 5000 digits", "seed"),
    (_with_integer("n", 5000), "got an integer of 5000 digits", "n"),
    (_with_integer("temperature", 5000), "got an integer of 5000 digits", "temperature"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": ' + b"7" * 5000 + b"}",
     "got an integer of 5000 digits", "max_tokens"),
    (_json_bytes(_chat(stop=["ok", "\udfff"])), "lone surrogate (U+DFFF)", "stop"),
    (_json_bytes({"messages": [{"role": "user", "content": [{"type": "text", "text": "a\ud83d"}]}]}),
     "lone surrogate (U+D83D) at character 1", "messages[0].content"),
], ids=["seed-2**70", "seed-below-int64", "array-100000-deep", "messages-100000-deep", "seed-5000-digits",
        "n-5000-digits", "temperature-5000-digits", "max_tokens-5000-digits", "stop-lone-surrogate", "text-part-lone-surrogate"])
def test_bodies_that_were_500_are_400_naming_the_field_and_the_server_answers_after(roomy_tiny_server, body, fragment,
                                                                                     param):
    _assert_openai_error(_post_raw(roomy_tiny_server, body), 400, fragment, param)
    assert httpx.get(f"{roomy_tiny_server}/health", timeout=10).json()["status"] == "ok"
    assert httpx.post(f"{roomy_tiny_server}/v1/chat/completions", json=_chat(), timeout=30).status_code == 200


def test_the_largest_seeds_are_taken(roomy_tiny_server):
    for seed in (2**63 - 1, -2**63):
        response = httpx.post(f"{roomy_tiny_server}/v1/chat/completions", json=_chat(seed=seed, temperature=1.0),
                              timeout=30)
        assert response.status_code == 200, response.text


def test_a_batch_the_runner_fails_on_is_answered_again_one_by_one():
    from judgetrain.serve import APIError, BatchingQueue, ChatAnswer, ModelRunner, parse_chat_request

    class RunnerWithABug(ModelRunner):
        """Raises (as a bug in the server would) on any batch holding a request that says "bug"."""

        def answer(self, jobs):
            if any("bug" in job.request.messages[0]["content"] for job in jobs):
                raise KeyError("bug")
            return super().answer(jobs)

    backend = FakeBackend()

    async def answer_three() -> list:
        queue = BatchingQueue(RunnerWithABug(backend), batch_size=4)
        worker = asyncio.create_task(queue.run())
        try:
            # Submitted before the worker first runs: the three make one batch.
            return await asyncio.gather(*(queue.submit(parse_chat_request(_chat(content)))
                                          for content in ("first", "a bug", "last")))
        finally:
            worker.cancel()

    first, bug, last = asyncio.run(answer_three())
    assert isinstance(first, ChatAnswer) and isinstance(last, ChatAnswer) and first.completion.text == "ok"
    assert isinstance(bug, APIError) and bug.status == 500 and bug.code == "internal_error"
    assert backend.batch_sizes == [1, 1]  # "first" and "last", each alone after the batch of three failed


# --- who may ask -------------------------------------------------------------------------------

KEY_ENV = "JUDGETRAIN_TEST_SERVE_KEY"


def test_every_route_but_health_needs_the_api_key(monkeypatch):
    from judgetrain.serve import start_server

    # A key read from a file keeps its newline; the server drops surrounding whitespace, as the client does.
    monkeypatch.setenv(KEY_ENV, "s3cret-key-value\n")
    backend = FakeBackend()
    server, thread = _start_fake(backend, api_key_env=KEY_ENV)
    url = server.url
    try:
        for headers in ({}, {"Authorization": "Bearer wrong-key"}, {"Authorization": "s3cret-key-value"},
                        {"Authorization": "Basic s3cret-key-value"}, {"Authorization": "Bearer s3cret-key-valu"}):
            refused = httpx.post(f"{url}/v1/chat/completions", json=_chat(), headers=headers, timeout=10)
            error = _assert_openai_error(refused, 401, "Authorization: Bearer <key>")
            assert error["code"] == "invalid_api_key" and refused.headers["www-authenticate"] == "Bearer"
            assert "s3cret" not in refused.text
        for route in ("/v1/models", "/v1/models/fake", "/v1/judge_card", "/v1/nothing", "/docs"):
            _assert_openai_error(httpx.get(f"{url}{route}", timeout=10), 401, "needs an API key")
        assert backend.batch_sizes == []  # nothing refused reached the model
        key = {"Authorization": "Bearer s3cret-key-value"}
        answered = httpx.post(f"{url}/v1/chat/completions", json=_chat(), headers=key, timeout=10)
        assert answered.status_code == 200 and answered.json()["choices"][0]["message"]["content"] == "ok"
        assert httpx.get(f"{url}/v1/models", headers={"Authorization": "bearer s3cret-key-value"}).status_code == 200
        assert httpx.get(f"{url}/health", timeout=10).json()["status"] == "ok"  # open, for load balancers
        assert httpx.get(f"{url}/health/", timeout=10).status_code == 200
    finally:
        _stop(server, thread)
    monkeypatch.setenv(KEY_ENV, "  ")
    with pytest.raises(ValueError, match=f"the environment variable {KEY_ENV} is unset or empty"):
        start_server(FakeBackend(), "127.0.0.1", 0, api_key_env=KEY_ENV)


def test_a_host_header_naming_another_host_is_refused():
    from judgetrain.serve import start_server

    backend = FakeBackend()
    server, thread = _start_fake(backend, allowed_hosts=["judge.example.org", "proxy.example.org:8443"])
    url, port = server.url, server.server_address[1]
    try:
        for host in (f"evil.example:{port}", "evil.example", f"localhost:{port + 1}", "localhost",
                     f"127.0.0.1.evil.example:{port}", f"proxy.example.org:{port}"):
            refused = httpx.get(f"{url}/health", headers={"Host": host}, timeout=10)
            error = _assert_openai_error(refused, 421, "names no host this server answers")
            assert error["code"] == "invalid_host" and "--allowed-host" in error["message"]
        chat = httpx.post(f"{url}/v1/chat/completions", json=_chat(), headers={"Host": f"evil.example:{port}"}, timeout=10)
        _assert_openai_error(chat, 421, "evil.example")
        assert backend.batch_sizes == []
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", "judge.example.org",
                     "judge.example.org:443", "proxy.example.org:8443"):
            assert httpx.get(f"{url}/health", headers={"Host": host}, timeout=10).status_code == 200, host
    finally:
        _stop(server, thread)
    server, thread = start_server(FakeBackend(), "127.0.0.1", 0, allowed_hosts=["*"])
    try:
        assert httpx.get(f"{server.url}/health", headers={"Host": "anything.example"}, timeout=10).status_code == 200
    finally:
        _stop(server, thread)


def test_binding_beyond_loopback_without_a_key_warns(caplog):
    from judgetrain.serve import exposure_warning

    for host in ("0.0.0.0", "::", "192.168.1.5", "judge-box.lan"):
        warning = exposure_warning(host, api_key_required=False)
        assert warning is not None and "--api-key-env" in warning and "beyond this machine" in warning
        assert exposure_warning(host, api_key_required=True) is None
    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1"):
        assert exposure_warning(host, api_key_required=False) is None
    with caplog.at_level(logging.WARNING, logger="judgetrain.serve"):
        _stop(*_start_fake(FakeBackend()))
    assert not [r for r in caplog.records if "beyond this machine" in r.getMessage()]
