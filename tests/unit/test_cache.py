"""The result cache: a killed run resumes with exactly the missing calls, a repeated run makes none,
errors are retried, and the key changes with everything that decides a completion."""

import dataclasses
import sqlite3

import pytest

from judgetrain.formats import judgelm
from judgetrain.judging import CachingBackend, Judge, ResultCache, request_key
from judgetrain.judging.backends.base import Backend, Completion, Decoding, Request
from judgetrain.types import Answer, JudgeSample

JUDGELM = next(f for f in judgelm.FORMATS if f.name == "judgelm-v1")


class Killed(RuntimeError):
    """Stands for the process being killed mid-run."""


class CountingBackend(Backend):
    """Counts every completion it produces; raises Killed once ``kill_after`` completions are done.

    ``one_by_one`` selects how results come back: yielded as each finishes (like the HTTP backend) or
    only when ``generate`` returns (a backend without its own ``generate_iter``)."""

    name = "counting"
    model_id = "counting-model"

    def __init__(self, kill_after: int | None = None, fail_texts: tuple[str, ...] = ()):
        self.kill_after = kill_after
        self.fail_texts = fail_texts
        self.answered: list[str] = []

    def _answer(self, request: Request) -> Completion:
        if self.kill_after is not None and len(self.answered) >= self.kill_after:
            raise Killed(f"killed after {self.kill_after} calls")
        user = request.messages[-1]["content"]
        self.answered.append(user)
        if any(t in user for t in self.fail_texts):
            return Completion(error="HTTP 503: overloaded")
        return Completion(text=f"{len(user) % 9 + 1} 5\nwhy", tokens_in=len(user), tokens_out=4)

    def generate(self, requests):
        return [self._answer(r) for r in requests]


class StreamingCountingBackend(CountingBackend):
    def generate_iter(self, requests):
        for index, request in enumerate(requests):
            yield index, self._answer(request)


def samples(n: int) -> list[JudgeSample]:
    return [JudgeSample(id=f"s{i}", source="test", question=f"question {i}?",
                        answers=(Answer(f"first answer {i}"), Answer("second" + "!" * i))) for i in range(n)]


@pytest.mark.parametrize("backend_class", [StreamingCountingBackend, CountingBackend])
def test_killed_run_resumes_with_exactly_the_missing_calls(tmp_path, backend_class):
    cache_path = tmp_path / "cache.sqlite"
    data = samples(10)  # both orders: 20 calls
    killed = backend_class(kill_after=7)
    with pytest.raises(Killed):
        Judge(JUDGELM, CachingBackend(killed, cache_path, chunk_size=3), both_orders=True).judge(data)
    done_before_kill = killed.answered
    with ResultCache(cache_path) as cache:
        stored = len(cache)
    # One by one: every finished call is stored. In chunks of 3: the chunk in flight (1 call) is lost.
    assert stored == (7 if backend_class is StreamingCountingBackend else 6)

    resumed = backend_class()
    judgments = Judge(JUDGELM, CachingBackend(resumed, cache_path, chunk_size=3), both_orders=True).judge(data)
    assert len(resumed.answered) == 20 - stored
    assert set(done_before_kill[:stored]).isdisjoint(resumed.answered)  # no finished call repeated
    assert len(judgments) == 10 and all(j.verdict is not None for j in judgments)

    again = backend_class()
    repeated = Judge(JUDGELM, CachingBackend(again, cache_path), both_orders=True).judge(data)
    assert again.answered == []  # a repeated run costs nothing
    assert [j.to_dict()["verdict"] for j in repeated] == [j.to_dict()["verdict"] for j in judgments]
    assert all(o.meta["cached"] for j in repeated for o in (j.both_orders.original, j.both_orders.swapped))


def test_judge_cache_argument_takes_a_path(tmp_path):
    first = StreamingCountingBackend()
    Judge(JUDGELM, first, cache=tmp_path / "c.sqlite").judge(samples(3))
    second = StreamingCountingBackend()
    [j, *_] = Judge(JUDGELM, second, cache=tmp_path / "c.sqlite").judge(samples(3))
    assert len(first.answered) == 3 and second.answered == []
    assert j.meta["cached"] is True and j.backend == "counting" and j.model == "counting-model"


def test_errors_are_not_cached_and_are_retried(tmp_path):
    cache_path = tmp_path / "cache.sqlite"
    failing = StreamingCountingBackend(fail_texts=("question 1?",))
    judgments = Judge(JUDGELM, CachingBackend(failing, cache_path)).judge(samples(3))
    assert judgments[1].error == "HTTP 503: overloaded" and judgments[0].verdict is not None
    healthy = StreamingCountingBackend()
    retried = Judge(JUDGELM, CachingBackend(healthy, cache_path)).judge(samples(3))
    assert len(healthy.answered) == 1 and "question 1?" in healthy.answered[0]
    assert retried[1].verdict is not None


def test_identical_requests_in_one_run_are_sent_once(tmp_path):
    backend = StreamingCountingBackend()
    twice = samples(2) + [s.replace(id=s.id + "-copy") for s in samples(2)]
    judgments = Judge(JUDGELM, CachingBackend(backend, tmp_path / "c.sqlite")).judge(twice)
    assert len(backend.answered) == 2
    assert judgments[0].raw_text == judgments[2].raw_text and judgments[2].sample_id == "s0-copy"


def test_the_key_covers_messages_model_backend_decoding_and_options():
    request = Request(messages=({"role": "user", "content": "hi"},), decoding=Decoding(max_new_tokens=8))
    key = request_key(request, "transformers", "m")
    assert key == request_key(dataclasses.replace(request), "transformers", "m")
    assert len(key) == 64
    changed = [
        request_key(request, "openai", "m"),
        request_key(request, "transformers", "m2"),
        request_key(dataclasses.replace(request, decoding=Decoding(max_new_tokens=9)), "transformers", "m"),
        request_key(dataclasses.replace(request, decoding=Decoding(max_new_tokens=8, stop=("\n",))), "transformers", "m"),
        request_key(dataclasses.replace(request, messages=({"role": "user", "content": "hi!"},)), "transformers", "m"),
        request_key(dataclasses.replace(request, verdict_options={"A": "1"}), "transformers", "m"),
    ]
    assert len(set(changed + [key])) == len(changed) + 1


def test_store_round_trip_survives_reopening_and_uses_wal(tmp_path):
    path = tmp_path / "sub" / "cache.sqlite"
    completion = Completion(text="8 6", texts=["8 6"], prompt_text="p", tokens_in=3, tokens_out=2,
                            latency_seconds=0.25, verdict_logprobs={"8": -0.1}, cost_usd=0.002)
    with ResultCache(path) as cache:
        cache.put("k", completion)
        cache.put("bad", Completion(error="timeout"))
        assert "bad" not in cache and cache.get("missing") is None
    with ResultCache(path) as reopened:
        got = reopened.get("k")
    assert got.cached is True and dataclasses.replace(got, cached=False) == completion
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(ValueError, match="directory"):
        ResultCache(tmp_path)
