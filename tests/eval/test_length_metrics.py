"""Length-controlled metrics: the split accuracies, their balanced mean, the longer-answer shares and the
logistic length-controlled agreement, on hand-computed cases; the eval report, the browser's run list and
`judgetrain quickstart --tiny` showing them."""

import json
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from judgetrain import metrics as m
from judgetrain.cli import main
from judgetrain.evaluation import ItemResult, row_of_sample, score_items
from judgetrain.evaluation.scoring import LENGTH_METRICS, METRIC_DEFINITIONS, definition
from judgetrain.types import Answer, JudgeSample

# (gold, answer lengths, original-order verdict); None is a parse failure.
HAND_CASE = [
    ("A", (10, 5), "A"),     # longer won, right
    ("A", (10, 5), "B"),     # longer won, wrong
    ("B", (10, 5), "B"),     # shorter won, right
    ("B", (10, 5), None),    # shorter won, a parse failure
    ("tie", (10, 5), "A"),   # tie label on different lengths: in no split; a decided verdict for the longer
    ("tie", (7, 7), "tie"),  # equal lengths, right
    ("A", (7, 7), "B"),      # equal lengths, wrong
    ("B", (3, 9), "tie"),    # longer (B) won; a tie verdict is wrong and is no decided verdict
]


def _rows(cases) -> list[ItemResult]:
    return [ItemResult(id=f"i{n}", group=None, labels={}, gold_winner=gold, orders=["original"], verdict=verdict,
                       raw_texts=[str(verdict)], parse_failures=[None if verdict else "did not parse"],
                       answer_lengths=list(lengths))
            for n, (gold, lengths, verdict) in enumerate(cases)]


def _columns(cases):
    gold, lengths, verdicts = zip(*cases)
    return list(verdicts), list(gold), [list(x) for x in lengths]


def test_split_accuracies_balanced_mean_and_longer_shares_counted_by_hand():
    verdicts, gold, lengths = _columns(HAND_CASE)
    assert m.length_split_per_item(gold, lengths) == ["longer_won", "longer_won", "shorter_won", "shorter_won", None,
                                                      "equal_length", "equal_length", "longer_won"]
    length = score_items(_rows(HAND_CASE), num_resamples=0)["length"]
    assert length["unit"] == "characters" and length["num_items"] == 8
    got = {k: (v["value"], v["num_items"]) for k, v in length["metrics"].items()}
    assert list(got) == list(LENGTH_METRICS)
    # Policy wrong: longer won 1 of 3 right, shorter won 1 of 2 (the failure counts wrong), equal 1 of 2.
    assert got["accuracy_when_longer_answer_won"] == (pytest.approx(1 / 3), 3)
    assert got["accuracy_when_shorter_answer_won"] == (0.5, 2)
    assert got["accuracy_when_equal_length"] == (0.5, 2)
    assert got["length_balanced_accuracy"] == (pytest.approx((1 / 3 + 1 / 2) / 2), 5)
    # Decided verdicts on different lengths: items 0 (longer), 1 (shorter), 2 (shorter), 4 (longer).
    assert got["judge_picked_longer_rate"] == (0.5, 4)
    # Labels naming a winner on different lengths: 0, 1, 7 the longer; 2, 3 the shorter.
    assert got["label_picked_longer_rate"] == (0.6, 5)
    # Policy exclude: the failure leaves the shorter-won split (and the fit), nothing else.
    excluded = score_items(_rows(HAND_CASE), policy="exclude", num_resamples=0)["length"]["metrics"]
    assert excluded["accuracy_when_shorter_answer_won"]["value"] == 1.0
    assert excluded["accuracy_when_shorter_answer_won"]["num_items"] == 1
    assert excluded["length_balanced_accuracy"]["value"] == pytest.approx((1 / 3 + 1) / 2)
    assert excluded["length_balanced_accuracy"]["num_items"] == 4
    assert excluded["length_controlled_agreement"]["num_items"] == 5
    assert length["metrics"]["length_controlled_agreement"]["num_items"] == 6  # labels A or B; the failure kept


def test_every_length_metric_is_defined_once_with_its_unit_and_anchor():
    for key in LENGTH_METRICS:
        text, anchor = METRIC_DEFINITIONS[key]
        assert text and anchor and definition(key) == text
    assert "characters" in definition("length_controlled_agreement")
    assert "get_length_controlled_winrate" in METRIC_DEFINITIONS["length_controlled_agreement"][1]


def test_intervals_bracket_the_values_and_rows_without_lengths_are_left_out():
    rng = np.random.default_rng(0)
    cases = [(g, (int(a), int(b)), v) for g, a, b, v in zip(rng.choice(["A", "B"], 60), rng.integers(1, 50, 60),
                                                            rng.integers(1, 50, 60), rng.choice(["A", "B", "tie"], 60))]
    rows = _rows(cases) + [ItemResult(id="no-lengths", group=None, labels={}, gold_winner="A", orders=["original"], verdict="A")]
    length = score_items(rows, num_resamples=200)["length"]
    assert length["num_items"] == 60
    for key in ("length_balanced_accuracy", "length_controlled_agreement", "accuracy_when_longer_answer_won"):
        est = length["metrics"][key]
        assert est["low"] <= est["value"] <= est["high"] and est["low"] < est["high"], key
    # The training callback's rows carry no lengths: nothing to measure, and no error.
    empty = score_items(rows[-1:], num_resamples=50)["length"]
    assert empty["num_items"] == 0 and all(v["value"] is None for v in empty["metrics"].values())


@settings(max_examples=60, deadline=None)
@given(items=st.lists(st.tuples(st.sampled_from(["A", "B", "tie"]), st.integers(0, 40), st.integers(0, 40)), min_size=1, max_size=40))
def test_the_longer_answer_rule_scores_exactly_one_half_on_length_balanced_accuracy(items):
    gold = [g for g, _, _ in items]
    lengths = [(a, b) for _, a, b in items]
    longer = [m.longer_answer(a, b) for a, b in lengths]
    splits = m.length_split_per_item(gold, lengths)
    value = m.length_balanced_accuracy(longer, gold, lengths)
    if "longer_won" in splits and "shorter_won" in splits:
        assert value == 0.5
    else:
        assert value is None  # a split without items: no balanced mean


def _symmetric_lengths_and_labels(num_quads: int):
    # Each label class holds one item with A longer and one with B longer, by the same margin: the label
    # tells nothing about length.
    gold = ["A", "A", "B", "B"] * num_quads
    lengths = [(200, 100), (100, 200)] * (2 * num_quads)
    return gold, lengths


def test_length_controlled_agreement_of_a_judge_that_follows_only_length_is_one_half():
    gold, lengths = _symmetric_lengths_and_labels(25)
    longer = [m.longer_answer(a, b) for a, b in lengths]
    assert m.accuracy(longer, gold) == 0.5
    # By the symmetry the label weights are 0 at the optimum: P(A) = sigmoid(0) at equal lengths.
    assert m.length_controlled_agreement(longer, gold, lengths) == pytest.approx(0.5, abs=1e-6)


def test_length_controlled_agreement_of_a_judge_that_follows_only_the_label_is_near_one():
    gold, lengths = _symmetric_lengths_and_labels(25)
    assert m.length_controlled_agreement(gold, gold, lengths) > 0.99
    # The label's opposite, whatever the length: near 0.
    assert m.length_controlled_agreement([m.flip(g) for g in gold], gold, lengths) < 0.01


def test_length_controlled_agreement_at_equal_lengths_solves_the_penalised_class_equations():
    # All answers equally long: tanh(0) = 0, so each label class has one weight w with
    # sum(sigmoid(w) - preference) + w / C = 0, solved here on its own.
    verdicts = ["A"] * 7 + ["B"] * 2 + ["tie"] + [None] * 2 + ["B"] * 5 + ["A"] * 3
    gold = ["A"] * 12 + ["B"] * 8
    lengths = [(5, 5)] * 20
    pref_a = np.array([1.0] * 7 + [0.0] * 2 + [0.5] + [0.0] * 2)   # the failures count against the label A
    pref_b = np.array([0.0] * 5 + [1.0] * 3)

    def weight(preference):
        return brentq(lambda w: np.sum(1 / (1 + np.exp(-w)) - preference) + w / m.LENGTH_CONTROL_C, -50, 50)

    w_a, w_b = weight(pref_a), weight(pref_b)
    expected = (12 / (1 + math.exp(-w_a)) + 8 * (1 - 1 / (1 + math.exp(-w_b)))) / 20
    assert m.length_controlled_agreement(verdicts, gold, lengths) == pytest.approx(expected, abs=1e-6)
    # Without the failures (exclude) class A has 10 items, and a judge that always says tie sits at 0.5.
    w_a = weight(pref_a[:10])
    expected_excluded = (10 / (1 + math.exp(-w_a)) + 8 * (1 - 1 / (1 + math.exp(-w_b)))) / 18
    assert m.length_controlled_agreement(verdicts, gold, lengths, "exclude") == pytest.approx(expected_excluded, abs=1e-6)
    assert m.length_controlled_agreement(["tie"] * 20, gold, lengths) == pytest.approx(0.5, abs=1e-9)
    assert m.length_controlled_agreement([None] * 20, gold, lengths, "exclude") is None


def test_length_controlled_fit_is_the_optimum_of_its_stated_objective():
    rng = np.random.default_rng(1)
    n = 300
    lengths = np.column_stack([rng.integers(10, 900, n), rng.integers(10, 900, n)])
    gold = rng.choice(["A", "B"], n).tolist()
    longer = [m.longer_answer(a, b) for a, b in lengths]
    verdicts = [g if rng.random() < 0.4 else v for g, v in zip(gold, longer)]
    preference, label_is_a, difference = m.length_control_inputs(verdicts, gold, lengths.tolist())
    value, weights = m.length_controlled_agreement_of(preference, label_is_a, difference)
    design = np.column_stack([label_is_a, ~label_is_a, np.tanh(difference / np.std(difference, ddof=1))]).astype(float)
    fitted = 1 / (1 + np.exp(-(design @ weights)))
    gradient = design.T @ (fitted - preference) + weights / m.LENGTH_CONTROL_C
    assert np.abs(gradient).max() < 1e-4
    assert weights[2] > 0  # the judge leans to the longer answer, and the fit says so
    at_equal = np.where(label_is_a, 1 / (1 + np.exp(-weights[0])), 1 - 1 / (1 + np.exp(-weights[1])))
    assert value == pytest.approx(at_equal.mean())


def test_bad_lengths_are_refused_with_the_field_named():
    with pytest.raises(ValueError, match=r"lengths\[1\]: expected the two answers' lengths in characters"):
        m.length_split_per_item(["A", "B"], [(1, 2), (3,)])


def test_rows_take_their_lengths_from_the_sample_in_characters_of_every_turn():
    sample = JudgeSample(id="s", source="test", question=["q1", "q2"], answers=(Answer(["abc", "de"]), Answer(["x", "yz"])),
                         labels={"human": {"winner": "A"}})
    assert row_of_sample(sample, label_key="human").answer_lengths == [5, 3]


def _longer_predictions(samples, path):
    path.write_text("".join(json.dumps({"id": s.id, "verdict": m.longer_answer(*(sum(len(t) for t in a.turns) for a in s.answers))})
                            + "\n" for s in samples))
    return path


def test_eval_report_results_and_browser_show_the_length_section(shared_data, tmp_path, capsys):
    from judgetrain.browse.pages import index_page
    from judgetrain.browse.store import load_run
    from judgetrain_eval.runner import get_benchmark

    samples = get_benchmark("llmbar-adversarial").load(data_dir=shared_data)
    pred = _longer_predictions(samples, tmp_path / "longer.jsonl")
    run_dir = tmp_path / "run"
    assert main(["eval", "--benchmark", "llmbar-adversarial", "--data-dir", str(shared_data), "--predictions", str(pred),
                 "--bootstrap-resamples", "50", "--out", str(run_dir)]) == 0
    capsys.readouterr()
    results = json.loads((run_dir / "results.json").read_text())
    length = results["length"]
    assert length["unit"] == "characters" and length["num_items"] == len(samples)
    assert length["metrics"]["length_balanced_accuracy"]["value"] == 0.5
    assert length["metrics"]["judge_picked_longer_rate"]["value"] == 1.0
    gold = [s.labels["gold"].winner for s in samples]
    lengths = [[sum(len(t) for t in a.turns) for a in s.answers] for s in samples]
    assert length["metrics"]["label_picked_longer_rate"]["value"] == pytest.approx(
        float(np.nanmean(m.picked_longer_per_item(gold, lengths))))
    assert set(LENGTH_METRICS) <= set(results["definitions"])
    report = (run_dir / "report.md").read_text()
    section = report[report.index("## Length"):]
    assert "characters" in section.split("\n\n")[1]
    assert "| length_balanced_accuracy | 0.500 | [0.500, 0.500] |" in section
    assert "| length_controlled_agreement |" in section and "- `length_controlled_agreement`:" in report

    page = index_page([load_run(run_dir)], [])
    assert "by length (characters)" in page and "length_balanced_accuracy=0.500" in page
    # A results.json written before the length section: the browser scores the rows again.
    del results["length"]
    (run_dir / "results.json").write_text(json.dumps(results))
    assert "length_balanced_accuracy=0.500" in index_page([load_run(run_dir)], [])


def test_quickstart_tiny_ends_with_the_trained_judges_accuracy_and_the_majority_baseline(tmp_path, capsys):
    out = tmp_path / "qs"
    assert main(["quickstart", "--tiny", "--out", str(out)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-2:]
    after = re.fullmatch(r"quickstart_after: (\d\.\d{3}) \[(\d\.\d{3}), (\d\.\d{3})\]", last[0])
    majority = re.fullmatch(r"quickstart_majority: (\d\.\d{3})", last[1])
    assert after and majority, last
    results = json.loads((out / "results.json").read_text())
    accuracy = results["rows"]["after training"]["accuracy"]
    low, high = results["intervals"]["after training"]["accuracy"]
    assert [float(x) for x in after.groups()] == [round(accuracy, 3), round(low, 3), round(high, 3)]
    majority_row = next(v for k, v in results["rows"].items() if k.startswith("majority class"))
    assert float(majority.group(1)) == round(majority_row["accuracy"], 3)
    assert results["length_unit"] == "characters"
    assert results["length"]["longer answer wins"]["metrics"]["length_balanced_accuracy"]["value"] in (0.5, None)
    report = (out / "report.md").read_text()
    assert "## Length" in report and "| after training |" in report.split("## Length")[1]
    verdict = "beats the majority class" if low > majority_row["accuracy"] else "is not shown to beat the majority class"
    assert verdict in report and "lower end of the 95% interval" in report
