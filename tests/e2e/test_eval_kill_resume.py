"""`judgetrain eval --judge openai:MODEL`, run as its own process against a local API, killed with SIGKILL
mid-run and started again with the same --out: the rerun pays for no prompt the killed run was answered,
and the results are complete.

The server (tests/unit/openai_fault_server.py) plays a judge that always prefers the correct answer
and counts successful answers per prompt. It answers ``NUM_FINISHED_BEFORE_KILL`` calls, then holds
every later request unanswered, so the client is killed while it waits on held calls, once its result
cache (``OUT/judge-cache.sqlite``, eval's default) holds every answer it was sent.

Also: ``--no-cache`` pays again on every run (and contradicts ``--cache``), and an export dir's judge
reruns from the same cache with the same rows.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.e2e.test_judge_kill_resume import _num_cached, _reply, run_until_killed
from tests.unit.openai_fault_server import FaultServer

KEY_ENV = "JT_EVAL_RESUME_KEY"
NUM_ITEMS = 12  # pairwise: judged in both orders, 24 unique prompts
NUM_FINISHED_BEFORE_KILL = 9


def _llmbar_rows() -> list[dict]:
    """LLMBar-shaped pairs (``input``, ``output_1``, ``output_2``, ``label``): the correct answer is the
    first output for even items, the second for odd ones."""
    rows = []
    for i in range(NUM_ITEMS):
        correct, wrong = f"The correct answer to q-{i}.", f"A wrong answer to q-{i}."
        first, second = (correct, wrong) if i % 2 == 0 else (wrong, correct)
        rows.append({"input": f"Question q-{i}?", "output_1": first, "output_2": second, "label": 1 if i % 2 == 0 else 2})
    return rows


def _command(server: FaultServer, data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "judgetrain", "eval", "--benchmark", "llmbar-natural", "--data", str(data),
            "--judge", "openai:test-judge", "--format", "judgelm-v1", "--base-url", server.url, "--api-key-env", KEY_ENV,
            "--bootstrap-resamples", "0", "--no-plots", "--out", str(out), *extra]


def test_killed_api_eval_resumes_through_the_result_cache_without_paying_a_prompt_twice(tmp_path):
    data = tmp_path / "dataset.json"
    data.write_text(json.dumps(_llmbar_rows()))
    out = tmp_path / "run"
    cache = out / "judge-cache.sqlite"  # eval's default result cache, inside the run dir
    env = {**os.environ, KEY_ENV: "sk-eval-resume-fake", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "WANDB_MODE": "offline"}
    logs = {name: tmp_path / f"{name}.log" for name in ("run1.stdout", "run1.stderr", "run2.stdout", "run2.stderr")}

    with FaultServer(reply_fn=_reply, freeze_after_ok=NUM_FINISHED_BEFORE_KILL) as server:
        run1 = run_until_killed(_command(server, data, out), env, server, cache, NUM_FINISHED_BEFORE_KILL,
                                logs["run1.stdout"], logs["run1.stderr"])
        assert run1.returncode == -signal.SIGKILL, logs["run1.stderr"].read_text()
        assert not (out / "results.json").exists()  # the killed run wrote no results
        finished_before_kill = {key for key, count in server.ok_calls.items() if count}
        assert len(finished_before_kill) == NUM_FINISHED_BEFORE_KILL
        attempts_before_restart = dict(server.attempts)

        server.unfreeze()
        with logs["run2.stdout"].open("wb") as stdout, logs["run2.stderr"].open("wb") as stderr:
            run2 = subprocess.run(_command(server, data, out), env=env, stdout=stdout, stderr=stderr, timeout=300)
        assert run2.returncode == 0, logs["run2.stderr"].read_text()

    # Paid answers over both runs = unique prompts: no prompt was paid twice, and the restarted run
    # never even asked for a prompt answered before the kill.
    num_prompts = 2 * NUM_ITEMS
    assert len(server.ok_calls) == num_prompts and sum(server.ok_calls.values()) == num_prompts
    assert all(server.attempts[key] == attempts_before_restart[key] for key in finished_before_kill)
    assert _num_cached(cache) == num_prompts
    assert f"calls: {num_prompts} ({NUM_FINISHED_BEFORE_KILL} from the result cache {cache})" in logs["run2.stdout"].read_text()

    # The results are complete: every item judged in both orders, each order with its own verdict.
    rows = [json.loads(line) for line in (out / "judgments.jsonl").read_text().splitlines()]
    assert len(rows) == NUM_ITEMS
    for row in rows:
        assert row["verdict"] == row["gold_winner"] and row["verdict_swapped"] == row["gold_winner"], row["id"]
        assert row["parse_failures"] == [None, None]
    results = json.loads((out / "results.json").read_text())
    assert results["metrics"]["num_items"]["value"] == NUM_ITEMS
    assert results["metrics"]["accuracy"]["value"] == 1.0
    assert results["config"]["result_cache"] == str(cache)


def test_eval_without_the_cache_pays_again_and_rejects_contradicting_flags(tmp_path):
    data = tmp_path / "dataset.json"
    data.write_text(json.dumps(_llmbar_rows()[:2]))
    env = {**os.environ, KEY_ENV: "sk-eval-resume-fake", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "WANDB_MODE": "offline"}
    with FaultServer(reply_fn=_reply) as server:
        for _ in range(2):
            done = subprocess.run(_command(server, data, tmp_path / "run", "--no-cache"), env=env, capture_output=True,
                                  text=True, timeout=300)
            assert done.returncode == 0, done.stderr
            assert "calls: 4 (no result cache)" in done.stdout
        assert sum(server.ok_calls.values()) == 8 and not (tmp_path / "run" / "judge-cache.sqlite").exists()
        both = subprocess.run(_command(server, data, tmp_path / "run", "--no-cache", "--cache", str(tmp_path / "c.sqlite")),
                              env=env, capture_output=True, text=True, timeout=300)
    assert both.returncode == 1 and "--cache" in both.stderr and "--no-cache contradict each other" in both.stderr
    assert sum(server.ok_calls.values()) == 8  # refused before any call


def test_an_export_dir_eval_reruns_from_its_cache_with_the_same_rows(tmp_path):
    # An export dir judges through the card's Judge: the cache sits in front of that Judge's backend.
    from judgetrain.export import export
    from judgetrain_eval.runner import run_benchmark
    from tests.e2e.test_eval_card import verdict_checkpoint

    judge_dir = export(verdict_checkpoint(tmp_path / "checkpoint"), tmp_path / "judge", dtype="fp32", max_new_tokens=1)
    data = tmp_path / "dataset.json"
    data.write_text(json.dumps(_llmbar_rows()[:4]))
    cache = tmp_path / "run" / "judge-cache.sqlite"
    runs = [run_benchmark("llmbar-natural", judge=str(judge_dir), data=str(data), num_resamples=0, cache=cache) for _ in range(2)]
    first, second = ([call["meta"]["cached"] for row in run.rows for call in row.judgments] for run in runs)
    assert first == [False] * 8 and second == [True] * 8
    assert [(r.verdict, r.verdict_swapped, r.raw_texts) for r in runs[0].rows] == \
        [(r.verdict, r.verdict_swapped, r.raw_texts) for r in runs[1].rows]
    assert _num_cached(cache) == 8 and runs[1].config["result_cache"] == str(cache)
