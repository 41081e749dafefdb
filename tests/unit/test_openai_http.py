"""The OpenAI-compatible HTTP backend against a scripted local server: retries, Retry-After, timeouts,
dropped connections, malformed bodies, n samples, logprobs, cost accounting, and the API key kept out
of everything it could leak into."""

from __future__ import annotations

import email.utils
import io
import json
import logging
import time
from contextlib import redirect_stderr, redirect_stdout

import pytest

from judgetrain.judging.backends.base import Decoding, Request
from judgetrain.judging.backends.openai_http import (
    OpenAIHTTPBackend,
    price_of,
    retry_after_seconds,
    verdict_logprobs_of,
)
from openai_fault_server import COMPLETION_TOKENS, DEFAULT_REPLY, PROMPT_TOKENS, FaultServer

FAKE_KEY = "sk-judgetrain-FAKE-KEY-7f3a9c1e5b"
PRICES = {"test-judge": (1000.0, 2000.0)}  # USD per 1M tokens: 0.1 + 0.02 = 0.12 USD per call


def _request(text: str, **decoding) -> Request:
    return Request(messages=({"role": "user", "content": text},), decoding=Decoding(max_new_tokens=16, **decoding))


def _backend(server: FaultServer, **overrides) -> OpenAIHTTPBackend:
    settings = dict(base_url=server.url, api_key_env="JT_TEST_KEY", max_concurrency=4, timeout_seconds=0.5,
                    max_retries=3, backoff_base_seconds=0.01, backoff_max_seconds=0.05, price_table=PRICES)
    settings.update(overrides)
    return OpenAIHTTPBackend("test-judge", **settings)


def test_every_fault_is_retried_until_an_answer(monkeypatch):
    monkeypatch.setenv("JT_TEST_KEY", FAKE_KEY)
    script = {"q-429": ["429", "429"], "q-500": ["500"], "q-hang": ["hang"], "q-malformed": ["malformed"],
              "q-drop": ["drop"], "q-mixed": ["500", "drop", "malformed"]}
    with FaultServer(script) as server:
        backend = _backend(server)
        completions = backend.generate([_request(f"question {m}") for m in [*script, "q-plain"]])
        backend.close()
    assert [c.error for c in completions] == [None] * 7
    assert all(c.text == DEFAULT_REPLY for c in completions)
    # Every faulty prompt needed exactly its scripted failures plus one good attempt.
    assert sum(server.attempts.values()) == 7 + sum(len(plan) for plan in script.values())
    assert backend.num_retries == sum(len(plan) for plan in script.values())
    assert completions[0].tokens_in == PROMPT_TOKENS and completions[0].tokens_out == COMPLETION_TOKENS
    assert completions[0].cost_usd == pytest.approx(0.12)
    assert backend.usage()["cost_usd"] == pytest.approx(7 * 0.12)
    assert all(header == f"Bearer {FAKE_KEY}" for header in server.auth_headers)


def test_exhausted_retries_and_fatal_statuses_become_errors_not_exceptions(monkeypatch):
    monkeypatch.setenv("JT_TEST_KEY", FAKE_KEY)
    with FaultServer({"q-down": ["500"] * 10, "q-bad": ["echo-auth"]}) as server:
        backend = _backend(server, max_retries=2)
        down, bad, fine = backend.generate([_request("q-down"), _request("q-bad"), _request("q-fine")])
        backend.close()
    assert down.error is not None and "gave up after 3 attempts" in down.error and "HTTP 500" in down.error
    assert down.text == "" and down.texts == []
    # A 400 is not retried, and the key the server echoed back is scrubbed from the error.
    assert bad.error is not None and "HTTP 400" in bad.error
    assert FAKE_KEY not in bad.error and "[redacted api key]" in bad.error
    assert fine.error is None
    assert sum(server.attempts.values()) == 3 + 1 + 1


def test_retry_after_is_honoured(monkeypatch):
    monkeypatch.delenv("JT_TEST_KEY", raising=False)
    with FaultServer({"q-slow-down": ["429"]}, retry_after_value="1") as server:
        backend = _backend(server, backoff_max_seconds=5)
        started = time.perf_counter()
        (completion,) = backend.generate([_request("q-slow-down")])
        elapsed = time.perf_counter() - started
        backend.close()
    assert completion.error is None
    assert elapsed >= 0.95  # the drawn backoff alone is at most 0.01 s
    assert server.auth_headers == [None, None]  # no key in the env: no Authorization header


def test_retry_after_http_date_and_seconds():
    now = time.time()
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(email.utils.formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert retry_after_seconds(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_n_samples_are_requested_and_topped_up_when_the_server_ignores_n():
    with FaultServer() as honours_n, FaultServer(ignore_n=True) as ignores_n:
        for server, expected_calls in ((honours_n, 1), (ignores_n, 3)):
            backend = _backend(server)
            (completion,) = backend.generate([_request("q", n=3, temperature=0.7)])
            backend.close()
            assert completion.error is None and len(completion.texts) == 3
            assert sum(server.attempts.values()) == expected_calls
            assert completion.tokens_out == 3 * COMPLETION_TOKENS
            assert server.bodies[0].get("n") == 3


def test_logprobs_are_requested_and_mapped_to_verdicts():
    with FaultServer() as server:
        backend = _backend(server)
        request = Request(messages=({"role": "user", "content": "q"},), decoding=Decoding(max_new_tokens=4, logprobs=True),
                          verdict_options={"8": "8", "2": "2", "9": "9"})
        (completion,) = backend.generate([request])
        backend.close()
    assert server.bodies[0]["logprobs"] is True and server.bodies[0]["top_logprobs"] == 20
    assert completion.verdict_logprobs == {"8": -0.1, "2": -2.5}  # "9" is not among the top tokens


def test_verdict_logprobs_skip_leading_blank_tokens():
    logprobs = {"content": [{"token": " ", "logprob": -0.01, "top_logprobs": []},
                            {"token": "A", "logprob": -0.2, "top_logprobs": [{"token": " B", "logprob": -1.7}]}]}
    assert verdict_logprobs_of(logprobs, {"A": "A", "B": "B", "tie": "C"}) == {"A": -0.2, "B": -1.7}
    assert verdict_logprobs_of(None, {"A": "A"}) is None


def test_price_table_uses_the_longest_prefix_and_unknown_models_are_unpriced():
    table = {"gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6)}
    assert price_of("gpt-4o-mini-2024-07-18", table) == (0.15, 0.6)
    assert price_of("gpt-4o-2024-08-06", table) == (2.5, 10.0)
    assert price_of("my-local-judge", table) is None


def test_cost_cap_stops_sending():
    with FaultServer() as server:
        backend = _backend(server, max_concurrency=1, max_cost_usd=0.3)
        completions = backend.generate([_request(f"q{i}") for i in range(6)])
        backend.close()
    sent = sum(server.attempts.values())
    assert sent == 3  # 0.12 per call: the third call crosses 0.3 USD, the rest are not sent
    assert [c.error is None for c in completions] == [True] * 3 + [False] * 3
    assert all("cost cap" in c.error for c in completions[3:])


def test_the_key_never_leaks_into_errors_logs_or_reprs(monkeypatch, caplog):
    monkeypatch.setenv("JT_TEST_KEY", FAKE_KEY)
    stdout, stderr = io.StringIO(), io.StringIO()
    with caplog.at_level(logging.DEBUG), redirect_stdout(stdout), redirect_stderr(stderr):
        with FaultServer({"q-echo": ["echo-auth"], "q-flaky": ["500", "drop"]}) as server:
            backend = _backend(server)
            completions = backend.generate([_request("q-echo"), _request("q-flaky")])
            text = repr(backend) + json.dumps(backend.settings()) + json.dumps(backend.usage())
            backend.close()
    assert server.auth_headers[0] == f"Bearer {FAKE_KEY}"  # the key was really sent
    everything = text + stdout.getvalue() + stderr.getvalue() + caplog.text + json.dumps([c.__dict__ for c in completions])
    assert "retrying" in caplog.text  # the retries were logged …
    assert FAKE_KEY not in everything  # … and nothing anywhere holds the key


def test_bad_settings_are_value_errors():
    with pytest.raises(ValueError, match="timeout_seconds"):
        OpenAIHTTPBackend("m", timeout_seconds=0)
    with pytest.raises(ValueError, match="max_concurrency"):
        OpenAIHTTPBackend("m", max_concurrency=0)


def test_killed_run_resumes_from_the_cache_without_repeating_a_finished_call(tmp_path):
    from judgetrain.judging.cache import CachingBackend, ResultCache

    script = {"q-3": ["429"], "q-5": ["500"], "q-8": ["drop"], "q-11": ["malformed"]}
    requests = [_request(f"question q-{i}.") for i in range(12)]
    cache_path = tmp_path / "cache.sqlite"
    with FaultServer(script) as server:
        # First run: the consumer dies after 5 finished calls (a kill mid-run).
        first = CachingBackend(_backend(server, max_concurrency=2), ResultCache(cache_path))
        finished_first: dict[int, str] = {}
        for index, completion in first.generate_iter(requests):
            finished_first[index] = completion.text
            if len(finished_first) == 5:
                break
        first.close()
        attempts_after_kill = dict(server.attempts)
        # Resume: a fresh backend over the same cache finishes the rest.
        second = CachingBackend(_backend(server, max_concurrency=2), ResultCache(cache_path))
        completions = second.generate(requests)
        second.close()
    assert all(c.error is None and c.text == DEFAULT_REPLY for c in completions)
    assert second.num_hits >= 5
    from openai_fault_server import prompt_key

    for index in finished_first:
        key = prompt_key([dict(m) for m in requests[index].messages])
        # Not one more attempt reached the server for a call the first run had finished.
        assert server.attempts[key] == attempts_after_kill[key]
        assert server.ok_calls[key] == 1
    # And every prompt was answered successfully at least once, so nothing was skipped.
    assert len(server.ok_calls) == len(requests)


def test_judge_over_a_faulty_server_gives_every_sample_a_judgment_or_an_error(tmp_path, monkeypatch, caplog):
    from judgetrain import formats
    from judgetrain.judging.judge import Judge, summarize
    from judgetrain.types import Answer, JudgeSample

    monkeypatch.setenv("JT_TEST_KEY", FAKE_KEY)
    script = {"q-429?": ["429"], "q-500?": ["500"], "q-hang?": ["hang"], "q-malformed?": ["malformed"],
              "q-drop?": ["drop"], "q-down?": ["500"] * 5, "q-echo?": ["echo-auth"]}
    replies = {"q-garbage?": "no idea"}
    names = [*script, "q-garbage?", "q-fine?"]
    samples = [JudgeSample(id=name.strip("?"), source="test", question=f"Question {name}",
                           answers=(Answer("first"), Answer("second"))) for name in names]
    cache_path = tmp_path / "judge-cache.sqlite"
    with caplog.at_level(logging.INFO), FaultServer(script, replies) as server:
        backend = _backend(server, max_retries=2)
        judge = Judge(formats.get("judgelm-v1"), backend, Decoding(max_new_tokens=64), cache=cache_path)
        judgments = judge.judge(samples)
        summary = summarize(judgments)
        judge.backend.close()
    by_id = {j.sample_id: j for j in judgments}
    assert len(judgments) == len(samples)
    for sample_id in ("q-429", "q-500", "q-hang", "q-malformed", "q-drop", "q-fine"):
        assert by_id[sample_id].verdict is not None and by_id[sample_id].verdict.scores == (8.0, 3.0), sample_id
    assert by_id["q-garbage"].parse_failure is not None and by_id["q-garbage"].raw_text == "no idea"
    assert "gave up after 3 attempts" in by_id["q-down"].error
    assert "HTTP 400" in by_id["q-echo"].error
    assert summary["num_errors"] == 2 and summary["num_parse_failures"] == 1
    assert summary["cost_usd"] == pytest.approx(7 * 0.12)  # 7 answered calls at 0.12 USD
    everything = json.dumps([j.to_dict() for j in judgments]) + json.dumps(summary) + caplog.text
    assert FAKE_KEY not in everything
    assert FAKE_KEY.encode() not in cache_path.read_bytes()
    for sidecar in tmp_path.glob("judge-cache.sqlite*"):  # the WAL file too
        assert FAKE_KEY.encode() not in sidecar.read_bytes()
