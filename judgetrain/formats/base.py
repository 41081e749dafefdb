"""The judge-format contract: one object owns both the prompt and its parser, so they cannot drift.

A format is one versioned template (``judgelm-v1``, ``mtbench-pair-v2``, …) of one family. It
renders a :class:`~judgetrain.types.JudgeSample` into chat messages (system + user, plus the
assistant target when the sample carries a judgment or a label) and parses judge output back into a
:class:`~judgetrain.types.Verdict` or a :class:`~judgetrain.types.ParseFailure`.

What a template knows about itself lives on it, for every caller to ask: the verdicts it gives and how
it writes them (:meth:`JudgeFormat.verdict_options`), its with/without-reference twin
(:attr:`JudgeFormat.reference_twin`, :meth:`JudgeFormat.for_reference`) and the label its target is
built from (:meth:`JudgeFormat.target_label_of`: the one chosen by ``data.target_label`` /
``--target-label``, else its :attr:`JudgeFormat.target_labels` order). Every family parses through
one skeleton (:meth:`JudgeFormat.parse` over its :class:`VerdictMarkers`), so strict and lenient mode,
empty outputs, missing and conflicting verdicts are handled alike in all of them.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, NamedTuple

from judgetrain.types import JudgeSample, Label, ParseFailure, Verdict

Message = dict[str, str]
"""A chat message: ``{"role": "system" | "user" | "assistant", "content": str}``."""

DEFAULT_TARGET_LABELS = ("gpt4", "human_majority", "human", "gold")
"""The order in which a template looks for the label a target is built from when none is chosen
(``data.target_label`` / ``judgetrain prep --target-label``): the first present wins, the teacher
first since its label matches its critique; a sample with a single label uses that one. A template
whose training data comes from another teacher puts that teacher's label first (``target_labels``)."""


@dataclass(frozen=True)
class JudgeFormat(abc.ABC):
    """One versioned judge template.

    Attributes:
        name: versioned template name, ``<family>-<template>``; recorded in every judgment.
        family: the format family (``judgelm``, ``autoj``, ``mtbench``, ``pandalm``, ``prometheus``).
        protocol: ``"pairwise"`` (two answers) or ``"single"`` (one graded answer).
        with_reference: the prompt shows a reference answer (a sample without one is an error).
        multi_turn: the prompt shows a whole multi-turn conversation.
        score_scale: (low, high) of the grades the format emits, or None when it emits no grades.
        verdict_first: the verdict comes before the critique, so generation may stop after it.
        description: one line for ``judgetrain formats``.
        reference_twin: the name of the same template with the reference shown (for a template
            without one) or without it (for a with-reference template); None when there is no twin.
        target_labels: the labels a target is built from when none is chosen, first present wins
            (:data:`DEFAULT_TARGET_LABELS`, with the template's own teacher first where it has one).
        protocol_twin: the name of the same family's template for the other protocol (the single
            grading template of a pairwise one, and back), with the same reference setting; None when
            there is none. It lets one training mixture hold pairs and single grades under one
            ``data.format`` (:meth:`for_protocol`).
    """

    name: str
    family: str
    protocol: str
    with_reference: bool = False
    multi_turn: bool = False
    score_scale: tuple[float, float] | None = None
    verdict_first: bool = False
    description: str = ""
    reference_twin: str | None = None
    target_labels: tuple[str, ...] = DEFAULT_TARGET_LABELS
    protocol_twin: str | None = None

    #: Pairs of answer names used inside this family's judgments, swapped by :meth:`swap_judgment`.
    answer_names: ClassVar[tuple[tuple[str, str], ...]] = ()

    @property
    def version(self) -> str:
        """The template's version tag, the last ``-vN`` part of its name (``"v1"``), or ``""``."""
        match = re.search(r"-(v\d+)(?:-|$)", self.name)
        return match.group(1) if match else ""

    @abc.abstractmethod
    def verdict_options(self) -> dict[str, str]:
        """Each verdict this template gives and the text that states it: the winners ``A`` / ``B`` /
        ``tie`` of a pairwise template (without ``tie`` when it has none), the integer grades of a
        graded one. For a verdict-first template the text is what the judge's first generated token
        starts, read by the backends for verdict probabilities; JudgeLM's pairwise verdict line opens
        with Assistant 1's grade, so its options are that grade's values."""

    @property
    def judgment_field(self) -> str:
        """The sample field holding a judgment written for this template's prompt:
        ``judgment_with_reference`` when the prompt shows a reference, else ``judgment``."""
        return "judgment_with_reference" if self.with_reference else "judgment"

    def for_reference(self, has_reference: bool) -> "JudgeFormat":
        """This template, or its :attr:`reference_twin` when only the twin shows a reference as
        ``has_reference`` says; a template without a twin is returned whatever ``has_reference`` is."""
        if self.reference_twin is None or self.with_reference == has_reference:
            return self
        from judgetrain import formats

        return formats.get(self.reference_twin)

    def for_protocol(self, protocol: str) -> "JudgeFormat":
        """This template, or its :attr:`protocol_twin` when only the twin is of ``protocol``
        (``"pairwise"`` / ``"single"``); a template without a twin is returned whatever ``protocol`` is."""
        if self.protocol_twin is None or self.protocol == protocol:
            return self
        from judgetrain import formats

        return formats.get(self.protocol_twin)

    # --- rendering -------------------------------------------------------------------------
    @abc.abstractmethod
    def prompt_messages(self, sample: JudgeSample) -> list[Message]:
        """The system (optional) and user messages that ask for a judgment of ``sample``."""

    @abc.abstractmethod
    def target(self, sample: JudgeSample, target_label: str | None = None) -> str | None:
        """The assistant target for training: the sample's judgment in this format, a judgment
        built from its label (:meth:`target_label_of`) when it has no critique, or None when it
        carries neither."""

    def render(self, sample: JudgeSample, *, include_target: bool = True, target_label: str | None = None) -> list[Message]:
        """Chat messages for ``sample``; the assistant target is appended when there is one.

        ``target_label`` names the label the target is built from (see :meth:`target_label_of`)."""
        self.check_sample(sample)
        messages = self.prompt_messages(sample)
        if include_target:
            target = self.target(sample, target_label)
            if target is not None:
                messages.append({"role": "assistant", "content": target})
        return messages

    def target_label_of(self, sample: JudgeSample, target_label: str | None = None) -> Label | None:
        """The label a target is built from: ``labels[target_label]`` when one is chosen (a sample
        without it is a ValueError naming the labels it has), else the first of :attr:`target_labels`
        the sample has, else its only label, else None."""
        if target_label is None:
            return sample.label(*self.target_labels) or sample.label()
        if target_label not in sample.labels:
            have = ", ".join(sorted(sample.labels)) or "none"
            raise ValueError(
                f"sample {sample.id!r} has no label {target_label!r} to build its {self.name!r} target from "
                f"(its labels: {have}): choose one of those with data.target_label / --target-label, or leave "
                "the sample out"
            )
        return sample.labels[target_label]

    def check_sample(self, sample: JudgeSample) -> None:
        """Raise ValueError when ``sample`` cannot be shown with this template."""
        if sample.protocol != self.protocol:
            raise ValueError(
                f"sample {sample.id!r} has {len(sample.answers)} answer(s) ({sample.protocol}); "
                f"template {self.name!r} is {self.protocol}: pick a {sample.protocol} template"
            )
        if self.with_reference and sample.reference is None:
            raise ValueError(f"sample {sample.id!r} has no reference; template {self.name!r} needs one: pick a template without reference")
        if self.multi_turn and not sample.is_multi_turn:
            raise ValueError(f"sample {sample.id!r} is single-turn; template {self.name!r} is multi-turn")

    # --- parsing ---------------------------------------------------------------------------
    #: What this template's parser looks for (set by every family; see :class:`VerdictMarkers`).
    markers: ClassVar["VerdictMarkers"]

    def parse(self, text: str, strict: bool = True) -> Verdict | ParseFailure:
        """Read a verdict from judge output. Strict accepts only the contract (``markers.strict``);
        lenient, only when no strict pattern matches, also accepts common near-misses
        (``markers.lenient``) and marks the verdict ``lenient``. Neither returns a tie for text it
        could not read: an empty output, no verdict, conflicting verdicts and a verdict out of range
        are each a ParseFailure with its reason.

        Every family runs these same steps; it says where its own text starts
        (:meth:`judge_part`), how the verdict is found there (:meth:`find_verdict`) and what the
        verdict is (:meth:`verdict_from`)."""
        if not text.strip():
            return self.failure(text, "empty output")
        own, begin = self.judge_part(text)
        found = self.find_verdict(own, strict)
        if isinstance(found, str):
            return self.failure(text, found)
        if found is None:
            return self.failure(text, f"{self.no_verdict_reason(own, strict)} ({'strict' if strict else 'lenient'})")
        return self.verdict_from(text, own, begin, found)

    def judge_part(self, text: str) -> tuple[str, int]:
        """The part of ``text`` the judge wrote itself, with anything that must not be read as a vote
        blanked (an echoed instruction), and where it starts in ``text``; by default all of it."""
        return text, 0

    def find_verdict(self, own: str, strict: bool) -> "FoundVerdict | str | None":
        """The verdict in the judge's text (``markers`` searched anywhere in it, :func:`read_markers`);
        a reason string when it holds conflicting verdicts; None when it holds none."""
        return read_markers(own, self.markers, strict=strict)

    def no_verdict_reason(self, own: str, strict: bool) -> str:
        """Why no verdict was found (the mode is appended by :meth:`parse`)."""
        return f"no {self.markers.expected}"

    @abc.abstractmethod
    def verdict_from(self, text: str, own: str, begin: int, found: "FoundVerdict") -> Verdict | ParseFailure:
        """The Verdict ``found`` states (critique included), or a ParseFailure when its value is out
        of range. ``own`` and ``begin`` are :meth:`judge_part`'s."""

    def label_scores(self, sample: JudgeSample, label: Label) -> tuple[float, ...] | None:
        """The label's scores checked against this template's ``score_scale``, or None when the label
        lacks a score for some answer (then no target can be built from it)."""
        assert self.score_scale is not None, f"{self.name} emits no grades"
        if label.scores is None or any(s is None for s in label.scores):
            return None
        if label.scale is not None and label.scale != self.score_scale:
            raise ValueError(
                f"sample {sample.id!r}: its label is on the scale {label.scale}, template {self.name!r} grades on "
                f"{self.score_scale}: rescale the labels or pick a template of that scale"
            )
        low, high = self.score_scale
        for score in label.scores:
            if not low <= score <= high:  # type: ignore[operator]
                raise ValueError(f"sample {sample.id!r}: score {score} is outside {self.name!r}'s scale {low:g}-{high:g}")
        return tuple(float(s) for s in label.scores)  # type: ignore[arg-type]

    def failure(self, text: str, reason: str) -> ParseFailure:
        return ParseFailure(raw_text=text, reason=reason, template=self.name)

    # --- generation hints ------------------------------------------------------------------
    def stop_strings(self) -> tuple[str, ...]:
        """Strings after which generation may stop because the verdict is complete (verdict-first
        formats); empty for formats whose verdict ends the judgment."""
        return ()

    # --- augmentation ----------------------------------------------------------------------
    def swap_judgment(self, text: str) -> str:
        """The judgment text as it reads once the two answers have swapped places: answer names
        exchanged (``answer_names``). Families whose text also carries ordered scores override it."""
        return swap_names(text, self.answer_names)


def format_score(score: float) -> str:
    """A score as a judge writes it: ``8`` for 8.0, ``7.5`` for 7.5."""
    return str(int(score)) if float(score).is_integer() else str(float(score))


@dataclass(frozen=True)
class VerdictMarkers:
    """How a template's verdict is written: the contract's patterns and the near-misses.

    Attributes:
        expected: what the contract asks for, for the reason of a failure ("rating 'Rating: [[x]]'").
        strict: the contract's patterns, tried in order.
        read: the verdict a strict pattern's match states (by default from its group 1).
        lenient: near-miss patterns, tried in order only in lenient mode and only when no strict
            pattern matches.
        read_lenient: the verdict a lenient match states; None reads it as ``read`` does.
    """

    expected: str
    strict: tuple[re.Pattern[str], ...]
    read: Callable[[re.Match[str]], Any]
    lenient: tuple[re.Pattern[str], ...] = ()
    read_lenient: Callable[[re.Match[str]], Any] | None = None

    def tiers(self, strict: bool) -> list[tuple[tuple[re.Pattern[str], ...], Callable[[re.Match[str]], Any], bool]]:
        """(patterns, read, from_lenient) in the order they are tried in this mode."""
        tiers = [(self.strict, self.read, False)]
        if not strict:
            tiers.append((self.lenient, self.read_lenient or self.read, True))
        return tiers


def group_1(read: Callable[[str], Any]) -> Callable[[re.Match[str]], Any]:
    """A :class:`VerdictMarkers` reader that reads ``read`` of a match's group 1."""
    return lambda match: read(match.group(1))


class FoundVerdict(NamedTuple):
    """A verdict found in judge output: its value, the match that stated it, whether only the
    lenient reading found it, and the offset in the judge's text where the verdict ends."""

    value: Any
    match: re.Match[str]
    lenient: bool
    end: int


def read_markers(text: str, markers: VerdictMarkers, *, strict: bool = True) -> FoundVerdict | str | None:
    """The one value the first pattern with any match in ``text`` gives, with the last match and
    whether a lenient pattern gave it; a reason string when that pattern's matches disagree; None when
    no pattern matches (:meth:`VerdictMarkers.tiers` gives the order)."""
    for patterns, read, from_lenient in markers.tiers(strict):
        for pattern in patterns:
            matches = list(pattern.finditer(text))
            if not matches:
                continue
            values = list(dict.fromkeys(read(m) for m in matches))
            if len(values) > 1:
                return "conflicting verdicts in one output: " + ", ".join(repr(m.group(0).strip()) for m in matches[:6])
            return FoundVerdict(values[0], matches[-1], from_lenient, matches[-1].end())
    return None


def read_line(line: str, markers: VerdictMarkers, *, strict: bool = True, start: int = 0) -> FoundVerdict | None:
    """The verdict stated by ``line`` as a whole (a verdict-first template's verdict line), which
    starts at offset ``start`` of the judge's text: the first pattern that matches all of it, in
    :meth:`VerdictMarkers.tiers` order; None when none does."""
    for patterns, read, from_lenient in markers.tiers(strict):
        for pattern in patterns:
            match = pattern.fullmatch(line)
            if match is not None:
                return FoundVerdict(read(match), match, from_lenient, start + len(line))
    return None


def one_turn(sample: JudgeSample, template: str, shown: str) -> int:
    """The turn index shown by a one-question template: 0, for a single-turn sample or a multi-turn
    one judged on turn 1 (later turns need the conversation before them, which these prompts lack).
    ``shown`` names what the template shows, for the error."""
    if sample.is_multi_turn and sample.turn != 1:
        which = "the whole conversation (turn=None)" if sample.turn is None else f"turn {sample.turn}"
        raise ValueError(
            f"sample {sample.id!r} is multi-turn and judged on {which}; template {template!r} shows {shown}: "
            "set turn=1, or use an mtbench -multi-turn template"
        )
    for position, answer in enumerate(sample.answers):
        if len(answer.turns) != len(sample.question_turns):
            raise ValueError(
                f"sample {sample.id!r}: answer {position + 1} has {len(answer.turns)} turn(s), the question {len(sample.question_turns)}"
            )
    return 0


def swap_names(text: str, pairs: tuple[tuple[str, str], ...]) -> str:
    """Exchange each pair of names in ``text`` in one pass, so a name swapped once is not swapped back."""
    if not pairs:
        return text
    mapping: dict[str, str] = {}
    for first, second in pairs:
        mapping[first] = second
        mapping[second] = first
    # Longest names first, whole words only, so "Assistant 1" is not matched inside "Assistant 10".
    pattern = re.compile(
        "|".join(r"(?<![\w])" + re.escape(name) + r"(?![\w])" for name in sorted(mapping, key=len, reverse=True))
    )
    return pattern.sub(lambda m: mapping[m.group(0)], text)
