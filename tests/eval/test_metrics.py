"""Every metric against values computed by hand on small cases: ties, parse failures, the swapped
order mapped back, empty groups, and both parse-failure policies."""

import math

import numpy as np
import pytest
from scipy import stats

from judgetrain import metrics as m

# Five items. Gold, the original-order verdicts and the swapped-order verdicts (mapped back).
GOLD = ["A", "B", "tie", "A", "B"]
FIRST = ["A", "A", "tie", None, "B"]
SECOND = ["A", "B", "A", "A", None]


def test_accuracy_counts_parse_failure_as_wrong_or_excludes_it():
    # correct: item0 yes, item1 no, item2 yes, item3 failure, item4 yes
    assert m.accuracy(FIRST, GOLD) == pytest.approx(3 / 5)
    assert m.accuracy(FIRST, GOLD, policy="exclude") == pytest.approx(3 / 4)
    # A tie verdict is a verdict like any other: it is right only against a tie label.
    assert m.accuracy(["tie", "tie"], ["tie", "A"]) == pytest.approx(0.5)


def test_parse_failure_is_never_a_tie():
    # A failure against a tie label must not score: the tie label does not match a failure.
    assert m.accuracy([None], ["tie"]) == 0.0
    assert m.accuracy([None], ["tie"], policy="exclude") is None


def test_unknown_policy_and_bad_verdict_are_errors():
    with pytest.raises(ValueError, match="policy"):
        m.accuracy(["A"], ["A"], policy="tie")
    with pytest.raises(ValueError, match=r"predicted\[0\]"):
        m.accuracy(["C"], ["A"])
    with pytest.raises(ValueError, match="lengths differ"):
        m.accuracy(["A", "B"], ["A"])


def test_both_orders_agreement_and_consistency():
    # both correct: item0 (A,A vs A) yes; item1 (A,B) no; item2 (tie, A) no; item3 failure; item4 failure
    assert m.both_orders_agreement(FIRST, SECOND, GOLD) == pytest.approx(1 / 5)
    assert m.both_orders_agreement(FIRST, SECOND, GOLD, policy="exclude") == pytest.approx(1 / 3)
    # same verdict: item0 yes, item1 no, item2 no, items 3-4 failures
    assert m.consistency(FIRST, SECOND) == pytest.approx(1 / 5)
    assert m.consistency(FIRST, SECOND, policy="exclude") == pytest.approx(1 / 3)
    # LLMBar's positional agreement differs only where both orders failed: item3 and item4 each have one failure.
    assert m.positional_agreement(FIRST, SECOND) == pytest.approx(1 / 5)


def test_prefer_first_and_second_follow_judgelm_cases():
    # JudgeLM: A then B (mapped back) leans first; A then tie leans first; tie then B leans first;
    # B then A leans second; tie then A leans second; consistent items lean nowhere.
    first = ["A", "A", "tie", "B", "tie", "A"]
    second = ["B", "tie", "B", "A", "A", "A"]
    assert list(m.position_preference_per_item(first, second)) == [1, 1, 1, -1, -1, 0]
    assert m.prefer_first_rate(first, second) == pytest.approx(3 / 6)
    assert m.prefer_second_rate(first, second) == pytest.approx(2 / 6)
    # With failures: the item stays in the denominator under "wrong" and leans nowhere.
    assert m.prefer_first_rate(["A", None], ["B", "A"]) == pytest.approx(1 / 2)
    assert m.prefer_first_rate(["A", None], ["B", "A"], policy="exclude") == pytest.approx(1.0)


def test_llmbar_accuracy_is_mean_of_the_two_orders():
    gold = ["A", "B", "A", "B"]
    first = ["A", "B", "B", "A"]
    second = ["A", "A", "B", None]
    # order accuracies: first 2/4, second (failure counts wrong) 1/4 -> mean 3/8
    assert m.llmbar_accuracy(first, second, gold) == pytest.approx(3 / 8)
    assert m.llmbar_accuracy(first, second, gold) == pytest.approx((m.accuracy(first, gold) + m.accuracy(second, gold)) / 2)
    # exclude drops item 3 from both orders: first 2/3, second 1/3 -> 1/2
    assert m.llmbar_accuracy(first, second, gold, policy="exclude") == pytest.approx(1 / 2)


def test_judgebench_score_counts_plus_minus_per_order():
    gold = ["A", "A", "A", "B", "B", "A"]
    first = ["A", "A", "tie", "A", None, "B"]
    second = ["A", "B", "A", "A", "B", None]
    # sums: 2 -> correct; 0 -> no; 1 -> correct; -2 -> no; 1 (failure adds 0) -> correct; -1 -> no
    assert list(m.judgebench_correct_per_item(first, second, gold)) == [1, 0, 1, 0, 1, 0]
    assert m.judgebench_score(first, second, gold) == pytest.approx(3 / 6)
    assert m.judgebench_score(first, second, gold, policy="exclude") == pytest.approx(2 / 4)
    with pytest.raises(ValueError, match="JudgeBench labels"):
        m.judgebench_score(["A"], ["A"], ["tie"])


def test_parse_failure_rate_counts_calls():
    assert m.parse_failure_rate(FIRST, SECOND) == pytest.approx(2 / 10)
    assert m.parse_failure_rate(FIRST) == pytest.approx(1 / 5)


def test_macro_precision_recall_f1_by_hand():
    gold = ["A", "A", "B", "B", "tie", "tie"]
    pred = ["A", "B", "B", "B", "A", None]
    # A: tp1 pred2 gold2 -> P .5 R .5 F .5 ; B: tp2 pred3 gold2 -> P 2/3 R 1 F .8 ; tie: tp0 pred0 gold2 -> 0 0 0
    p, r, f = m.macro_precision_recall_f1(pred, gold)
    assert p == pytest.approx((0.5 + 2 / 3 + 0) / 3)
    assert r == pytest.approx((0.5 + 1 + 0) / 3)
    assert f == pytest.approx((0.5 + 0.8 + 0) / 3)
    # exclude: the failure (gold tie) is dropped; tie still a gold class with recall 0/1
    p, r, f = m.macro_precision_recall_f1(pred, gold, policy="exclude")
    assert r == pytest.approx((0.5 + 1 + 0) / 3)
    # A class absent from gold and predictions is not averaged (sklearn's labels = union).
    p, r, f = m.macro_precision_recall_f1(["A", "B"], ["A", "B"])
    assert (p, r, f) == (1.0, 1.0, 1.0)
    assert m.macro_precision_recall_f1([None], ["A"], policy="exclude") == (None, None, None)


def test_macro_scores_match_sklearn_formula_without_failures():
    rng = np.random.default_rng(3)
    classes = np.array(["A", "B", "tie"])
    gold = list(classes[rng.integers(0, 3, 40)])
    pred = list(classes[rng.integers(0, 3, 40)])
    p, r, f = m.macro_precision_recall_f1(pred, gold)
    per_class = []
    for c in classes:
        tp = sum(1 for a, b in zip(pred, gold) if a == b == c)
        prec = tp / pred.count(c)
        rec = tp / gold.count(c)
        per_class.append((prec, rec, 2 * prec * rec / (prec + rec)))
    assert p == pytest.approx(np.mean([x[0] for x in per_class]))
    assert r == pytest.approx(np.mean([x[1] for x in per_class]))
    assert f == pytest.approx(np.mean([x[2] for x in per_class]))


def test_cohen_kappa_by_hand():
    gold = ["A", "A", "B", "B"]
    pred = ["A", "B", "B", "B"]
    # po = 3/4; pe = P(A)P(A) + P(B)P(B) = (1/4)(2/4) + (3/4)(2/4) = 1/2 -> kappa = (0.75-0.5)/0.5
    assert m.cohen_kappa(pred, gold) == pytest.approx(0.5)
    # A failure under "wrong" is its own category: po = 3/4, pe = (1/4)(2/4) + (2/4)(2/4) = 3/8
    assert m.cohen_kappa(["A", None, "B", "B"], gold) == pytest.approx((0.75 - 3 / 8) / (1 - 3 / 8))
    assert m.cohen_kappa(["A", None, "B", "B"], gold, policy="exclude") == pytest.approx(1.0)
    assert m.cohen_kappa(["A", "A"], ["A", "A"]) is None


def test_confusion_matrix_keeps_failures_in_their_own_column():
    matrix = m.confusion_matrix(FIRST, GOLD)
    assert matrix["A"] == {"A": 1, "B": 0, "tie": 0, "parse_failure": 1}
    assert matrix["B"] == {"A": 1, "B": 1, "tie": 0, "parse_failure": 0}
    assert matrix["tie"]["tie"] == 1


def test_correlations_match_scipy_and_skip_missing_grades():
    pred = [1, 2, None, 4, 5, 3]
    gold = [1.5, 2, 3, 3.5, 5, 2.5]
    result = m.correlations(pred, gold)
    x, y = [1, 2, 4, 5, 3], [1.5, 2, 3.5, 5, 2.5]
    assert result["pearson"] == pytest.approx(stats.pearsonr(x, y)[0])
    assert result["spearman"] == pytest.approx(1.0)
    assert result["kendall"] == pytest.approx(1.0)
    assert m.correlations([3, 3, 3], [1, 2, 3]) == {"pearson": None, "spearman": None, "kendall": None}
    assert m.correlations([None], [1]) == {"pearson": None, "spearman": None, "kendall": None}


def test_grade_pair_accuracy_counts_equal_grades_wrong():
    assert list(m.grade_pair_correct_per_item([5, 3, 4, None], [4, 3, 5, 2])) == [1, 0, 0, 0]
    per_item = m.grade_pair_correct_per_item([5, 3, 4, None], [4, 3, 5, 2], policy="exclude")
    assert np.isnan(per_item[3]) and np.nanmean(per_item) == pytest.approx(1 / 3)


def test_combine_orders_is_fastchat_conservative():
    assert m.combine_orders("A", "A") == "A"
    assert m.combine_orders("A", "B") == "tie"
    assert m.combine_orders("tie", "B") == "tie"
    assert m.combine_orders(None, "A") is None


def _vote(q, a, b, turn, judge, winner):
    return m.Vote(question_id=q, model_a=a, model_b=b, turn=turn, judge=judge, winner=winner)


def test_mtbench_agreement_follows_fastchat_keys_and_ties():
    votes = [
        # q1: judge says m1 wins (stored as A with m1 first); humans: m1, m1 (stored reversed, so "B"), tie
        _vote(1, "m1", "m2", 1, "judge", "A"),
        _vote(1, "m1", "m2", 1, "human", "A"),
        _vote(1, "m2", "m1", 1, "human", "B"),
        _vote(1, "m1", "m2", 1, "human", "tie"),
        # q2: judge tie, one human says m2 (stored reversed as "A")
        _vote(2, "m1", "m2", 1, "judge", "tie"),
        _vote(2, "m2", "m1", 1, "human", "A"),
        # q3: turn 2 only
        _vote(3, "m1", "m2", 2, "judge", "B"),
        _vote(3, "m1", "m2", 2, "human", "B"),
        # q4: only the judge voted: no comparison
        _vote(4, "m1", "m2", 1, "judge", "A"),
    ]
    # S1 turn 1: comparisons (A,A)=1, (A,A)=1, (A,tie)=0, (tie,B)=0 -> 2/4
    assert m.mtbench_agreement(votes, "judge", "human", turn=1, with_ties=True) == (2, 4)
    # S2 turn 1: drop comparisons with a tie on either side -> (A,A),(A,A) -> 2/2
    assert m.mtbench_agreement(votes, "judge", "human", turn=1, with_ties=False) == (2, 2)
    assert m.mtbench_agreement(votes, "judge", "human", turn=2, with_ties=True) == (1, 1)
    # human-human: q1 has three votes -> pairs (A,A)=1, (A,tie)=0, (A,tie)=0
    assert m.mtbench_agreement(votes, "human", "human", turn=1, with_ties=True) == (1, 3)
    assert m.mtbench_agreement(votes, "human", "human", turn=1, with_ties=False) == (1, 1)
    items = m.mtbench_agreement_items(votes, "judge", "human", turn=1, with_ties=True)
    assert items.sum() == 2 and items.size == 4


def test_mtbench_agreement_parse_failures_and_duplicate_votes():
    votes = [_vote(1, "m1", "m2", 1, "judge", None), _vote(1, "m1", "m2", 1, "human", "A")]
    assert m.mtbench_agreement(votes, "judge", "human", turn=1, with_ties=False) == (0, 1)
    assert m.mtbench_agreement(votes, "judge", "human", turn=1, with_ties=False, policy="exclude") == (0, 0)
    with pytest.raises(ValueError, match="expected one"):
        m.mtbench_agreement(votes + [_vote(1, "m2", "m1", 1, "judge", "A")], "judge", "human", turn=1, with_ties=True)


def test_win_rates_match_show_result():
    matches = [
        ("m1", "m2", "A", "A"),   # m1 wins
        ("m1", "m2", "A", "B"),   # inconsistent -> tie for both
        ("m2", "m1", "B", "B"),   # m1 wins
        ("m1", "m3", "tie", "tie"),  # tie
        ("m1", "m3", None, "A"),  # failure: left out
    ]
    rates = m.win_rates(matches)
    assert rates["m1"]["win"] == 2 and rates["m1"]["loss"] == 0 and rates["m1"]["tie"] == 2
    assert rates["m1"]["win_rate"] == pytest.approx(2 / 4)
    assert rates["m1"]["win_rate_adjusted"] == pytest.approx((2 + 1) / 4)
    assert rates["m2"]["loss"] == 2 and rates["m2"]["win_rate_adjusted"] == pytest.approx(0.5 / 3)
    assert rates["m3"]["win_rate_adjusted"] == pytest.approx(0.5)


def test_bootstrap_interval_is_seeded_and_brackets_the_value():
    per_item = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1], dtype=float)
    first = m.estimate_rate(per_item, num_resamples=500, seed=7)
    again = m.estimate_rate(per_item, num_resamples=500, seed=7)
    other = m.estimate_rate(per_item, num_resamples=500, seed=8)
    assert first == again
    assert first.value == pytest.approx(0.7) and first.num_items == 10
    assert 0 <= first.low <= first.value <= first.high <= 1
    assert first.high - first.low > 0.2  # ten items cannot pin a rate down
    assert (other.low, other.high) != (first.low, first.high) or other == first


def test_bootstrap_of_a_statistic_and_of_an_empty_group():
    gold = ["A", "B"] * 20
    pred = ["A", "B"] * 15 + ["B", "A"] * 5
    est = m.estimate_statistic(lambda idx: m.cohen_kappa([pred[i] for i in idx], [gold[i] for i in idx]),
                               len(gold), num_resamples=200, seed=0)
    assert est.value == pytest.approx(m.cohen_kappa(pred, gold))
    assert est.low < est.value < est.high
    empty = m.estimate_rate(np.array([math.nan, math.nan]))
    assert empty == m.Estimate(None, None, None, 0)
    assert m.estimate_statistic(lambda idx: 1.0, 0) == m.Estimate(None, None, None, 0)
    assert m.accuracy([], []) is None


def test_every_headline_key_has_a_definition():
    from judgetrain.evaluation.scoring import METRIC_DEFINITIONS, definition

    for key in ("accuracy", "combined_accuracy", "debiased_accuracy", "macro_precision", "macro_recall", "macro_f1",
                "both_orders_agreement", "consistency", "prefer_first_rate", "prefer_second_rate", "kappa",
                "llmbar_accuracy", "positional_agreement", "judgebench_score", "s1_agreement", "s2_agreement", "pearson",
                "spearman", "kendall", "parse_failure_rate", "num_items"):
        text, _ = METRIC_DEFINITIONS[key]
        assert text and definition(key) == text
    assert definition("s1_agreement_gpt4-pair").endswith("(against GPT-4's votes)")


# --- anchors: each upstream count, transcribed, on a hand-made case with failures -------------------

def _llmbar_statistics(label, output_false, output_true):
    """LLMBar LLMEvaluator/evaluate.py's counts: winners "1" / "2", None for a failed parse; the swapped
    run's winner already reversed back (reverse_label keeps None)."""
    correct_false = correct_true = equal = 0
    for gold, first, second in zip(label, output_false, output_true):
        correct_false += first == gold
        correct_true += second == gold
        equal += first == second
    n = len(label)
    return {"correct_average": (correct_false + correct_true) / 2 / n, "equal": equal / n}


def test_positional_agreement_and_llmbar_accuracy_reproduce_llmbar_with_failed_outputs():
    to_llmbar = {"A": "1", "B": "2", None: None}
    gold = ["A", "B", "A", "B", "A", "B"]
    first = ["A", None, None, "B", "B", "A"]
    second = ["A", None, "A", None, "B", "B"]
    upstream = _llmbar_statistics(*([to_llmbar[v] for v in values] for values in (gold, first, second)))
    # By hand: equal on items 0, 1 (two failures) and 4 -> 3/6; the original order is right on items 0
    # and 3, the swapped one on 0, 2 and 5 -> (2 + 3) / 2 / 6.
    assert upstream == {"equal": 3 / 6, "correct_average": 5 / 12}
    assert m.positional_agreement(first, second) == pytest.approx(upstream["equal"])
    assert m.llmbar_accuracy(first, second, gold) == pytest.approx(upstream["correct_average"])
    # consistency counts the two failures as inconsistent; it is JudgeLM's figure, not LLMBar's.
    assert m.consistency(first, second) == pytest.approx(2 / 6)
    # exclude: only items 0, 4, 5 have both orders (agree on 0 and 4).
    assert m.positional_agreement(first, second, policy="exclude") == pytest.approx(2 / 3)


def test_both_orders_agreement_and_consistency_reproduce_autoj_counts():
    """Auto-J codes/leaderboard/pairwise_eval.py: labels 0 (response 1), 1 (response 2), 2 (tie); the
    exchanged run's label mapped back by exchange_to_ori_label; counts summed over scenarios, then divided."""
    gold = [0, 1, 2, 0, 1, 2, 0]
    pred = [0, 1, 2, 1, 1, 0, 0]
    pred_exchange_raw = [1, 0, 2, 0, 2, 0, 1]  # as the judge saw the swapped pair
    back = [{0: 1, 1: 0}.get(p, p) for p in pred_exchange_raw]
    correct = correct_both = dont_agree = 0
    for g, p, q in zip(gold, pred, back):
        correct += g == p
        correct_both += q == p == g
        dont_agree += q != p
    n = len(gold)
    upstream = {"single_agreement": correct / n, "agreement": correct_both / n, "consistency": 1 - dont_agree / n}
    assert upstream == {"single_agreement": 5 / 7, "agreement": 4 / 7, "consistency": 1 - 2 / 7}
    as_winner = {0: "A", 1: "B", 2: "tie"}
    first, second, labels = ([as_winner[v] for v in values] for values in (pred, back, gold))
    assert m.accuracy(first, labels) == pytest.approx(upstream["single_agreement"])
    assert m.both_orders_agreement(first, second, labels) == pytest.approx(upstream["agreement"])
    assert m.consistency(first, second) == pytest.approx(upstream["consistency"])


def test_judgebench_score_reproduces_compute_final_metrics_with_failures_and_ties():
    """JudgeBench utils/metrics.py compute_final_metrics(reverse_order=True): decisions "A>B" / "B>A" /
    "A=B" or None; the second judgment (answers swapped) flipped back; +1 per order matching the label,
    -1 per order matching the flipped label; a pair counts when the sum is > 0."""
    def flip(decision):
        return {"A>B": "B>A", "B>A": "A>B"}.get(decision, decision)

    labels = ["A>B", "A>B", "B>A", "B>A", "A>B", "B>A"]
    first = ["A>B", "A>B", None, "A>B", "A=B", "B>A"]
    second_raw = ["B>A", "A>B", "A>B", "A>B", "B>A", None]  # as judged with the answers swapped
    correct = 0
    for label, d1, d2 in zip(labels, first, (flip(d) for d in second_raw)):
        counter = sum(1 if d == label else -1 if d == flip(label) else 0 for d in (d1, d2))
        correct += counter > 0
    upstream = correct / len(labels)
    # By hand: item 0 (+2), item 1 (+1 -1 = 0), item 2 (0 +1), item 3 (-1 +1 = 0), item 4 (0 +1), item 5 (+1 + 0).
    assert upstream == 4 / 6
    as_winner = {"A>B": "A", "B>A": "B", "A=B": "tie", None: None}
    mapped_back = [m.flip(as_winner[d]) for d in second_raw]
    assert m.judgebench_score([as_winner[d] for d in first], mapped_back, [as_winner[g] for g in labels]) == pytest.approx(upstream)


def test_consistency_and_position_preference_reproduce_judgelm_counts():
    """JudgeLM eval_model_judgement.py: win lists from the first-shown answer's perspective (1 win, -1
    loss, 0 draw); the sequential list is negated and compared with the reversed run's raw list."""
    sequential = [1, 1, 0, -1, 0, 1, -1]   # the original order: +1 = A wins
    reversed_raw = [-1, 1, -1, -1, 1, 0, 1]  # the swapped order as shown: +1 = B (shown first) wins
    same = before = after = 0
    for s, r in zip(sequential, reversed_raw):
        s = -s
        if s == r:
            same += 1
        elif s - r > 0:
            after += 1
        elif s - r < 0:
            before += 1
    as_winner = {1: "A", -1: "B", 0: "tie"}
    first = [as_winner[s] for s in sequential]
    second = [m.flip(as_winner[r]) for r in reversed_raw]  # mapped back to the sample's order
    n = len(sequential)
    assert (same, before, after) == (2, 3, 2)
    assert m.consistency(first, second) == pytest.approx(same / n)
    assert m.prefer_first_rate(first, second) == pytest.approx(before / n)
    assert m.prefer_second_rate(first, second) == pytest.approx(after / n)


def test_vectorised_agreement_matches_the_plain_definitions():
    rng = np.random.default_rng(5)
    choices = np.array(["A", "B", "tie", None], dtype=object)
    for policy in m.PARSE_FAILURE_POLICIES:
        for size in (1, 7, 60):
            gold = list(np.array(["A", "B", "tie"])[rng.integers(0, 3, size)])
            pred = list(choices[rng.integers(0, 4, size)])
            est = m.agreement_estimates(pred, gold, policy, num_resamples=30, seed=1)
            p, r, f = m.macro_precision_recall_f1(pred, gold, policy)
            for key, expected in (("macro_precision", p), ("macro_recall", r), ("macro_f1", f),
                                  ("kappa", m.cohen_kappa(pred, gold, policy))):
                if expected is None:
                    assert est[key].value is None
                else:
                    assert est[key].value == pytest.approx(expected), (policy, size, key)
    # Its interval agrees with resampling the plain function on the same draws' spread.
    gold = ["A", "B", "tie"] * 20
    pred = ["A", "B", "tie"] * 12 + ["B", "A", "A"] * 8
    est = m.agreement_estimates(pred, gold, num_resamples=300, seed=0)
    plain = m.estimate_statistic(lambda idx: m.cohen_kappa([pred[i] for i in idx], [gold[i] for i in idx]), 60,
                                 num_resamples=300, seed=3)
    assert abs(est["kappa"].low - plain.low) < 0.08 and abs(est["kappa"].high - plain.high) < 0.08
