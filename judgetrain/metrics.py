"""Judge metrics, each with its exact definition and the paper or code whose number it matches.

Conventions shared by every function here:

* A pairwise verdict is ``"A"`` (the first answer of the sample, in the sample's own order),
  ``"B"`` or ``"tie"``; ``None`` is a parse failure. Verdicts of the swapped order are given
  **already mapped back** to the sample's order (a judge that saw B first and preferred it
  is recorded as ``"B"``), as :class:`~judgetrain.types.Judgment` stores them.
* Parse failures follow an explicit policy (:data:`PARSE_FAILURE_POLICIES`):
  ``"wrong"`` (default) keeps the item and counts the failure as a wrong / inconsistent
  verdict; ``"exclude"`` drops the item from that metric. A failure is never read as a tie.
* Rates are fractions in [0, 1]. A rate over zero items is ``None`` (not applicable), never 0.
* Every rate is a mean of a per-item value (the ``*_per_item`` functions, NaN = excluded), so the
  overall figure is the micro average over items (Auto-J's convention for its groups) and the
  bootstrap resamples items.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

PARSE_FAILURE_POLICIES = ("wrong", "exclude")
"""``wrong``: a parse failure is kept and counts against the judge; ``exclude``: the item is dropped."""

WINNER_CLASSES = ("A", "B", "tie")

Winner = str | None
"""A pairwise verdict: "A", "B", "tie", or None for a parse failure."""


def check_policy(policy: str) -> str:
    """Return ``policy`` when it is a known parse-failure policy, else raise ValueError."""
    if policy not in PARSE_FAILURE_POLICIES:
        raise ValueError(f"unknown parse-failure policy {policy!r}; use one of {PARSE_FAILURE_POLICIES}")
    return policy


def _check_winners(values: Sequence[Winner], name: str, allow_none: bool = True) -> None:
    for i, value in enumerate(values):
        if value is None and allow_none:
            continue
        if value not in WINNER_CLASSES:
            raise ValueError(f"{name}[{i}]: expected one of {WINNER_CLASSES}{' or None' if allow_none else ''}, got {value!r}")


def _order_pairs(predicted: Sequence[Winner], predicted_swapped: Sequence[Winner], policy: str) -> list[tuple[Winner, Winner]]:
    """The (original, swapped-mapped-back) verdict of each item, after checking the policy and both lists."""
    check_policy(policy)
    _same_length(predicted=predicted, predicted_swapped=predicted_swapped)
    _check_winners(predicted, "predicted")
    _check_winners(predicted_swapped, "predicted_swapped")
    return list(zip(predicted, predicted_swapped))


def _same_length(**sequences: Sequence[Any]) -> int:
    lengths = {name: len(seq) for name, seq in sequences.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"sequences must have one value per item; lengths differ: {lengths}")
    return next(iter(lengths.values()), 0)


def flip(winner: Winner) -> Winner:
    """The verdict as seen with the two answers swapped ("A" <-> "B"; tie and None unchanged)."""
    return {"A": "B", "B": "A"}.get(winner, winner) if winner is not None else None


def _rate(per_item: np.ndarray) -> float | None:
    kept = per_item[~np.isnan(per_item)]
    return float(kept.mean()) if kept.size else None


# --- per-item values -------------------------------------------------------------------------

def correct_per_item(predicted: Sequence[Winner], gold: Sequence[str], policy: str = "wrong") -> np.ndarray:
    """1.0 where the verdict equals the gold label, 0.0 where not; a parse failure is 0.0
    (policy ``wrong``) or NaN (``exclude``)."""
    check_policy(policy)
    _same_length(predicted=predicted, gold=gold)
    _check_winners(predicted, "predicted")
    _check_winners(gold, "gold", allow_none=False)
    out = np.empty(len(gold))
    for i, (p, g) in enumerate(zip(predicted, gold)):
        out[i] = (math.nan if policy == "exclude" else 0.0) if p is None else float(p == g)
    return out


def both_orders_correct_per_item(predicted: Sequence[Winner], predicted_swapped: Sequence[Winner],
                                 gold: Sequence[str], policy: str = "wrong") -> np.ndarray:
    """1.0 where the verdict is correct in the original AND in the swapped order (mapped back).

    Anchor: Auto-J ``codes/leaderboard/pairwise_eval.py`` ("agreement" of a pairwise judge counts
    ``correct_both``: ``pred == pred_exchange == gt``). A failure in either order: 0.0 / NaN."""
    check_policy(policy)
    _same_length(predicted=predicted, predicted_swapped=predicted_swapped, gold=gold)
    _check_winners(predicted, "predicted")
    _check_winners(predicted_swapped, "predicted_swapped")
    out = np.empty(len(gold))
    for i, (p, q, g) in enumerate(zip(predicted, predicted_swapped, gold)):
        if p is None or q is None:
            out[i] = math.nan if policy == "exclude" else 0.0
        else:
            out[i] = float(p == g and q == g)
    return out


def consistent_per_item(predicted: Sequence[Winner], predicted_swapped: Sequence[Winner],
                        policy: str = "wrong") -> np.ndarray:
    """1.0 where the judge gives the same verdict after the answers are swapped (mapped back).

    Anchors: JudgeLM ``eval_model_judgement.py`` ``consistency`` (``same / n``), Auto-J
    ``consistency`` (``1 - exchange_dont_agree / total``). A failure in either order is inconsistent
    (``wrong``) or dropped (``exclude``). LLMBar's positional agreement counts failures differently:
    :func:`positional_agreement_per_item`."""
    failed = math.nan if policy == "exclude" else 0.0
    return np.array([failed if p is None or q is None else float(p == q)
                     for p, q in _order_pairs(predicted, predicted_swapped, policy)], dtype=float)


def positional_agreement_per_item(predicted: Sequence[Winner], predicted_swapped: Sequence[Winner],
                                  policy: str = "wrong") -> np.ndarray:
    """1.0 where the two orders' outputs, mapped back, are equal, comparing failures too: two failed
    orders are equal, one failed order is not.

    Anchor: LLMBar ``LLMEvaluator/evaluate.py``, ``equal += (output_True == output_False)`` over the
    parsed winners, where a failed parse is ``None`` (and stays ``None`` when mapped back), so two
    failures count as agreeing; its "positional agreement rate" is ``equal / len(dataset)``. Policy
    ``wrong`` is exactly that count; ``exclude`` drops every item with a failure in either order
    (there it equals :func:`consistent_per_item`)."""
    return np.array([math.nan if policy == "exclude" and (p is None or q is None) else float(p == q)
                     for p, q in _order_pairs(predicted, predicted_swapped, policy)], dtype=float)


_SIGN = {"A": 1, "B": -1, "tie": 0}


def position_preference_per_item(predicted: Sequence[Winner], predicted_swapped: Sequence[Winner],
                                 policy: str = "wrong") -> np.ndarray:
    """+1 where an inconsistent judge leaned to the answer shown first, -1 to the one shown second,
    0 where it was consistent; NaN for a parse failure under ``exclude`` (0 under ``wrong``: a
    failure is no preference, but the item stays in the denominator).

    Anchor: JudgeLM ``eval_model_judgement.py``. With a = +1 for A, -1 for B, 0 for a tie (in the
    sample's order), the first position got ``a1`` in the original order and ``-a2`` in the swapped
    one (B was shown first), so ``a1 - a2 > 0`` is JudgeLM's ``perfer_before`` case (A>B then B>A,
    A>B then tie, tie then B>A) and ``< 0`` its ``perfer_after``."""
    check_policy(policy)
    _same_length(predicted=predicted, predicted_swapped=predicted_swapped)
    _check_winners(predicted, "predicted")
    _check_winners(predicted_swapped, "predicted_swapped")
    out = np.empty(len(predicted))
    for i, (p, q) in enumerate(zip(predicted, predicted_swapped)):
        if p is None or q is None:
            out[i] = math.nan if policy == "exclude" else 0.0
        else:
            out[i] = float(np.sign(_SIGN[p] - _SIGN[q]))
    return out


def llmbar_correct_per_item(predicted: Sequence[Winner], predicted_swapped: Sequence[Winner],
                            gold: Sequence[str], policy: str = "wrong") -> np.ndarray:
    """The mean of the two orders' correctness for each item (0, 0.5 or 1).

    Anchor: LLMBar ``LLMEvaluator/evaluate.py`` ``correct_average`` = (correct_False + correct_True)
    / 2 / len(dataset): the average of the two presentation orders' accuracies over all items, a failed
    parse (None) never equal to the label; its mean over items is exactly that average. Under ``wrong`` a failed order
    scores 0; under ``exclude`` an item with a failure in either order is dropped, so both orders
    are averaged over the same items."""
    first = correct_per_item(predicted, gold, "wrong")
    second = correct_per_item(predicted_swapped, gold, "wrong")
    out = (first + second) / 2
    if check_policy(policy) == "exclude":
        failed = np.array([p is None or q is None for p, q in zip(predicted, predicted_swapped)], dtype=bool)
        out[failed] = math.nan
    return out


def judgebench_correct_per_item(predicted: Sequence[Winner], predicted_swapped: Sequence[Winner],
                                gold: Sequence[str], policy: str = "wrong") -> np.ndarray:
    """1.0 where JudgeBench counts the pair correct: +1 for each order whose verdict matches the
    label, -1 for each order matching the flipped label, 0 for a tie or a parse failure; the pair is
    correct when the sum is > 0.

    Anchor: JudgeBench ``utils/metrics.py`` ``compute_final_metrics(reverse_order=True)`` (there a
    missing decision is None and adds 0). Policy ``wrong`` is exactly that code: a failure adds 0, so
    one correct order plus one failure still scores. ``exclude`` drops pairs with any failure.
    JudgeBench labels have no ties; a tie label is an error."""
    check_policy(policy)
    _same_length(predicted=predicted, predicted_swapped=predicted_swapped, gold=gold)
    _check_winners(predicted, "predicted")
    _check_winners(predicted_swapped, "predicted_swapped")
    out = np.empty(len(gold))
    for i, (p, q, g) in enumerate(zip(predicted, predicted_swapped, gold)):
        if g not in ("A", "B"):
            raise ValueError(f"gold[{i}]: JudgeBench labels are A or B, got {g!r}")
        if policy == "exclude" and (p is None or q is None):
            out[i] = math.nan
            continue
        counter = sum(1 if v == g else -1 if v == flip(g) else 0 for v in (p, q))
        out[i] = float(counter > 0)
    return out


def parse_failed_per_item(*orders: Sequence[Any]) -> np.ndarray:
    """The share of each item's judge calls that did not parse (0, 0.5 or 1 with two orders).

    Every order of every item is one judge call, so the mean over items is the share of failed
    calls. Parse failures are counted under both policies: this rate is what the policy acts on."""
    if not orders:
        raise ValueError("parse_failed_per_item needs at least one order of verdicts")
    num_items = _same_length(**{f"order{i}": o for i, o in enumerate(orders)})
    failed = np.zeros(num_items)
    for order in orders:
        failed += np.array([v is None for v in order], dtype=float)
    return failed / len(orders)


def grade_pair_correct_per_item(chosen_scores: Sequence[float | None], rejected_scores: Sequence[float | None],
                                policy: str = "wrong") -> np.ndarray:
    """1.0 where the chosen answer got a strictly higher grade than the rejected one.

    Anchor: prometheus-eval ``eval/utils.py`` ``calculate_one_abs_acc`` (HHH alignment with absolute
    grading): equal grades are wrong; a missing grade is wrong (``wrong``) or dropped (``exclude``)."""
    check_policy(policy)
    _same_length(chosen_scores=chosen_scores, rejected_scores=rejected_scores)
    out = np.empty(len(chosen_scores))
    for i, (c, r) in enumerate(zip(chosen_scores, rejected_scores)):
        if c is None or r is None:
            out[i] = math.nan if policy == "exclude" else 0.0
        else:
            out[i] = float(c > r)
    return out


# --- rates -----------------------------------------------------------------------------------

def accuracy(predicted: Sequence[Winner], gold: Sequence[str], policy: str = "wrong") -> float | None:
    """Share of items whose (single-order) verdict equals the gold label.

    Anchor: JudgeLM's "agreement" (``accuracy_score`` in ``eval_model_judgement.py``); PandaLM's
    accuracy; Auto-J's single-order agreement."""
    return _rate(correct_per_item(predicted, gold, policy))


def both_orders_agreement(predicted: Sequence[Winner], predicted_swapped: Sequence[Winner],
                          gold: Sequence[str], policy: str = "wrong") -> float | None:
    """Share of items correct in both orders (Auto-J's pairwise "agreement")."""
    return _rate(both_orders_correct_per_item(predicted, predicted_swapped, gold, policy))


def consistency(predicted: Sequence[Winner], predicted_swapped: Sequence[Winner], policy: str = "wrong") -> float | None:
    """Share of items with the same verdict after the swap, mapped back (JudgeLM / Auto-J
    "consistency"; a failure in either order is inconsistent under ``wrong``)."""
    return _rate(consistent_per_item(predicted, predicted_swapped, policy))


def positional_agreement(predicted: Sequence[Winner], predicted_swapped: Sequence[Winner],
                         policy: str = "wrong") -> float | None:
    """LLMBar's positional agreement rate: the share of items whose two outputs, mapped back, are
    equal, two failed outputs counting as equal (:func:`positional_agreement_per_item`)."""
    return _rate(positional_agreement_per_item(predicted, predicted_swapped, policy))


def prefer_first_rate(predicted: Sequence[Winner], predicted_swapped: Sequence[Winner], policy: str = "wrong") -> float | None:
    """Share of items where the judge leaned to the first-shown answer (JudgeLM ``perfer_before_rate``)."""
    pref = position_preference_per_item(predicted, predicted_swapped, policy)
    return _rate(np.where(np.isnan(pref), np.nan, (pref > 0).astype(float)))


def prefer_second_rate(predicted: Sequence[Winner], predicted_swapped: Sequence[Winner], policy: str = "wrong") -> float | None:
    """Share of items where the judge leaned to the second-shown answer (JudgeLM ``perfer_after_rate``)."""
    pref = position_preference_per_item(predicted, predicted_swapped, policy)
    return _rate(np.where(np.isnan(pref), np.nan, (pref < 0).astype(float)))


def llmbar_accuracy(predicted: Sequence[Winner], predicted_swapped: Sequence[Winner], gold: Sequence[str],
                    policy: str = "wrong") -> float | None:
    """LLMBar accuracy: the mean of the two orders' accuracies."""
    return _rate(llmbar_correct_per_item(predicted, predicted_swapped, gold, policy))


def judgebench_score(predicted: Sequence[Winner], predicted_swapped: Sequence[Winner], gold: Sequence[str],
                     policy: str = "wrong") -> float | None:
    """JudgeBench's score: the share of pairs whose two-order sum is > 0 (see
    :func:`judgebench_correct_per_item`). JudgeBench prints it in percent; this is a fraction."""
    return _rate(judgebench_correct_per_item(predicted, predicted_swapped, gold, policy))


def parse_failure_rate(*orders: Sequence[Any]) -> float | None:
    """Share of judge calls (each order of each item is one call) whose output did not parse."""
    return _rate(parse_failed_per_item(*orders))


def macro_precision_recall_f1(predicted: Sequence[Winner], gold: Sequence[str],
                              policy: str = "wrong") -> tuple[float | None, float | None, float | None]:
    """Macro-averaged precision, recall and F1 over the verdict classes.

    Anchor: JudgeLM ``eval_model_judgement.py`` (sklearn ``precision_score`` / ``recall_score`` /
    ``f1_score`` with ``average="macro"``): the classes averaged are those of {A, B, tie} present in
    the gold labels or the parsed verdicts, and a 0/0 precision or recall counts as 0 (sklearn's
    ``zero_division`` default). F1 is the mean of the per-class F1 scores, not the F1 of the means.
    A parse failure under ``wrong`` is a miss for its gold class (lowers that class's recall) and is
    no class's prediction; under ``exclude`` the item is dropped."""
    check_policy(policy)
    _same_length(predicted=predicted, gold=gold)
    _check_winners(predicted, "predicted")
    _check_winners(gold, "gold", allow_none=False)
    pairs = [(p, g) for p, g in zip(predicted, gold) if not (p is None and policy == "exclude")]
    if not pairs:
        return None, None, None
    classes = [c for c in WINNER_CLASSES if any(g == c or p == c for p, g in pairs)]
    precisions, recalls, f1s = [], [], []
    for c in classes:
        true_positive = sum(1 for p, g in pairs if p == c and g == c)
        predicted_c = sum(1 for p, _ in pairs if p == c)
        gold_c = sum(1 for _, g in pairs if g == c)
        precision = true_positive / predicted_c if predicted_c else 0.0
        recall = true_positive / gold_c if gold_c else 0.0
        precisions.append(precision)
        recalls.append(recall)
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return float(np.mean(precisions)), float(np.mean(recalls)), float(np.mean(f1s))


_FAILED = "<parse failure>"


def cohen_kappa(predicted: Sequence[Winner], gold: Sequence[str], policy: str = "wrong") -> float | None:
    """Cohen's kappa between the judge's verdicts and the gold labels:
    ``(p_o - p_e) / (1 - p_e)`` with ``p_o`` the observed agreement and ``p_e`` the agreement expected
    from the two marginal distributions (Cohen 1960; sklearn ``cohen_kappa_score``). Under ``wrong``
    a parse failure is a category of its own (it never agrees with a label); under ``exclude`` it is
    dropped. None when there are no items or ``p_e == 1`` (both raters constant and equal)."""
    check_policy(policy)
    _same_length(predicted=predicted, gold=gold)
    _check_winners(predicted, "predicted")
    pairs = [(_FAILED if p is None else p, g) for p, g in zip(predicted, gold) if not (p is None and policy == "exclude")]
    if not pairs:
        return None
    n = len(pairs)
    observed = sum(1 for p, g in pairs if p == g) / n
    categories = {p for p, _ in pairs} | {g for _, g in pairs}
    expected = sum((sum(1 for p, _ in pairs if p == c) / n) * (sum(1 for _, g in pairs if g == c) / n) for c in categories)
    if math.isclose(expected, 1.0):
        return None
    return (observed - expected) / (1 - expected)


def confusion_matrix(predicted: Sequence[Winner], gold: Sequence[str]) -> dict[str, dict[str, int]]:
    """Counts ``matrix[gold][predicted]`` over {A, B, tie}, with parse failures in their own column
    ``"parse_failure"`` (they are shown, whatever the policy)."""
    _same_length(predicted=predicted, gold=gold)
    matrix = {g: {p: 0 for p in (*WINNER_CLASSES, "parse_failure")} for g in WINNER_CLASSES}
    for p, g in zip(predicted, gold):
        matrix[g]["parse_failure" if p is None else p] += 1
    return matrix


def correlations(predicted_scores: Sequence[float | None], gold_scores: Sequence[float]) -> dict[str, float | None]:
    """Pearson, Spearman and Kendall (tau-b) correlation of the judge's grades with the gold grades
    (scipy.stats ``pearsonr`` / ``spearmanr`` / ``kendalltau``).

    Anchor: prometheus-eval ``eval/utils.py`` ``calculate_correlations`` (Prometheus papers report
    Pearson against the mean of GPT-4's three grades). Items without a parsed grade cannot enter a
    correlation under either policy: they are left out here and counted by ``parse_failure_rate``.
    A coefficient is None with fewer than 2 graded items or a constant input."""
    from scipy import stats

    _same_length(predicted_scores=predicted_scores, gold_scores=gold_scores)
    pairs = [(float(p), float(g)) for p, g in zip(predicted_scores, gold_scores) if p is not None and g is not None]
    result: dict[str, float | None] = {"pearson": None, "spearman": None, "kendall": None}
    if len(pairs) < 2:
        return result
    x = np.array([p for p, _ in pairs])
    y = np.array([g for _, g in pairs])
    if np.all(x == x[0]) or np.all(y == y[0]):
        return result
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, fn in (("pearson", stats.pearsonr), ("spearman", stats.spearmanr), ("kendall", stats.kendalltau)):
            value = float(fn(x, y)[0])
            result[name] = None if math.isnan(value) else value
    return result


# --- answer length -----------------------------------------------------------------------------

LENGTH_UNIT = "characters"
"""The unit of every answer length here: characters of the answer text, all turns together. It needs no
tokenizer, so a predictions file and a model judge are measured alike, and it is the unit of alpaca_eval's
length control (``output.str.len()``) and of the "longer answer wins" baseline."""

LENGTH_SPLITS = ("longer_won", "shorter_won", "equal_length")
"""``longer_won``: the answers differ in length and the label names the longer one; ``shorter_won``: it
names the shorter one; ``equal_length``: both answers are equally long (whatever the label). An item with
answers of different lengths and a tie label is in none of them."""

LENGTH_CONTROL_C = 100.0
"""Inverse strength of the L2 penalty of the length-controlled fit (sklearn's ``C``): alpaca_eval's
``fit_LogisticRegressionCV`` default. It keeps the fit finite when the verdicts follow the label or the
length exactly (separable data, where the unpenalised fit has no maximum)."""

AnswerLengths = Sequence[int]
"""The two answers' lengths of one pairwise item, in :data:`LENGTH_UNIT`, in the sample's order."""


def _check_lengths(lengths: Sequence[AnswerLengths]) -> None:
    for i, pair in enumerate(lengths):
        if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0 for v in pair):
            raise ValueError(f"lengths[{i}]: expected the two answers' lengths in {LENGTH_UNIT} (two non-negative "
                             f"integers), got {pair!r}; build rows with row_of_sample so the lengths come from the sample")


def longer_answer(length_a: int, length_b: int) -> str:
    """The verdict of the rule "the longer answer wins": ``"A"`` when the first answer is longer, ``"B"``
    when the second is, ``"tie"`` when they are equally long."""
    return "A" if length_a > length_b else "B" if length_b > length_a else "tie"


def length_split_per_item(gold: Sequence[str], lengths: Sequence[AnswerLengths]) -> list[str | None]:
    """Each item's :data:`LENGTH_SPLITS` name, or None for different lengths with a tie label."""
    _same_length(gold=gold, lengths=lengths)
    _check_winners(gold, "gold", allow_none=False)
    _check_lengths(lengths)
    out: list[str | None] = []
    for g, (a, b) in zip(gold, lengths):
        longer = longer_answer(a, b)
        if longer == "tie":
            out.append("equal_length")
        elif g == "tie":
            out.append(None)
        else:
            out.append("longer_won" if g == longer else "shorter_won")
    return out


def correct_in_length_split_per_item(predicted: Sequence[Winner], gold: Sequence[str], lengths: Sequence[AnswerLengths],
                                     split: str, policy: str = "wrong") -> np.ndarray:
    """:func:`correct_per_item` on the items of length split ``split`` (:data:`LENGTH_SPLITS`), NaN on the
    others: its mean is the accuracy on the items the longer answer won, the shorter one won, or of equal
    length. A parse failure is wrong (``wrong``) or dropped (``exclude``) as for the accuracy."""
    if split not in LENGTH_SPLITS:
        raise ValueError(f"unknown length split {split!r}; use one of {LENGTH_SPLITS}")
    correct = correct_per_item(predicted, gold, policy)
    in_split = np.array([s == split for s in length_split_per_item(gold, lengths)], dtype=bool)
    return np.where(in_split, correct, np.nan)


def mean_of_rates(*per_item: np.ndarray) -> float | None:
    """The unweighted mean of several rates (each the mean of its per-item values, NaN = excluded);
    None when any of them has no items. A balanced accuracy is this mean over its splits."""
    rates = [_rate(np.asarray(values, dtype=float)) for values in per_item]
    if not rates or any(r is None for r in rates):
        return None
    return float(np.mean(rates))


def length_balanced_accuracy(predicted: Sequence[Winner], gold: Sequence[str], lengths: Sequence[AnswerLengths],
                             policy: str = "wrong") -> float | None:
    """The mean of the accuracy where the longer answer won and the accuracy where the shorter one won.

    The rule "the longer answer wins" scores 1 on the first split and 0 on the second, so exactly 0.5
    whatever the share of items the longer answer won: above 0.5 a judge knows something length does
    not. Equal lengths and tie labels on different lengths enter neither split. None when a split is
    empty. judgetrain's own (no upstream figure), a balanced accuracy over the two length splits."""
    return mean_of_rates(*(correct_in_length_split_per_item(predicted, gold, lengths, split, policy)
                           for split in ("longer_won", "shorter_won")))


def picked_longer_per_item(winners: Sequence[Winner], lengths: Sequence[AnswerLengths]) -> np.ndarray:
    """1.0 where a decided winner (A or B) is the longer answer, 0.0 where it is the shorter one; NaN for
    a tie, a parse failure (None) or two answers of equal length. Its mean over the judge's verdicts is
    the share of decided verdicts that go to the longer answer; over the labels, the labels' own share."""
    _same_length(winners=winners, lengths=lengths)
    _check_winners(winners, "winners")
    _check_lengths(lengths)
    out = np.full(len(winners), np.nan)
    for i, (w, (a, b)) in enumerate(zip(winners, lengths)):
        longer = longer_answer(a, b)
        if w in ("A", "B") and longer != "tie":
            out[i] = float(w == longer)
    return out


def length_control_inputs(predicted: Sequence[Winner], gold: Sequence[str], lengths: Sequence[AnswerLengths],
                          policy: str = "wrong") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the judge's preference for A, whether the label is A, length of A minus length of B) of the items
    the length-controlled agreement is fitted on: those labelled A or B, less the parse failures under
    ``exclude``.

    The preference is 1 for a verdict A, 0 for B and 0.5 for a tie (alpaca_eval's preference for a
    draw); a parse failure under ``wrong`` is the verdict against the label (0 when the label is A, 1
    when it is B), so it counts against the judge as it does in the accuracy."""
    check_policy(policy)
    _same_length(predicted=predicted, gold=gold, lengths=lengths)
    _check_winners(predicted, "predicted")
    _check_winners(gold, "gold", allow_none=False)
    _check_lengths(lengths)
    preference, label_is_a, difference = [], [], []
    for p, g, (a, b) in zip(predicted, gold, lengths):
        if g == "tie" or (p is None and policy == "exclude"):
            continue
        preference.append(({"A": 1.0, "B": 0.0, "tie": 0.5}[p]) if p is not None else float(g == "B"))
        label_is_a.append(g == "A")
        difference.append(float(a - b))
    return np.array(preference, dtype=float), np.array(label_is_a, dtype=bool), np.array(difference, dtype=float)


def _length_control_fit(preference: np.ndarray, design: np.ndarray, start: np.ndarray | None) -> np.ndarray:
    """Weights of the penalised logistic fit of ``preference`` (fractions in [0, 1]) on ``design``."""
    from scipy.optimize import minimize

    def probability(weights: np.ndarray) -> np.ndarray:
        return np.exp(-np.logaddexp(0.0, -(design @ weights)))

    def loss(weights: np.ndarray) -> float:
        logits = design @ weights
        # Cross-entropy of a fractional target: softplus(logit) - target * logit, summed over items.
        return float(np.sum(np.logaddexp(0.0, logits) - preference * logits)) + weights @ weights / (2 * LENGTH_CONTROL_C)

    def gradient(weights: np.ndarray) -> np.ndarray:
        return design.T @ (probability(weights) - preference) + weights / LENGTH_CONTROL_C

    def hessian(weights: np.ndarray) -> np.ndarray:
        p = probability(weights)
        return (design * (p * (1 - p))[:, None]).T @ design + np.eye(design.shape[1]) / LENGTH_CONTROL_C

    # Three weights and a smooth, strictly convex objective: Newton steps converge in a few iterations,
    # which keeps a thousand bootstrap refits to seconds.
    x0 = np.zeros(design.shape[1]) if start is None else start
    return minimize(loss, x0, jac=gradient, hess=hessian, method="Newton-CG").x


def length_controlled_agreement_of(preference: np.ndarray, label_is_a: np.ndarray, length_difference: np.ndarray, *,
                                   start: np.ndarray | None = None) -> tuple[float | None, np.ndarray | None]:
    """(the length-controlled agreement, the fitted weights) from :func:`length_control_inputs`; ``start``
    the weights to start the fit from (a bootstrap resample starts from the full fit)."""
    num_items = len(preference)
    if num_items == 0:
        return None, None
    # alpaca_eval standardises the length difference by its standard deviation (pandas' ddof=1) and
    # squashes it with tanh, so a few very long answers do not dominate the fit.
    spread = float(np.std(length_difference, ddof=1)) if num_items > 1 else 0.0
    squashed = np.tanh(length_difference / spread) if spread > 0 else np.zeros(num_items)
    # No intercept (alpaca_eval: fit_intercept=False): one weight per label class plays its part.
    design = np.column_stack([label_is_a, ~label_is_a, squashed]).astype(float)
    weights = _length_control_fit(preference, design, start)
    # Read at length difference 0: P(verdict A) = sigmoid(weight of the item's label class).
    prefer_a = np.exp(-np.logaddexp(0.0, -(design[:, :2] @ weights[:2])))
    agreement = np.where(label_is_a, prefer_a, 1.0 - prefer_a)
    return float(agreement.mean()), weights


def length_controlled_agreement(predicted: Sequence[Winner], gold: Sequence[str], lengths: Sequence[AnswerLengths],
                                policy: str = "wrong") -> float | None:
    """The judge's agreement with the label when both answers are equally long, in the manner of
    AlpacaEval's length-controlled win rate.

    Anchor: alpaca_eval ``src/alpaca_eval/metrics/glm_winrate.py`` ``get_length_controlled_winrate``
    (Dubois et al. 2024, "Length-Controlled AlpacaEval"): a logistic GLM of the annotator's preference
    on the model terms and ``tanh(delta_len / std(delta_len))``, without intercept, read with the length
    term at 0 and averaged over the items. Here, on the items labelled A or B
    (:func:`length_control_inputs`): ``P(judge prefers A) = sigmoid(w_A [label A] + w_B [label B] +
    w_len tanh(d / std(d)))`` with ``d`` the length of A minus the length of B in characters, fitted on
    the fractional preference (a tie is 0.5) with an L2 penalty ``|w|^2 / (2 C)``, ``C`` =
    :data:`LENGTH_CONTROL_C` (alpaca_eval: L1, ``C`` chosen by cross-validation); the figure is the mean
    over those items of the predicted probability, at ``d = 0``, of the verdict the label gives:
    ``sigmoid(w_A)`` for an item labelled A, ``1 - sigmoid(w_B)`` for one labelled B. A judge that
    follows only the label is near 1; one that follows only the length (on labels that do not
    depend on it) is near 0.5. None without items."""
    return length_controlled_agreement_of(*length_control_inputs(predicted, gold, lengths, policy))[0]


# --- both orders into one vote ----------------------------------------------------------------

def combine_orders(predicted: Winner, predicted_swapped: Winner) -> Winner:
    """One vote from the two orders, FastChat's conservative rule (MT-bench paper, §3.4): the
    verdict when both orders agree, a tie when they disagree; None when either failed to parse."""
    if predicted is None or predicted_swapped is None:
        return None
    return predicted if predicted == predicted_swapped else "tie"


# --- MT-bench agreement ------------------------------------------------------------------------

@dataclass(frozen=True)
class Vote:
    """One pairwise vote on an MT-bench question, FastChat's record (``winner`` "A" / "B" / "tie",
    in the order ``model_a``, ``model_b``; None for a judge output that did not parse).

    ``judge`` names who voted (``"human"`` for every expert, ``"gpt4-pair"``, a judge name …)."""

    question_id: Any
    model_a: str
    model_b: str
    turn: int
    judge: str
    winner: Winner


def mtbench_vote_key(vote: Vote) -> tuple[tuple[Any, str, str], Winner]:
    """FastChat ``get_mt_bench_votes_data``: the key is (question_id, the model names sorted); when
    the pair is stored the other way round the winner is reverted so it reads in key order."""
    if vote.model_a < vote.model_b:
        return (vote.question_id, vote.model_a, vote.model_b), vote.winner
    return (vote.question_id, vote.model_b, vote.model_a), flip(vote.winner)


def mtbench_agreement(votes: Iterable[Vote], judge: str, reference: str, *, turn: int, with_ties: bool,
                      policy: str = "wrong") -> tuple[int, int]:
    """(agreeing comparisons, compared comparisons) between two judges on one MT-bench turn.

    Anchor: FastChat ``fastchat/llm_judge/compute_agreement.py`` (MT-bench paper Table 2):

    * votes are grouped by key (question, sorted model pair) within the turn (:func:`mtbench_vote_key`);
    * ``judge`` must have at most one vote per key (FastChat asserts it); each vote of ``reference``
      on the same key is one comparison, so a pair with three expert votes counts three times;
    * when ``judge == reference`` (human-human), every pair of distinct votes on a key is one comparison;
    * S1 (``with_ties=True``) keeps every comparison; S2 (``with_ties=False``) drops a comparison when
      either vote is a tie (FastChat's ``ban=["tie"]``; every tie kind, e.g. "tie (bothbad)", was
      already mapped to "tie");
    * a comparison agrees when the two winners are equal.

    A vote that did not parse (winner None) is a disagreement that S2 keeps (``wrong``) or is left out
    (``exclude``)."""
    check_policy(policy)
    by_key: dict[tuple, dict[str, list[Winner]]] = defaultdict(lambda: defaultdict(list))
    for vote in votes:
        if vote.turn != turn:
            continue
        key, winner = mtbench_vote_key(vote)
        by_key[key][vote.judge].append(winner)

    def banned(winner: Winner) -> bool:
        if winner is None:
            return policy == "exclude"
        return not with_ties and winner == "tie"

    agree = total = 0
    for key, judges in by_key.items():
        if judge == reference:
            own = judges.get(judge, [])
            comparisons = [(own[i], own[j]) for i in range(len(own)) for j in range(i + 1, len(own))]
        else:
            if judge not in judges or reference not in judges:
                continue
            if len(judges[judge]) != 1:
                raise ValueError(f"judge {judge!r} has {len(judges[judge])} votes on {key} turn {turn}; expected one")
            comparisons = [(judges[judge][0], other) for other in judges[reference]]
        for a, b in comparisons:
            if banned(a) or banned(b):
                continue
            total += 1
            agree += int(a is not None and a == b)
    return agree, total


def mtbench_agreement_items(votes: Sequence[Vote], judge: str, reference: str, *, turn: int, with_ties: bool,
                            policy: str = "wrong") -> np.ndarray:
    """The comparisons of :func:`mtbench_agreement` as a 0/1 array (for bootstrapping); its mean is
    the agreement and its length the comparison count."""
    agree, total = mtbench_agreement(votes, judge, reference, turn=turn, with_ties=with_ties, policy=policy)
    return np.concatenate([np.ones(agree), np.zeros(total - agree)])


# --- win rates ---------------------------------------------------------------------------------

def win_rates(matches: Iterable[tuple[str, str, Winner, Winner]]) -> dict[str, dict[str, float]]:
    """Per-model wins, losses, ties, win rate and adjusted win rate (a tie counts 0.5).

    Anchor: FastChat ``fastchat/llm_judge/show_result.py`` ``display_result_pairwise``. Each match is
    (model_1, model_2, g1_winner, g2_winner), both winners in model_1/model_2 terms ("A" = model_1).
    The match is a tie for both models when ``g1_winner`` is a tie or the two orders disagree;
    otherwise the winner gets a win and the loser a loss. A match with a parse failure in either order
    is left out, as FastChat drops its "error" rows.
    ``win_rate = win / (win + loss + tie)``, ``win_rate_adjusted = (win + 0.5 tie) / (win + loss + tie)``."""
    counts: dict[str, dict[str, float]] = defaultdict(lambda: {"win": 0, "loss": 0, "tie": 0})
    for model_1, model_2, g1, g2 in matches:
        if g1 is None or g2 is None:
            continue
        if g1 == "tie" or g1 != g2:
            counts[model_1]["tie"] += 1
            counts[model_2]["tie"] += 1
        else:
            winner, loser = (model_1, model_2) if g1 == "A" else (model_2, model_1)
            counts[winner]["win"] += 1
            counts[loser]["loss"] += 1
    out = {}
    for model, c in sorted(counts.items()):
        total = c["win"] + c["loss"] + c["tie"]
        out[model] = {**c, "win_rate": c["win"] / total, "loss_rate": c["loss"] / total,
                      "win_rate_adjusted": (c["win"] + 0.5 * c["tie"]) / total}
    return out


# --- bootstrap --------------------------------------------------------------------------------

DEFAULT_BOOTSTRAP_RESAMPLES = 1000


@dataclass(frozen=True)
class Estimate:
    """A metric's value with its bootstrap interval and the number of items behind it.

    ``value`` is None when the metric had no items to work on (an empty group, every item excluded)."""

    value: float | None
    low: float | None = None
    high: float | None = None
    num_items: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "low": self.low, "high": self.high, "num_items": self.num_items}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Estimate":
        return cls(value=data.get("value"), low=data.get("low"), high=data.get("high"), num_items=int(data.get("num_items", 0)))


def bootstrap_interval(statistic: Callable[[np.ndarray], float | None], num_items: int, *,
                       num_resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES, confidence: float = 0.95,
                       seed: int = 0) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of ``statistic`` (a function of item indices) over items resampled
    with replacement; seeded, so the same inputs give the same interval. Resamples where the statistic
    is undefined (None) are skipped; None, None when none is defined or there are no items."""
    if num_items == 0 or num_resamples <= 0:
        return None, None
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(num_resamples):
        value = statistic(rng.integers(0, num_items, size=num_items))
        if value is not None and not math.isnan(value):
            values.append(value)
    if not values:
        return None, None
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def estimate_rate(per_item: np.ndarray, *, num_resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES, seed: int = 0,
                  confidence: float = 0.95) -> Estimate:
    """The mean of a per-item value (NaN = excluded) with its bootstrap interval.

    The resampling is over the kept items only, which is vectorised: one (resamples x items) draw."""
    kept = np.asarray(per_item, dtype=float)
    kept = kept[~np.isnan(kept)]
    if kept.size == 0:
        return Estimate(None, None, None, 0)
    value = float(kept.mean())
    if num_resamples <= 0:
        return Estimate(value, None, None, int(kept.size))
    rng = np.random.default_rng(seed)
    means = kept[rng.integers(0, kept.size, size=(num_resamples, kept.size))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Estimate(value, float(low), float(high), int(kept.size))


def estimate_statistic(statistic: Callable[[np.ndarray], float | None], num_items: int, *,
                       num_resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES, seed: int = 0,
                       confidence: float = 0.95) -> Estimate:
    """A statistic of all items (macro F1, kappa, a correlation) with its bootstrap interval."""
    value = statistic(np.arange(num_items)) if num_items else None
    if value is None or math.isnan(value):
        return Estimate(None, None, None, num_items)
    low, high = bootstrap_interval(statistic, num_items, num_resamples=num_resamples, seed=seed, confidence=confidence)
    return Estimate(float(value), low, high, num_items)


def estimate_statistics(statistics: Callable[[np.ndarray], Mapping[str, float | None]], num_items: int, *,
                        num_resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES, seed: int = 0,
                        confidence: float = 0.95) -> dict[str, Estimate]:
    """Several statistics computed together (macro P / R / F1, the three correlations), each with its
    bootstrap interval, from one shared set of resamples (one call per resample instead of one per
    statistic)."""
    values = statistics(np.arange(num_items))
    if not num_items:
        return {key: Estimate(None, None, None, 0) for key in values}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {key: [] for key in values}
    for _ in range(max(num_resamples, 0)):
        for key, value in statistics(rng.integers(0, num_items, size=num_items)).items():
            if key in draws and value is not None and not math.isnan(value):
                draws[key].append(value)
    tail = (1 - confidence) / 2 * 100
    out = {}
    for key, value in values.items():
        if value is None or math.isnan(value):
            out[key] = Estimate(None, None, None, num_items)
        elif draws[key]:
            low, high = np.percentile(draws[key], [tail, 100 - tail])
            out[key] = Estimate(float(value), float(low), float(high), num_items)
        else:
            out[key] = Estimate(float(value), None, None, num_items)
    return out


def _agreement_from_counts(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Macro P / R / F1 and kappa from confusion counts ``counts[..., gold, verdict]`` (gold over
    A / B / tie, verdict over A / B / tie / parse failure), vectorised over leading axes: the same
    definitions as :func:`macro_precision_recall_f1` and :func:`cohen_kappa`."""
    counts = counts.astype(float)
    n = counts.sum(axis=(-2, -1))
    diagonal = np.stack([counts[..., c, c] for c in range(3)], axis=-1)
    predicted = counts[..., :, :3].sum(axis=-2)          # per class: items given that verdict
    gold = counts.sum(axis=-1)                           # per class: items with that label (failures included)
    present = (predicted > 0) | (gold > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, diagonal / predicted, 0.0)
        recall = np.where(gold > 0, diagonal / gold, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        num_present = present.sum(axis=-1)
        out = {key: np.where(num_present > 0, (values * present).sum(axis=-1) / num_present, np.nan)
               for key, values in (("macro_precision", precision), ("macro_recall", recall), ("macro_f1", f1))}
        observed = diagonal.sum(axis=-1) / n
        expected = (predicted * gold).sum(axis=-1) / (n * n)
        out["kappa"] = np.where(np.isclose(expected, 1.0) | (n == 0), np.nan, (observed - expected) / (1 - expected))
    return out


def agreement_estimates(predicted: Sequence[Winner], gold: Sequence[str], policy: str = "wrong", *,
                        num_resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES, seed: int = 0,
                        confidence: float = 0.95) -> dict[str, Estimate]:
    """``macro_precision``, ``macro_recall``, ``macro_f1`` and ``kappa`` with bootstrap intervals,
    computed from confusion counts so that every resample costs one ``bincount``."""
    check_policy(policy)
    _same_length(predicted=predicted, gold=gold)
    _check_winners(predicted, "predicted")
    _check_winners(gold, "gold", allow_none=False)
    code = {"A": 0, "B": 1, "tie": 2, None: 3}
    pairs = [(code[g], code[p]) for p, g in zip(predicted, gold) if not (p is None and policy == "exclude")]
    num_items = len(pairs)
    keys = ("macro_precision", "macro_recall", "macro_f1", "kappa")
    if num_items == 0:
        return {key: Estimate(None, None, None, 0) for key in keys}
    cells = np.array([g * 4 + p for g, p in pairs])
    values = _agreement_from_counts(np.bincount(cells, minlength=12).reshape(3, 4))
    intervals: dict[str, tuple[float | None, float | None]] = {key: (None, None) for key in keys}
    if num_resamples > 0:
        rng = np.random.default_rng(seed)
        drawn = cells[rng.integers(0, num_items, size=(num_resamples, num_items))]
        offsets = (np.arange(num_resamples) * 12)[:, None]
        counts = np.bincount((drawn + offsets).ravel(), minlength=12 * num_resamples).reshape(num_resamples, 3, 4)
        tail = (1 - confidence) / 2 * 100
        for key, draws in _agreement_from_counts(counts).items():
            draws = draws[~np.isnan(draws)]
            if draws.size:
                low, high = np.percentile(draws, [tail, 100 - tail])
                intervals[key] = (float(low), float(high))
    out = {}
    for key in keys:
        value = float(values[key])
        out[key] = Estimate(None if math.isnan(value) else value, *intervals[key], num_items) if not math.isnan(value) \
            else Estimate(None, None, None, num_items)
    return out
