"""`judgetrain mtbench judge` and `show`: FastChat judgment files from a tiny judge, read back with
FastChat's own field names (pandas, as show_result.py reads them); resume; tables and radar plot."""

import json

import pytest

from judgetrain_eval.mtbench import results
from judgetrain_eval.mtbench.data import load_model_answers, load_questions, load_reference_answers, select_questions
from judgetrain_eval.mtbench.judgment import judge_matches, make_matches, sample_of
from judgetrain import formats
from judgetrain.cli import main
from judgetrain.formats.mtbench import fastchat_prompts
from tests.eval.mtbench_helpers import CountingBackend

MODELS = ["alpaca-13b", "llama-13b", "dolly-v2-12b"]
QUESTION_IDS = ["92", "108"]  # roleplay, reasoning (reference-guided); short answers keep tiny prompts short


@pytest.fixture(scope="module")
def bench(shared_data, tmp_path_factory):
    """(data dir, questions, answers, references) of the shared pre-generated MT-bench answers."""
    root = shared_data / "fastchat_mt_bench"
    data_dir = tmp_path_factory.mktemp("mtbench-data")
    # The shared dir is FastChat's mt_bench dir itself; link it under the bench name.
    (data_dir / "mt_bench").symlink_to(root)
    questions = select_questions(load_questions(data_dir), question_ids=QUESTION_IDS)
    answers = load_model_answers([data_dir / "mt_bench" / "model_answer"])
    return data_dir, questions, {m: answers[m] for m in MODELS}, load_reference_answers(data_dir)


def test_multi_turn_prompt_puts_both_turns_where_fastchat_does(bench):
    _, questions, answers, references = bench
    reasoning = next(q for q in questions if q["category"] == "reasoning")
    for mode, models, name in (("pairwise-all", MODELS[:2], "pair-math-v1-multi-turn"),
                               ("single", MODELS[:1], "single-math-v1-multi-turn")):
        match = next(m for m in make_matches(mode, [reasoning], answers, models, references=references) if m.turn == 2)
        assert match.prompt_name == name
        messages = formats.get(f"mtbench-{name}").render(sample_of(match, answers), include_target=False)
        template = fastchat_prompts()[name]
        a = answers[models[0]][108]["choices"][0]["turns"]
        ref = references[108]
        fields = dict(question_1=reasoning["turns"][0], question_2=reasoning["turns"][1], ref_answer_1=ref[0], ref_answer_2=ref[1])
        if mode == "single":
            fields.update(answer_1=a[0], answer_2=a[1])
        else:
            b = answers[models[1]][108]["choices"][0]["turns"]
            fields.update(answer_a_1=a[0], answer_a_2=a[1], answer_b_1=b[0], answer_b_2=b[1])
        assert messages[0] == {"role": "system", "content": template["system_prompt"]}
        assert messages[1] == {"role": "user", "content": template["prompt_template"].format(**fields)}


def test_tiny_judge_files_read_back_with_fastchat_fields_and_resume(bench, tmp_path):
    import pandas as pd

    data_dir, questions, answers, references = bench
    out = tmp_path / "out"
    args = ["mtbench", "judge", "--judge", "tiny", "--data-dir", str(data_dir), "--out-dir", str(out),
            "--question-id", *QUESTION_IDS, "--model-list", *MODELS[:2], "--max-new-tokens", "4", "--no-cache"]
    assert main([*args, "--mode", "single"]) == 0
    assert main([*args, "--mode", "pairwise-baseline", "--baseline", MODELS[1]]) == 0
    single = pd.read_json(out / "mt_bench" / "model_judgment" / "tiny_single.jsonl", lines=True)
    assert len(single) == 2 * 2 * 2  # questions x models x turns
    assert set(single[["model", "score", "turn"]].itertuples(index=False, name=None)) >= {("alpaca-13b", -1, 1), ("llama-13b", -1, 2)}
    assert {tuple(j) for j in single["judge"]} == {("tiny", p) for p in ("single-v1", "single-v1-multi-turn",
                                                                          "single-math-v1", "single-math-v1-multi-turn")}
    for column in ("question_id", "user_prompt", "judgment", "tstamp"):
        assert single[column].notna().all()
    pair = pd.read_json(out / "mt_bench" / "model_judgment" / "tiny_pair.jsonl", lines=True)
    for column in ("question_id", "model_1", "model_2", "g1_winner", "g2_winner", "judge", "g1_user_prompt",
                   "g1_judgment", "g2_user_prompt", "g2_judgment", "turn", "tstamp"):
        assert column in pair.columns
    assert len(pair) == 2 * 2 and set(pair["model_2"]) == {MODELS[1]}
    # g2 shows the answers swapped: model_2's first-turn answer comes first.
    row = pair[(pair["question_id"] == 92) & (pair["turn"] == 1)].iloc[0]
    a1, b1 = (answers[m][92]["choices"][0]["turns"][0] for m in MODELS[:2])
    assert row["g1_user_prompt"].index(a1) < row["g1_user_prompt"].index(b1)
    assert row["g2_user_prompt"].index(b1) < row["g2_user_prompt"].index(a1)

    # A killed run resumes without judging the finished matches again.
    from judgetrain.models import build_tiny_model, load_tokenizer

    matches = make_matches("single", questions[:1], answers, MODELS[:2], references=references)
    target = tmp_path / "resume_single.jsonl"
    killed = CountingBackend(build_tiny_model(), load_tokenizer("tiny"), stop_after=3)
    with pytest.raises(KeyboardInterrupt):
        judge_matches(matches, answers, killed, judge_name="tiny", output_file=target, max_new_tokens=3,
                      cache=tmp_path / "cache.sqlite", chunk_matches=2)
    assert len(target.read_text().splitlines()) == 2  # the first chunk; the third call was cached
    resumed = CountingBackend(build_tiny_model(), load_tokenizer("tiny"))
    run = judge_matches(matches, answers, resumed, judge_name="tiny", output_file=target, max_new_tokens=3,
                        cache=tmp_path / "cache.sqlite", chunk_matches=2)
    assert (run.num_skipped, run.num_judged) == (2, len(matches) - 2)
    assert resumed.num_requests == len(matches) - 3
    again = CountingBackend(build_tiny_model(), load_tokenizer("tiny"))
    assert judge_matches(matches, answers, again, judge_name="tiny", output_file=target).num_judged == 0
    assert again.num_requests == 0 and len(target.read_text().splitlines()) == len(matches)


def test_show_tables_and_radar_from_shared_answers(bench, tmp_path, capsys):
    import pandas as pd

    data_dir, _, _, _ = bench
    out = tmp_path / "out"
    common = ["--data-dir", str(data_dir), "--out-dir", str(out), "--question-id", *QUESTION_IDS]
    judge = ["mtbench", "judge", "--judge", "tiny", "--model-list", *MODELS[:2], "--max-new-tokens", "3", "--no-cache", *common]
    assert main([*judge, "--mode", "single"]) == 0
    assert main([*judge, "--mode", "pairwise-all"]) == 0
    judgment_dir = out / "mt_bench" / "model_judgment"
    # The random tiny judge writes no rating: show counts every row as unrated / error.
    assert main(["mtbench", "show", "--mode", "single", "--judge-name", "tiny", "--json", str(tmp_path / "raw.json"), *common]) == 0
    raw = json.loads((tmp_path / "raw.json").read_text())["models"]
    single = pd.read_json(judgment_dir / "tiny_single.jsonl", lines=True)
    for model in MODELS[:2]:
        assert raw[model]["num_unrated"] == int((single[single["model"] == model]["score"] == -1).sum())
    # The table arithmetic on the same file with grades filled in (rows otherwise as the judge wrote them).
    single["score"] = [float(1 + (i * 3) % 10) for i in range(len(single))]
    single.loc[0, "score"] = -1
    graded_file = tmp_path / "graded_single.jsonl"
    single.to_json(graded_file, orient="records", lines=True)
    graded = single[single["score"] != -1]
    capsys.readouterr()
    assert main(["mtbench", "show", "--mode", "single", "--input-file", str(graded_file), "--plot", str(tmp_path / "radar.png"),
                 "--json", str(tmp_path / "s.json"), *common]) == 0
    printed = capsys.readouterr().out
    table = json.loads((tmp_path / "s.json").read_text())["models"]
    for (model, turn), expected in graded.groupby(["model", "turn"])["score"].mean().items():
        assert table[model][f"turn_{turn}"] == pytest.approx(expected)
    for model, expected in graded.groupby("model")["score"].mean().items():
        assert table[model]["average"] == pytest.approx(expected)
    categories = {92: "roleplay", 108: "reasoning"}
    for (model, qid), expected in graded.groupby(["model", "question_id"])["score"].mean().items():
        assert table[model]["categories"][categories[qid]] == pytest.approx(expected)
    assert "turn 1" in printed and "roleplay" in printed
    assert (tmp_path / "radar.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    pair = pd.read_json(judgment_dir / "tiny_pair.jsonl", lines=True)
    assert set(pair["g1_winner"]) | set(pair["g2_winner"]) <= {"model_1", "model_2", "tie", "error"}
    # Hand-set winners: agree (model_1), disagree (tie by FastChat's rule), tie, error (left out).
    pattern = [("model_1", "model_1"), ("model_1", "model_2"), ("tie", "tie"), ("error", "model_1")]
    pair["g1_winner"] = [pattern[i % 4][0] for i in range(len(pair))]
    pair["g2_winner"] = [pattern[i % 4][1] for i in range(len(pair))]
    pair_file = tmp_path / "pair.jsonl"
    pair.to_json(pair_file, orient="records", lines=True)
    assert main(["mtbench", "show", "--mode", "pairwise-all", "--input-file", str(pair_file), "--plot", str(tmp_path / "p.png"),
                 "--json", str(tmp_path / "p.json"), *common]) == 0
    pair_table = json.loads((tmp_path / "p.json").read_text())["models"]
    assert len(pair) == 4  # one pair x 2 questions x 2 turns: one row of each pattern
    first, second = pair.iloc[0]["model_1"], pair.iloc[0]["model_2"]
    assert (pair_table[first]["win"], pair_table[first]["loss"], pair_table[first]["tie"]) == (1, 0, 2)
    assert (pair_table[second]["win"], pair_table[second]["loss"], pair_table[second]["tie"]) == (0, 1, 2)
    assert pair_table[first]["win_rate_adjusted"] == pytest.approx(2 / 3)
    assert pair_table[second]["num_errors"] == 1
    assert (tmp_path / "p.png").stat().st_size > 0


def test_pairs_from_single_grades_use_the_tie_delta():
    rows = [{"question_id": 1, "model": "a", "score": 7.0, "turn": 1}, {"question_id": 1, "model": "b", "score": 7.1, "turn": 1},
            {"question_id": 2, "model": "a", "score": 8.0, "turn": 1}, {"question_id": 2, "model": "b", "score": 6.0, "turn": 1},
            {"question_id": 3, "model": "a", "score": 5.0, "turn": 1}, {"question_id": 3, "model": "b", "score": 5.2, "turn": 1},
            {"question_id": 4, "model": "a", "score": -1, "turn": 1}, {"question_id": 4, "model": "b", "score": 9.0, "turn": 1}]
    pairs = results.pairs_from_single(rows, "pairwise-all", ["a", "b"])
    assert [p["g1_winner"] for p in pairs] == ["tie", "model_1", "model_2", "error"]
    assert all(p["g1_winner"] == p["g2_winner"] for p in pairs)
    table = results.pairwise_table(pairs, {})
    # a: one win, one loss, one tie (the error left out): adjusted (1 + 0.5) / 3
    assert (table["a"]["win"], table["a"]["loss"], table["a"]["tie"], table["a"]["num_errors"]) == (1, 1, 1, 1)
    assert table["a"]["win_rate_adjusted"] == pytest.approx(0.5)
    baseline = results.pairwise_table(pairs, {}, baseline="b")
    assert list(baseline) == ["a"]
