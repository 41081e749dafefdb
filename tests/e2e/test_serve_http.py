"""`judgetrain serve` on 127.0.0.1 with the tiny model, and the HTTP backend and the Judge over it:
a real server answering real requests. A tiny export served with an API key: no path of this
machine in anything it answers, and the Judge built from its URL sends the key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import httpx
import pytest

from judgetrain.judging.backends.base import Decoding
from judgetrain.judging.backends.openai_http import OpenAIHTTPBackend
from judgetrain.types import Answer, JudgeSample


@pytest.fixture(scope="module")
def served():
    from judgetrain.serve import start_server

    server, thread = start_server("tiny", "127.0.0.1", 0, batch_size=4)
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    yield base_url
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def _chat(content: str, **extra) -> dict:
    return {"model": "tiny", "messages": [{"role": "user", "content": content}], "max_tokens": 8, **extra}


def test_health_models_and_a_chat_completion(served):
    assert httpx.get(f"{served}/health").json()["status"] == "ok"
    models = httpx.get(f"{served}/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["tiny"]
    response = httpx.post(f"{served}/v1/chat/completions", json=_chat("Which answer is better?"), timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion" and len(body["choices"]) == 1
    assert isinstance(body["choices"][0]["message"]["content"], str)
    usage = body["usage"]
    assert usage["prompt_tokens"] > 5 and 1 <= usage["completion_tokens"] <= 8
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.parametrize("payload, fragment", [
    ({"model": "tiny"}, "'messages'"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "role"),
    ({"messages": [{"role": "user", "content": 3}]}, "content"),
    (_chat("hi", stream=True), "streaming"),
    (_chat("hi", max_tokens=0), "max_tokens"),
    (_chat("hi", temperature=-1), "temperature"),
    (_chat("hi", n=0), "'n'"),
])
def test_bad_requests_are_400_with_a_clear_message(served, payload, fragment):
    response = httpx.post(f"{served}/v1/chat/completions", json=payload, timeout=30)
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]


def test_invalid_json_and_unknown_routes(served):
    response = httpx.post(f"{served}/v1/chat/completions", content=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]
    assert httpx.get(f"{served}/v1/nothing").status_code == 404
    assert httpx.post(f"{served}/v1/completions", json=_chat("hi")).status_code == 404


def test_concurrent_requests_get_the_answers_sequential_ones_get(served):
    prompts = [f"Question {i}: " + "is this right? " * (i + 1) for i in range(4)]
    sequential = [httpx.post(f"{served}/v1/chat/completions", json=_chat(p), timeout=60).json() for p in prompts]
    concurrent: list[dict | None] = [None] * len(prompts)

    def ask(index: int) -> None:
        concurrent[index] = httpx.post(f"{served}/v1/chat/completions", json=_chat(prompts[index]), timeout=60).json()

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Greedy decoding: batching the concurrent requests together must not change any answer.
    assert [c["choices"][0]["message"]["content"] for c in concurrent] == [
        s["choices"][0]["message"]["content"] for s in sequential]


def test_http_backend_and_judge_over_the_server(served):
    from judgetrain import formats
    from judgetrain.judging.judge import Judge

    fmt = formats.get("judgelm-v1")
    samples = [JudgeSample(id=f"s{i}", source="test", question=f"What is {i} + {i}?",
                           answers=(Answer(str(2 * i)), Answer(str(2 * i + 1)))) for i in range(3)]
    backend = OpenAIHTTPBackend("tiny", base_url=f"{served}/v1", api_key_env=None, max_concurrency=3,
                                timeout_seconds=60, max_retries=1)
    judgments = Judge(fmt, backend, Decoding(max_new_tokens=12)).judge(samples)
    backend.close()
    assert [j.sample_id for j in judgments] == ["s0", "s1", "s2"]
    for judgment in judgments:
        assert judgment.error is None
        # The tiny model is random: whatever it wrote is a verdict or a recorded parse failure, never a tie by default.
        assert (judgment.verdict is None) != (judgment.parse_failure is None)
        assert judgment.model == "tiny" and judgment.backend == "openai"
        assert judgment.tokens_in and judgment.tokens_in > 20
        question = next(s.question for s in samples if s.id == judgment.sample_id)
        assert question in judgment.prompt_messages[-1]["content"]  # the exact prompt sent is recorded
    assert backend.usage()["http_calls"] == 3


def test_the_serve_command_starts_and_answers(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "judgetrain", "serve", "--model", "tiny", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline()
        assert "http://127.0.0.1:" in line, (line, process.stderr.read() if process.poll() is not None else "")
        base_url = line.split("on ", 1)[1].split()[0]
        response = httpx.post(f"{base_url}/chat/completions", json=_chat("hello"), timeout=60)
        assert response.status_code == 200
        assert json.loads(response.text)["model"] == "tiny"
    finally:
        process.terminate()
        process.wait(timeout=20)


# --- a tiny export behind an API key -------------------------------------------------------------

KEY_ENV = "JUDGETRAIN_TEST_SERVE_KEY"
KEY = "e2e-test-key-value"


@pytest.fixture(scope="module")
def key_in_environment():
    previous = os.environ.get(KEY_ENV)
    os.environ[KEY_ENV] = KEY
    yield KEY_ENV
    if previous is None:
        os.environ.pop(KEY_ENV, None)
    else:
        os.environ[KEY_ENV] = previous


@pytest.fixture(scope="module")
def served_export(tiny_generative_export, key_in_environment):
    """The tiny LoRA judge (its card records the absolute path of its training data, under the
    export's parent dir), served with an API key; yields (that parent dir, export dir, url)."""
    from judgetrain.serve import start_server

    out = tiny_generative_export
    server, thread = start_server(str(out), "127.0.0.1", 0, batch_size=2, api_key_env=key_in_environment)
    yield out.parent, out, server.url
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_no_path_of_this_machine_is_served(served_export):
    tmp, out, url = served_export
    card_file = json.loads((out / "judge_card.json").read_text())
    assert str(tmp) in json.dumps(card_file), "the card on disk records a tmp path: what this test looks for"
    key = {"Authorization": f"Bearer {KEY}"}
    port = url.rsplit(":", 1)[1]
    answers = {
        "health": httpx.get(f"{url}/health", timeout=10),
        "models": httpx.get(f"{url}/v1/models", headers=key, timeout=10),
        "model": httpx.get(f"{url}/v1/models/judge", headers=key, timeout=10),
        "other model": httpx.get(f"{url}/v1/models/other", headers=key, timeout=10),
        "card": httpx.get(f"{url}/v1/judge_card", headers=key, timeout=10),
        "bad request": httpx.post(f"{url}/v1/chat/completions", json={"model": "judge"}, headers=key, timeout=10),
        "pooling": httpx.post(f"{url}/pooling", json={"messages": [{"role": "user", "content": "hi"}]}, headers=key,
                              timeout=10),
        "no key": httpx.get(f"{url}/v1/judge_card", timeout=10),
        "bad host": httpx.get(f"{url}/health", headers={"Host": f"elsewhere.example:{port}"}, timeout=10),
        "openapi": httpx.get(f"{url}/openapi.json", headers=key, timeout=10),
    }
    for name, response in answers.items():
        assert str(tmp) not in response.text and str(out) not in response.text, (name, response.text)
    assert [answers[name].status_code for name in answers] == [200, 200, 200, 404, 200, 400, 400, 401, 421, 200]
    assert answers["health"].json()["model"] == "judge" == answers["models"].json()["data"][0]["id"]
    from judgetrain.serve import without_local_paths

    card = answers["card"].json()
    assert card == without_local_paths(card_file)
    assert "data" in card["training_data"]["manifest_hashes"]  # the prepared dir, by its name
    assert card["format"] == card_file["format"] and card["decoding"] == card_file["decoding"]


def test_the_judge_from_the_url_sends_the_key(served_export, key_in_environment):
    from judgetrain import Judge

    _, out, url = served_export
    with pytest.raises(ValueError, match="needs an API key; pass api_key_env="):
        Judge.from_card(url)
    remote = Judge.from_card(url, api_key_env=key_in_environment)
    local = Judge.from_card(out)
    try:
        assert remote.backend.api_key_env == key_in_environment and remote.backend.model_id == "judge"
        question, answer_a, answer_b = "Name a prime number.", "7 is prime.", "9 is prime."
        served, here = remote.compare(question, answer_a, answer_b), local.compare(question, answer_a, answer_b)
        assert served.error is None
        assert [o.raw_text for o in (served.both_orders.original, served.both_orders.swapped)] == [
            o.raw_text for o in (here.both_orders.original, here.both_orders.swapped)]
    finally:
        remote.backend.close()
        local.backend.close()


def test_the_serve_command_reads_its_key_from_the_environment():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("JUDGETRAIN_TEST_UNSET_KEY", None)
    missing = subprocess.run([sys.executable, "-m", "judgetrain", "serve", "--model", "tiny", "--port", "0",
                              "--api-key-env", "JUDGETRAIN_TEST_UNSET_KEY"], capture_output=True, text=True, env=env,
                             timeout=120)
    assert missing.returncode == 1
    assert "the environment variable JUDGETRAIN_TEST_UNSET_KEY is unset or empty" in missing.stderr
    env["JUDGETRAIN_TEST_CLI_KEY"] = "cli-key-value"
    process = subprocess.Popen([sys.executable, "-m", "judgetrain", "serve", "--model", "tiny", "--port", "0",
                                "--api-key-env", "JUDGETRAIN_TEST_CLI_KEY", "--max-concurrency", "2", "--max-queue", "8",
                                "--allowed-host", "judge.example.org"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline()
        assert "API key from $JUDGETRAIN_TEST_CLI_KEY" in line and "cli-key-value" not in line, line
        base_url = line.split("on ", 1)[1].split()[0]
        assert httpx.post(f"{base_url}/chat/completions", json=_chat("hello"), timeout=60).status_code == 401
        key = {"Authorization": "Bearer cli-key-value"}
        assert httpx.post(f"{base_url}/chat/completions", json=_chat("hello"), headers=key, timeout=60).status_code == 200
        health = httpx.get(base_url.removesuffix("/v1") + "/health", headers={"Host": "judge.example.org"}, timeout=10)
        assert health.status_code == 200 and health.json()["max_concurrency"] == 2 and health.json()["max_queue"] == 8
    finally:
        process.terminate()
        process.wait(timeout=20)
        log = process.stderr.read()
        process.stdout.close()
        process.stderr.close()
    assert "cli-key-value" not in log  # the key is never logged
