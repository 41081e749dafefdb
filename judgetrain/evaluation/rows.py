"""The scored row of one evaluation item (:class:`ItemResult`, one line of ``judgments.jsonl``) and how
judge calls fill it.

``judgetrain eval``, the quickstart and the training judge-agreement callback all turn their
judgments into these rows and score them with :func:`judgetrain.evaluation.scoring.score_items`, so the
same verdicts give the same numbers under the same names wherever they are scored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Sequence

from judgetrain.types import JudgeSample, Judgment

ROW_KINDS = ("pairwise", "grading", "grade_pair")
"""``pairwise``: two answers, a gold winner, judged in both orders. ``grading``: one answer with a gold
grade, judged once (correlations). ``grade_pair``: two answers each graded on its own (absolute
grading); correct when the preferred answer (the first, "chosen") gets the strictly higher grade."""


@dataclass
class ItemResult:
    """Everything scored about one benchmark item, one line of ``judgments.jsonl``.

    ``verdict`` / ``verdict_swapped``: pairwise winners in the sample's order (the swapped one mapped
    back), None for a parse failure or when that order was not judged (``orders`` says which were).
    ``readings``: the same raw outputs read again by the format's ``"strict"`` and ``"lenient"``
    parser, each ``{"verdict", "verdict_swapped", "scores"}`` like the fields above (empty when there is
    no format parser to read them: a predictions file, a reward judge). Each call's recorded
    ``raw_text`` is read; with several samples per call (``decoding.n > 1``) that is the first sample,
    so a reading can differ from the judge's majority verdict. ``verdict_aggregate``: the judge's own both-orders verdict for the pair and ``aggregated_by`` what
    decided it (``"verdicts"`` or ``"probabilities"``, the position-debiased verdict); None when the
    judge gave no aggregate. ``scores``: the grade (grading), the grades of the two answers (grade
    pairs), or the grades a pairwise verdict was read from. ``raw_texts`` / ``parse_failures``: one
    entry per judge call, in ``orders`` order (``original``, ``swapped``; or ``first_answer``,
    ``second_answer``). ``answer_lengths``: each answer's length in characters (all turns together), set
    by :func:`row_of_sample` from the sample itself, so a predictions file, a model judge and the
    quickstart are measured alike; the length-controlled metrics split and fit on it (empty: not measured).
    """

    id: str
    group: str | None
    labels: dict[str, Any]
    gold_winner: str | None = None
    gold_score: float | None = None
    orders: list[str] = field(default_factory=list)
    verdict: str | None = None
    verdict_swapped: str | None = None
    verdict_aggregate: str | None = None
    aggregated_by: str | None = None
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
    readings: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ItemResult":
        """A row from its JSON; rows written before a field existed get its default."""
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"judgments.jsonl row {data.get('id')!r}: unknown field(s) {unknown}; allowed: {sorted(allowed)}")
        return cls(**data)

    @property
    def both_orders(self) -> bool:
        return "swapped" in self.orders


def answer_lengths(sample: JudgeSample) -> list[int]:
    """Each answer's length in characters (all turns together): the unit
    (:data:`judgetrain.metrics.LENGTH_UNIT`) of the length-controlled metrics and of the "longer answer
    wins" baselines."""
    return [sum(len(t) for t in a.turns) for a in sample.answers]


def row_of_sample(sample: JudgeSample, *, label_key: str, kind: str = "pairwise", group: str | None = None) -> ItemResult:
    """The row of ``sample`` before any verdict: its id, group, labels, gold (from ``labels[label_key]``)
    and texts."""
    if kind not in ROW_KINDS:
        raise ValueError(f"kind must be one of {ROW_KINDS}, got {kind!r}")
    if label_key not in sample.labels:
        raise ValueError(f"sample {sample.id!r}: no {label_key!r} label to score against (labels: {sorted(sample.labels)})")
    label = sample.labels[label_key]
    gold_score = label.scores[0] if kind == "grading" and label.scores else None
    meta: dict[str, Any] = {}
    for key in ("question_id", "turn"):
        if key in sample.meta:
            meta[key] = sample.meta[key]
    if sample.turn is not None:
        meta["turn"] = sample.turn
    if any(a.model for a in sample.answers):
        meta["models"] = [a.model for a in sample.answers]
    texts = sample.to_dict()
    return ItemResult(id=sample.id, group=group, labels={k: v.to_dict() for k, v in sample.labels.items()},
                      gold_winner=label.winner, gold_score=gold_score, answer_lengths=answer_lengths(sample), meta=meta,
                      question=texts["question"], answers=texts["answers"], reference=texts["reference"])


def _call_fields(judgment: Judgment) -> tuple[str | None, tuple[float | None, ...] | None, str, str | None]:
    """(winner, scores, raw text, parse-failure reason) of one judge call."""
    if judgment.verdict is not None:
        return judgment.verdict.winner, judgment.verdict.scores, judgment.raw_text, None
    if judgment.parse_failure is not None:
        return None, None, judgment.raw_text, judgment.parse_failure.reason
    return None, None, judgment.raw_text, f"backend error: {judgment.error}"


PARSER_MODES = ("strict", "lenient")
"""The two readings of every raw output: the format's strict parser, and its lenient one."""


def _reading(fmt: Any, judgment: Judgment, strict: bool) -> tuple[str | None, tuple[float | None, ...] | None]:
    """(winner, scores) of one call's raw text read by ``fmt`` in one parser mode, in the sample's order."""
    from judgetrain.types import Verdict, flip_winner

    if judgment.error is not None:
        return None, None
    parsed = fmt.parse(judgment.raw_text, strict=strict)
    if not isinstance(parsed, Verdict):
        return None, None
    if judgment.swapped:
        return flip_winner(parsed.winner), tuple(reversed(parsed.scores)) if parsed.scores is not None else None
    return parsed.winner, parsed.scores


def readings_of(fmt: Any, calls: Sequence[Judgment], kind: str) -> dict[str, dict[str, Any]]:
    """The strict and the lenient reading of an item's judge calls (``calls`` in the row's order)."""
    out: dict[str, dict[str, Any]] = {}
    for mode in PARSER_MODES:
        read = [_reading(fmt, call, strict=mode == "strict") for call in calls]
        if kind == "pairwise":
            reading: dict[str, Any] = {"verdict": None, "verdict_swapped": None, "scores": None}
            for call, (winner, scores) in zip(calls, read):
                if call.swapped:
                    reading["verdict_swapped"] = winner
                else:
                    reading["verdict"] = winner
                    reading["scores"] = list(scores) if scores is not None else None
        else:
            reading = {"verdict": None, "verdict_swapped": None, "scores": [scores[0] if scores else None for _, scores in read]}
        out[mode] = reading
    return out


def fill_from_judgment(row: ItemResult, judgment: Judgment, kind: str, *, fmt: Any = None) -> ItemResult:
    """Fill ``row`` with the verdicts of ``judgment`` (a pairwise or grading item; grade pairs use
    :func:`fill_grade_pair`). With ``fmt`` (the JudgeFormat that read the calls) the raw outputs are
    also read by its strict and its lenient parser into ``row.readings``."""
    from judgetrain.judging.judge import per_order

    row.template = judgment.template
    parts = per_order(judgment)
    if kind == "grading":
        _, scores, raw, failure = _call_fields(parts[0])
        score = scores[0] if scores else None
        if score is None and failure is None:
            failure = "the verdict has no grade"
        row.orders, row.scores, row.raw_texts, row.parse_failures = ["original"], [score], [raw], [failure]
        row.judgments.append(parts[0].to_dict())
        if fmt is not None:
            row.readings = readings_of(fmt, parts[:1], kind)
        return row
    for part in parts:
        winner, scores, raw, failure = _call_fields(part)
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
    if judgment.both_orders is not None:
        row.verdict_aggregate = judgment.winner
        row.aggregated_by = judgment.both_orders.aggregated_by
    if fmt is not None:
        row.readings = readings_of(fmt, parts, kind)
    return row


def fill_grade_pair(row: ItemResult, judgments: Sequence[Judgment], *, fmt: Any = None) -> ItemResult:
    """Fill a grade-pair ``row`` from the two single-answer judgments (first answer, second answer)."""
    row.orders = ["first_answer", "second_answer"]
    row.scores, row.raw_texts, row.parse_failures = [], [], []
    for judgment in judgments:
        _, scores, raw, failure = _call_fields(judgment)
        score = scores[0] if scores else None
        if score is None and failure is None:
            failure = "the verdict has no grade"
        row.scores.append(score)
        row.raw_texts.append(raw)
        row.parse_failures.append(failure)
        row.template = judgment.template
        row.judgments.append(judgment.to_dict())
    if fmt is not None:
        row.readings = readings_of(fmt, judgments, "grade_pair")
    return row


def rows_from_judgments(samples: Sequence[JudgeSample], judgments: Sequence[Judgment], *,
                        label_key: str | Sequence[str], kind: str = "pairwise", fmt: Any = None) -> list[ItemResult]:
    """One row per sample, filled from its judgment (``judgments[i]`` judged ``samples[i]``), gold from
    ``labels[label_key]`` (or, for a sequence of keys, the first one the sample has); ``fmt`` as in
    :func:`fill_from_judgment`."""
    if len(samples) != len(judgments):
        raise ValueError(f"{len(samples)} samples but {len(judgments)} judgments; give one judgment per sample")
    preferred = (label_key,) if isinstance(label_key, str) else tuple(label_key)
    rows = []
    for sample, judgment in zip(samples, judgments):
        key = next((k for k in preferred if k in sample.labels), preferred[0])
        rows.append(fill_from_judgment(row_of_sample(sample, label_key=key, kind=kind), judgment, kind, fmt=fmt))
    return rows


__all__ = ["ItemResult", "ROW_KINDS", "PARSER_MODES", "readings_of", "answer_lengths", "row_of_sample", "fill_from_judgment", "fill_grade_pair",
           "rows_from_judgments"]
