"""`judgetrain judge --backend openai`, run as its own process against a faulty local API, killed with
SIGKILL mid-run and started again: every sample is judged exactly once, no finished call is asked
again, and the API key reaches no output, log, stderr or cache file (also when the key was set with a
stray line ending, as a CRLF .env file leaves it).

The server (tests/unit/openai_fault_server.py) answers 429 (with and without an echo of the key in
the body), 500, slow calls, truncated JSON, bodies cut off in transit and dropped connections, and
counts successful answers per prompt. It answers ``NUM_FINISHED_BEFORE_KILL`` calls, then holds every
later request unanswered: the client is killed while it waits on those held (hung) calls, once its
result cache holds every answer it was sent, so which calls finished before the kill is known exactly.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from judgetrain.judging.backends.base import Decoding, Request
from judgetrain.judging.backends.openai_http import REDACTED, OpenAIHTTPBackend
from judgetrain.judging.cache import ResultCache
from judgetrain.types import Answer, JudgeSample
from tests.unit.openai_fault_server import FaultServer

FAKE_KEY = "sk-judgetrain-KILLRESUME-FAKE-5d1c0b9a7e"
KEY_ENV = "JT_KILL_RESUME_KEY"
NUM_SAMPLES = 10  # judged in both orders: 20 calls
NUM_FINISHED_BEFORE_KILL = 7
FAULTS = ["429", "500", "hang", "malformed", "truncated", "drop", "429"]
"""One fault per sample's first attempt (both orders' prompts share a sample's marker), cycled."""


def _sample(i: int) -> JudgeSample:
    correct, wrong = f"The correct answer to q-{i}.", f"A wrong answer to q-{i}."
    # The correct answer is shown first for even samples, second for odd ones.
    answers = (Answer(correct), Answer(wrong)) if i % 2 == 0 else (Answer(wrong), Answer(correct))
    return JudgeSample(id=f"s{i}", source="test", question=f"Question q-{i}?", answers=answers)


def _reply(content: str) -> str:
    """A judge that always prefers the correct answer, in whichever order it is shown."""
    if content.index("The correct answer") < content.index("A wrong answer"):
        return "9 2\nAssistant 1 is correct; Assistant 2 is not."
    return "2 9\nAssistant 2 is correct; Assistant 1 is not."


def _script() -> dict[str, list[str]]:
    return {f"q-{i}?": [FAULTS[i % len(FAULTS)]] for i in range(NUM_SAMPLES)}


def _command(server: FaultServer, samples: Path, out: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "judgetrain", "judge", "--input", str(samples), "--format", "judgelm-v1", "--backend", "openai",
            "--model", "test-judge", "--base-url", server.url, "--api-key-env", KEY_ENV, "--both-orders",
            "--cache", str(cache), "--no-progress", "--out", str(out)]


def _wait_for(condition, timeout_seconds: float, what: str) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_seconds} s waiting for {what}")
        time.sleep(0.05)


def _num_cached(cache: Path) -> int:
    if not cache.is_file():
        return 0
    with ResultCache(cache) as store:
        return len(store)


def run_until_killed(command: list[str], env: dict[str, str], server: FaultServer, cache: Path, num_finished: int,
                     stdout_log: Path, stderr_log: Path) -> subprocess.Popen:
    """Run ``command`` until ``server`` has answered ``num_finished`` calls and holds the later ones, wait
    until the client's result cache holds every answered call, then SIGKILL it; returns the killed process."""
    with stdout_log.open("wb") as stdout, stderr_log.open("wb") as stderr:
        process = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr)
        try:
            assert server.frozen.wait(timeout=120), "the first run never finished its first calls"
            # Every answer sent has reached the client's cache; the client now waits on held calls.
            _wait_for(lambda: _num_cached(cache) == server.num_ok == num_finished and server.num_held > 0,
                      60, "the cache to hold every answered call while later calls hang")
            assert process.poll() is None, "the first run ended before it was killed"
            os.kill(process.pid, signal.SIGKILL)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)
    return process


def _assert_key_in_no_file(root: Path) -> list[Path]:
    """Every file under ``root`` (outputs, partial outputs, cache and its WAL, logs) is free of the key."""
    written = [p for p in root.rglob("*") if p.is_file()]
    for path in written:
        data = path.read_bytes()
        assert FAKE_KEY.encode() not in data and FAKE_KEY.encode("utf-16-le") not in data, path
    return written


def test_killed_api_judging_run_resumes_without_repeating_a_call_or_leaking_the_key(tmp_path):
    samples_file = tmp_path / "samples.jsonl"
    samples_file.write_text("".join(json.dumps(_sample(i).to_dict()) + "\n" for i in range(NUM_SAMPLES)))
    out, cache = tmp_path / "judgments.jsonl", tmp_path / "cache" / "judge-cache.sqlite"
    env = {**os.environ, KEY_ENV: FAKE_KEY, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline"}
    logs = {name: tmp_path / f"{name}.log" for name in ("run1.stdout", "run1.stderr", "run2.stdout", "run2.stderr")}

    with FaultServer(_script(), reply_fn=_reply, hang_seconds=0.3, echo_auth_in_errors=True,
                     freeze_after_ok=NUM_FINISHED_BEFORE_KILL) as server:
        run1 = run_until_killed(_command(server, samples_file, out, cache), env, server, cache, NUM_FINISHED_BEFORE_KILL,
                                logs["run1.stdout"], logs["run1.stderr"])
        assert run1.returncode == -signal.SIGKILL
        assert not out.exists()  # the output is renamed into place only by a run that completes
        _assert_key_in_no_file(tmp_path)  # what the killed run left: partial output, cache + WAL, logs
        finished_before_kill = {key for key, count in server.ok_calls.items() if count}
        assert len(finished_before_kill) == NUM_FINISHED_BEFORE_KILL == _num_cached(cache)
        attempts_before_restart = dict(server.attempts)

        server.unfreeze()
        server.reset_script(_script())  # the restarted client meets the same faults on what is left
        with logs["run2.stdout"].open("wb") as stdout, logs["run2.stderr"].open("wb") as stderr:
            run2 = subprocess.run(_command(server, samples_file, out, cache), env=env, stdout=stdout, stderr=stderr,
                                  timeout=300)
        assert run2.returncode == 0, logs["run2.stderr"].read_text()

    # Every sample judged exactly once, each with the verdict its own calls gave.
    judgments = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(j["sample_id"] for j in judgments) == sorted(f"s{i}" for i in range(NUM_SAMPLES))
    for judgment in judgments:
        expected = "A" if int(judgment["sample_id"][1:]) % 2 == 0 else "B"
        assert judgment["error"] is None and judgment["verdict"]["winner"] == expected, judgment["sample_id"]
        assert judgment["both_orders"]["consistent"] is True

    # No finished call was asked again: one successful answer per prompt over both runs, and the
    # restarted run never even tried a prompt finished before the kill.
    assert len(server.ok_calls) == 2 * NUM_SAMPLES and set(server.ok_calls.values()) == {1}
    assert all(server.attempts[key] == attempts_before_restart[key] for key in finished_before_kill)
    printed = logs["run2.stdout"].read_text()
    assert f"calls: {2 * NUM_SAMPLES} ({NUM_FINISHED_BEFORE_KILL} from the cache)" in printed
    assert _num_cached(cache) == 2 * NUM_SAMPLES

    # The key was sent, echoed back in error bodies, and scrubbed from everything the client wrote.
    assert set(server.auth_headers) == {f"Bearer {FAKE_KEY}"}
    stderr_text = logs["run1.stderr"].read_text() + logs["run2.stderr"].read_text()
    assert "[redacted api key]" in stderr_text  # the retry warnings quoted the echoed bodies
    assert {out, cache, *logs.values()} <= set(_assert_key_in_no_file(tmp_path))


def _request(text: str) -> Request:
    return Request(messages=({"role": "user", "content": text},), decoding=Decoding(max_new_tokens=8))


def _quick_backend(server: FaultServer) -> OpenAIHTTPBackend:
    return OpenAIHTTPBackend("test-judge", base_url=server.url, api_key_env=KEY_ENV, max_concurrency=2,
                             timeout_seconds=5, max_retries=1, backoff_base_seconds=0.01, backoff_max_seconds=0.01,
                             price_table={})


def test_a_key_with_a_line_ending_is_sent_stripped_and_scrubbed_in_every_form(monkeypatch, caplog):
    # A trailing CR LF (a .env file written on Windows) is not part of the key: sent without it, the
    # calls succeed, and the echoed "Bearer <key>" is scrubbed although it is not the variable's value.
    monkeypatch.setenv(KEY_ENV, FAKE_KEY + "\r\n")
    with caplog.at_level(logging.WARNING), FaultServer({"q-echo": ["500", "echo-auth"]}, echo_auth_in_errors=True) as server:
        backend = _quick_backend(server)
        plain, echoed = backend.generate([_request("q-plain"), _request("q-echo")])
        backend.close()
    assert plain.error is None and set(server.auth_headers) == {f"Bearer {FAKE_KEY}"}
    assert REDACTED in echoed.error and FAKE_KEY not in echoed.error
    assert REDACTED in caplog.text and FAKE_KEY not in caplog.text

    # A control character inside the key makes an illegal header that httpx quotes as escaped bytes.
    caplog.clear()
    head, tail = FAKE_KEY[:12], FAKE_KEY[12:]
    monkeypatch.setenv(KEY_ENV, f"{head}\n{tail}")
    with caplog.at_level(logging.WARNING), FaultServer() as server:
        backend = _quick_backend(server)
        (broken,) = backend.generate([_request("q-plain")])
        backend.close()
    assert broken.error is not None and REDACTED in broken.error
    for text in (broken.error, caplog.text):
        assert head not in text and tail not in text
