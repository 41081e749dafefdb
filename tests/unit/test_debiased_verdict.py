"""The both-orders verdict from verdict probabilities: hand-computed on a scripted backend, exactly
invariant under swapping the answers on the tiny model, with the tie margin read from a judge card
(Judge.from_card and `judgetrain eval --judge EXPORT_DIR`) and chosen on a dev split."""

from __future__ import annotations

import json
import math

import pytest
import torch

from judgetrain import formats
from judgetrain.data.augment import swap
from judgetrain.judging.backends.base import Backend, Completion, Decoding
from judgetrain.judging.judge import Judge, choose_tie_margin, winner_from_probabilities
from judgetrain.types import Answer, JudgeSample, flip_winner

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PANDALM = formats.get("pandalm-v1")
FLIP = {"A": "B", "B": "A", "tie": "tie", None: None}


def pair(sample_id: str, first: str, second: str, question: str = "Name a colour.") -> JudgeSample:
    return JudgeSample(id=sample_id, source="test", question=question, answers=(Answer(first), Answer(second)))


def shown_first(user_prompt: str) -> str:
    return user_prompt.split("### Response 1:\n", 1)[1].split("\n", 1)[0]


class FirstAnswerBackend(Backend):
    """Always writes "1" (prefers the answer shown first); verdict log-probabilities by the first answer shown."""

    name = "scripted"
    model_id = "scripted-judge"

    def __init__(self, probabilities: dict[str, dict[str, float]] | None):
        self.probabilities = probabilities

    def generate(self, requests):
        out = []
        for request in requests:
            shown = shown_first(request.messages[-1]["content"])
            logprobs = ({k: math.log(p) for k, p in self.probabilities[shown].items()} if self.probabilities else None)
            out.append(Completion(text="1", texts=["1"], verdict_logprobs=logprobs))
        return out


# Shown first, "good" gets P(1)=.6 P(2)=.3; "bad" shown first gets P(1)=.5 P(2)=.4: a judge that leans to position 1.
PROBABILITIES = {"good": {"A": 0.6, "B": 0.3, "tie": 0.1}, "bad": {"A": 0.5, "B": 0.4, "tie": 0.1}}


def test_probabilities_decide_the_pair_with_the_hand_computed_margin():
    sample = pair("s", "good", "bad")
    backend = FirstAnswerBackend(PROBABILITIES)
    # Both orders say "1": per-order verdicts disagree (A, then B mapped back) and the verdicts rule says tie.
    [by_verdicts] = Judge(PANDALM, backend, both_orders=True).judge([sample])
    assert by_verdicts.winner == "tie" and by_verdicts.both_orders.consistent is False
    # P(A) = (.6 + .4) / 2 = .5, P(B) = (.3 + .5) / 2 = .4: A by 0.1.
    [judgment] = Judge(PANDALM, backend, both_orders=True, aggregation="probabilities").judge([sample])
    record = judgment.both_orders
    assert judgment.winner == "A" and record.outcome == "A" and record.aggregated_by == "probabilities"
    assert record.p_a_minus_p_b == pytest.approx(0.1)
    assert judgment.verdict_probabilities == pytest.approx({"A": 0.5, "B": 0.4, "tie": 0.1})
    # The raw per-order verdicts and their consistency are kept as they are.
    assert (record.original_winner, record.swapped_winner, record.consistent) == ("A", "B", False)
    assert [o.raw_text for o in (judgment.both_orders.original, judgment.both_orders.swapped)] == ["1", "1"]
    [within] = Judge(PANDALM, backend, both_orders=True, aggregation="probabilities", tie_margin=0.15).judge([sample])
    assert within.winner == "tie" and within.both_orders.tie_margin == 0.15
    # "inconsistent" is a verdicts-rule outcome; the probabilities decide even under that policy.
    [kept] = Judge(PANDALM, backend, both_orders=True, aggregation="probabilities",
                   disagreement_policy="inconsistent").judge([sample])
    assert kept.winner == "A"


def test_without_probabilities_the_verdicts_rule_decides_and_says_so():
    [judgment] = Judge(PANDALM, FirstAnswerBackend(None), both_orders=True, aggregation="probabilities").judge(
        [pair("s", "good", "bad")])
    record = judgment.both_orders
    assert judgment.winner == "tie" and record.aggregated_by == "verdicts" and "no winner probabilities" in record.fallback


def test_bad_aggregation_settings_are_refused():
    with pytest.raises(ValueError, match="aggregation"):
        Judge(PANDALM, FirstAnswerBackend(None), aggregation="mean")
    with pytest.raises(ValueError, match="tie_margin"):
        Judge(PANDALM, FirstAnswerBackend(None), aggregation="probabilities", tie_margin=-0.1)
    with pytest.warns(UserWarning, match="no effect"):
        Judge(PANDALM, FirstAnswerBackend(None), tie_margin=0.1)


# --- the tiny model -------------------------------------------------------------------------------


def verdict_model():
    """The seeded tiny Llama with an output head that can only write PandaLM's "1" or "2" first (their
    logits are ±h·v, every other token's 0), so both orders parse while the probabilities still depend
    on the prompt. Random weights make it a strongly positional judge, as untrained judges are."""
    from judgetrain.judging.backends.transformers_backend import option_first_tokens, prompt_text_of
    from judgetrain.models import build_tiny_model, load_tokenizer

    tokenizer = load_tokenizer("tiny")
    model = build_tiny_model(seed=0)
    prompt = prompt_text_of(tokenizer, PANDALM.render(pair("x", "a", "b"), include_target=False))
    tokens = option_first_tokens(tokenizer, prompt, PANDALM.verdict_options())
    direction = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.weight[tokens["A"]] = 4 * direction
        model.lm_head.weight[tokens["B"]] = -4 * direction
    return model, tokenizer


SAMPLES = [pair(f"s{i}", "red " * (i + 1), "blue and green " * (3 - i % 3), question=f"Question {i}: name a colour.")
           for i in range(5)]



@pytest.fixture(scope="module")
def tiny_backend():
    from judgetrain.judging.backends.transformers_backend import TransformersBackend

    model, tokenizer = verdict_model()
    return TransformersBackend(model, tokenizer, batch_size=1)


def test_the_debiased_verdict_is_exactly_invariant_under_swapping_the_answers(tiny_backend):
    judge = Judge(PANDALM, tiny_backend, Decoding(max_new_tokens=1), both_orders=True, aggregation="probabilities")
    judgments = judge.judge(SAMPLES)
    swapped = judge.judge([swap(s) for s in SAMPLES])
    for judgment, mirror in zip(judgments, swapped):
        assert judgment.both_orders.aggregated_by == "probabilities"
        assert mirror.winner == flip_winner(judgment.winner)
        # Bit for bit: the mean and the difference are antisymmetric in floating point.
        assert mirror.both_orders.p_a_minus_p_b == -judgment.both_orders.p_a_minus_p_b
        assert mirror.verdict_probabilities == {FLIP[k]: v for k, v in judgment.verdict_probabilities.items()}
    assert {j.winner for j in judgments} == {"A", "B"}, "the samples are not all decided one way"
    # The per-order verdicts are positional (the model writes the same digit whatever the order), so
    # the verdicts rule would call every pair inconsistent: the aggregate is position-free by construction.
    assert all(j.both_orders.consistent is False for j in judgments)


@pytest.fixture(scope="module")
def export_dirs(tmp_path_factory):
    """Two export dirs of the verdict model, whose cards differ only in the tie margin."""
    from judgetrain.card import write_card
    from judgetrain.export import build_card

    model, tokenizer = verdict_model()
    out = {}
    for name, margin in (("no-margin", 0.0), ("huge-margin", 5.0)):
        directory = tmp_path_factory.mktemp(name)
        model.save_pretrained(directory, safe_serialization=True)
        tokenizer.save_pretrained(directory)
        card = build_card(name=name, fmt=PANDALM, decoding=Decoding(max_new_tokens=1), record={}, base_model="tiny",
                          method="full", lora_merged=False, dtype="float32", evaluation=[], aggregation="probabilities",
                          tie_margin=margin)
        write_card(directory, card)
        out[name] = directory
    return out


def test_the_tie_margin_of_the_card_is_the_one_used(export_dirs):
    card = json.loads((export_dirs["huge-margin"] / "judge_card.json").read_text())
    assert card["tie_policy"] == {"both_orders": True, "disagreement": "tie", "aggregation": "probabilities", "tie_margin": 5.0}
    huge = Judge.from_card(export_dirs["huge-margin"], batch_size=1)
    none = Judge.from_card(export_dirs["no-margin"], batch_size=1)
    assert (huge.aggregation, huge.tie_margin, none.tie_margin) == ("probabilities", 5.0, 0.0)
    assert [j.winner for j in huge.judge(SAMPLES)] == ["tie"] * len(SAMPLES)
    assert "tie" not in [j.winner for j in none.judge(SAMPLES)]


def test_eval_runs_an_export_with_its_card_aggregation(export_dirs):
    from judgetrain_eval.runner import get_benchmark, judge_factory

    judge_for, backend = judge_factory(str(export_dirs["huge-margin"]), "pandalm-v1", get_benchmark("pandalm-test"))
    try:
        judge = judge_for(SAMPLES[0])
        assert (judge.aggregation, judge.tie_margin) == ("probabilities", 5.0)
    finally:
        backend.close()


def test_old_cards_judge_by_verdicts(export_dirs, tmp_path):
    from judgetrain.card import read_card

    card = read_card(export_dirs["no-margin"]).to_dict()
    del card["tie_policy"]["aggregation"], card["tie_policy"]["tie_margin"]
    judge = Judge.from_card(export_dirs["no-margin"], card=card, batch_size=1)
    assert (judge.aggregation, judge.tie_margin) == ("verdicts", 0.0)
    (tmp_path / "judge_card.json").write_text(json.dumps({**card, "tie_policy": {**card["tie_policy"], "tie_margin": -1}}))
    with pytest.raises(ValueError, match="tie_policy.tie_margin"):
        read_card(tmp_path)


# --- choosing the margin ---------------------------------------------------------------------------


def test_the_margin_chooser_picks_the_hand_computed_best_margin():
    differences = [0.3, 0.05, -0.02, -0.4, 0.12]
    gold = ["A", "tie", "tie", "B", "tie"]
    # margin 0: A A B B A -> 2/5; 0.1: A tie tie B A -> 4/5; 0.2: A tie tie B tie -> 5/5.
    assert choose_tie_margin(differences, gold, margins=[0.1, 0.2]) == (0.2, 1.0)
    assert choose_tie_margin(differences, gold, margins=[0.1]) == (0.1, 0.8)
    # Equal accuracy: the smaller margin; 0 is always tried.
    assert choose_tie_margin([0.5, -0.5], ["A", "B"], margins=[0.1, 0.3]) == (0.0, 1.0)
    assert choose_tie_margin([0.1, 0.2], ["A", None], margins=[0.3]) == (0.0, 1.0)
    assert winner_from_probabilities({"A": 0.5, "B": 0.4}, 0.1) == ("tie", pytest.approx(0.1))
    with pytest.raises(ValueError, match="one of each"):
        choose_tie_margin([0.1], ["A", "B"])
