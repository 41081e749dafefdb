"""The official `openai` Python client against a real `judgetrain serve` of the tiny model on 127.0.0.1.

Chat completions say what the same model says locally, logprobs are the model's own, and each
server error reaches the client as the matching exception (BadRequestError, NotFoundError, …)
carrying the server's message, param and code. With the client's default settings, 200 requests
sent at once to a server of 4 places all get through its queue; a server with an API key answers
AuthenticationError to a client without it.
"""

import asyncio
import threading
import time

import openai
import pytest
import torch

from judgetrain.judging.backends.base import Backend, Completion, Decoding, Request

MAX_BODY_BYTES = 256 * 1024
QUESTION = [{"role": "system", "content": "You are a fair judge."},
            {"role": "user", "content": "Which answer is better, A or B?"}]


@pytest.fixture(scope="module")
def served():
    from judgetrain.serve import start_server

    server, thread = start_server("tiny", "127.0.0.1", 0, batch_size=4, max_body_bytes=MAX_BODY_BYTES)
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="not-checked", max_retries=0, timeout=60)
    yield client
    client.close()
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def local():
    """The served model, loaded here: ``tiny`` is seeded, so it has the same weights."""
    from judgetrain.judging.backends.transformers_backend import TransformersBackend

    return TransformersBackend("tiny", batch_size=1)


def test_models(served):
    assert [m.id for m in served.models.list().data] == ["tiny"]
    assert served.models.retrieve("tiny").owned_by == "judgetrain"
    with pytest.raises(openai.NotFoundError) as caught:
        served.models.retrieve("gpt-4o")
    assert "the model 'gpt-4o' does not exist" in caught.value.message
    assert caught.value.code == "model_not_found" and caught.value.param == "model"


def test_chat_completion_says_what_the_local_model_says(served, local):
    response = served.chat.completions.create(model="tiny", messages=QUESTION, max_tokens=6, temperature=0)
    assert response.object == "chat.completion" and response.model == "tiny"
    choice = response.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason in ("stop", "length")
    assert choice.logprobs is None  # not asked for
    expected = local.generate([Request(messages=tuple(QUESTION), decoding=Decoding(max_new_tokens=6))])[0]
    assert choice.message.content == expected.text
    assert response.usage.prompt_tokens == expected.tokens_in
    assert response.usage.completion_tokens == expected.tokens_out
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


def test_several_samples(served):
    response = served.chat.completions.create(model="tiny", messages=QUESTION, max_tokens=4, temperature=1.0, n=3, seed=0)
    assert [c.index for c in response.choices] == [0, 1, 2]
    assert all(isinstance(c.message.content, str) for c in response.choices)


def test_logprobs_are_the_models_own(served, local):
    response = served.chat.completions.create(model="tiny", messages=QUESTION, max_tokens=5, logprobs=True, top_logprobs=4)
    choice = response.choices[0]
    content = choice.logprobs.content
    tokenizer = local.tokenizer
    text_ids = tokenizer(choice.message.content, add_special_tokens=False)["input_ids"]
    assert len(content) == len(text_ids) >= 1
    # The reference: one forward pass of the same model over the prompt and the returned text.
    _, prompt_ids = local.prompt_ids(Request(messages=tuple(QUESTION), decoding=Decoding()))
    with torch.inference_mode():
        logits = local.model(input_ids=torch.tensor([prompt_ids + text_ids])).logits[0, len(prompt_ids) - 1:-1]
    reference = torch.log_softmax(logits.float(), dim=-1)
    for position, (item, token_id) in enumerate(zip(content, text_ids)):
        assert item.token == tokenizer.decode([token_id]) and item.bytes == list(item.token.encode("utf-8"))
        assert item.logprob == pytest.approx(float(reference[position, token_id]), abs=1e-4)
        assert len(item.top_logprobs) == 4
        values, ids = reference[position].topk(4)
        assert [t.logprob for t in item.top_logprobs] == pytest.approx(values.tolist(), abs=1e-4)
        assert [t.token for t in item.top_logprobs] == [tokenizer.decode([i]) for i in ids.tolist()]
    # Greedy decoding picked the most likely first token.
    assert content[0].logprob == pytest.approx(content[0].top_logprobs[0].logprob, abs=1e-4)


@pytest.mark.parametrize("options, fragment, param, code", [
    ({"messages": []}, "'messages' must be a non-empty list", "messages", "invalid_value"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role must be one of", "messages[0].role", "invalid_value"),
    ({"messages": QUESTION, "temperature": 5}, "'temperature' must be a number in [0.0, 2.0]", "temperature", "invalid_value"),
    ({"messages": QUESTION, "stream": True}, "streaming is not supported", "stream", "unsupported"),
    ({"messages": QUESTION, "max_tokens": 100_000}, "context tokens", "max_tokens", "context_length_exceeded"),
    ({"messages": QUESTION, "extra_body": {"top_logprobs": 3}}, "'top_logprobs' needs 'logprobs': true", "top_logprobs",
     "invalid_value"),
])
def test_bad_requests_raise_bad_request_error_with_the_servers_message(served, options, fragment, param, code):
    with pytest.raises(openai.BadRequestError) as caught:
        served.chat.completions.create(model="tiny", **options)
    error = caught.value
    assert error.status_code == 400 and fragment in error.message
    assert error.type == "invalid_request_error" and error.param == param and error.code == code
    assert "Traceback" not in error.response.text


def test_unknown_route_and_oversized_body(served):
    with pytest.raises(openai.NotFoundError, match="no route POST /v1/completions"):
        served.completions.create(model="tiny", prompt="hi", max_tokens=2)
    with pytest.raises(openai.APIStatusError) as caught:
        served.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x" * MAX_BODY_BYTES}])
    assert caught.value.status_code == 413 and "--max-body-bytes" in caught.value.message
    assert caught.value.code == "body_too_large"


class _GatedBackend(Backend):
    """Answers "ok" once the gate opens."""

    name = "gated"
    model_id = "gated"

    def __init__(self):
        self.gate = threading.Event()

    def generate(self, requests):
        assert self.gate.wait(timeout=60)
        return [Completion(text="ok", texts=["ok"], tokens_in=1, tokens_out=1) for _ in requests]


def test_a_busy_server_is_503_and_the_clients_retry_gets_through():
    import httpx

    from judgetrain.serve import start_server

    backend = _GatedBackend()
    # No queue: the second request finds the one place taken and nowhere to wait.
    server, thread = start_server(backend, "127.0.0.1", 0, max_concurrency=1, max_queue=0, batch_size=1)
    base_url = f"{server.url}/v1"
    try:
        holder = threading.Thread(target=lambda: httpx.post(f"{base_url}/chat/completions", json={
            "messages": [{"role": "user", "content": "first"}]}, timeout=60))
        holder.start()
        deadline = time.monotonic() + 30
        while httpx.get(f"{server.url}/health").json()["requests_in_progress"] < 1:
            assert time.monotonic() < deadline, "the first request was never admitted"
            time.sleep(0.02)
        with openai.OpenAI(base_url=base_url, api_key="x", max_retries=0) as impatient:
            with pytest.raises(openai.InternalServerError) as caught:
                impatient.chat.completions.create(model="gated", messages=[{"role": "user", "content": "second"}])
        assert caught.value.status_code == 503 and "--max-queue 0" in caught.value.message
        assert caught.value.code == "server_overloaded"
        # The client retries a 503 after the server's Retry-After (1 s); the slot is free by then.
        threading.Timer(0.3, backend.gate.set).start()
        with openai.OpenAI(base_url=base_url, api_key="x", max_retries=3) as patient:
            answer = patient.chat.completions.create(model="gated", messages=[{"role": "user", "content": "third"}])
        assert answer.choices[0].message.content == "ok"
        holder.join(timeout=30)
    finally:
        backend.gate.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_200_concurrent_requests_with_the_clients_defaults_all_get_through_a_server_of_4_places():
    import httpx

    from judgetrain.serve import start_server

    server, thread = start_server("tiny", "127.0.0.1", 0, batch_size=4, max_concurrency=4)
    url = server.url
    peak_waiting = [0]
    done = threading.Event()

    def watch() -> None:  # how many waited at once: the queue, not refusals, absorbed the burst
        while not done.is_set():
            peak_waiting[0] = max(peak_waiting[0], httpx.get(f"{url}/health", timeout=10).json()["requests_waiting"])
            time.sleep(0.05)

    async def ask_all() -> list:
        # The client's defaults: 2 retries, its own timeout and connection pool.
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="not-checked") as client:
            calls = [client.chat.completions.create(model="tiny", max_tokens=4, messages=[
                {"role": "user", "content": f"Question {i}: is answer {i % 7} right?"}]) for i in range(200)]
            return await asyncio.gather(*calls, return_exceptions=True)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        results = asyncio.run(ask_all())
    finally:
        done.set()
        watcher.join(timeout=30)
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    failures = [r for r in results if isinstance(r, Exception)]
    assert not failures, f"{len(failures)} of 200 failed, e.g. {failures[0]!r}"
    assert all(isinstance(r.choices[0].message.content, str) for r in results)
    assert peak_waiting[0] > 4


def test_a_server_with_an_api_key_refuses_a_client_without_it(monkeypatch):
    from judgetrain.serve import start_server

    monkeypatch.setenv("JUDGETRAIN_TEST_SERVE_KEY", "client-test-key")
    backend = _GatedBackend()
    backend.gate.set()  # answers at once
    server, thread = start_server(backend, "127.0.0.1", 0, api_key_env="JUDGETRAIN_TEST_SERVE_KEY")
    base_url = f"{server.url}/v1"
    try:
        for key in ("wrong-key", "client-test-ke"):
            with openai.OpenAI(base_url=base_url, api_key=key, max_retries=0) as client:
                with pytest.raises(openai.AuthenticationError) as caught:
                    client.chat.completions.create(model="gated", messages=[{"role": "user", "content": "hi"}])
                assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
                with pytest.raises(openai.AuthenticationError):
                    client.models.list()
        with openai.OpenAI(base_url=base_url, api_key="client-test-key", max_retries=0) as client:
            assert [m.id for m in client.models.list().data] == ["gated"]
            answer = client.chat.completions.create(model="gated", messages=[{"role": "user", "content": "hi"}])
            assert answer.choices[0].message.content == "ok"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
