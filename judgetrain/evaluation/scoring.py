"""The scorer: :class:`~judgetrain.evaluation.rows.ItemResult` rows in, metrics with bootstrap intervals out.

``judgetrain eval`` (every benchmark), the quickstart's before/after table and the training
judge-agreement callback (which logs each metric as ``judge/<name>``) all call :func:`score_items`, so
a name means one thing wherever it is shown. Conventions (see :mod:`judgetrain.metrics`): a pairwise
verdict is ``"A"`` / ``"B"`` / ``"tie"`` in the sample's own order (the swapped order's mapped back),
``None`` a parse failure; a failure is never a tie; rates are fractions in [0, 1], micro averages
over items; under the parse-failure policy ``wrong`` a failure counts against the judge, under
``exclude`` the item leaves each metric the failure touches.

Strict and lenient. Each judge call's raw output is also read again by its format's strict and its
lenient parser (no second generation); the headline metrics of both readings are under
``parser_modes`` in the result, beside the metrics of the verdicts the judge itself returned.

Length. A judge can look good by preferring the longer answer, so every pairwise result also holds
``length`` (:func:`length_metrics`): the accuracy where the longer answer won, where the shorter one
won and on answers of equal length, their balanced mean (0.5 for "the longer answer wins"), how often
the judge and the labels pick the longer answer, and the agreement at equal length from a logistic fit
in the manner of AlpacaEval's length-controlled win rate. Lengths are characters of the answer text
(:data:`judgetrain.metrics.LENGTH_UNIT`), the unit of the "longer answer wins" baselines too.

The metric names (the table is :data:`METRIC_DEFINITIONS`; each anchor is the upstream code whose
figure the metric reproduces):

"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from judgetrain import metrics as m
from judgetrain.evaluation.rows import PARSER_MODES, ItemResult

METRIC_DEFINITIONS: dict[str, tuple[str, str]] = {
    "accuracy": ("share of items whose original-order verdict equals the gold label; for grade pairs, share of pairs "
                 "whose chosen answer got a strictly higher grade",
                 "JudgeLM eval_model_judgement.py accuracy_score; PandaLM accuracy; Prometheus calculate_one_abs_acc "
                 "(grade pairs)"),
    "combined_accuracy": ("share of items whose combined both-orders verdict (the verdict when the two orders agree, a "
                          "tie when they disagree, a failure when either failed) equals the gold label",
                          "FastChat MT-bench conservative two-order rule (paper §3.4)"),
    "debiased_accuracy": ("share of items whose position-debiased verdict (mean P(A) − P(B) over the two orders against "
                          "the tie margin; Judge aggregation='probabilities') equals the gold label; a pair without "
                          "winner probabilities counts with the verdicts rule's aggregate",
                          "judgetrain's own (no upstream figure)"),
    "both_orders_agreement": ("share of items whose verdict is correct in the original AND the swapped order",
                              "Auto-J pairwise_eval.py 'agreement' (correct_both)"),
    "consistency": ("share of items with the same verdict in both orders (mapped back); a failure in either order is "
                    "inconsistent (policy wrong)",
                    "JudgeLM eval_model_judgement.py consistency; Auto-J 1 - exchange_dont_agree / total"),
    "positional_agreement": ("share of items whose two raw order outputs, mapped back, are equal, two failed outputs "
                             "counting as equal (LLMBar's count); policy exclude drops items with a failure",
                             "LLMBar LLMEvaluator/evaluate.py 'equal'"),
    "prefer_first_rate": ("share of items where the judge leaned to the first-shown answer",
                          "JudgeLM eval_model_judgement.py perfer_before_rate"),
    "prefer_second_rate": ("share of items where the judge leaned to the second-shown answer",
                           "JudgeLM eval_model_judgement.py perfer_after_rate"),
    "position_bias": ("prefer_first_rate - prefer_second_rate (signed; JudgeLM's delta_bias is its absolute value)",
                      "JudgeLM eval_model_judgement.py delta_bias"),
    "macro_precision": ("precision averaged over the classes of {A, B, tie} present", "JudgeLM (sklearn macro)"),
    "macro_recall": ("recall averaged over the classes of {A, B, tie} present", "JudgeLM (sklearn macro)"),
    "macro_f1": ("per-class F1 averaged over the classes of {A, B, tie} present", "JudgeLM (sklearn macro)"),
    "kappa": ("Cohen's kappa between the original-order verdicts and the gold labels", "sklearn cohen_kappa_score"),
    "llmbar_accuracy": ("mean of the two orders' accuracies", "LLMBar LLMEvaluator/evaluate.py correct_average"),
    "judgebench_score": ("share of pairs with (+1 per order matching the label, -1 per order matching the flipped label) > 0",
                         "JudgeBench utils/metrics.py compute_final_metrics(reverse_order=True)"),
    "s1_agreement": ("agreement with the reference judge over all shared votes, ties included",
                     "FastChat compute_agreement.py (MT-bench S1)"),
    "s2_agreement": ("agreement with the reference judge over shared votes without any tie vote",
                     "FastChat compute_agreement.py ban=['tie'] (MT-bench S2)"),
    "pearson": ("Pearson correlation of the judge's grades with the gold grades", "prometheus-eval (scipy pearsonr)"),
    "spearman": ("Spearman rank correlation of the judge's grades with the gold grades", "scipy spearmanr"),
    "kendall": ("Kendall tau-b of the judge's grades with the gold grades", "scipy kendalltau"),
    "parse_failure_rate": ("share of judge calls (each order of each item is one call) whose output did not parse",
                           "judgetrain's own"),
    "accuracy_when_longer_answer_won": ("accuracy (original-order verdict) on the items whose answers differ in length "
                                        "(characters of the answer text) and whose label names the longer one",
                                        "judgetrain's own (no upstream figure)"),
    "accuracy_when_shorter_answer_won": ("accuracy (original-order verdict) on the items whose answers differ in length "
                                         "(characters) and whose label names the shorter one",
                                         "judgetrain's own (no upstream figure)"),
    "accuracy_when_equal_length": ("accuracy (original-order verdict) on the items whose two answers have the same "
                                   "length in characters, whatever the label",
                                   "judgetrain's own (no upstream figure)"),
    "length_balanced_accuracy": ("mean of accuracy_when_longer_answer_won and accuracy_when_shorter_answer_won; the "
                                 "rule 'the longer answer wins' scores exactly 0.5",
                                 "judgetrain's own (a balanced accuracy over the two length splits)"),
    "judge_picked_longer_rate": ("share of the judge's decided original-order verdicts (A or B: not a tie, not a "
                                 "failure) on answers of different lengths (characters) that name the longer answer",
                                 "judgetrain's own"),
    "label_picked_longer_rate": ("share of the gold labels naming a winner (A or B) on answers of different lengths "
                                 "(characters) that name the longer answer: the accuracy of 'the longer answer wins' "
                                 "on those items",
                                 "judgetrain's own"),
    "length_controlled_agreement": ("on the items labelled A or B, a logistic fit of the judge's preference for A (1 A, "
                                    "0 B, 0.5 tie; a failure is the verdict against the label under policy wrong) on "
                                    "[label A], [label B] and tanh(d / std(d)), d = characters of A - characters of B, "
                                    f"no intercept, L2 penalty with C = {m.LENGTH_CONTROL_C:g}; the mean over those items of the predicted "
                                    "probability of the label's verdict at d = 0: the agreement when both answers are "
                                    "equally long",
                                    "alpaca_eval metrics/glm_winrate.py get_length_controlled_winrate (Dubois et al. "
                                    "2024, Length-Controlled AlpacaEval), the label in place of the model terms"),
    "num_items": ("number of benchmark items scored", ""),
}
"""Every metric name the scorer writes: (definition, anchor). ``<name>_gpt4…`` keys are the same
metric against GPT-4's votes (MT-bench)."""


def definition(key: str) -> str:
    """The one-line definition of metric ``key`` (a ``_gpt4…`` suffix names the reference judge)."""
    base = key.split("_gpt4")[0]
    text = METRIC_DEFINITIONS.get(base, ("", ""))[0]
    return text + (" (against GPT-4's votes)" if base != key and text else "")


def _definitions_table() -> str:
    width = max(len(name) for name in METRIC_DEFINITIONS) + 5  # the name in double backquotes, and a gap
    rule = "=" * (width - 1) + "  " + "=" * 58
    lines = [rule, "name".ljust(width) + "definition — anchor", rule]
    for name, (text, anchor) in METRIC_DEFINITIONS.items():
        lines.append(f"``{name}``".ljust(width) + f"{text}" + (f" — {anchor}" if anchor else ""))
    lines.append(rule)
    return "\n".join(lines) + "\n"


if __doc__ is not None:  # python -OO drops docstrings
    __doc__ += _definitions_table()

HUMAN_JUDGE_PREFIX = "expert"
"""MT-bench: labels whose key starts with this are the expert (human) votes FastChat compares with."""

JUDGE_VOTER = "judge-under-evaluation"


def _pairwise_metrics(rows: Sequence[ItemResult], policy: str, num_resamples: int, seed: int) -> dict[str, m.Estimate]:
    gold = [r.gold_winner for r in rows]
    first = [r.verdict for r in rows]
    both = bool(rows) and all(r.both_orders for r in rows)
    second = [r.verdict_swapped for r in rows] if both else None
    est: dict[str, m.Estimate] = {}

    def rate(per_item: np.ndarray) -> m.Estimate:
        return m.estimate_rate(per_item, num_resamples=num_resamples, seed=seed)

    est["accuracy"] = rate(m.correct_per_item(first, gold, policy))
    est.update(m.agreement_estimates(first, gold, policy, num_resamples=num_resamples, seed=seed))
    if second is not None:
        combined = [m.combine_orders(p, q) for p, q in zip(first, second)]
        est["combined_accuracy"] = rate(m.correct_per_item(combined, gold, policy))
        est["both_orders_agreement"] = rate(m.both_orders_correct_per_item(first, second, gold, policy))
        est["consistency"] = rate(m.consistent_per_item(first, second, policy))
        est["positional_agreement"] = rate(m.positional_agreement_per_item(first, second, policy))
        preference = m.position_preference_per_item(first, second, policy)
        est["prefer_first_rate"] = rate(np.where(np.isnan(preference), np.nan, (preference > 0).astype(float)))
        est["prefer_second_rate"] = rate(np.where(np.isnan(preference), np.nan, (preference < 0).astype(float)))
        est["position_bias"] = rate(np.where(np.isnan(preference), np.nan, preference))
        est["llmbar_accuracy"] = rate(m.llmbar_correct_per_item(first, second, gold, policy))
        if all(g in ("A", "B") for g in gold):
            est["judgebench_score"] = rate(m.judgebench_correct_per_item(first, second, gold, policy))
        if any(r.aggregated_by == "probabilities" for r in rows):
            est["debiased_accuracy"] = rate(m.correct_per_item([r.verdict_aggregate for r in rows], gold, policy))
    est["parse_failure_rate"] = rate(m.parse_failed_per_item(*([first, second] if second is not None else [first])))
    return est


def _mtbench_votes(rows: Sequence[ItemResult], judge_name: str) -> list[m.Vote]:
    votes = []
    for r in rows:
        models = r.meta.get("models") or ["model_a", "model_b"]
        question_id = r.meta.get("question_id", r.id)
        turn = int(r.meta.get("turn", 1))
        own = m.combine_orders(r.verdict, r.verdict_swapped) if r.both_orders else r.verdict
        votes.append(m.Vote(question_id, models[0], models[1], turn, judge_name, own))
        for who, label in r.labels.items():
            winner = label.get("winner")
            if winner is None:
                continue
            reference = "human" if who.startswith(HUMAN_JUDGE_PREFIX) else who
            votes.append(m.Vote(question_id, models[0], models[1], turn, reference, winner))
    return votes


def _mtbench_metrics(rows: Sequence[ItemResult], policy: str, num_resamples: int, seed: int,
                     references: Sequence[str]) -> dict[str, m.Estimate]:
    """S1 / S2 agreement of the judge with each reference (``human`` first), pooled over the turns
    present: the comparisons of both turns together, as the per-turn groups split them."""
    votes = _mtbench_votes(rows, JUDGE_VOTER)
    turns = sorted({v.turn for v in votes})
    est: dict[str, m.Estimate] = {}
    for reference in references:
        suffix = "" if reference == "human" else f"_{reference}"
        for key, with_ties in (("s1_agreement", True), ("s2_agreement", False)):
            items = np.concatenate([m.mtbench_agreement_items(votes, JUDGE_VOTER, reference, turn=t, with_ties=with_ties,
                                                              policy=policy) for t in turns] or [np.zeros(0)])
            est[key + suffix] = m.estimate_rate(items, num_resamples=num_resamples, seed=seed)
    return est


def _metrics_for(rows: Sequence[ItemResult], kind: str, wanted: Sequence[str] | None, label_key: str | None,
                 policy: str, num_resamples: int, seed: int) -> dict[str, m.Estimate]:
    if kind == "pairwise":
        est = _pairwise_metrics(rows, policy, num_resamples, seed)
        if wanted is not None and "s1_agreement" in wanted:
            references = ["human"] + sorted({k for r in rows for k in r.labels if not k.startswith(HUMAN_JUDGE_PREFIX)
                                             and k != label_key and k.startswith("gpt4")})
            est.update(_mtbench_metrics(rows, policy, num_resamples, seed, references))
    elif kind == "grading":
        predicted = [r.scores[0] if r.scores else None for r in rows]
        gold = [r.gold_score for r in rows]
        est = m.estimate_statistics(lambda idx: m.correlations([predicted[i] for i in idx], [gold[i] for i in idx]),
                                    len(rows), num_resamples=num_resamples, seed=seed)
        est["parse_failure_rate"] = m.estimate_rate(m.parse_failed_per_item(predicted), num_resamples=num_resamples, seed=seed)
    elif kind == "grade_pair":
        preferred, other = [], []
        for r in rows:
            scores = r.scores or [None, None]
            first_preferred = r.gold_winner != "B"
            preferred.append(scores[0] if first_preferred else scores[1])
            other.append(scores[1] if first_preferred else scores[0])
        est = {"accuracy": m.estimate_rate(m.grade_pair_correct_per_item(preferred, other, policy),
                                           num_resamples=num_resamples, seed=seed),
               "parse_failure_rate": m.estimate_rate(m.parse_failed_per_item(preferred, other),
                                                     num_resamples=num_resamples, seed=seed)}
    else:
        raise ValueError(f"kind must be pairwise, grading or grade_pair, got {kind!r}")
    est["num_items"] = m.Estimate(float(len(rows)), None, None, len(rows))
    if wanted is None:
        return est
    kept = set(wanted) | {"parse_failure_rate", "num_items"}
    if "combined_accuracy" in est or "debiased_accuracy" in est:
        # The judge's own both-orders verdicts are shown wherever both orders were judged.
        kept |= {"combined_accuracy", "debiased_accuracy"}
    return {k: v for k, v in est.items() if k in kept or k.split("_gpt4")[0] in kept}


LENGTH_METRICS = ("accuracy_when_longer_answer_won", "accuracy_when_shorter_answer_won", "accuracy_when_equal_length",
                  "length_balanced_accuracy", "judge_picked_longer_rate", "label_picked_longer_rate",
                  "length_controlled_agreement")
"""The length-controlled metrics of a pairwise run (``result["length"]["metrics"]``), in the order shown."""


def length_metrics(rows: Sequence[ItemResult], policy: str, num_resamples: int, seed: int) -> dict[str, Any]:
    """Whether the judge knows something length does not: :data:`LENGTH_METRICS` with bootstrap
    intervals, from the original-order verdicts of the rows that carry both answers' lengths (in
    :data:`judgetrain.metrics.LENGTH_UNIT`, filled by :func:`~judgetrain.evaluation.rows.row_of_sample`).

    ``{"unit": "characters", "num_items": rows with lengths, "metrics": {name: estimate}}``. Each split
    accuracy resamples its own items, as every rate does; the balanced accuracy resamples the items of
    both splits together and the length-controlled agreement refits on each resample of its items."""
    measured = [r for r in rows if len(r.answer_lengths) == 2 and r.gold_winner is not None]
    verdicts = [r.verdict for r in measured]
    gold = [r.gold_winner for r in measured]
    lengths = [r.answer_lengths for r in measured]

    def rate(per_item: np.ndarray) -> m.Estimate:
        return m.estimate_rate(per_item, num_resamples=num_resamples, seed=seed)

    split = {name: m.correct_in_length_split_per_item(verdicts, gold, lengths, name, policy) for name in m.LENGTH_SPLITS}
    est = {"accuracy_when_longer_answer_won": rate(split["longer_won"]),
           "accuracy_when_shorter_answer_won": rate(split["shorter_won"]),
           "accuracy_when_equal_length": rate(split["equal_length"])}
    # Only the items of the two splits enter the balanced accuracy, so only they are resampled.
    in_splits = ~(np.isnan(split["longer_won"]) & np.isnan(split["shorter_won"]))
    longer, shorter = split["longer_won"][in_splits], split["shorter_won"][in_splits]
    est["length_balanced_accuracy"] = m.estimate_statistic(lambda idx: m.mean_of_rates(longer[idx], shorter[idx]),
                                                           len(longer), num_resamples=num_resamples, seed=seed)
    est["judge_picked_longer_rate"] = rate(m.picked_longer_per_item(verdicts, lengths))
    est["label_picked_longer_rate"] = rate(m.picked_longer_per_item(gold, lengths))
    preference, label_is_a, difference = m.length_control_inputs(verdicts, gold, lengths, policy)
    _, full_fit = m.length_controlled_agreement_of(preference, label_is_a, difference)

    def controlled(idx: np.ndarray) -> float | None:
        # Each resample starts from the full fit: the same optimum is reached in fewer Newton steps.
        return m.length_controlled_agreement_of(preference[idx], label_is_a[idx], difference[idx], start=full_fit)[0]

    est["length_controlled_agreement"] = m.estimate_statistic(controlled, len(preference), num_resamples=num_resamples,
                                                              seed=seed)
    return {"unit": m.LENGTH_UNIT, "num_items": len(measured), "metrics": {k: est[k].to_dict() for k in LENGTH_METRICS}}


def rows_read_by(rows: Sequence[ItemResult], mode: str, kind: str) -> list[ItemResult] | None:
    """``rows`` with their verdicts replaced by the ``mode`` parser's reading of the same raw outputs
    (see :data:`~judgetrain.evaluation.rows.PARSER_MODES`), or None when a row has no such reading.
    The judge's own both-orders aggregate is left out: it was decided on the judge's reading."""
    if not rows or any(mode not in r.readings for r in rows):
        return None
    out = []
    for r in rows:
        reading = r.readings[mode]
        if kind == "pairwise":
            read = [reading["verdict"]] + ([reading["verdict_swapped"]] if r.both_orders else [])
        else:
            read = list(reading["scores"] or [])
        failures = [None if value is not None else f"the {mode} parser could not read it" for value in read]
        out.append(dataclasses.replace(r, verdict=reading["verdict"], verdict_swapped=reading["verdict_swapped"],
                                       scores=reading["scores"], parse_failures=failures, verdict_aggregate=None,
                                       aggregated_by=None))
    return out


def score_items(rows: Sequence[ItemResult], *, kind: str = "pairwise", metrics: Sequence[str] | None = None,
                group_names: Sequence[str] = (), label_key: str | None = None, policy: str = "wrong",
                num_resamples: int = m.DEFAULT_BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """Metrics overall (micro average over every item) and per group, with bootstrap intervals, plus
    the confusion matrix, the length-controlled metrics (``length``, :func:`length_metrics`), (MT-bench) per-model win rates and, when the rows carry
    parser readings, the headline metrics of the strict and the lenient reading (``parser_modes``).

    ``kind`` is the rows' kind (pairwise, grading, grade_pair); ``metrics`` the names to report
    (None: every one that applies; ``parse_failure_rate`` and ``num_items`` always, and the combined
    and debiased accuracies wherever both orders were judged); ``group_names`` the groups always
    reported, in order, even when empty (other groups met in the rows follow); ``label_key`` the gold
    label's key (MT-bench uses it to tell the gold votes from the other references)."""
    m.check_policy(policy)

    def headline(items: Sequence[ItemResult]) -> dict[str, Any]:
        return {k: v.to_dict() for k, v in _metrics_for(items, kind, metrics, label_key, policy, num_resamples, seed).items()}

    result: dict[str, Any] = {"metrics": headline(rows)}
    names = list(group_names) + sorted({r.group for r in rows if r.group is not None} - set(group_names))
    result["groups"] = {g: headline([r for r in rows if r.group == g]) for g in names}
    if kind == "pairwise":
        result["confusion_matrix"] = m.confusion_matrix([r.verdict for r in rows], [r.gold_winner for r in rows])
        if all(r.both_orders for r in rows) and rows:
            result["confusion_matrix_swapped"] = m.confusion_matrix([r.verdict_swapped for r in rows], [r.gold_winner for r in rows])
        result["length"] = length_metrics(rows, policy, num_resamples, seed)
        if metrics is not None and "s1_agreement" in metrics and all(r.both_orders for r in rows):
            matches = [(*(r.meta.get("models") or ["model_a", "model_b"]), r.verdict, r.verdict_swapped) for r in rows]
            result["win_rates"] = m.win_rates(matches)
    modes = {mode: read for mode in PARSER_MODES if (read := rows_read_by(rows, mode, kind)) is not None}
    if modes:
        result["parser_modes"] = {mode: {"metrics": headline(read)} for mode, read in modes.items()}
    return result


def value_of(result: dict[str, Any], key: str) -> float | None:
    """The value of metric ``key`` in a :func:`score_items` result (None when absent or undefined)."""
    estimate = result["metrics"].get(key)
    return estimate["value"] if estimate is not None else None


__all__ = ["METRIC_DEFINITIONS", "LENGTH_METRICS", "definition", "score_items", "rows_read_by", "length_metrics", "value_of",
           "HUMAN_JUDGE_PREFIX", "JUDGE_VOTER"]
