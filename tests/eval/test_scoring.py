"""The evaluation core: rows from judgments, one scorer for eval / quickstart / the training callback,
the strict and the lenient reading of the same raw outputs, and the debiased verdict's accuracy."""

import pytest

from judgetrain.evaluation import ItemResult, fill_from_judgment, rows_from_judgments, score_items, value_of
from judgetrain.judging import Judge
from judgetrain.types import Answer, BothOrders, JudgeSample, Judgment, Verdict
from tests.unit.test_judging_core import JUDGELM, ScriptedBackend, shown_first


def _pairs(num: int) -> list[JudgeSample]:
    # GOOD is answer A on even items, answer B on odd ones; the human label says so.
    return [JudgeSample(id=f"p{i}", source="test", question="Which is better?",
                        answers=(Answer("GOOD one"), Answer("poor one")) if i % 2 == 0 else (Answer("poor one"), Answer("GOOD one")),
                        labels={"human": {"winner": "A" if i % 2 == 0 else "B"}}) for i in range(num)]


def _lenient_when_good_is_second(user_prompt: str) -> str:
    """Prefers GOOD in both orders; writes a "Scores:" prefix (only the lenient parser reads it)
    whenever GOOD is shown second."""
    return "9 4\nfine" if "GOOD" in shown_first(user_prompt) else "Scores: 4 9\nfine"


def test_strict_and_lenient_readings_of_the_same_outputs_side_by_side():
    samples = _pairs(4)
    backend = ScriptedBackend(_lenient_when_good_is_second)
    judgments = Judge(JUDGELM, backend, both_orders=True).judge(samples)
    assert len(backend.sent) == 8
    rows = rows_from_judgments(samples, judgments, label_key="human", fmt=JUDGELM)
    result = score_items(rows, num_resamples=0)
    assert len(backend.sent) == 8, "the readings re-parse the recorded outputs; nothing is generated again"
    # The judge read everything (strict, then lenient): right and consistent everywhere.
    assert value_of(result, "accuracy") == 1.0 and value_of(result, "consistency") == 1.0
    strict, lenient = (result["parser_modes"][mode]["metrics"] for mode in ("strict", "lenient"))
    # Strict: GOOD is shown second in the original order of odd items and the swapped order of even ones,
    # so one call of each item fails: accuracy 2/4, every item inconsistent, half the calls unread.
    assert strict["accuracy"]["value"] == 0.5 and strict["consistency"]["value"] == 0.0
    assert strict["parse_failure_rate"]["value"] == 0.5 and strict["positional_agreement"]["value"] == 0.0
    assert lenient["accuracy"]["value"] == 1.0 and lenient["consistency"]["value"] == 1.0
    assert lenient["parse_failure_rate"]["value"] == 0.0
    assert rows[1].readings["strict"] == {"verdict": None, "verdict_swapped": "B", "scores": None}


def _pair_judgment(first: str, second: str, aggregate: str, *, by: str = "probabilities") -> Judgment:
    def order(winner, swapped):
        return Judgment(sample_id="x", template="pandalm-v1", raw_text=winner, swapped=swapped, verdict=Verdict(winner=winner))

    record = BothOrders(original=order(first, False), swapped=order(second, True), policy="tie", outcome=aggregate,
                        aggregation="probabilities", aggregated_by=by, p_a_minus_p_b=0.1, tie_margin=0.0)
    return Judgment(sample_id="x", template="pandalm-v1", verdict=Verdict(winner=aggregate), both_orders=record)


def _rows(judgments, gold):
    return [fill_from_judgment(ItemResult(id=str(i), group=None, labels={}, gold_winner=g), j, "pairwise")
            for i, (j, g) in enumerate(zip(judgments, gold))]


def test_the_debiased_verdict_is_scored_when_the_judge_aggregated_by_probabilities():
    # Per-order verdicts disagree on items 1 and 2; the probabilities decided A, B, A, B.
    judgments = [_pair_judgment("A", "A", "A"), _pair_judgment("A", "B", "B"), _pair_judgment("B", "A", "A"),
                 _pair_judgment("B", "B", "B")]
    gold = ["A", "B", "B", "B"]
    result = score_items(_rows(judgments, gold), num_resamples=0)
    assert value_of(result, "accuracy") == 0.75            # original order: A, A, B, B
    assert value_of(result, "combined_accuracy") == 0.5    # A, tie, tie, B
    assert value_of(result, "debiased_accuracy") == 0.75   # A, B, A, B
    # Only the benchmark's metrics are kept, but the judge's own both-orders verdicts always show.
    kept = score_items(_rows(judgments, gold), metrics=("accuracy",), num_resamples=0)["metrics"]
    assert set(kept) == {"accuracy", "combined_accuracy", "debiased_accuracy", "parse_failure_rate", "num_items"}
    by_verdicts = [_pair_judgment("A", "A", "A", by="verdicts")]
    assert "debiased_accuracy" not in score_items(_rows(by_verdicts, ["A"]), num_resamples=0)["metrics"]


def test_quickstart_and_training_callback_report_the_scorer_names_and_values():
    from judgetrain.quickstart import QUICKSTART_METRICS, score
    from judgetrain.train.judge_eval import CALLBACK_METRICS, agreement_metrics

    samples = [s.replace(labels={"human_majority": s.labels["human"]}) for s in _pairs(4)]
    judgments = Judge(JUDGELM, ScriptedBackend(lambda prompt: "9 4\nthe first"), both_orders=True).judge(samples)
    scored = score_items(rows_from_judgments(samples, judgments, label_key="human_majority"), num_resamples=0)
    quick = score(judgments, samples)
    logged = agreement_metrics(judgments, [s.labels["human_majority"].winner for s in samples])
    for key in QUICKSTART_METRICS:
        assert quick[key] == value_of(scored, key)
    for key in CALLBACK_METRICS:
        assert logged[f"judge/{key}"] == value_of(scored, key)
    # Always "A" as shown: right on the even items, inconsistent everywhere, a tie when combined.
    assert quick["accuracy"] == 0.5 and quick["consistency"] == 0.0 and quick["combined_accuracy"] == 0.0


def test_rows_written_before_the_new_fields_are_read_and_unknown_fields_refused():
    old = {"id": "x", "group": None, "labels": {}, "gold_winner": "A", "orders": ["original"], "verdict": "A"}
    row = ItemResult.from_dict(old)
    assert row.readings == {} and row.verdict_aggregate is None
    with pytest.raises(ValueError, match=r"row 'x': unknown field\(s\) \['verdikt'\]"):
        ItemResult.from_dict({**old, "verdikt": "A"})
