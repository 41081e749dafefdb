"""The Judge: what it records, both-order mapping and aggregation, n-sample aggregation, verdict
probabilities. The backends here are small deterministic Backend implementations that answer from the
prompt they are sent, so every case is crafted and its expected verdict known."""

import math

import pytest

from judgetrain.formats import judgelm, mtbench
from judgetrain.judging import Judge, default_decoding, outcome_of, per_order, summarize
from judgetrain.judging.backends.base import Backend, Completion, Decoding, Request
from judgetrain.types import Answer, JudgeSample, Judgment

JUDGELM = next(f for f in judgelm.FORMATS if f.name == "judgelm-v1")
JUDGELM_SINGLE = next(f for f in judgelm.FORMATS if f.name == "judgelm-single-v1")
MTBENCH_PAIR = next(f for f in mtbench.FORMATS if f.name == "mtbench-pair-v2")


def pair(sample_id: str, first: str, second: str) -> JudgeSample:
    return JudgeSample(id=sample_id, source="test", question="Which is better?",
                       answers=(Answer(first), Answer(second)), labels={"human": {"winner": "A"}})


class ScriptedBackend(Backend):
    """Answers each request with ``reply(user prompt text)``; records every request it was sent."""

    name = "scripted"
    model_id = "scripted-judge"

    def __init__(self, reply, logprobs=None):
        self.reply = reply
        self.logprobs = logprobs
        self.sent: list[Request] = []

    def generate(self, requests):
        self.sent.extend(requests)
        out = []
        for r in requests:
            user = r.messages[-1]["content"]
            text = self.reply(user)
            if isinstance(text, Completion):
                out.append(text)
                continue
            texts = text if isinstance(text, list) else [text]
            out.append(Completion(text=texts[0], texts=texts, prompt_text="PROMPT:" + user, tokens_in=len(user.split()),
                                  tokens_out=3, latency_seconds=0.5, cost_usd=0.001,
                                  verdict_logprobs=self.logprobs(user) if self.logprobs else None))
        return out


def shown_first(user_prompt: str) -> str:
    """The text of the answer shown as Assistant 1 in a judgelm prompt."""
    return user_prompt.split("[The Start of Assistant 1's Answer]\n", 1)[1].split("\n", 1)[0]


def content_judge(user_prompt: str) -> str:
    """Prefers the answer containing GOOD, wherever it is shown: consistent across orders."""
    good_first = "GOOD" in shown_first(user_prompt)
    return ("9 4" if good_first else "4 9") + "\nThe better answer is the good one."


def positional_judge(user_prompt: str) -> str:
    """Always prefers whichever answer is shown first: inconsistent across orders."""
    return "8 6\nAssistant 1 is better."


def test_one_order_records_what_was_sent_and_what_came_back():
    backend = ScriptedBackend(content_judge)
    sample = pair("s1", "GOOD answer", "bad answer")
    [judgment] = Judge(JUDGELM, backend).judge([sample])
    assert judgment.verdict.winner == "A" and judgment.verdict.scores == (9.0, 4.0)
    assert judgment.verdict.critique == "The better answer is the good one."
    assert judgment.template == "judgelm-v1" and judgment.meta["template_version"] == "v1"
    assert list(judgment.prompt_messages) == JUDGELM.render(sample, include_target=False)
    assert judgment.prompt_text == "PROMPT:" + judgment.prompt_messages[-1]["content"]
    assert (judgment.backend, judgment.model) == ("scripted", "scripted-judge")
    # Verdict-first template: generation stops after the verdict line, probabilities are asked for.
    assert judgment.decoding["stop"] == ["\n"] and judgment.decoding["logprobs"] is True
    assert backend.sent[0].verdict_options is not None and "7" in backend.sent[0].verdict_options
    assert judgment.latency_seconds == 0.5 and judgment.tokens_out == 3 and judgment.meta["cost_usd"] == 0.001
    assert not judgment.swapped and judgment.both_orders is None
    assert Judgment.from_dict(judgment.to_dict()) == judgment


def test_default_decoding_per_format_and_a_given_decoding_gets_the_stop_strings():
    early = default_decoding(JUDGELM)
    assert early.stop == ("\n",) and early.max_new_tokens < 100 and early.logprobs
    full = default_decoding(JUDGELM, stop_at_verdict=False)
    assert full.stop == () and full.max_new_tokens >= 256
    assert default_decoding(MTBENCH_PAIR).stop == () and not default_decoding(MTBENCH_PAIR).logprobs
    judge = Judge(JUDGELM, ScriptedBackend(content_judge), Decoding(max_new_tokens=12))
    assert judge.decoding.stop == ("\n",) and judge.decoding.max_new_tokens == 12
    assert Judge(JUDGELM, ScriptedBackend(content_judge), Decoding(max_new_tokens=12), stop_at_verdict=False).decoding.stop == ()


def test_both_orders_agreement_maps_the_swapped_verdict_back():
    backend = ScriptedBackend(content_judge)
    samples = [pair("good-first", "GOOD one", "poor one"), pair("good-second", "poor one", "GOOD one")]
    judgments = Judge(JUDGELM, backend, both_orders=True).judge(samples)
    assert len(backend.sent) == 4
    for judgment, expected in zip(judgments, ("A", "B")):
        result = judgment.both_orders
        assert judgment.verdict.winner == expected and result.outcome == expected and result.consistent is True
        original, swapped = per_order(judgment)
        assert (original.swapped, swapped.swapped) == (False, True)
        assert original.verdict.winner == swapped.verdict.winner == expected
        # The swapped order's raw text is as written (its scores in shown order); the verdict is mapped back.
        assert swapped.raw_text.split("\n")[0] == {"A": "4 9", "B": "9 4"}[expected]
        assert swapped.verdict.scores == original.verdict.scores
        assert judgment.verdict.scores == original.verdict.scores
        assert ("GOOD" in shown_first(swapped.prompt_messages[-1]["content"])) == (expected == "B")
        assert judgment.tokens_out == 6 and judgment.meta["cost_usd"] == pytest.approx(0.002)
        assert Judgment.from_dict(judgment.to_dict()) == judgment


@pytest.mark.parametrize("policy", ["tie", "inconsistent"])
def test_both_orders_disagreement_follows_the_policy(policy):
    [judgment] = Judge(JUDGELM, ScriptedBackend(positional_judge), both_orders=True,
                       disagreement_policy=policy).judge([pair("p", "one", "two")])
    info = judgment.both_orders
    assert info.original_winner == "A" and info.swapped_winner == "B" and info.consistent is False
    assert info.policy == policy
    if policy == "tie":
        assert judgment.verdict.winner == "tie" and info.outcome == "tie"
        assert judgment.verdict.scores == (7.0, 7.0)  # mean of (8, 6) and the mapped-back (6, 8)
    else:
        assert judgment.verdict is None and judgment.parse_failure is None and judgment.error is None
        assert info.outcome == "inconsistent" == outcome_of(judgment)
    assert Judgment.from_dict(judgment.to_dict()) == judgment


def test_a_parse_failure_in_either_order_is_never_a_tie():
    def half_broken(user):
        return "I cannot decide." if "GOOD" in shown_first(user) else "4 9\nfine"

    [judgment] = Judge(JUDGELM, ScriptedBackend(half_broken), both_orders=True).judge([pair("f", "GOOD", "bad")])
    assert judgment.verdict is None and judgment.parse_failure is not None
    assert judgment.parse_failure.reason.startswith("original order:")
    assert judgment.both_orders.outcome == "parse_failure"
    assert judgment.both_orders.consistent is None
    original, swapped = per_order(judgment)
    assert original.parse_failure is not None and swapped.verdict.winner == "A"  # "4 9" seen swapped: GOOD wins


def test_a_backend_error_is_recorded_and_wins_over_a_parse_failure():
    def erroring(user):
        return Completion(error="HTTP 500 after 3 retries") if "GOOD" in shown_first(user) else "nonsense"

    [judgment] = Judge(JUDGELM, ScriptedBackend(erroring), both_orders=True).judge([pair("e", "GOOD", "bad")])
    assert judgment.error == "original order: HTTP 500 after 3 retries"
    assert outcome_of(judgment) == "error" and judgment.both_orders.outcome == "error"


def test_single_samples_are_judged_once_even_with_both_orders():
    backend = ScriptedBackend(lambda user: "7\nFine.")
    sample = JudgeSample(id="g", source="test", question="q", answers=(Answer("a"),))
    [judgment] = Judge(JUDGELM_SINGLE, backend, both_orders=True).judge([sample])
    assert len(backend.sent) == 1 and judgment.verdict.scores == (7.0,) and judgment.both_orders is None


def test_mtbench_pair_both_orders_positional_bias():
    backend = ScriptedBackend(lambda user: "Assistant A is better. [[A]]")
    [judgment] = Judge(MTBENCH_PAIR, backend, both_orders=True).judge([pair("m", "x", "y")])
    assert backend.sent[0].verdict_options is None and backend.sent[0].decoding.stop == ()
    assert [j.winner for j in per_order(judgment)] == ["A", "B"]
    assert judgment.winner == "tie"


def test_n_samples_majority_winner_and_median_scores():
    backend = ScriptedBackend(lambda user: ["8 6\na", "9 5\nb", "3 7\nc", "not a verdict"])
    [judgment] = Judge(JUDGELM, backend).judge([pair("n", "x", "y")])
    assert judgment.verdict.winner == "A"  # two A votes, one B, one failure
    assert judgment.verdict.scores == (8.0, 6.0)  # medians of (8, 9, 3) and (6, 5, 7)
    assert [s["winner"] for s in judgment.meta["samples"]] == ["A", "A", "B", None]


def test_verdict_probabilities_are_normalised_and_mapped_back():
    winner_logprobs = {"A": math.log(0.6), "B": math.log(0.3), "tie": math.log(0.1)}
    backend = ScriptedBackend(content_judge, logprobs=lambda user: dict(winner_logprobs))
    [judgment] = Judge(JUDGELM, backend, both_orders=True).judge([pair("w", "GOOD", "bad")])
    original, swapped = per_order(judgment)
    assert original.verdict_probabilities == pytest.approx({"A": 0.6, "B": 0.3, "tie": 0.1})
    assert swapped.verdict_probabilities == pytest.approx({"A": 0.3, "B": 0.6, "tie": 0.1})
    assert judgment.verdict_probabilities == pytest.approx({"A": 0.45, "B": 0.45, "tie": 0.1})


def test_score_probabilities_give_the_expected_score_of_the_answer_shown_first():
    backend = ScriptedBackend(content_judge, logprobs=lambda user: {"8": math.log(0.02), "9": math.log(0.06)})
    [judgment] = Judge(JUDGELM, backend, both_orders=True).judge([pair("e", "GOOD", "bad")])
    original, swapped = per_order(judgment)
    assert original.verdict_probabilities == pytest.approx({"8": 0.25, "9": 0.75})
    assert original.meta["expected_score"] == pytest.approx(8.75) and original.meta["scored_answer"] == 0
    assert swapped.meta["scored_answer"] == 1


def test_summary_counts_outcomes_failures_consistency_and_cost():
    def mixed(user):
        first = shown_first(user)
        if first.startswith("broken"):
            return "??"
        return positional_judge(user) if "pos1" in user else content_judge(user)

    samples = [pair("a", "GOOD", "bad"), pair("b", "bad", "GOOD"), pair("c", "pos1", "pos2"), pair("d", "broken", "x")]
    judgments = Judge(JUDGELM, ScriptedBackend(mixed), both_orders=True, disagreement_policy="inconsistent").judge(samples)
    summary = summarize(judgments)
    assert summary["outcomes"] == {"A": 1, "B": 1, "inconsistent": 1, "parse_failure": 1}
    assert summary["num_parse_failures"] == 1 and summary["num_calls"] == 8
    assert summary["consistency"] == pytest.approx(2 / 3)  # the failed item is not comparable
    assert summary["cost_usd"] == pytest.approx(0.008) and summary["tokens_out"] == 24


def test_a_sample_the_template_cannot_show_fails_before_any_call():
    backend = ScriptedBackend(content_judge)
    single = JudgeSample(id="one-answer", source="test", question="q", answers=(Answer("a"),))
    with pytest.raises(ValueError, match="one-answer"):
        Judge(JUDGELM, backend).judge([pair("ok", "GOOD", "bad"), single])
    assert backend.sent == []
    with pytest.raises(ValueError, match="disagreement_policy"):
        Judge(JUDGELM, backend, disagreement_policy="coin")
