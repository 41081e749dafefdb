"""The hub benchmarks (judgelm-val, mtbench-human) on local files: the readers' fixtures and vote
files built here, scored against values counted by hand."""

import json
from pathlib import Path

import pytest

from judgetrain_eval.mtbench_human import gather_votes
from judgetrain_eval.runner import get_benchmark
from judgetrain.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "assets" / "fixtures"


def _eval(capsys, *args) -> dict:
    capsys.readouterr()
    assert main(["eval", *args, "--bootstrap-resamples", "20", "--print-json", "--no-plots"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_judgelm_val_reads_the_fixture_and_needs_the_hub_otherwise(tmp_path, capsys):
    bench = get_benchmark("judgelm-val")
    fixture = FIXTURES / "judgelm_100k_sample.jsonl"
    items = bench.load(data=str(fixture))
    rows = [json.loads(line) for line in fixture.read_text().splitlines() if line.strip()]
    usable = [r for r in rows if r["score"] != [-1, -1] and r.get("text") != "error"]
    assert len(items) == len(usable)
    expected = ["A" if r["score"][0] > r["score"][1] else "B" if r["score"][0] < r["score"][1] else "tie" for r in usable]
    assert [s.labels["gpt4"].winner for s in items] == expected
    # JudgeLM-style grades in a predictions file, both orders.
    pred = tmp_path / "p.jsonl"
    pred.write_text("".join(json.dumps({"scores": list(r["score"])}) + "\n" for r in usable))
    swapped = tmp_path / "s.jsonl"
    swapped.write_text("".join(json.dumps({"scores": [r["score"][1], r["score"][0]]}) + "\n" for r in usable))
    out = _eval(capsys, "--benchmark", "judgelm-val", "--data", str(fixture), "--predictions", str(pred),
                "--predictions-swapped", str(swapped), "--out", str(tmp_path / "run"))
    assert out["accuracy"] == 1.0 and out["consistency"] == 1.0 and out["macro_f1"] == 1.0
    assert out["prefer_first_rate"] == 0.0
    # Without --data the set comes from the hub; offline that is an error that says what to do.
    with pytest.raises(ValueError, match="--data PATH"):
        bench.load()


def test_judgelm_val_joins_questions_with_gpt4_reviews_line_by_line(tmp_path):
    rows = [json.loads(line) for line in (FIXTURES / "judgelm_100k_sample.jsonl").read_text().splitlines() if line.strip()]
    question_fields = ("question_id", "question_body", "answer1_body", "answer2_body", "answer1_model_id", "answer2_model_id")
    (tmp_path / "judgelm_val_5k.jsonl").write_text("".join(json.dumps({k: r[k] for k in question_fields if k in r}) + "\n" for r in rows))
    scores = [[7, 3], [-1, -1]] + [[5, 5]] * (len(rows) - 2)
    (tmp_path / "judgelm_val_5k_gpt4.jsonl").write_text(
        "".join(json.dumps({"review_id": i, "question_id": r["question_id"], "text": "...", "score": s}) + "\n"
                for i, (r, s) in enumerate(zip(rows, scores))))
    items = get_benchmark("judgelm-val").load(data=str(tmp_path))
    assert len(items) == len(rows) - 1  # GPT-4's failed review ([-1, -1]) is dropped, as JudgeLM does
    assert [s.labels["gpt4"].winner for s in items] == ["A"] + ["tie"] * (len(rows) - 2)
    assert items[0].question == rows[0]["question_body"]
    (tmp_path / "judgelm_val_5k_gpt4.jsonl").write_text(json.dumps({"score": [1, 2]}) + "\n")
    with pytest.raises(ValueError, match="line by line"):
        get_benchmark("judgelm-val").load(data=str(tmp_path / "judgelm_val_5k.jsonl"))


def _conversation(question_turns, answer_turns):
    messages = []
    for q, a in zip(question_turns, answer_turns):
        messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return messages


def _vote_row(question_id, model_a, model_b, winner, judge, turn):
    questions = [f"question {question_id} turn 1", f"question {question_id} turn 2"]
    return {"question_id": question_id, "model_a": model_a, "model_b": model_b, "winner": winner, "judge": judge,
            "turn": turn, "conversation_a": _conversation(questions, [f"{model_a} a1", f"{model_a} a2 longer"]),
            "conversation_b": _conversation(questions, [f"{model_b} answer one", f"{model_b} 2"])}


def test_mtbench_human_fixture_gathers_expert_and_gpt4_votes():
    items = get_benchmark("mtbench-human").load(data=str(FIXTURES / "mt_bench_human_judgments_sample.jsonl"))
    rows = [json.loads(line) for line in (FIXTURES / "mt_bench_human_judgments_sample.jsonl").read_text().splitlines()]
    expert_keys = {(r["question_id"], tuple(sorted((r["model_a"], r["model_b"]))), r["turn"])
                   for r in rows if isinstance(r["judge"], str) and r["judge"].startswith("expert")}
    assert len(items) == len(expert_keys)
    for item in items:
        assert any(k.startswith("expert:") for k in item.labels)
        assert not any("author" in k for k in item.labels)  # FastChat's human agreement uses the experts only


def test_mtbench_human_agreement_end_to_end(tmp_path, capsys):
    votes = [
        _vote_row(1, "m1", "m2", "model_a", "expert_1", 1),
        _vote_row(1, "m2", "m1", "model_b", "expert_2", 1),     # same pair stored the other way round
        _vote_row(1, "m1", "m2", "tie (bothbad)", "expert_3", 1),
        _vote_row(1, "m1", "m2", "model_a", ["gpt-4", "pair-v2"], 1),
        _vote_row(2, "m1", "m2", "model_b", "expert_1", 1),
        _vote_row(2, "m1", "m2", "tie", ["gpt-4", "pair-v2"], 1),
        _vote_row(3, "m1", "m3", "model_a", "expert_2", 2),
        _vote_row(3, "m1", "m3", "model_b", "author_1", 2),     # author votes are not FastChat's "human"
        _vote_row(4, "m2", "m3", "model_a", "author_2", 2),     # no expert vote: not an item
    ]
    data = tmp_path / "votes.jsonl"
    data.write_text("".join(json.dumps(v) + "\n" for v in votes))
    items = get_benchmark("mtbench-human").load(data=str(data))
    assert [(s.meta["question_id"], s.turn) for s in items] == [(1, 1), (2, 1), (3, 2)]
    # The judge: q1 A in both orders; q2 A then B (inconsistent -> a tie vote); q3 B in both orders.
    verdicts = {1: ("A", "B"), 2: ("A", "A"), 3: ("B", "A")}  # swapped file: swapped coordinates
    pred = tmp_path / "p.jsonl"
    pred.write_text("".join(json.dumps({"id": s.id, "verdict": verdicts[s.meta["question_id"]][0]}) + "\n" for s in items))
    swapped = tmp_path / "s.jsonl"
    swapped.write_text("".join(json.dumps({"id": s.id, "verdict": verdicts[s.meta["question_id"]][1]}) + "\n" for s in items))
    out = _eval(capsys, "--benchmark", "mtbench-human", "--data", str(data), "--predictions", str(pred),
                "--predictions-swapped", str(swapped), "--out", str(tmp_path / "run"))
    # S1 vs experts: turn 1: q1 A vs (A, A, tie) = 2/3, q2 tie vs B = 0/1; turn 2: q3 B vs A = 0/1 -> 2/5
    assert out["s1_agreement"] == pytest.approx(2 / 5)
    # S2: q1 A vs (A, A) = 2/2 (the tie vote is dropped); q2's judge vote is a tie: dropped; q3 0/1 -> 2/3
    assert out["s2_agreement"] == pytest.approx(2 / 3)
    assert out["groups"]["turn 1"]["s1_agreement"] == pytest.approx(2 / 4)
    assert out["groups"]["turn 2"]["s1_agreement"] == pytest.approx(0.0)
    # Against GPT-4: q1 A vs A, q2 tie vs tie -> S1 2/2; S2 keeps q1 only -> 1/1
    assert out["s1_agreement_gpt4"] == pytest.approx(1.0)
    assert out["s2_agreement_gpt4"] == pytest.approx(1.0)
    assert out["consistency"] == pytest.approx(2 / 3)
    assert "accuracy" not in out
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    win_rates = results["win_rates"]
    assert win_rates["m1"]["win"] == 1 and win_rates["m1"]["tie"] == 1 and win_rates["m1"]["loss"] == 1
    assert win_rates["m3"]["win_rate_adjusted"] == pytest.approx(1.0)


def test_gather_votes_rejects_two_gpt4_votes_on_one_item(tmp_path):
    votes = [_vote_row(1, "m1", "m2", "model_a", "expert_1", 1), _vote_row(1, "m1", "m2", "model_a", ["gpt-4", "pair-v2"], 1),
             _vote_row(1, "m2", "m1", "model_a", ["gpt-4", "pair-v2"], 1)]
    data = tmp_path / "votes.jsonl"
    data.write_text("".join(json.dumps(v) + "\n" for v in votes))
    with pytest.raises(ValueError, match="two GPT-4 votes"):
        get_benchmark("mtbench-human").load(data=str(data))
    assert gather_votes([]) == []
