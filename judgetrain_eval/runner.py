"""Run a benchmark: load its items, get verdicts (from a judge, or from a predictions file), score them.

Both ways end in the same list of :class:`ItemResult` rows, and one function (:func:`score_items`)
turns rows into metrics, so a judge's run and the same verdicts fed back as a predictions file give
the same numbers. Nothing is written here; :mod:`judgetrain_eval.report` writes the run directory.
"""

from __future__ import annotations

import importlib
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from judgetrain_eval.base import Benchmark
from judgetrain import metrics as m
from judgetrain import plugins
from judgetrain.card import JudgeCard, card_path, has_card, read_card
from judgetrain.types import JudgeSample, Judgment


def get_benchmark(name: str) -> Benchmark:
    """The benchmark registered under ``name`` (ValueError listing the names otherwise)."""
    return plugins.benchmark(name)


# --- one row per item ---------------------------------------------------------------------------

@dataclass
class ItemResult:
    """Everything scored about one benchmark item, one line of ``judgments.jsonl``.

    ``verdict`` / ``verdict_swapped``: pairwise winners in the sample's order (the swapped one mapped
    back), None for a parse failure or when that order was not judged (``orders`` says which were).
    ``scores``: the grade (grading), the grades of the two answers (grade pairs), or the grades a
    pairwise verdict was read from. ``raw_texts`` / ``parse_failures``: one entry per judge call, in
    ``orders`` order (``original``, ``swapped``; or ``first_answer``, ``second_answer``).
    """

    id: str
    group: str | None
    labels: dict[str, Any]
    gold_winner: str | None = None
    gold_score: float | None = None
    orders: list[str] = field(default_factory=list)
    verdict: str | None = None
    verdict_swapped: str | None = None
    scores: list[float | None] | None = None
    raw_texts: list[str] = field(default_factory=list)
    parse_failures: list[str | None] = field(default_factory=list)
    answer_lengths: list[int] = field(default_factory=list)
    template: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    judgments: list[dict[str, Any]] = field(default_factory=list)
    """Judge mode: every judge call as recorded by the Judging API (prompt, backend, decoding, raw text)."""
    question: str | list[str] | None = None
    answers: list[dict[str, Any]] = field(default_factory=list)
    reference: str | list[str] | None = None
    """The item's question, answers (``{"text", "model"}``) and reference as in its JudgeSample, so a
    run dir can be read (``judgetrain browse``) without the benchmark data."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ItemResult":
        return cls(**data)

    @property
    def both_orders(self) -> bool:
        return "swapped" in self.orders


def _answer_lengths(sample: JudgeSample) -> list[int]:
    return [sum(len(t) for t in a.turns) for a in sample.answers]


def base_row(benchmark: Benchmark, sample: JudgeSample) -> ItemResult:
    """The row of ``sample`` before any verdict: its id, group, labels and gold."""
    label = sample.labels[benchmark.label_key]
    gold_score = None
    if benchmark.kind == "grading":
        gold_score = label.scores[0]
    meta: dict[str, Any] = {}
    for key in ("question_id", "turn"):
        if key in sample.meta:
            meta[key] = sample.meta[key]
    if sample.turn is not None:
        meta["turn"] = sample.turn
    if any(a.model for a in sample.answers):
        meta["models"] = [a.model for a in sample.answers]
    texts = sample.to_dict()
    return ItemResult(id=sample.id, group=benchmark.group(sample),
                      labels={k: v.to_dict() for k, v in sample.labels.items()},
                      gold_winner=label.winner, gold_score=gold_score, answer_lengths=_answer_lengths(sample), meta=meta,
                      question=texts["question"], answers=texts["answers"], reference=texts["reference"])


# --- verdicts from a predictions file -------------------------------------------------------------

def rows_from_predictions(benchmark: Benchmark, samples: Sequence[JudgeSample], predictions: str | Path,
                          predictions_swapped: str | Path | None = None, label_map: str | None = None,
                          limited: bool = False) -> list[ItemResult]:
    """Rows for ``samples`` from a predictions file (and its swapped-order twin)."""
    from judgetrain_eval.predictions import parse_label_map, read_predictions

    mapping = parse_label_map(label_map)
    if benchmark.kind != "pairwise" and predictions_swapped is not None:
        raise ValueError(f"benchmark {benchmark.name} is {benchmark.kind}: it has no swapped order; drop --predictions-swapped")
    first = read_predictions(predictions, samples, kind=benchmark.kind, label_map=mapping, limited=limited)
    second = (read_predictions(predictions_swapped, samples, kind=benchmark.kind, label_map=mapping, swapped=True,
                               limited=limited) if predictions_swapped is not None else None)
    rows = []
    for i, sample in enumerate(samples):
        row = base_row(benchmark, sample)
        p = first[i]
        if benchmark.kind == "pairwise":
            row.orders = ["original"]
            row.verdict = p.winner
            row.scores = list(p.scores) if p.scores is not None else None
            row.raw_texts = [p.raw]
            row.parse_failures = [p.parse_failure]
            if second is not None:
                q = second[i]
                row.orders.append("swapped")
                row.verdict_swapped = q.winner
                row.raw_texts.append(q.raw)
                row.parse_failures.append(q.parse_failure)
        elif benchmark.kind == "grading":
            row.orders = ["original"]
            row.scores = list(p.scores)
            row.raw_texts = [p.raw]
            row.parse_failures = [p.parse_failure]
        else:
            row.orders = ["first_answer", "second_answer"]
            row.scores = list(p.scores)
            row.raw_texts = [p.raw, p.raw]
            row.parse_failures = [None if s is not None else p.parse_failure for s in p.scores]
        row.template = "predictions"
        rows.append(row)
    return rows


# --- verdicts from a judge ------------------------------------------------------------------------

def _judgment_fields(judgment: Judgment) -> tuple[str | None, tuple[float | None, ...] | None, str, str | None]:
    """(winner, scores, raw text, parse-failure reason) of one judge call."""
    if judgment.verdict is not None:
        return judgment.verdict.winner, judgment.verdict.scores, judgment.raw_text, None
    if judgment.parse_failure is not None:
        return None, None, judgment.raw_text, judgment.parse_failure.reason
    return None, None, judgment.raw_text, f"backend error: {judgment.error}"


def _judge_in_groups(samples: Sequence[JudgeSample], judge_for: Callable[[JudgeSample], Any]) -> list[Judgment]:
    """Judge ``samples`` with the judge each one needs (one call per judge), results in sample order."""
    by_judge: dict[int, tuple[Any, list[int]]] = {}
    for i, sample in enumerate(samples):
        judge = judge_for(sample)
        by_judge.setdefault(id(judge), (judge, []))[1].append(i)
    out: list[Judgment | None] = [None] * len(samples)
    for judge, indices in by_judge.values():
        judgments = judge.judge([samples[i] for i in indices])
        assert len(judgments) == len(indices), "the judge must return one judgment per sample"
        for i, judgment in zip(indices, judgments):
            out[i] = judgment
    return out  # type: ignore[return-value]


def rows_from_judge(benchmark: Benchmark, samples: Sequence[JudgeSample], judge: Any | Callable[[JudgeSample], Any]) -> list[ItemResult]:
    """Rows for ``samples`` judged by ``judge``: a ``judgetrain.judging.Judge``, or a function giving
    the Judge for a sample (when samples need different templates, e.g. MT-bench turn 2).

    Pairwise items are judged in both orders by the judge itself (``both_orders=True``); grading items
    once; grade pairs as two single-answer samples (``<id>/first`` and ``<id>/second``)."""
    judge_for = judge if callable(judge) and not hasattr(judge, "judge") else (lambda sample: judge)
    rows = [base_row(benchmark, s) for s in samples]
    if benchmark.kind == "grade_pair":
        singles = []
        for sample in samples:
            for suffix, answer in zip(("first", "second"), sample.answers):
                singles.append(sample.replace(id=f"{sample.id}/{suffix}", answers=(answer,), labels={}))
        judgments = _judge_in_groups(singles, judge_for)
        for i, row in enumerate(rows):
            row.orders = ["first_answer", "second_answer"]
            row.scores, row.raw_texts, row.parse_failures = [], [], []
            for j in judgments[2 * i: 2 * i + 2]:
                _, scores, raw, failure = _judgment_fields(j)
                score = scores[0] if scores else None
                if score is None and failure is None:
                    failure = "the verdict has no grade"
                row.scores.append(score)
                row.raw_texts.append(raw)
                row.parse_failures.append(failure)
                row.template = j.template
                row.judgments.append(j.to_dict())
        return rows
    from judgetrain.judging import per_order

    judgments = _judge_in_groups(list(samples), judge_for)
    for row, judgment in zip(rows, judgments):
        row.template = judgment.template
        parts = per_order(judgment)
        if benchmark.kind == "grading":
            _, scores, raw, failure = _judgment_fields(parts[0])
            score = scores[0] if scores else None
            if score is None and failure is None:
                failure = "the verdict has no grade"
            row.orders, row.scores, row.raw_texts, row.parse_failures = ["original"], [score], [raw], [failure]
            row.judgments.append(parts[0].to_dict())
            continue
        for part in parts:
            winner, scores, raw, failure = _judgment_fields(part)
            if winner is None and failure is None:
                failure = "the verdict has no winner"
            if part.swapped:
                row.orders.append("swapped")
                row.verdict_swapped = winner
            else:
                row.orders.append("original")
                row.verdict = winner
                row.scores = list(scores) if scores is not None else None
            row.raw_texts.append(raw)
            row.parse_failures.append(failure)
            row.judgments.append(part.to_dict())
    return rows


# --- scoring --------------------------------------------------------------------------------------

HUMAN_JUDGE_PREFIX = "expert"
"""MT-bench: labels whose key starts with this are the expert (human) votes FastChat compares with."""


def _pairwise_metrics(rows: Sequence[ItemResult], benchmark: Benchmark, policy: str, num_resamples: int,
                      seed: int) -> dict[str, m.Estimate]:
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
        est["both_orders_agreement"] = rate(m.both_orders_correct_per_item(first, second, gold, policy))
        est["consistency"] = rate(m.consistent_per_item(first, second, policy))
        preference = m.position_preference_per_item(first, second, policy)
        est["prefer_first_rate"] = rate(np.where(np.isnan(preference), np.nan, (preference > 0).astype(float)))
        est["prefer_second_rate"] = rate(np.where(np.isnan(preference), np.nan, (preference < 0).astype(float)))
        est["position_bias"] = rate(np.where(np.isnan(preference), np.nan, preference))
        est["llmbar_accuracy"] = rate(m.llmbar_correct_per_item(first, second, gold, policy))
        est["positional_agreement"] = est["consistency"]
        if all(g in ("A", "B") for g in gold):
            est["judgebench_score"] = rate(m.judgebench_correct_per_item(first, second, gold, policy))
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


JUDGE_VOTER = "judge-under-evaluation"


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


def _metrics_for(rows: Sequence[ItemResult], benchmark: Benchmark, policy: str, num_resamples: int,
                 seed: int) -> dict[str, m.Estimate]:
    if benchmark.kind == "pairwise":
        est = _pairwise_metrics(rows, benchmark, policy, num_resamples, seed)
        if "s1_agreement" in benchmark.metrics:
            references = ["human"] + sorted({k for r in rows for k in r.labels if not k.startswith(HUMAN_JUDGE_PREFIX)
                                             and k != benchmark.label_key and k.startswith("gpt4")})
            est.update(_mtbench_metrics(rows, policy, num_resamples, seed, references))
    elif benchmark.kind == "grading":
        predicted = [r.scores[0] if r.scores else None for r in rows]
        gold = [r.gold_score for r in rows]
        est = m.estimate_statistics(lambda idx: m.correlations([predicted[i] for i in idx], [gold[i] for i in idx]),
                                    len(rows), num_resamples=num_resamples, seed=seed)
        est["parse_failure_rate"] = m.estimate_rate(m.parse_failed_per_item(predicted), num_resamples=num_resamples, seed=seed)
    else:
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
    est["num_items"] = m.Estimate(float(len(rows)), None, None, len(rows))
    wanted = set(benchmark.metrics) | {"parse_failure_rate", "num_items"}
    return {k: v for k, v in est.items() if k in wanted or k.split("_gpt4")[0] in wanted}


def verbosity_split(rows: Sequence[ItemResult], policy: str, num_resamples: int, seed: int) -> dict[str, Any]:
    """Accuracy split by whether the gold winner is the longer answer (in characters): a judge that
    favours length is more accurate where the longer answer won. Items with a tie label or two answers
    of equal length are in neither split. ``judge_picked_longer_rate`` is the share of decisive
    (A/B) verdicts that picked the longer answer."""
    longer_won, shorter_won, picked = [], [], []
    for r in rows:
        if len(r.answer_lengths) != 2 or r.answer_lengths[0] == r.answer_lengths[1]:
            continue
        longer = "A" if r.answer_lengths[0] > r.answer_lengths[1] else "B"
        if r.verdict in ("A", "B"):
            picked.append(float(r.verdict == longer))
        if r.gold_winner not in ("A", "B"):
            continue
        (longer_won if r.gold_winner == longer else shorter_won).append(r)

    def acc(split: list[ItemResult]) -> dict[str, Any]:
        per_item = m.correct_per_item([r.verdict for r in split], [r.gold_winner for r in split], policy)
        return m.estimate_rate(per_item, num_resamples=num_resamples, seed=seed).to_dict()

    return {"accuracy_when_longer_answer_won": acc(longer_won), "accuracy_when_shorter_answer_won": acc(shorter_won),
            "judge_picked_longer_rate": m.estimate_rate(np.array(picked), num_resamples=num_resamples, seed=seed).to_dict()}


def score_items(benchmark: Benchmark, rows: Sequence[ItemResult], *, policy: str = "wrong",
                num_resamples: int = m.DEFAULT_BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """Metrics overall (micro average over every item) and per group, with bootstrap intervals, plus
    the confusion matrix, the verbosity split and (MT-bench) per-model win rates."""
    m.check_policy(policy)
    result: dict[str, Any] = {"metrics": {k: v.to_dict() for k, v in _metrics_for(rows, benchmark, policy, num_resamples, seed).items()}}
    # Declared groups come first, in their published order, and are reported even when empty (a
    # --limit run), so tables keep their shape; groups met in the data and not declared follow.
    group_names = list(benchmark.group_names) + sorted({r.group for r in rows if r.group is not None} - set(benchmark.group_names))
    groups = {g: [r for r in rows if r.group == g] for g in group_names}
    result["groups"] = {g: {k: v.to_dict() for k, v in _metrics_for(items, benchmark, policy, num_resamples, seed).items()}
                        for g, items in groups.items()}
    if benchmark.kind == "pairwise":
        result["confusion_matrix"] = m.confusion_matrix([r.verdict for r in rows], [r.gold_winner for r in rows])
        if all(r.both_orders for r in rows) and rows:
            result["confusion_matrix_swapped"] = m.confusion_matrix([r.verdict_swapped for r in rows], [r.gold_winner for r in rows])
        result["verbosity"] = verbosity_split(rows, policy, num_resamples, seed)
        if "s1_agreement" in benchmark.metrics and all(r.both_orders for r in rows):
            matches = [(*(r.meta.get("models") or ["model_a", "model_b"]), r.verdict, r.verdict_swapped) for r in rows]
            result["win_rates"] = m.win_rates(matches)
    return result


# --- a whole run ----------------------------------------------------------------------------------

@dataclass
class EvalRun:
    """A scored run: the benchmark, the resolved config, one row per item and the metrics."""

    benchmark: Benchmark
    config: dict[str, Any]
    rows: list[ItemResult]
    results: dict[str, Any]
    seconds: float = 0.0

    def headline(self) -> dict[str, Any]:
        """The ``--print-json`` object: stable metric keys with their values (rates as fractions),
        only the metrics that apply, per-group values under ``groups``."""
        out: dict[str, Any] = {"benchmark": self.benchmark.name,
                               "parse_failure_policy": self.config["parse_failure_policy"]}
        for key, value in self.results["metrics"].items():
            out[key] = int(value["value"]) if key == "num_items" else value["value"]
        out["groups"] = {g: {k: (int(v["value"]) if k == "num_items" else v["value"]) for k, v in metrics.items()}
                         for g, metrics in self.results["groups"].items()}
        return out


def versions() -> dict[str, str]:
    """Versions of what produced the numbers."""
    out = {"python": platform.python_version()}
    for name in ("judgetrain", "numpy", "scipy", "torch", "transformers"):
        try:
            out[name] = importlib.import_module(name).__version__
        except Exception:  # a version we cannot read is left out, not guessed
            continue
    return out


def judge_factory(judge_spec: str, base_format: str | None, benchmark: Benchmark, *, max_new_tokens: int | None = None,
                  backend_options: dict[str, Any] | None = None, card: JudgeCard | None = None):
    """(a function giving the Judge for a sample, the backend) for ``judge_spec`` (checkpoint dir,
    export dir, ``openai:MODEL`` or ``tiny``).

    An export dir (its judge card, or ``card``) judges exactly as ``Judge.from_card(dir)`` does: the
    judge is built by the client's :func:`judgetrain.client.judge_from_card`, so the template, parser
    mode, decoding, both-orders judging, disagreement policy, aggregation and tie margin are the
    card's (see :func:`card_judge_factory`). Any other judge: one backend, one Judge per template the
    samples need (``base_format``, default the benchmark's); pairwise templates run both orders with
    disagreement kept as "inconsistent", so each order's own verdict is scored; grade pairs use the
    template on each answer alone."""
    if card is not None or is_export_dir(judge_spec):
        return card_judge_factory(judge_spec, benchmark, format_name=base_format, max_new_tokens=max_new_tokens,
                                  batch_size=(backend_options or {}).get("batch_size"), card=card)
    from judgetrain import formats
    from judgetrain.judging import Judge, default_decoding, make_backend

    base_format = base_format or benchmark.default_format
    formats.get(base_format)  # an unknown template is a user error before any model loads
    backend = make_backend(judge_spec, **(backend_options or {}))
    judges: dict[str, Any] = {}

    def judge_for(sample: JudgeSample):
        name = benchmark.format_of(sample, base_format) if benchmark.format_of is not None else base_format
        if name not in judges:
            fmt = formats.get(name)
            decoding = default_decoding(fmt, max_new_tokens=max_new_tokens)
            judges[name] = Judge(fmt, backend, decoding, both_orders=fmt.protocol == "pairwise",
                                 disagreement_policy="inconsistent")
        return judges[name]

    return judge_for, backend


def is_export_dir(judge_spec: str) -> bool:
    """Whether ``judge_spec`` is an export dir (a dir holding a judge card)."""
    return Path(judge_spec).is_dir() and has_card(judge_spec)


def card_judge_factory(export_dir: str, benchmark: Benchmark, *, format_name: str | None = None,
                       max_new_tokens: int | None = None, batch_size: int | None = None, card: JudgeCard | None = None):
    """(a function giving the Judge for a sample, its backend) for an export dir: the judge
    ``Judge.from_card(export_dir)`` builds, through the same function.

    ``format_name`` may only name the card's own template (the one the judge was trained on);
    ``max_new_tokens`` replaces the card's generation budget. A sample the benchmark renders with a
    variant of the card's template (MT-bench turn 2: its ``-multi-turn`` twin) gets a Judge of that
    variant with the same backend and the card's settings. A reward card gives its RewardJudge."""
    from judgetrain.client import judge_from_card
    from judgetrain.judging import Judge

    card = card if card is not None else read_card(export_dir)
    if format_name and format_name != card.template:
        raise ValueError(f"--format {format_name}: the judge card of {export_dir} fixes the template {card.template} "
                         "(the one the judge was trained on); drop --format")
    if max_new_tokens is not None and card.kind != "reward":
        card = card.with_decoding(max_new_tokens=max_new_tokens)
    judge = judge_from_card(Judge, export_dir, card=card, **({"batch_size": batch_size} if batch_size else {}))
    if card.kind == "reward":
        return (lambda sample: judge), judge.backend
    judges: dict[str, Any] = {card.template: judge}

    def judge_for(sample: JudgeSample):
        name = benchmark.format_of(sample, card.template) if benchmark.format_of is not None else card.template
        if name not in judges:
            judges[name] = Judge(name, judge.backend, **card.judge_options())
        return judges[name]

    return judge_for, judge.backend


def run_benchmark(name: str, *, judge: str | Any | None = None, predictions: str | Path | None = None,
                  predictions_swapped: str | Path | None = None, label_map: str | None = None,
                  data: str | None = None, data_dir: str | Path | None = None, limit: int | None = None,
                  format_name: str | None = None, policy: str = "wrong",
                  num_resamples: int = m.DEFAULT_BOOTSTRAP_RESAMPLES, seed: int = 0,
                  max_new_tokens: int | None = None, options: dict[str, Any] | None = None,
                  backend_options: dict[str, Any] | None = None) -> EvalRun:
    """Load benchmark ``name``, get verdicts from ``judge`` (a spec string or a built Judge) or from
    ``predictions``, and score them. Exactly one of ``judge`` and ``predictions`` must be given."""
    if (judge is None) == (predictions is None):
        raise ValueError("give exactly one of --judge (run a judge) and --predictions (score a file)")
    if predictions is None and (predictions_swapped is not None or label_map is not None):
        raise ValueError("--predictions-swapped and --label-map go with --predictions")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    m.check_policy(policy)
    benchmark = get_benchmark(name)
    started = time.perf_counter()
    samples = benchmark.load(data, data_dir, limit=limit, options=options)
    if not samples:
        raise ValueError(f"benchmark {name}: no items were read; check --data / --data-dir")
    config: dict[str, Any] = {
        "benchmark": name, "kind": benchmark.kind, "label_key": benchmark.label_key,
        "data": benchmark.resolve_source(data, data_dir),
        "limit": limit, "num_items": len(samples), "parse_failure_policy": policy, "options": dict(options or {}),
        "bootstrap": {"num_resamples": num_resamples, "confidence": 0.95, "seed": seed},
    }
    if predictions is not None:
        rows = rows_from_predictions(benchmark, samples, predictions, predictions_swapped, label_map,
                                     limited=limit is not None)
        config.update(mode="predictions", predictions=str(predictions),
                      predictions_swapped=str(predictions_swapped) if predictions_swapped else None, label_map=label_map)
    else:
        if isinstance(judge, str):
            # An export dir judges as Judge.from_card(dir) does; its card is recorded with the run.
            card = read_card(judge) if is_export_dir(judge) else None
            chosen = card.template if card is not None else format_name or benchmark.default_format
            judge_for, backend = judge_factory(judge, format_name, benchmark, max_new_tokens=max_new_tokens,
                                               backend_options=backend_options, card=card)
            try:
                rows = rows_from_judge(benchmark, samples, judge_for)
            finally:
                backend.close()
            config.update(judge=judge, backend=getattr(backend, "name", ""), model=getattr(backend, "model_id", ""))
            if card is not None:
                written = card.to_dict()
                config["judge_card"] = {"path": str(card_path(judge)),
                                        **{k: written[k] for k in ("kind", "name", "format", "parser", "tie_policy", "decoding")},
                                        **({"reward": written["reward"]} if card.reward is not None else {})}
        else:
            chosen = judge.format.name
            rows = rows_from_judge(benchmark, samples, judge)
            config.update(judge=getattr(getattr(judge, "backend", None), "model_id", "") or type(judge).__name__)
        first_call = next((r.judgments[0] for r in rows if r.judgments), {})
        config.update(mode="judge", format=chosen, templates=sorted({r.template for r in rows}),
                      both_orders=benchmark.kind == "pairwise", decoding=first_call.get("decoding"),
                      backend=first_call.get("backend") or config.get("backend"))
    results = score_items(benchmark, rows, policy=policy, num_resamples=num_resamples, seed=seed)
    return EvalRun(benchmark, config, rows, results, seconds=time.perf_counter() - started)
