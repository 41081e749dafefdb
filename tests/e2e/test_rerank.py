"""`judgetrain rerank` (best-of-n) on tiny exported judges.

- With a reward export, the kept candidate of every prompt is the one with the highest reward the
  judge itself gives it (each candidate scored once), wherever it stands in the list; a second run
  answers every reward from the result cache.
- With a generative pairwise export served by `judgetrain serve`, every candidate's wins are the
  judge's own round-robin tally (every pair in both orders) and the kept one its argmax, or none
  when no judgment gave a verdict.
- A run killed with SIGKILL midway and started again does not judge a finished prompt again: the
  served model counts the calls it answers per prompt (no result cache, so only the resumed output
  file can spare them).
- Bad rows are errors naming the file, the line and the field, or skipped and counted.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from judgetrain.cli import main
from judgetrain.judging.backends.transformers_backend import TransformersBackend

REPO_ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = ["Tell me about topic 3.", "Name a prime number.", "What is the capital of France?"]
CANDIDATES = [
    ["Topic 3 is common and useful every day.", "I do not know.", "Topic 3? It is a topic."],
    ["9", "7 is a prime: it has no divisor but 1 and itself.", "4"],
    ["Paris.", "Lyon.", "The capital of France is Paris, on the Seine."],
]


def _rotated_rows() -> list[dict]:
    """Each question twice: its candidates as listed and rotated by one place, so the same text is
    the best one at a different index."""
    rows = []
    for number, (question, candidates) in enumerate(zip(QUESTIONS, CANDIDATES)):
        rows.append({"id": f"q{number}", "prompt": question, "candidates": candidates})
        rows.append({"id": f"q{number}-rotated", "question": question, "candidates": candidates[1:] + candidates[:1]})
    return rows


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _first_argmax(values: list[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))


@pytest.fixture(scope="module")
def reward_judge_dir(tiny_reward_checkpoint, tmp_path_factory) -> Path:
    from judgetrain.export import export

    return export(tiny_reward_checkpoint, tmp_path_factory.mktemp("rerank-reward") / "judge", dtype="fp32")


@pytest.fixture(scope="module")
def generative_judge_dir(tiny_generative_export) -> Path:
    return tiny_generative_export


def test_the_kept_candidate_has_the_highest_reward_the_judge_gives(reward_judge_dir, tmp_path, capsys):
    import judgetrain
    from judgetrain.card import read_card
    from judgetrain.reward.judge import single_sample

    rows = _rotated_rows()
    candidates_file = _write_jsonl(tmp_path / "candidates.jsonl", rows)
    common = ["rerank", "--judge", str(reward_judge_dir), "--input", str(candidates_file), "--cache", str(tmp_path / "cache.sqlite"),
              "--batch-prompts", "4", "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "ranked.jsonl")]) == 0
    ranked = _read_jsonl(tmp_path / "ranked.jsonl")
    assert [r["id"] for r in ranked] == [r["id"] for r in rows]

    judge = judgetrain.Judge.from_card(reward_judge_dir)
    card = read_card(reward_judge_dir)
    for row, out in zip(rows, ranked):
        question = row.get("prompt", row.get("question"))
        rewards = [j.verdict.scores[0] for j in judge.judge([single_sample(question, c) for c in row["candidates"]])]
        best = _first_argmax(rewards)
        assert out["best_index"] == best and out["best"] == row["candidates"][best], row["id"]
        assert out["scores"] == pytest.approx(rewards, abs=1e-5)
        assert out["ranking"] == sorted(range(len(rewards)), key=lambda i: (-rewards[i], i))
        assert out["num_judgments"] == len(row["candidates"]) and out["num_unread"] == 0  # one reward per candidate
        assert out["judge"] == {"name": card.name, "template": "reward-chat-v1", "kind": "reward"}
    # Rotating the list moves the kept answer's index, not the kept answer.
    for plain, rotated in zip(ranked[0::2], ranked[1::2]):
        assert plain["best"] == rotated["best"] and (plain["best_index"] - 1) % 3 == rotated["best_index"]

    # A second run over the same candidates scores nothing: every reward comes from the result cache.
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "again.jsonl")]) == 0
    assert f"result cache: {3 * len(rows)} calls answered from it, 0 made" in capsys.readouterr().out
    assert _read_jsonl(tmp_path / "again.jsonl") == ranked


def test_a_pairwise_judges_wins_are_its_own_round_robin_tally(generative_judge_dir, tmp_path):
    import judgetrain
    from judgetrain.client import pair_sample
    from judgetrain.serve import start_server

    rows = _rotated_rows()[:4]
    candidates_file = _write_jsonl(tmp_path / "candidates.jsonl", rows)
    server, _ = start_server(str(generative_judge_dir), "127.0.0.1", 0, batch_size=8)
    try:
        url = server.url
        assert main(["rerank", "--judge", url, "--input", str(candidates_file), "--out", str(tmp_path / "ranked.jsonl"),
                     "--no-cache", "--no-progress"]) == 0
        ranked = _read_jsonl(tmp_path / "ranked.jsonl")
        judge = judgetrain.Judge.from_card(url, both_orders=True)
        for row, out in zip(rows, ranked):
            question, candidates = row.get("prompt", row.get("question")), row["candidates"]
            pairs = [(0, 1), (0, 2), (1, 2)]
            judgments = judge.judge([pair_sample(question, candidates[i], candidates[k]) for i, k in pairs])
            assert all(j.both_orders is not None for j in judgments)
            wins = [0.0, 0.0, 0.0]
            for (i, k), judgment in zip(pairs, judgments):
                for who, share in {"A": ((i, 1.0),), "B": ((k, 1.0),), "tie": ((i, 0.5), (k, 0.5))}.get(judgment.winner, ()):
                    wins[who] += share
            read = [j for j in judgments if j.verdict is not None]
            assert out["wins"] == wins and out["num_judgments"] == 3 and out["num_unread"] == 3 - len(read), row["id"]
            # The argmax of the wins, or no pick at all when no judgment of the prompt gave a verdict.
            assert out["best_index"] == (_first_argmax(wins) if read else None)
            assert out["judge"]["template"] == "mtbench-pair-v2" and out["judge"]["protocol"] == "pairwise"
        judge.backend.close()
    finally:
        server.shutdown()
        server.server_close()


class CountingBackend(TransformersBackend):
    """The export's own transformers backend, counting the calls it answers per prompt ("q-N" in the
    question) and holding every call after the first ``answer_limit`` until ``release`` is set."""

    def __init__(self, path: Path, answer_limit: int):
        super().__init__(str(path), batch_size=8)
        self.answer_limit = answer_limit
        self.release = threading.Event()
        self.calls: Counter[str] = Counter()
        self.num_answered = 0
        self.num_held = 0

    def generate(self, requests):
        if self.num_answered >= self.answer_limit and not self.release.is_set():
            self.num_held += len(requests)
            self.release.wait(timeout=300)
        completions = super().generate(requests)
        for request in requests:
            self.calls[re.search(r"q-\d+", request.messages[-1]["content"]).group()] += 1
        self.num_answered += len(requests)
        return completions


def _wait_for(condition, timeout_seconds: float, what: str) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_seconds} s waiting for {what}")
        time.sleep(0.05)


def _whole_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines(keepends=True) if line.endswith("\n")] if path.exists() else []


def test_a_killed_run_resumes_without_judging_a_finished_prompt_again(generative_judge_dir, tmp_path):
    from judgetrain.serve import start_server

    num_prompts, calls_per_prompt = 6, 6  # 3 candidates: 3 pairs, each in both orders
    rows = [{"id": f"p{i}", "prompt": f"Question q-{i}: name a colour.", "candidates": ["Red.", "Blue.", f"Colour {i}."]}
            for i in range(num_prompts)]
    candidates_file = _write_jsonl(tmp_path / "candidates.jsonl", rows)
    out = tmp_path / "ranked.jsonl"
    partial = tmp_path / ".ranked.jsonl.partial"
    # The first batch of 2 prompts is answered; the second one's calls are held until the kill.
    backend = CountingBackend(generative_judge_dir, answer_limit=2 * calls_per_prompt)
    server, _ = start_server(backend, "127.0.0.1", 0, batch_size=8)
    command = [sys.executable, "-m", "judgetrain", "rerank", "--judge", server.url, "--card", str(generative_judge_dir),
               "--input", str(candidates_file), "--out", str(out), "--batch-prompts", "2", "--batch-size", "4",
               "--no-cache", "--no-progress"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false"}
    try:
        with (tmp_path / "run1.log").open("wb") as log:
            run1 = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                _wait_for(lambda: len(_whole_lines(partial)) == 2 and backend.num_held > 0 or run1.poll() is not None, 240,
                          "the first batch's rows to be written while the second batch's calls are held")
                assert run1.poll() is None, (tmp_path / "run1.log").read_text()
                os.kill(run1.pid, signal.SIGKILL)
            finally:
                if run1.poll() is None:
                    run1.kill()
                run1.wait(timeout=30)
        assert run1.returncode == -signal.SIGKILL
        assert not out.exists()  # renamed into place only by a run that completes
        finished_before_kill = _whole_lines(partial)
        assert [json.loads(line)["id"] for line in finished_before_kill] == ["p0", "p1"]
        assert backend.calls["q-0"] == backend.calls["q-1"] == calls_per_prompt

        backend.release.set()
        run2 = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert run2.returncode == 0, run2.stdout + run2.stderr
    finally:
        backend.release.set()
        server.shutdown()
        server.server_close()

    # No call of a prompt finished before the kill was made again; every other prompt was judged.
    assert backend.calls["q-0"] == backend.calls["q-1"] == calls_per_prompt
    assert all(backend.calls[f"q-{i}"] >= calls_per_prompt for i in range(2, num_prompts))
    assert f"ranked {num_prompts} prompts -> {out} (2 by an earlier run, 4 now)" in run2.stdout
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    assert [json.loads(line)["id"] for line in lines] == [row["id"] for row in rows]
    assert lines[:2] == finished_before_kill  # the rows finished before the kill are kept as written


def test_bad_rows_are_named_or_skipped_and_counted(reward_judge_dir, tmp_path, capsys):
    good = {"id": "ok", "prompt": "Name a prime.", "candidates": ["9", "7"]}
    bad_rows = [
        ({"id": "a", "prompt": "Name a prime."}, "missing required field 'candidates'"),
        ({"id": "b", "prompt": "Name a prime.", "candidates": "7"}, "candidates: expected a non-empty list of strings"),
        ({"id": "c", "prompt": "Name a prime.", "candidates": ["7", 9]}, "candidates[1]: expected a string, got int 9"),
        ({"prompt": "Name a prime.", "candidates": ["7"]}, "missing required field 'id'"),
        ({"id": "d", "candidates": ["7"]}, "missing required field 'prompt' (or 'question')"),
        ({"id": "e", "prompt": "Name a prime.", "question": "Name an even number.", "candidates": ["7"]}, "prompt and question differ"),
        ({"id": "ok", "prompt": "Name a prime.", "candidates": ["7"]}, "id 'ok' was already given at"),
    ]
    candidates_file = tmp_path / "candidates.jsonl"
    candidates_file.write_text(json.dumps(good) + "\n" + "".join(json.dumps(row) + "\n" for row, _ in bad_rows) + "{not json\n",
                               encoding="utf-8")
    common = ["rerank", "--judge", str(reward_judge_dir), "--input", str(candidates_file), "--out", str(tmp_path / "ranked.jsonl"),
              "--no-cache", "--no-progress"]
    assert main(common) == 1
    error = capsys.readouterr().err
    assert f"{candidates_file}:2: missing required field 'candidates'" in error and "--on-bad-row skip" in error
    assert not (tmp_path / "ranked.jsonl").exists()

    # Each bad row alone is an error naming its line and field.
    for row, message in bad_rows:
        single = _write_jsonl(tmp_path / "one.jsonl", [good, row])
        assert main([*common[:4], str(single), *common[5:]]) == 1
        assert f"{single}:2: {message}" in capsys.readouterr().err

    assert main([*common, "--on-bad-row", "skip"]) == 0
    printed = capsys.readouterr().out
    assert f"bad rows skipped: {len(bad_rows) + 1}" in printed and "ranked 1 prompts" in printed
    assert f"invalid JSON: {candidates_file}:9:" in printed and f"missing field: {candidates_file}:2:" in printed
    assert [r["id"] for r in _read_jsonl(tmp_path / "ranked.jsonl")] == ["ok"]


def test_a_row_cut_short_by_a_kill_is_ranked_again_and_another_judges_rows_are_refused(reward_judge_dir, tmp_path, capsys):
    rows = _rotated_rows()
    candidates_file = _write_jsonl(tmp_path / "candidates.jsonl", rows)
    out, partial = tmp_path / "ranked.jsonl", tmp_path / ".ranked.jsonl.partial"
    command = ["rerank", "--judge", str(reward_judge_dir), "--input", str(candidates_file), "--out", str(out), "--no-cache", "--no-progress"]
    assert main(command) == 0
    complete = out.read_text(encoding="utf-8").splitlines(keepends=True)
    # What a kill in the middle of writing the second row leaves: one whole row, half of the next.
    partial.write_text(complete[0] + complete[1][: len(complete[1]) // 2], encoding="utf-8")
    out.unlink()
    capsys.readouterr()
    assert main(command) == 0
    assert f"({1} by an earlier run, {len(rows) - 1} now)" in capsys.readouterr().out
    resumed = _read_jsonl(out)
    assert resumed[0] == json.loads(complete[0])  # the whole row is kept as written
    # The cut row and the rest are ranked again (scored in other batches: rewards equal to float precision).
    for again, first in zip(resumed[1:], map(json.loads, complete[1:])):
        assert again["id"] == first["id"] and again["best_index"] == first["best_index"]
        assert again["scores"] == pytest.approx(first["scores"], abs=1e-5)
    assert len(resumed) == len(complete)

    # Rows another judge ranked are not mixed with this judge's.
    other = json.loads(complete[0])
    other["judge"] = {**other["judge"], "name": "another-judge"}
    partial.write_text(json.dumps(other) + "\n", encoding="utf-8")
    assert main(command) == 1
    assert f"{partial}: an earlier, unfinished run ranked with judge" in capsys.readouterr().err
