"""Canonical judge types: one sample type, one verdict type, one judgment record.

Every seam of judgetrain (readers, augmentation, formats, judging, metrics) speaks these types.
They are frozen dataclasses holding tuples, so nothing downstream can mutate a stored sample in
place (JudgeLM's in-place swap inverts labels across epochs; ours cannot). Each has an exact JSON
round trip: ``T.from_dict(x.to_dict()) == x`` and ``T.from_dict(d).to_dict() == d`` for a
canonical ``d``. Validation happens in ``__post_init__``: a bad value raises ``ValueError`` naming
the field and the value; readers add the file and line in front of that message.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

WINNERS = ("A", "B", "tie")
"""Pairwise outcomes: answer A (the first shown) better, answer B better, or a tie."""

PROTOCOLS = ("pairwise", "single")
"""A pairwise sample has two answers; a single-grading sample has one."""

Text = str | tuple[str, ...]
"""A plain string for one turn, or a tuple of strings, one per turn, for a multi-turn conversation."""


def _as_text(value: Any, field_name: str) -> Text:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{field_name}: a multi-turn value needs at least one turn, got []")
        for i, turn in enumerate(value):
            if not isinstance(turn, str):
                raise ValueError(f"{field_name}[{i}]: each turn must be a string, got {type(turn).__name__} {turn!r:.80}")
        return tuple(value)
    raise ValueError(f"{field_name}: expected a string or a list of turns, got {type(value).__name__} {value!r:.80}")


def _text_to_json(value: Text | None) -> str | list[str] | None:
    return list(value) if isinstance(value, tuple) else value


def turns_of(value: Text) -> tuple[str, ...]:
    """The turns of a question or answer: a single string is one turn."""
    return (value,) if isinstance(value, str) else value


def _check_winner(value: Any, field_name: str) -> None:
    if value is not None and value not in WINNERS:
        raise ValueError(f"{field_name}: winner must be one of {WINNERS} or null, got {value!r}")


def _as_scores(value: Any, field_name: str) -> tuple[float | None, ...] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{field_name}: scores must be a list of numbers (one per answer), got {value!r:.80}")
    out: list[float | None] = []
    for i, s in enumerate(value):
        if s is None:
            out.append(None)
            continue
        if isinstance(s, bool) or not isinstance(s, (int, float)) or math.isnan(float(s)):
            raise ValueError(f"{field_name}[{i}]: a score must be a number or null, got {s!r}")
        out.append(float(s))
    return tuple(out)


def _known_keys(cls: type, data: Mapping[str, Any], where: str) -> None:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(allowed)}")


@dataclass(frozen=True)
class Answer:
    """One candidate answer: its text (or turns) and, when known, the model that wrote it."""

    text: Text
    model: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", _as_text(self.text, "answer.text"))
        if self.model is not None and not isinstance(self.model, str):
            raise ValueError(f"answer.model: expected a string or null, got {self.model!r}")

    @property
    def turns(self) -> tuple[str, ...]:
        return turns_of(self.text)

    def to_dict(self) -> dict[str, Any]:
        return {"text": _text_to_json(self.text), "model": self.model}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Answer":
        _known_keys(cls, data, "answer")
        if "text" not in data:
            raise ValueError("answer.text: missing required field")
        return cls(text=data["text"], model=data.get("model"))


@dataclass(frozen=True)
class Label:
    """A label given by one annotator or teacher: a pairwise winner and/or one score per answer.

    ``scores`` are in the order of ``JudgeSample.answers``; ``scale`` gives their range (e.g. (1, 10)).
    """

    winner: str | None = None
    scores: tuple[float | None, ...] | None = None
    scale: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        _check_winner(self.winner, "label.winner")
        object.__setattr__(self, "scores", _as_scores(self.scores, "label.scores"))
        if self.scale is not None:
            if not isinstance(self.scale, (list, tuple)) or len(self.scale) != 2:
                raise ValueError(f"label.scale: expected [low, high], got {self.scale!r}")
            low, high = (float(x) for x in self.scale)
            if not low < high:
                raise ValueError(f"label.scale: low must be below high, got {self.scale!r}")
            object.__setattr__(self, "scale", (low, high))
            for i, s in enumerate(self.scores or ()):
                if s is not None and not low <= s <= high:
                    raise ValueError(f"label.scores[{i}]: {s} is outside the scale [{low}, {high}]")
        if self.winner is None and self.scores is None:
            raise ValueError("label: needs a winner or scores (or both), got neither")

    def to_dict(self) -> dict[str, Any]:
        return {
            "winner": self.winner,
            "scores": list(self.scores) if self.scores is not None else None,
            "scale": list(self.scale) if self.scale is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Label":
        _known_keys(cls, data, "label")
        return cls(winner=data.get("winner"), scores=data.get("scores"), scale=data.get("scale"))


def flip_winner(winner: str | None) -> str | None:
    """The winner seen after the two answers swap places."""
    return {"A": "B", "B": "A"}.get(winner, winner) if winner is not None else None


@dataclass(frozen=True)
class JudgeSample:
    """The canonical judge sample.

    ``question`` and each answer are a string, or a tuple of turns for a multi-turn conversation
    (MT-bench: two user turns, two assistant turns). ``turn`` names the turn being judged (1-based)
    when a multi-turn sample is judged on one turn; None judges the whole conversation.
    ``labels`` maps who gave a label (``"gpt4"``, ``"human"``, ``"human_majority"``,
    ``"annotator1"`` …) to a :class:`Label`. ``judgment`` is the teacher's critique written for the
    prompt without a reference; ``judgment_with_reference`` the one written for the prompt with it
    (JudgeLM's ``text_w_reference``). ``swapped`` and ``reference_dropped`` record augmentation.
    """

    id: str
    source: str
    question: Text
    answers: tuple[Answer, ...]
    reference: Text | None = None
    rubric: str | None = None
    criteria: str | None = None
    scenario: str | None = None
    category: str | None = None
    turn: int | None = None
    labels: dict[str, Label] = field(default_factory=dict)
    judgment: str | None = None
    judgment_with_reference: str | None = None
    swapped: bool = False
    reference_dropped: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"id: expected a non-empty string, got {self.id!r}")
        if not isinstance(self.source, str) or not self.source:
            raise ValueError(f"source: expected a non-empty string, got {self.source!r}")
        object.__setattr__(self, "question", _as_text(self.question, "question"))
        answers = tuple(a if isinstance(a, Answer) else Answer.from_dict(a) for a in self.answers)
        if len(answers) not in (1, 2):
            raise ValueError(f"answers: expected 1 (single grading) or 2 (pairwise) answers, got {len(answers)}")
        object.__setattr__(self, "answers", answers)
        if self.reference is not None:
            object.__setattr__(self, "reference", _as_text(self.reference, "reference"))
        for name in ("rubric", "criteria", "scenario", "category", "judgment", "judgment_with_reference"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name}: expected a string or null, got {type(value).__name__} {value!r:.80}")
        if self.turn is not None:
            if isinstance(self.turn, bool) or not isinstance(self.turn, int) or not 1 <= self.turn <= len(self.question_turns):
                raise ValueError(f"turn: expected a turn number in 1..{len(self.question_turns)} or null, got {self.turn!r}")
        if not isinstance(self.labels, Mapping):
            raise ValueError(f"labels: expected an object keyed by annotator, got {self.labels!r:.80}")
        labels = {}
        for who, label in self.labels.items():
            if not isinstance(label, Label):
                try:
                    label = Label.from_dict(label)
                except ValueError as err:
                    raise ValueError(f"labels[{who!r}]: {err}") from None
            if label.winner is not None and len(answers) != 2:
                raise ValueError(f"labels[{who!r}].winner: a winner needs two answers, the sample has {len(answers)}")
            if label.scores is not None and len(label.scores) != len(answers):
                raise ValueError(
                    f"labels[{who!r}].scores: expected {len(answers)} score(s), one per answer, got {len(label.scores)}"
                )
            labels[who] = label
        object.__setattr__(self, "labels", labels)
        if not isinstance(self.meta, Mapping):
            raise ValueError(f"meta: expected an object, got {self.meta!r:.80}")
        for name in ("swapped", "reference_dropped"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: expected true or false, got {getattr(self, name)!r}")

    @property
    def protocol(self) -> str:
        return "pairwise" if len(self.answers) == 2 else "single"

    @property
    def question_turns(self) -> tuple[str, ...]:
        return turns_of(self.question)

    @property
    def is_multi_turn(self) -> bool:
        return len(self.question_turns) > 1

    def label(self, *preferred: str) -> Label | None:
        """The first label present among ``preferred`` keys (or the only one when none are given)."""
        for key in preferred:
            if key in self.labels:
                return self.labels[key]
        if not preferred and len(self.labels) == 1:
            return next(iter(self.labels.values()))
        return None

    def replace(self, **changes: Any) -> "JudgeSample":
        """A new sample with ``changes`` applied; the original is untouched."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "question": _text_to_json(self.question),
            "answers": [a.to_dict() for a in self.answers],
            "reference": _text_to_json(self.reference),
            "rubric": self.rubric,
            "criteria": self.criteria,
            "scenario": self.scenario,
            "category": self.category,
            "turn": self.turn,
            "labels": {who: label.to_dict() for who, label in self.labels.items()},
            "judgment": self.judgment,
            "judgment_with_reference": self.judgment_with_reference,
            "swapped": self.swapped,
            "reference_dropped": self.reference_dropped,
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "JudgeSample":
        _known_keys(cls, data, "sample")
        for required in ("id", "source", "question", "answers"):
            if required not in data:
                raise ValueError(f"{required}: missing required field")
        if not isinstance(data["answers"], (list, tuple)):
            raise ValueError(f"answers: expected a list of answers, got {data['answers']!r:.80}")
        answers = []
        for i, a in enumerate(data["answers"]):
            try:
                answers.append(Answer.from_dict(a))
            except ValueError as err:
                raise ValueError(f"answers[{i}]: {err}") from None
        kwargs = {k: v for k, v in data.items() if k != "answers"}
        return cls(answers=tuple(answers), **kwargs)


@dataclass(frozen=True)
class Verdict:
    """What a judge said, parsed: a pairwise winner and/or one score per answer, with the critique.

    ``template`` is the versioned template name the text was parsed with; ``lenient`` is True when
    only the lenient parser could read it (strict parsing failed).
    """

    winner: str | None = None
    scores: tuple[float | None, ...] | None = None
    critique: str = ""
    template: str = ""
    lenient: bool = False

    def __post_init__(self) -> None:
        _check_winner(self.winner, "verdict.winner")
        object.__setattr__(self, "scores", _as_scores(self.scores, "verdict.scores"))
        if self.winner is None and self.scores is None:
            raise ValueError("verdict: needs a winner or scores, got neither")

    def to_dict(self) -> dict[str, Any]:
        return {
            "winner": self.winner,
            "scores": list(self.scores) if self.scores is not None else None,
            "critique": self.critique,
            "template": self.template,
            "lenient": self.lenient,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Verdict":
        _known_keys(cls, data, "verdict")
        return cls(**data)


@dataclass(frozen=True)
class ParseFailure:
    """Judge output that could not be read. Never turned into a tie: it is counted and reported."""

    raw_text: str
    reason: str
    template: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"raw_text": self.raw_text, "reason": self.reason, "template": self.template}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ParseFailure":
        _known_keys(cls, data, "parse_failure")
        return cls(**data)


@dataclass(frozen=True)
class Judgment:
    """One judge call and everything needed to reproduce or audit it.

    Exactly one of ``verdict``, ``parse_failure`` and ``error`` is set: a verdict when the output
    parsed, a parse failure when it did not, an error when the backend gave no output at all. The one
    exception is a both-orders aggregate whose two orders disagreed under the ``"inconsistent"``
    policy: it sets none of them and says so in ``both_orders.outcome == "inconsistent"`` (an
    inconsistency is its own outcome, neither a verdict nor a failure).
    ``both_orders`` is set on the per-sample Judgment of a pair judged in both orders: the two
    per-order judgments and how they were combined (:class:`BothOrders`); None for one order.
    ``swapped`` is True when the answers were shown in swapped order; the verdict is then already
    mapped back to the sample's own order. ``prompt_messages`` / ``prompt_text`` are exactly what
    was sent. ``verdict_logprobs`` holds the verdict-token log-probabilities when the backend gives
    them, ``verdict_probabilities`` the normalised P(A)/P(B)/P(tie) or per-score probabilities.
    """

    sample_id: str
    template: str
    raw_text: str = ""
    verdict: Verdict | None = None
    parse_failure: ParseFailure | None = None
    error: str | None = None
    swapped: bool = False
    prompt_messages: tuple[dict[str, str], ...] = ()
    prompt_text: str | None = None
    backend: str = ""
    model: str = ""
    decoding: dict[str, Any] = field(default_factory=dict)
    latency_seconds: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    verdict_logprobs: dict[str, float] | None = None
    verdict_probabilities: dict[str, float] | None = None
    both_orders: "BothOrders | None" = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.both_orders, Mapping):
            object.__setattr__(self, "both_orders", BothOrders.from_dict(self.both_orders))
        if self.both_orders is not None and not isinstance(self.both_orders, BothOrders):
            raise ValueError(f"judgment {self.sample_id!r}: both_orders must be a BothOrders record or null, "
                             f"got {type(self.both_orders).__name__}")
        set_fields = [n for n in ("verdict", "parse_failure", "error") if getattr(self, n) is not None]
        inconsistent = self.both_orders is not None and self.both_orders.outcome == "inconsistent"
        if len(set_fields) != 1 and not (inconsistent and not set_fields):
            raise ValueError(
                f"judgment {self.sample_id!r}: exactly one of verdict / parse_failure / error must be set, got {set_fields or 'none'}"
            )
        if isinstance(self.verdict, Mapping):
            object.__setattr__(self, "verdict", Verdict.from_dict(self.verdict))
        if isinstance(self.parse_failure, Mapping):
            object.__setattr__(self, "parse_failure", ParseFailure.from_dict(self.parse_failure))
        object.__setattr__(self, "prompt_messages", tuple(dict(m) for m in self.prompt_messages))

    @property
    def ok(self) -> bool:
        return self.verdict is not None

    @property
    def winner(self) -> str | None:
        return self.verdict.winner if self.verdict is not None else None

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["verdict"] = self.verdict.to_dict() if self.verdict is not None else None
        out["parse_failure"] = self.parse_failure.to_dict() if self.parse_failure is not None else None
        out["prompt_messages"] = [dict(m) for m in self.prompt_messages]
        out["decoding"] = dict(self.decoding)
        out["both_orders"] = self.both_orders.to_dict() if self.both_orders is not None else None
        out["meta"] = dict(self.meta)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Judgment":
        """Read a judgment row; rows written before the typed ``both_orders`` field kept the two
        orders in ``meta["orders"]`` and the outcome in ``meta["both_orders"]``, and are read too."""
        _known_keys(cls, data, "judgment")
        data = dict(data)
        meta = dict(data.get("meta") or {})
        if data.get("both_orders") is None and "orders" in meta and "both_orders" in meta:
            data["both_orders"] = BothOrders.from_legacy_meta(meta.pop("orders"), meta.pop("both_orders"))
            data["meta"] = meta
        return cls(**data)


AGGREGATED_BY = ("verdicts", "probabilities")
"""What decided a both-orders pair: the two verdicts, or the mean verdict probabilities (debiased)."""

BOTH_ORDERS_OUTCOMES = ("A", "B", "tie", "score", "inconsistent", "parse_failure", "error")
"""What a both-orders pair came to: a winner, a grade without a winner, the two orders disagreeing
(policy ``"inconsistent"``), or a failure of either order (an error before a parse failure)."""


@dataclass(frozen=True)
class BothOrders:
    """A pair judged as shown and with its answers swapped, and how the two were combined.

    ``original`` is the judgment of the order as shown; ``swapped`` the one with the answers
    exchanged (``swapped=True``), its verdict, scores and probabilities already mapped back to the
    sample's order (``raw_text`` and the critique are as the judge wrote them). ``policy`` is what a
    disagreement becomes (``"tie"`` or ``"inconsistent"``); ``aggregation`` the rule asked for and
    ``aggregated_by`` the one that decided (``"verdicts"`` when ``fallback`` says why the
    probabilities could not). With ``aggregated_by="probabilities"``, ``p_a_minus_p_b`` is the mean
    P(A) − P(B) over the orders and ``tie_margin`` the margin it was compared with: the outcome is the
    debiased verdict. ``by_construction`` is True when the orders cannot differ (a reward judge).
    """

    original: Judgment
    swapped: Judgment
    policy: str
    outcome: str
    aggregation: str = "verdicts"
    aggregated_by: str = "verdicts"
    fallback: str | None = None
    p_a_minus_p_b: float | None = None
    tie_margin: float | None = None
    by_construction: bool = False

    def __post_init__(self) -> None:
        for name in ("original", "swapped"):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                object.__setattr__(self, name, Judgment.from_dict(value))
            elif not isinstance(value, Judgment):
                raise ValueError(f"both_orders.{name}: expected a judgment, got {type(value).__name__}")
        if self.original.swapped or not self.swapped.swapped:
            raise ValueError("both_orders: original must have swapped=false and swapped swapped=true, "
                             f"got {self.original.swapped} and {self.swapped.swapped}")
        if self.outcome not in BOTH_ORDERS_OUTCOMES:
            raise ValueError(f"both_orders.outcome: expected one of {BOTH_ORDERS_OUTCOMES}, got {self.outcome!r}")
        for name in ("aggregation", "aggregated_by"):
            if getattr(self, name) not in AGGREGATED_BY:
                raise ValueError(f"both_orders.{name}: expected one of {AGGREGATED_BY}, got {getattr(self, name)!r}")

    @property
    def original_winner(self) -> str | None:
        """The original order's winner (None when that order has no verdict)."""
        return self.original.winner

    @property
    def swapped_winner(self) -> str | None:
        """The swapped order's winner, mapped back to the sample's order (None without a verdict)."""
        return self.swapped.winner

    @property
    def consistent(self) -> bool | None:
        """Whether the two orders' own verdicts agree; None unless both have one."""
        first, second = self.original_winner, self.swapped_winner
        return first == second if first is not None and second is not None else None

    @property
    def original_probabilities(self) -> dict[str, float] | None:
        return self.original.verdict_probabilities

    @property
    def swapped_probabilities(self) -> dict[str, float] | None:
        """The swapped order's verdict probabilities, mapped back (P(A) is the sample's answer A)."""
        return self.swapped.verdict_probabilities

    @property
    def debiased_winner(self) -> str | None:
        """The position-debiased verdict (decided by the mean probabilities), or None when the pair
        was not decided that way."""
        return self.outcome if self.aggregated_by == "probabilities" and self.outcome in WINNERS else None

    def to_dict(self) -> dict[str, Any]:
        # original_winner / swapped_winner / consistent are derived; written for readers of the file.
        return {
            "policy": self.policy, "outcome": self.outcome, "consistent": self.consistent,
            "original_winner": self.original_winner, "swapped_winner": self.swapped_winner,
            "aggregation": self.aggregation, "aggregated_by": self.aggregated_by, "fallback": self.fallback,
            "p_a_minus_p_b": self.p_a_minus_p_b, "tie_margin": self.tie_margin, "by_construction": self.by_construction,
            "original": self.original.to_dict(), "swapped": self.swapped.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BothOrders":
        derived = {"consistent", "original_winner", "swapped_winner"}
        allowed = {f.name for f in dataclasses.fields(cls)} | derived
        if not isinstance(data, Mapping):
            raise ValueError(f"both_orders: expected an object, got {type(data).__name__}")
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"both_orders: unknown field(s) {unknown}; allowed: {sorted(allowed)}")
        for required in ("original", "swapped", "policy", "outcome"):
            if required not in data:
                raise ValueError(f"both_orders.{required}: missing required field")
        return cls(**{k: v for k, v in data.items() if k not in derived})

    @classmethod
    def from_legacy_meta(cls, orders: Any, info: Any) -> "BothOrders":
        """The record of a judgment row written with ``meta["orders"]`` (the two per-order
        judgments) and ``meta["both_orders"]`` (policy, outcome, aggregation)."""
        if not isinstance(orders, (list, tuple)) or len(orders) != 2 or not isinstance(info, Mapping):
            raise ValueError("judgment meta: 'orders' must hold the two per-order judgments and 'both_orders' an object, "
                             f"got {type(orders).__name__} and {type(info).__name__}")
        return cls(original=orders[0], swapped=orders[1], policy=info.get("policy", "tie"), outcome=info["outcome"],
                   aggregation=info.get("aggregation", "verdicts"), aggregated_by=info.get("aggregated_by", "verdicts"),
                   fallback=info.get("fallback"), p_a_minus_p_b=info.get("p_a_minus_p_b"),
                   tie_margin=info.get("tie_margin"), by_construction=bool(info.get("by_construction", False)))
