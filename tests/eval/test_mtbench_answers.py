"""`judgetrain mtbench gen-answers`: FastChat answer files from the tiny model, resumable."""

import json

import pytest

from judgetrain_eval.mtbench.answers import generate_answers
from judgetrain_eval.mtbench.data import TEMPERATURE_CONFIG, load_questions, select_questions
from judgetrain.cli import main
from tests.eval.mtbench_helpers import CountingBackend

QUESTION_IDS = ["81", "101"]  # writing (temperature 0.7) and reasoning (0.0)


def test_cli_writes_fastchat_answer_rows(tmp_path):
    code = main(["mtbench", "gen-answers", "--model", "tiny", "--model-id", "tiny-answers", "--out-dir", str(tmp_path),
                 "--question-id", *QUESTION_IDS, "--max-new-tokens", "5", "--num-choices", "2"])
    assert code == 0
    rows = [json.loads(line) for line in (tmp_path / "mt_bench" / "model_answer" / "tiny-answers.jsonl").read_text().splitlines()]
    assert [r["question_id"] for r in rows] == [81, 101]
    for row in rows:
        assert set(row) == {"question_id", "answer_id", "model_id", "choices", "tstamp"}
        assert row["model_id"] == "tiny-answers"
        assert [c["index"] for c in row["choices"]] == [0, 1]
        assert all(len(c["turns"]) == 2 and all(isinstance(t, str) for t in c["turns"]) for c in row["choices"])
    # Greedy (reasoning, 0.0): both choices are the same; FastChat does the same.
    assert rows[1]["choices"][0]["turns"] == rows[1]["choices"][1]["turns"]


def test_second_turn_sees_first_answer_and_temperatures_follow_categories(tiny_model, tiny_tokenizer, tmp_path):
    questions = select_questions(load_questions(None), question_ids=QUESTION_IDS)
    backend = CountingBackend(tiny_model, tiny_tokenizer)
    run = generate_answers(backend, questions, model_id="m", answer_file=tmp_path / "m.jsonl", max_new_tokens=4)
    assert run.num_answered == 2 and run.num_backend_calls == 4 == backend.num_requests
    rows = {json.loads(l)["question_id"]: json.loads(l) for l in (tmp_path / "m.jsonl").read_text().splitlines()}
    by_turn = {}
    for request in backend.requests:
        user_turns = [m["content"] for m in request.messages if m["role"] == "user"]
        by_turn[(user_turns[0], len(user_turns))] = request
    for question in questions:
        first = rows[question["question_id"]]["choices"][0]["turns"][0]
        second_request = by_turn[(question["turns"][0], 2)]
        assert [m["role"] for m in second_request.messages] == ["user", "assistant", "user"]
        assert second_request.messages[1]["content"] == first
        assert second_request.messages[2]["content"] == question["turns"][1]
        assert second_request.decoding.temperature == TEMPERATURE_CONFIG[question["category"]]
    assert {r.decoding.temperature for r in backend.requests} == {0.7, 0.0}


def test_killed_run_resumes_without_redoing_answered_questions(tiny_model, tiny_tokenizer, tmp_path):
    questions = select_questions(load_questions(None), question_ids=["81", "101", "131"])
    answer_file = tmp_path / "m.jsonl"
    killed = CountingBackend(tiny_model, tiny_tokenizer, stop_after=3)
    with pytest.raises(KeyboardInterrupt):
        generate_answers(killed, questions, model_id="m", answer_file=answer_file, max_new_tokens=4, chunk_questions=1)
    # The first question (2 turns) was written; the kill hit the second question's second turn.
    assert [json.loads(l)["question_id"] for l in answer_file.read_text().splitlines()] == [81]
    resumed = CountingBackend(tiny_model, tiny_tokenizer)
    run = generate_answers(resumed, questions, model_id="m", answer_file=answer_file, max_new_tokens=4, chunk_questions=1)
    assert (run.num_skipped, run.num_answered, resumed.num_requests) == (1, 2, 4)
    assert [json.loads(l)["question_id"] for l in answer_file.read_text().splitlines()] == [81, 101, 131]


def test_another_bench_in_the_same_layout(tmp_path):
    bench = tmp_path / "data" / "japanese_mt_bench"
    bench.mkdir(parents=True)
    question = {"question_id": 1, "category": "writing", "turns": ["ハワイ旅行のブログ記事を書いてください。", "全ての文をAで始めて書き直してください。"]}
    (bench / "question.jsonl").write_text(json.dumps(question, ensure_ascii=False) + "\n", encoding="utf-8")
    code = main(["mtbench", "gen-answers", "--model", "tiny", "--model-id", "t", "--bench-name", "japanese_mt_bench",
                 "--data-dir", str(tmp_path / "data"), "--max-new-tokens", "3"])
    assert code == 0
    row = json.loads((bench / "model_answer" / "t.jsonl").read_text())
    assert row["question_id"] == 1 and len(row["choices"][0]["turns"]) == 2


def test_bad_question_file_names_file_and_line(tmp_path):
    bench = tmp_path / "mt_bench"
    bench.mkdir()
    (bench / "question.jsonl").write_text('{"question_id": 1, "turns": ["q"]}\n{"question_id": 2, "turns": "q"}\n')
    with pytest.raises(ValueError, match=r"question.jsonl:2: field 'turns'"):
        load_questions(tmp_path)
