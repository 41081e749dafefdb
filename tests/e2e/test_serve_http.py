"""`judgetrain serve` on 127.0.0.1 with the tiny model, and the HTTP backend and the Judge over it:
a real server answering real requests."""

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
