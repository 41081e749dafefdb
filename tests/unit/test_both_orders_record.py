"""The typed both-orders record of a Judgment: its fields, its JSON field in judgments.jsonl, and
reading rows written when the two orders lived in ``meta["orders"]`` / ``meta["both_orders"]``."""

import json

import pytest

from judgetrain.judging import Judge, per_order
from judgetrain.types import BothOrders, Judgment, Verdict
from tests.unit.test_judging_core import JUDGELM, ScriptedBackend, content_judge, pair, positional_judge


def _order(winner: str, *, swapped: bool, probabilities=None) -> Judgment:
    return Judgment(sample_id="s", template="judgelm-v1", raw_text=f"said {winner}", swapped=swapped,
                    verdict=Verdict(winner=winner, template="judgelm-v1"), verdict_probabilities=probabilities)


def test_the_record_holds_both_orders_their_probabilities_and_the_debiased_verdict():
    record = BothOrders(original=_order("A", swapped=False, probabilities={"A": 0.7, "B": 0.3}),
                        swapped=_order("B", swapped=True, probabilities={"A": 0.4, "B": 0.6}),
                        policy="tie", outcome="A", aggregation="probabilities", aggregated_by="probabilities",
                        p_a_minus_p_b=0.1, tie_margin=0.0)
    assert (record.original_winner, record.swapped_winner, record.consistent) == ("A", "B", False)
    assert record.original_probabilities == {"A": 0.7, "B": 0.3} and record.swapped_probabilities == {"A": 0.4, "B": 0.6}
    assert record.debiased_winner == "A"
    by_verdicts = BothOrders(original=_order("A", swapped=False), swapped=_order("A", swapped=True), policy="tie", outcome="A")
    assert by_verdicts.consistent is True and by_verdicts.debiased_winner is None


def test_a_bad_record_is_refused_with_the_field_named():
    with pytest.raises(ValueError, match="both_orders.outcome"):
        BothOrders(original=_order("A", swapped=False), swapped=_order("A", swapped=True), policy="tie", outcome="maybe")
    with pytest.raises(ValueError, match="original must have swapped=false"):
        BothOrders(original=_order("A", swapped=True), swapped=_order("A", swapped=True), policy="tie", outcome="A")
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['extra'\]"):
        BothOrders.from_dict({"original": {}, "swapped": {}, "policy": "tie", "outcome": "A", "extra": 1})


def test_judgments_jsonl_carries_the_record_in_its_own_field_and_reads_back():
    [judgment] = Judge(JUDGELM, ScriptedBackend(positional_judge), both_orders=True).judge([pair("p", "one", "two")])
    row = json.loads(json.dumps(judgment.to_dict()))
    assert "orders" not in row["meta"] and "both_orders" not in row["meta"]
    assert row["both_orders"]["original_winner"] == "A" and row["both_orders"]["swapped_winner"] == "B"
    assert row["both_orders"]["consistent"] is False and row["both_orders"]["swapped"]["swapped"] is True
    assert Judgment.from_dict(row) == judgment
    assert Judgment.from_dict(row).to_dict() == row


def test_rows_written_with_the_orders_in_meta_are_read():
    [judgment] = Judge(JUDGELM, ScriptedBackend(content_judge), both_orders=True).judge([pair("g", "GOOD", "bad")])
    original, swapped = per_order(judgment)
    legacy = judgment.to_dict()
    del legacy["both_orders"]
    legacy["meta"] = {**legacy["meta"], "orders": [original.to_dict() | {"both_orders": None},
                                                   {k: v for k, v in swapped.to_dict().items() if k != "both_orders"}],
                      "both_orders": {"policy": "tie", "outcome": "A", "consistent": True, "original": "A",
                                      "swapped": "A", "aggregation": "verdicts"}}
    read = Judgment.from_dict(legacy)
    assert read.both_orders == judgment.both_orders and read.meta == judgment.meta
    assert [o.raw_text for o in per_order(read)] == [original.raw_text, swapped.raw_text]
