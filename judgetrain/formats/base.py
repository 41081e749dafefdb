"""The judge-format contract: one object owns both the prompt and its parser, so they cannot drift.

A format is one versioned template (``judgelm-v1``, ``mtbench-pair-v2``, …) of one family. It
renders a :class:`~judgetrain.types.JudgeSample` into chat messages (system + user, plus the
assistant target when the sample carries a judgment or a label) and parses judge output back into a
:class:`~judgetrain.types.Verdict` or a :class:`~judgetrain.types.ParseFailure`.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from judgetrain.types import JudgeSample, Label, ParseFailure, Verdict

Message = dict[str, str]
"""A chat message: ``{"role": "system" | "user" | "assistant", "content": str}``."""


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
    """

    name: str
    family: str
    protocol: str
    with_reference: bool = False
    multi_turn: bool = False
    score_scale: tuple[float, float] | None = None
    verdict_first: bool = False
    description: str = ""

    #: Pairs of answer names used inside this family's judgments, swapped by :meth:`swap_judgment`.
    answer_names: ClassVar[tuple[tuple[str, str], ...]] = ()

    @property
    def version(self) -> str:
        """The template's version tag, the last ``-vN`` part of its name (``"v1"``), or ``""``."""
        match = re.search(r"-(v\d+)(?:-|$)", self.name)
        return match.group(1) if match else ""

    # --- rendering -------------------------------------------------------------------------
    @abc.abstractmethod
    def prompt_messages(self, sample: JudgeSample) -> list[Message]:
        """The system (optional) and user messages that ask for a judgment of ``sample``."""

    @abc.abstractmethod
    def target(self, sample: JudgeSample) -> str | None:
        """The assistant target for training: the sample's judgment in this format, a judgment
        built from its label when it has no critique, or None when it carries neither."""

    def render(self, sample: JudgeSample, *, include_target: bool = True) -> list[Message]:
        """Chat messages for ``sample``; the assistant target is appended when there is one."""
        self.check_sample(sample)
        messages = self.prompt_messages(sample)
        if include_target:
            target = self.target(sample)
            if target is not None:
                messages.append({"role": "assistant", "content": target})
        return messages

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
    @abc.abstractmethod
    def parse(self, text: str, strict: bool = True) -> Verdict | ParseFailure:
        """Read a verdict from judge output. Strict accepts only the contract; lenient also
        accepts common near-misses. Neither returns a tie for text it could not read."""

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


def read_markers(text: str, patterns: tuple[re.Pattern[str], ...], read: Callable[[str], Any], *,
                 strict: bool = True, lenient: tuple[re.Pattern[str], ...] = (),
                 read_lenient: Callable[[str], Any] | None = None) -> tuple[Any, re.Match[str], bool] | str | None:
    """The one value the first pattern with any match gives (``read`` of its group 1), with the last
    match and whether a lenient pattern gave it; a reason string when that pattern's matches disagree;
    None when no pattern matches. The ``lenient`` patterns (read with ``read_lenient``, or ``read``) are
    tried only when ``strict`` is False and no strict pattern matches."""
    tiers = [(patterns, read, False)]
    if not strict:
        tiers.append((lenient, read_lenient or read, True))
    for tier_patterns, tier_read, from_lenient in tiers:
        for pattern in tier_patterns:
            matches = list(pattern.finditer(text))
            if not matches:
                continue
            values = list(dict.fromkeys(tier_read(m.group(1)) for m in matches))
            if len(values) > 1:
                return "conflicting verdicts in one output: " + ", ".join(repr(m.group(0).strip()) for m in matches[:6])
            return values[0], matches[-1], from_lenient
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
