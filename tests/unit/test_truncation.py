"""Inputs over a judge's token budget: the question is shortened first (its start and end kept), the
answers stay whole as far as they fit and are cut by one cap when they must be, and every judgment
whose input was cut says so in its meta; for the reward judge (a tiny trained export, locally and on
``/pooling``), the generative judge with the transformers backend, and eval's report. Training rows
keep their own rule (the answer's end is cut)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judgetrain.client import pair_sample
from judgetrain.judging.truncation import MIN_QUESTION_SHARE, QUESTION_CUT_MARKER
from judgetrain.types import Label

QUESTION_START = "Read the notes below and say which answer is kinder."
QUESTION_END = "Which answer is kinder?"
LONG_QUESTION = QUESTION_START + " " + "The notes go on about salt, pepper and bread. " * 60 + QUESTION_END
ANSWER_A, ANSWER_B = "Salt is useful and I am glad to help.", "I do not know."
REWARD_BUDGET_TOKENS = 64


def _contains_run(ids: list[int], run: list[int]) -> bool:
    return any(ids[i:i + len(run)] == run for i in range(len(ids) - len(run) + 1))



@pytest.fixture(scope="module")
def reward_export(tiny_reward_checkpoint, tmp_path_factory) -> Path:
    """The tiny reward judge exported (fp32), its card's budget set to :data:`REWARD_BUDGET_TOKENS`
    tokens and its tie margin to 0."""
    from judgetrain.export import export

    out = export(tiny_reward_checkpoint, tmp_path_factory.mktemp("reward-export") / "judge", dtype="fp32")
    card = json.loads((out / "judge_card.json").read_text(encoding="utf-8"))
    card["reward"]["max_seq_len"], card["reward"]["tie_margin"] = REWARD_BUDGET_TOKENS, 0.0
    (out / "judge_card.json").write_text(json.dumps(card), encoding="utf-8")
    return out


# --- reward judge -------------------------------------------------------------------------------

def test_a_long_question_makes_no_silent_tie_and_the_reward_judgment_says_its_input_was_cut(reward_export):
    import judgetrain
    from judgetrain.reward.data import reward_messages

    judge = judgetrain.Judge.from_card(reward_export)
    tokenizer = judge.scorer.tokenizer
    assert len(tokenizer(LONG_QUESTION)["input_ids"]) > 4 * REWARD_BUDGET_TOKENS
    judgment = judge.compare(LONG_QUESTION, ANSWER_A, ANSWER_B)
    reward_a, reward_b = judgment.verdict.scores
    assert reward_a != reward_b and judgment.winner in ("A", "B")
    for record in (judgment, judgment.both_orders.original, judgment.both_orders.swapped):
        assert record.meta["input_truncated"] is True
        assert record.meta["question_tokens_cut"] > 0 and record.meta["answer_tokens_cut"] == [0, 0]
        assert record.meta["input_budget_tokens"] == REWARD_BUDGET_TOKENS
    # What was scored: each answer whole, under one shortened question that kept its start and end.
    fitted, _ = judge.scorer.fit(pair_sample(LONG_QUESTION, ANSWER_A, ANSWER_B))
    for index, answer in enumerate((ANSWER_A, ANSWER_B)):
        ids = judge.scorer.encode(reward_messages(fitted, index))
        assert len(ids) <= REWARD_BUDGET_TOKENS
        assert _contains_run(ids, tokenizer(answer, add_special_tokens=False)["input_ids"])
        text = tokenizer.decode(ids)
        assert answer in text and QUESTION_START[:20] in text and QUESTION_END in text and QUESTION_CUT_MARKER.strip() in text
    assert judgment.prompt_messages == tuple(reward_messages(fitted, 0))


def test_a_reward_input_that_fits_is_scored_as_is_and_not_flagged(reward_export):
    import judgetrain
    from judgetrain.reward.data import conversation_text, encode_conversation, reward_messages

    judge = judgetrain.Judge.from_card(reward_export)
    sample = pair_sample("Tell me about salt.", ANSWER_A, ANSWER_B)
    judgment = judge.compare(sample.question, ANSWER_A, ANSWER_B)
    assert not any("input_truncated" in r.meta for r in (judgment, judgment.both_orders.original, judgment.both_orders.swapped))
    assert judge.scorer.fit(sample) == (sample, None)
    messages = reward_messages(sample, 0)
    assert judge.scorer.encode(messages) == encode_conversation(judge.scorer.tokenizer, messages, REWARD_BUDGET_TOKENS)[0]
    assert judge.scorer.prompt_text(messages) == conversation_text(judge.scorer.tokenizer, messages)
    assert judge.scorer.input_cut_meta(messages) == {}


def test_pooling_scores_two_answers_under_a_long_question_apart(reward_export):
    import httpx

    from judgetrain.serve import start_server

    server, _ = start_server(str(reward_export), port=0)
    try:
        rewards = []
        for answer in (ANSWER_A, ANSWER_B):
            response = httpx.post(f"{server.url}/pooling", json={"model": "judge", "messages": [
                {"role": "user", "content": LONG_QUESTION}, {"role": "assistant", "content": answer}]}, timeout=60)
            assert response.status_code == 200, response.text
            assert response.json()["usage"]["prompt_tokens"] <= REWARD_BUDGET_TOKENS
            rewards.append(response.json()["data"][0]["data"][0])
        assert rewards[0] != rewards[1]
    finally:
        server.shutdown()
        server.server_close()


def test_answers_that_must_be_cut_share_one_cap_so_the_shorter_stays_whole(tiny_tokenizer):
    from judgetrain.reward.data import conversation_text, fit_reward_sample, reward_messages

    budget = 96
    long_answer = "The longer answer keeps talking about salt and pepper. " * 30
    sample = pair_sample(LONG_QUESTION, long_answer, ANSWER_B)
    fitted, cut = fit_reward_sample(sample, tiny_tokenizer, budget)
    assert cut is not None and cut.question_tokens_cut > 0 and cut.answer_tokens_cut[0] > 0 and cut.answer_tokens_cut[1] == 0
    assert fitted.answers[1].text == ANSWER_B
    assert long_answer.startswith(fitted.answers[0].text)
    kept_question = len(tiny_tokenizer(LONG_QUESTION, add_special_tokens=False)["input_ids"]) - cut.question_tokens_cut
    assert kept_question >= int(budget * MIN_QUESTION_SHARE)
    # The cut answer keeps at least as much as the whole one: never nothing against a whole answer.
    kept_long = len(tiny_tokenizer(long_answer, add_special_tokens=False)["input_ids"]) - cut.answer_tokens_cut[0]
    assert kept_long >= len(tiny_tokenizer(ANSWER_B, add_special_tokens=False)["input_ids"])
    for index in (0, 1):
        text = conversation_text(tiny_tokenizer, reward_messages(fitted, index))
        assert len(tiny_tokenizer(text, add_special_tokens=False)["input_ids"]) <= budget


def test_training_pairs_keep_cutting_the_answer_end(tiny_tokenizer):
    from judgetrain.reward.data import encode_conversation, encode_for_judging, pair_rows, reward_messages

    sample = pair_sample(LONG_QUESTION, ANSWER_A, ANSWER_B).replace(labels={"gpt4": Label(winner="A")})
    rows, stats = pair_rows([sample], tiny_tokenizer, max_seq_len=REWARD_BUDGET_TOKENS)
    training_ids = encode_conversation(tiny_tokenizer, reward_messages(sample, 0), REWARD_BUDGET_TOKENS)[0]
    assert rows[0]["chosen_input_ids"] == training_ids and stats["num_truncated_answers"] == 2
    assert training_ids != encode_for_judging(tiny_tokenizer, reward_messages(sample, 0), REWARD_BUDGET_TOKENS)[0]
    dropped, drop_stats = pair_rows([sample], tiny_tokenizer, max_seq_len=REWARD_BUDGET_TOKENS, drop_long=True)
    assert len(dropped) == 0 and drop_stats["num_long_pairs_dropped"] == 1


# --- generative judge ---------------------------------------------------------------------------

GENERATIVE_BUDGET_TOKENS = 400
MAX_NEW_TOKENS = 8


def _generative_judge(tiny_model, tiny_tokenizer, max_seq_len: int = GENERATIVE_BUDGET_TOKENS):
    from judgetrain.judging import Decoding, Judge
    from judgetrain.judging.backends.transformers_backend import TransformersBackend

    backend = TransformersBackend(tiny_model, tiny_tokenizer, max_seq_len=max_seq_len)
    return Judge("judgelm-v1", backend, Decoding(max_new_tokens=MAX_NEW_TOKENS), both_orders=True)


def test_a_long_question_is_shortened_first_in_the_generative_prompt_and_flagged(tiny_model, tiny_tokenizer):
    judge = _generative_judge(tiny_model, tiny_tokenizer)
    judgment = judge.judge([pair_sample(LONG_QUESTION, ANSWER_A, ANSWER_B)])[0]
    assert judgment.error is None
    for record in (judgment, judgment.both_orders.original, judgment.both_orders.swapped):
        assert record.meta["input_truncated"] is True
        assert record.meta["question_tokens_cut"] > 0 and record.meta["answer_tokens_cut"] == [0, 0]
        assert record.meta["input_budget_tokens"] == GENERATIVE_BUDGET_TOKENS - MAX_NEW_TOKENS
    for record in (judgment.both_orders.original, judgment.both_orders.swapped):
        assert record.tokens_in <= GENERATIVE_BUDGET_TOKENS - MAX_NEW_TOKENS
        ids = tiny_tokenizer(record.prompt_text, add_special_tokens=False)["input_ids"]
        assert len(ids) == record.tokens_in
        for answer in (ANSWER_A, ANSWER_B):
            assert answer in record.prompt_text
        assert QUESTION_START in record.prompt_text and QUESTION_END in record.prompt_text
        assert QUESTION_CUT_MARKER in record.prompt_text


def test_a_generative_input_that_fits_is_sent_as_rendered_and_not_flagged(tiny_model, tiny_tokenizer):
    judge = _generative_judge(tiny_model, tiny_tokenizer)
    sample = pair_sample("Tell me about salt.", ANSWER_A, ANSWER_B)
    judgment = judge.judge([sample])[0]
    assert not any("input_truncated" in r.meta for r in (judgment, judgment.both_orders.original, judgment.both_orders.swapped))
    assert judgment.both_orders.original.prompt_messages == judge.request(sample).messages


def test_generative_answers_are_cut_by_one_cap_with_the_training_marker(tiny_model, tiny_tokenizer):
    from judgetrain.data.tokenize import TRUNCATION_MARKER

    judge = _generative_judge(tiny_model, tiny_tokenizer)
    long_answer = "The longer answer keeps talking about salt and pepper. " * 40
    fitted, cut = judge.fit(pair_sample(LONG_QUESTION, long_answer, ANSWER_B))
    assert cut is not None and cut.answer_tokens_cut[0] > 0 and cut.answer_tokens_cut[1] == 0
    assert fitted.answers[0].text.endswith(TRUNCATION_MARKER) and fitted.answers[1].text == ANSWER_B
    assert judge.backend.num_prompt_tokens(judge.request(fitted).messages) <= GENERATIVE_BUDGET_TOKENS - MAX_NEW_TOKENS


def test_a_sample_that_cannot_fit_names_itself_and_the_fix(tiny_model, tiny_tokenizer):
    judge = _generative_judge(tiny_model, tiny_tokenizer, max_seq_len=MAX_NEW_TOKENS + 40)
    with pytest.raises(ValueError, match=r"sample 'compare' does not fit 40 tokens.*max_seq_len"):
        judge.judge([pair_sample(LONG_QUESTION, ANSWER_A, ANSWER_B)])


def test_the_backend_refuses_a_prompt_over_its_budget_instead_of_reading_past_it(tiny_model, tiny_tokenizer):
    from judgetrain.judging import Decoding, Request
    from judgetrain.judging.backends.transformers_backend import TransformersBackend

    backend = TransformersBackend(tiny_model, tiny_tokenizer, max_seq_len=GENERATIVE_BUDGET_TOKENS)
    decoding = Decoding(max_new_tokens=MAX_NEW_TOKENS)
    too_long = Request(messages=({"role": "user", "content": LONG_QUESTION},), decoding=decoding)
    short = Request(messages=({"role": "user", "content": "Hi"},), decoding=decoding)
    refused, answered = backend.generate([too_long, short])
    assert refused.error is not None and f"max_seq_len={GENERATIVE_BUDGET_TOKENS}" in refused.error
    assert refused.tokens_in > GENERATIVE_BUDGET_TOKENS and refused.tokens_out is None
    assert answered.error is None and answered.tokens_out >= 1


# --- eval report --------------------------------------------------------------------------------

def test_eval_report_counts_the_judgments_whose_input_was_cut(reward_export, shared_data, tmp_path):
    from judgetrain.reward.judge import LocalRewardScorer, RewardJudge
    from judgetrain_eval.report import write_run
    from judgetrain_eval.runner import run_benchmark

    # A budget some of the first items fit (their conversations take 79 to 389 tiny-tokenizer tokens).
    judge = RewardJudge(LocalRewardScorer(reward_export, max_seq_len=140, dtype="fp32"))
    run = run_benchmark("pandalm-test", judge=judge, data_dir=shared_data, limit=8, num_resamples=0)
    out = write_run(run, tmp_path / "run", plots=False)
    rows = [json.loads(line) for line in (out / "judgments.jsonl").read_text(encoding="utf-8").splitlines()]
    cut_calls = [sum(bool(call["meta"].get("input_truncated")) for call in row["judgments"]) for row in rows]
    expected = {"num_items": sum(1 for n in cut_calls if n), "num_calls": sum(cut_calls)}
    assert 0 < expected["num_items"] < len(rows)
    assert json.loads((out / "results.json").read_text(encoding="utf-8"))["input_truncated"] == expected
    report = (out / "report.md").read_text(encoding="utf-8")
    assert f"{expected['num_items']} items, {expected['num_calls']} judge calls" in report
