"""`judgetrain mtbench agreement` on the human-judgment fixture, against hand-computed values.

Fixture expert votes (author_* votes are left out, as in FastChat): turn 2 only —
q81 gpt-4 vs llama-13b: expert_11 says gpt-4; q119 alpaca-13b vs llama-13b: expert_4 says tie (bothbad).
"""

import json
import re
from pathlib import Path

import pytest

from judgetrain.cli import main

FIXTURE = Path(__file__).resolve().parents[1] / "assets" / "fixtures" / "mt_bench_human_judgments_sample.jsonl"


def _pair(qid, m1, m2, g1, g2, turn):
    return {"question_id": qid, "model_1": m1, "model_2": m2, "g1_winner": g1, "g2_winner": g2, "judge": ["j", "pair-v2-multi-turn"],
            "g1_user_prompt": "", "g1_judgment": "", "g2_user_prompt": "", "g2_judgment": "", "turn": turn, "tstamp": 0}


def test_pair_judgments_against_experts(tmp_path):
    rows = [
        _pair(81, "llama-13b", "gpt-4", "model_1", "model_1", 2),   # llama wins: disagrees with expert_11
        _pair(119, "alpaca-13b", "llama-13b", "model_1", "model_2", 2),  # orders disagree -> tie: agrees with bothbad tie (S1)
        _pair(81, "gpt-4", "llama-13b", "model_1", "model_1", 1),   # no expert vote on turn 1: not compared
    ]
    judgments = tmp_path / "j_pair.jsonl"
    judgments.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["mtbench", "agreement", "--judgments", str(judgments), "--human", str(FIXTURE), "--json", str(tmp_path / "a.json")]) == 0
    table = json.loads((tmp_path / "a.json").read_text())
    turn2 = table["judge-human"]["turn 2"]
    assert (turn2["s1_agree"], turn2["s1_total"], turn2["s2_agree"], turn2["s2_total"]) == (1, 2, 0, 1)
    assert turn2["s1"] == 0.5 and turn2["s2"] == 0.0
    assert table["judge-human"]["turn 1"]["s1_total"] == 0
    # One expert vote per pair: no human-human comparison.
    assert table["human-human"]["turn 2"]["s1_total"] == 0


def test_single_grades_and_gpt4_votes_against_experts(tmp_path):
    single = [{"question_id": 81, "model": "gpt-4", "score": 9, "turn": 2, "judge": ["j", "single-v1-multi-turn"]},
              {"question_id": 81, "model": "llama-13b", "score": 3, "turn": 2, "judge": ["j", "single-v1-multi-turn"]},
              {"question_id": 119, "model": "alpaca-13b", "score": 5.0, "turn": 2, "judge": ["j", "single-math-v1-multi-turn"]},
              {"question_id": 119, "model": "llama-13b", "score": 5.1, "turn": 2, "judge": ["j", "single-math-v1-multi-turn"]}]
    path = tmp_path / "j_single.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in single))
    assert main(["mtbench", "agreement", "--judgments", str(path), "--human", str(FIXTURE), "--json", str(tmp_path / "s.json")]) == 0
    turn2 = json.loads((tmp_path / "s.json").read_text())["judge-human"]["turn 2"]
    # 9 > 3: gpt-4 wins (agrees); 5.0 vs 5.1 within the 0.1 tie delta: tie (agrees, left out of S2).
    assert (turn2["s1_agree"], turn2["s1_total"], turn2["s2_agree"], turn2["s2_total"]) == (2, 2, 1, 1)
    # The fixture's own GPT-4 vote (human-judgment schema) as the judge.
    assert main(["mtbench", "agreement", "--judgments", str(FIXTURE), "--human", str(FIXTURE), "--json", str(tmp_path / "g.json")]) == 0
    gpt4 = json.loads((tmp_path / "g.json").read_text())["judge-human"]["turn 2"]
    assert (gpt4["s1_agree"], gpt4["s1_total"], gpt4["s2_agree"], gpt4["s2_total"]) == (1, 1, 1, 1)


def _gpt4_pair_vote(qid, model_a, model_b, winner, turn):
    """A row shaped like the ``gpt4_pair`` split of lmsys/mt_bench_human_judgments."""
    return {"question_id": qid, "model_a": model_a, "model_b": model_b, "winner": winner,
            "judge": ["gpt-4", "pair-v2-multi-turn"], "turn": turn}


def test_gpt4_pair_inconsistent_ties_count_as_ties_as_fastchat_counts_them(tmp_path):
    # "tie (inconsistent)": GPT-4's two orders disagreed. Against expert_11 (gpt-4 wins) it disagrees;
    # against expert_4 (tie (bothbad)) it agrees; S2 drops both comparisons (a tie on one side).
    votes = [_gpt4_pair_vote(81, "gpt-4", "llama-13b", "tie (inconsistent)", 2),
             _gpt4_pair_vote(119, "llama-13b", "alpaca-13b", "tie (inconsistent)", 2),
             _gpt4_pair_vote(81, "gpt-4", "llama-13b", "model_b", 1)]
    path = tmp_path / "gpt4_pair.jsonl"
    path.write_text("".join(json.dumps(v) + "\n" for v in votes))
    assert main(["mtbench", "agreement", "--judgments", str(path), "--human", str(FIXTURE), "--json", str(tmp_path / "t.json")]) == 0
    table = json.loads((tmp_path / "t.json").read_text())["judge-human"]
    turn2 = table["turn 2"]
    assert (turn2["s1_agree"], turn2["s1_total"], turn2["s2_agree"], turn2["s2_total"]) == (1, 2, 0, 0)
    assert table["turn 1"]["s1_total"] == 0  # no expert vote on turn 1

    # FastChat's own compute_agreement on the same votes gives the same counts.
    compute_agreement = pytest.importorskip("fastchat.llm_judge.compute_agreement",
                                            reason="fschat is not installed (pip install --no-deps fschat)")
    human = [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]
    human = [row for row in human if not isinstance(row["judge"], list)]
    data = compute_agreement.get_mt_bench_votes_data([votes, human])
    assert compute_agreement.get_mt_bench_agreement(data[1], "gpt4-pair", "human", ban=[]) == (1, 2)
    assert compute_agreement.get_mt_bench_agreement(data[1], "gpt4-pair", "human", ban=["tie"]) == (0, 0)


def test_a_vote_winner_neither_a_model_nor_a_tie_names_file_line_and_field(tmp_path, capsys):
    path = tmp_path / "gpt4_pair.jsonl"
    votes = [_gpt4_pair_vote(81, "gpt-4", "llama-13b", "tie (inconsistent)", 2),
             _gpt4_pair_vote(119, "alpaca-13b", "llama-13b", "model_c", 2)]
    path.write_text("".join(json.dumps(v) + "\n" for v in votes))
    assert main(["mtbench", "agreement", "--judgments", str(path), "--human", str(FIXTURE), "--json", str(tmp_path / "t.json")]) == 1
    assert re.search(rf"{re.escape(str(path))}:2: winner: expected one of 'model_a', 'model_b', 'tie'.*got 'model_c'",
                     capsys.readouterr().err)
    assert not (tmp_path / "t.json").exists()


def test_a_pairwise_order_winner_neither_a_model_nor_a_tie_names_file_line_and_field(tmp_path):
    from judgetrain_eval.mtbench.agreement import judge_votes

    path = tmp_path / "j_pair.jsonl"
    path.write_text(json.dumps(_pair(81, "gpt-4", "llama-13b", "model_1", "model_3", 2)) + "\n")
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}:1: g2_winner 'model_3' is not one of"):
        judge_votes(path, [])
