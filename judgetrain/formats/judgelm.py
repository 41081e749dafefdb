"""JudgeLM judge formats (Zhu et al. 2023, "JudgeLM: Fine-tuned Large Language Models are Scalable Judges").

JudgeLM's judge reads a question and two answers (optionally a reference answer) and writes, on its
first line, one 1-10 score per answer ("s1 s2"), then its explanation. The winner is read from the
scores: answer A (Assistant 1) wins when ``s1 - s2 > tie_threshold``, B when ``s2 - s1 >
tie_threshold``, else a tie (JudgeLM's ``translate_score_to_win_list`` with ``T``, default 0). The
prompt texts below are our own wording of that contract (JudgeLM's text is not shipped here); the
layout markers ("[Question]", "[The Start of Assistant 1's Answer]" …) and the output contract are
JudgeLM's.

Templates:

- ``judgelm-v1``: pairwise, no reference. Verdict first line ``s1 s2``.
- ``judgelm-ref-v1``: pairwise with the reference answer shown (JudgeLM's "reference support").
- ``judgelm-single-v1``: one answer, first line one score.
- ``judgelm-single-ref-v1``: one answer with the reference answer shown, first line one score (the
  single-grading counterpart of ``judgelm-ref-v1``; JudgeLM itself grades pairs only).

Each pairwise template names its single-grading counterpart with the same reference setting
(``protocol_twin``), so one training mixture of pairs and single grades runs under
``data.format: judgelm-v1``: a single-answer sample is rendered with ``judgelm-single-v1`` (or
``judgelm-single-ref-v1`` when it shows a reference).

The verdict comes first, so generation may stop at the first newline (:meth:`stop_strings`) when
only the verdict is wanted.

Targets. A sample's judgment text is its target when it was written for a JudgeLM template. A
critique written for another family (``meta["judgment_format"]``: FastChat's and Auto-J's single
grading end their critique with "Rating: [[x]]") is rewritten verdict-first: the score line built
from the label, then the critique without its rating statement (:func:`verdict_first_judgment`), so
the grade is the first thing the judge writes. A label graded on another declared scale (Prometheus
1-5, AlpacaEval's 0-1 win against its reference) is mapped linearly onto 1-10 (low end to 1, high end
to 10, two decimals), which keeps every winner; a label without a declared scale must be on 1-10.

Parsing. Strict reads JudgeLM's contract: the first line is exactly the score(s), numbers on 1-10
separated by one space (a line of only whitespace around them is allowed; JudgeLM also accepts a
comma, so "8,9" is strict too). Lenient also reads the first non-empty line with near-misses:
several spaces or ", " / " / " between the scores, markdown bold, a "Scores:" prefix, a trailing
period, "Assistant 1: 8, Assistant 2: 6", "7/10" (single); and a prompt echoed before the answer is
skipped (strict fails on it: its first line is not a score line). A score outside 1-10, or a line
with the wrong count of numbers, is a ParseFailure; nothing unreadable becomes a tie.
"""

from __future__ import annotations

import abc
import math
import re
from dataclasses import dataclass
from typing import ClassVar

from judgetrain.formats.base import (
    DEFAULT_TARGET_LABELS,
    FoundVerdict,
    JudgeFormat,
    Message,
    VerdictMarkers,
    format_score,
    one_turn,
    read_line,
)
from judgetrain.types import JudgeSample, Label, ParseFailure, Verdict

MAPPED_SCORE_DECIMALS = 2
"""Decimals kept when a grade on another scale is mapped onto 1-10 (a Prometheus mean of three 1-5
grades lands on quarter points: 7.75)."""

SCORE_SCALE = (1.0, 10.0)
"""JudgeLM's score range ("an overall score on a scale of 1 to 10")."""

TARGET_LABELS_WITH_REFERENCE = ("gpt4_with_reference",) + DEFAULT_TARGET_LABELS
"""The labels the with-reference template's target is built from when none is chosen: the teacher's
scores given with the reference shown come first."""

SYSTEM_PROMPT = "You are a careful and impartial judge of answer quality."

_PAIR_INSTRUCTION = (
    "Above are a user's question and the answers of two AI assistants. Judge how well each assistant answers the "
    "question, weighing helpfulness, relevance, accuracy and level of detail, and give each assistant one overall "
    "score from 1 to 10, where a higher score means a better answer.\n"
    "Write the two scores, Assistant 1's first and Assistant 2's second, alone on the first line, separated by a "
    "single space. From the second line on, explain your scores. Stay impartial: the order in which the answers "
    "are shown must not change your judgment."
)
_PAIR_REFERENCE_INSTRUCTION = (
    "Above are a user's question, a reference answer and the answers of two AI assistants. Judge how well each "
    "assistant answers the question, weighing helpfulness, relevance, accuracy and level of detail, and use the "
    "reference answer to check correctness. Give each assistant one overall score from 1 to 10, where a higher "
    "score means a better answer.\n"
    "Write the two scores, Assistant 1's first and Assistant 2's second, alone on the first line, separated by a "
    "single space. From the second line on, explain your scores. Stay impartial: the order in which the answers "
    "are shown must not change your judgment."
)
_SINGLE_INSTRUCTION = (
    "Above are a user's question and the answer of an AI assistant. Judge how well the assistant answers the "
    "question, weighing helpfulness, relevance, accuracy and level of detail, and give it one overall score from "
    "1 to 10, where a higher score means a better answer.\n"
    "Write the score alone on the first line. From the second line on, explain your score."
)
_SINGLE_REFERENCE_INSTRUCTION = (
    "Above are a user's question, a reference answer and the answer of an AI assistant. Judge how well the "
    "assistant answers the question, weighing helpfulness, relevance, accuracy and level of detail, and use the "
    "reference answer to check correctness. Give it one overall score from 1 to 10, where a higher score means a "
    "better answer.\n"
    "Write the score alone on the first line. From the second line on, explain your score."
)

_NUMBER = r"\d+(?:\.\d+)?"
# Strict: exactly the numbers, one space (or JudgeLM's comma) between two of them.
_STRICT_PAIR_LINE = re.compile(rf"\s*(?P<s1>{_NUMBER})[ ,](?P<s2>{_NUMBER})\s*")
_STRICT_SINGLE_LINE = re.compile(rf"\s*(?P<s1>{_NUMBER})\s*")
# Lenient decorations around a score line: markdown emphasis / heading marks, a "Score(s):" prefix, a
# trailing period.
_OPEN = r"[\s*_#`>]*(?:(?:scores?|ratings?)\s*[:：]\s*)?[*_`]*"
_CLOSE = r"[*_`]*\s*\.?[\s*_`]*"
_LENIENT_PAIR_LINES = (
    re.compile(rf"{_OPEN}(?P<s1>{_NUMBER})[*_`]*(?:\s*[,;/]\s*|\s+)[*_`]*(?P<s2>{_NUMBER}){_CLOSE}", re.IGNORECASE),
    re.compile(
        rf"{_OPEN}assistant\s*1\s*[:：]\s*[*_`]*(?P<s1>{_NUMBER})[*_`]*\s*[,;]?\s*"
        rf"assistant\s*2\s*[:：]\s*[*_`]*(?P<s2>{_NUMBER}){_CLOSE}",
        re.IGNORECASE,
    ),
)
_LENIENT_SINGLE_LINE = re.compile(rf"{_OPEN}(?P<s1>{_NUMBER})(?:\s*/\s*10)?{_CLOSE}", re.IGNORECASE)


def _read_scores(match: re.Match[str]) -> tuple[float, ...]:
    # Groups s1 (and s2 on a pairwise line) hold the scores in answer order.
    return tuple(float(match.group(name)) for name in sorted(match.groupdict()))


_PAIR_MARKERS = VerdictMarkers(expected="two scores 's1 s2'", strict=(_STRICT_PAIR_LINE,), read=_read_scores,
                               lenient=_LENIENT_PAIR_LINES)
_SINGLE_MARKERS = VerdictMarkers(expected="one score", strict=(_STRICT_SINGLE_LINE,), read=_read_scores,
                                 lenient=(_LENIENT_SINGLE_LINE,))
_ANY_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_ONLY_NUMBERS = re.compile(r"[\d.,;/\s-]+")


def _first_line(text: str) -> tuple[str, int]:
    """The first line of ``text`` and the offset where the rest (the explanation) starts."""
    newline = text.find("\n")
    return (text, len(text)) if newline < 0 else (text[:newline], newline + 1)


def _first_nonempty_line(text: str, start: int = 0) -> tuple[str, int, int] | None:
    """The first line of ``text[start:]`` with visible text: (line, its offset, offset after it)."""
    offset = start
    while offset <= len(text):
        newline = text.find("\n", offset)
        end = len(text) if newline < 0 else newline
        if text[offset:end].strip():
            return text[offset:end], offset, (end + 1 if newline >= 0 else end)
        if newline < 0:
            return None
        offset = newline + 1
    return None


# A verdict label left dangling once its grade is cut out of a critique: "Rating:", "**Final rating**:".
_DANGLING_VERDICT_LABEL = re.compile(
    r"[\s*_\"'`>#]*(?:(?:my\s+)?(?:final\s+|overall\s+)?(?:rating|verdict|score)(?:\s+is)?)?\s*[:：]?[\s*_\"'`(\[]*\Z",
    re.IGNORECASE,
)


def critique_without_verdict(text: str, written_in: str) -> str:
    """``text``, a critique written for the template ``written_in``, without the statements of its
    verdict (every match of the pattern its parser reads the verdict with, strict first, then
    lenient) and the label left before each ("Rating:"), stripped. ValueError when the critique states
    no verdict ``written_in`` can read, so a critique is never cut where it holds none."""
    from judgetrain import formats

    source = formats.get(written_in)
    own, begin = source.judge_part(text)
    found = source.find_verdict(own, strict=False)
    if found is None or isinstance(found, str):
        reason = found or f"no {source.markers.expected}"
        raise ValueError(f"the critique states no verdict {written_in!r} reads ({reason}), so its verdict cannot be moved first")
    pieces, cursor = [], 0
    for match in found.match.re.finditer(own):
        start, end = begin + match.start(), begin + match.end()
        before = text[cursor:start]
        label = _DANGLING_VERDICT_LABEL.search(before)
        pieces.append(before[: label.start()] if label is not None else before)
        cursor = end
    pieces.append(text[cursor:])
    # Cutting "Rating: [[7]]" out of "… as follows: "Rating: [[7]]"." leaves stray closing marks.
    text = re.sub(r"[ \t]*[\"'`*_)\]]+(?=[.!]?\s*\Z)", "", "".join(pieces))
    return re.sub(r"[ \t]*[:：][ \t]*(?=[.!]?\s*\Z)", "", text).strip()


def _family_of(template: str) -> str:
    from judgetrain import formats

    return formats.get(template).family


def verdict_first_judgment(score_line: str, critique: str) -> str:
    """A JudgeLM judgment: the score line, then the critique from the next line on."""
    return f"{score_line}\n{critique}" if critique else score_line


@dataclass(frozen=True)
class JudgeLMFormat(JudgeFormat):
    """A JudgeLM template: the score line first, then the explanation."""

    verdict_first: bool = True
    score_scale: tuple[float, float] | None = SCORE_SCALE

    #: How many scores the first line holds.
    num_scores: ClassVar[int] = 2

    @property
    @abc.abstractmethod
    def instruction(self) -> str:
        """The instruction closing the prompt; an output that echoes it is read after it (lenient only)."""

    def stop_strings(self) -> tuple[str, ...]:
        # The verdict is the whole first line: a judge asked only for its verdict can stop there.
        return ("\n",)

    # --- rendering -------------------------------------------------------------------------
    def check_sample(self, sample: JudgeSample) -> None:
        super().check_sample(sample)
        one_turn(sample, self.name, shown="one question and its answers")

    def _reference_text(self, sample: JudgeSample, index: int) -> str:
        assert sample.reference is not None  # check_sample's contract
        reference = sample.reference if isinstance(sample.reference, tuple) else (sample.reference,)
        return reference[min(index, len(reference) - 1)]

    def target(self, sample: JudgeSample, target_label: str | None = None) -> str | None:
        label = self.target_label_of(sample, target_label)
        text = getattr(sample, self.judgment_field)
        written_in = sample.meta.get("judgment_format")
        if text is not None and written_in and _family_of(written_in) != self.family:
            # A critique of another family states its verdict where that family does (last, for a
            # "Rating: [[x]]"); the JudgeLM target states it first.
            score_line = self.label_target(sample, label) if label is not None else None
            if score_line is None:
                raise ValueError(
                    f"sample {sample.id!r}: its critique was written for {written_in!r} and its label gives no scores to put "
                    f"first for {self.name!r}; give it a graded label, or train it with a {written_in} template"
                )
            try:
                critique = critique_without_verdict(text, written_in)
            except ValueError as err:
                raise ValueError(f"sample {sample.id!r}: {err}") from None
            return verdict_first_judgment(score_line, critique)
        if text is not None:
            return text
        return self.label_target(sample, label) if label is not None else None

    def verdict_options(self) -> dict[str, str]:
        # The verdict line starts with (Assistant 1's) score, so the first token is a grade.
        return {str(grade): str(grade) for grade in range(1, 11)}

    def label_target(self, sample: JudgeSample, label: Label) -> str | None:
        """The score line stating ``label``'s scores (no explanation), or None when it has no scores.

        A label holding only a winner gives None: JudgeLM's verdict is scores, and inventing them
        would teach the judge numbers nobody gave.
        """
        scores = self.label_scores(sample, label)
        if scores is None:
            return None
        implied = self.winner_of(scores)
        if label.winner is not None and implied is not None and implied != label.winner:
            raise ValueError(
                f"sample {sample.id!r}: its label says winner {label.winner!r} but its scores {scores} give "
                f"{implied!r} under {self.name!r} (tie threshold {getattr(self, 'tie_threshold', None)}): fix the label"
            )
        return " ".join(format_score(s) for s in scores)

    def label_scores(self, sample: JudgeSample, label: Label) -> tuple[float, ...] | None:
        """The label's scores on 1-10; a label on another declared scale is mapped onto it linearly
        (its low end to 1, its high end to 10, :data:`MAPPED_SCORE_DECIMALS` decimals)."""
        if label.scale is None or label.scale == self.score_scale or label.scores is None or any(s is None for s in label.scores):
            return super().label_scores(sample, label)
        low, high = label.scale
        if not high > low:
            raise ValueError(f"sample {sample.id!r}: its label's scale {label.scale} is empty; give (low, high) with low < high")
        # A Label checks its scores against its own scale when it is built.
        target_low, target_high = SCORE_SCALE
        mapped = tuple(round(target_low + (s - low) * (target_high - target_low) / (high - low), MAPPED_SCORE_DECIMALS)  # type: ignore[operator]
                       for s in label.scores)
        return super().label_scores(sample, Label(winner=label.winner, scores=mapped, scale=self.score_scale))

    def winner_of(self, scores: tuple[float, ...]) -> str | None:
        """The pairwise winner the scores give, or None for a single-answer template."""
        return None

    # --- parsing ---------------------------------------------------------------------------
    def find_verdict(self, own: str, strict: bool) -> FoundVerdict | None:
        """Strict: the first line is the score line. Lenient, when it is not: the first non-empty
        line after an echoed instruction (or of the whole output) read with the near-miss patterns."""
        line, _ = _first_line(own)
        found = read_line(line, self.markers, strict=True)
        if found is None and not strict:
            lenient_line = self._lenient_line(own)
            if lenient_line is not None:
                line, offset, _ = lenient_line
                found = read_line(line, self.markers, strict=False, start=offset)
                # Reached only because the first line is no score line, so the reading is lenient.
                found = found._replace(lenient=True) if found is not None else None
        return found

    def _lenient_line(self, own: str) -> tuple[str, int, int] | None:
        echo = own.rfind(self.instruction)
        return _first_nonempty_line(own, echo + len(self.instruction) if echo >= 0 else 0)

    def no_verdict_reason(self, own: str, strict: bool) -> str:
        line = _first_line(own)[0]
        if not strict:
            lenient_line = self._lenient_line(own)
            line = lenient_line[0] if lenient_line is not None else line
        expected = self.markers.expected
        numbers = _ANY_NUMBER.findall(line) if _ONLY_NUMBERS.fullmatch(line) else []
        where = "the first line" if strict else "the first non-empty line"
        if numbers and len(numbers) != self.num_scores:
            return f"{where} holds {len(numbers)} numbers ({' '.join(numbers[:6])}), expected {expected}"
        return f"{where} {line.strip()[:60]!r} is not {expected} on 1-10"

    def verdict_from(self, text: str, own: str, begin: int, found: FoundVerdict) -> Verdict | ParseFailure:
        scores = found.value
        low, high = SCORE_SCALE
        for score in scores:
            if not low <= score <= high:
                return self.failure(text, f"score {format_score(score)} is outside the scale 1-10")
        return Verdict(winner=self.winner_of(scores), scores=scores, critique=own[found.end:].strip(),
                       template=self.name, lenient=found.lenient)

    def prompt_messages(self, sample: JudgeSample) -> list[Message]:
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": self.user_prompt(sample)}]

    @abc.abstractmethod
    def user_prompt(self, sample: JudgeSample) -> str:
        """The user message: question, (reference,) answer(s), then the instruction."""


@dataclass(frozen=True)
class JudgeLMPairFormat(JudgeLMFormat):
    """JudgeLM pairwise: first line "s1 s2"; ``tie_threshold`` is JudgeLM's T (ties when |s1 - s2| <= T)."""

    tie_threshold: float = 0.0

    answer_names: ClassVar[tuple[tuple[str, str], ...]] = (
        ("Assistant 1", "Assistant 2"),
        ("assistant 1", "assistant 2"),
    )
    num_scores: ClassVar[int] = 2
    markers: ClassVar[VerdictMarkers] = _PAIR_MARKERS

    def __post_init__(self) -> None:
        threshold = self.tie_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold) or threshold < 0:
            raise ValueError(f"{self.name}: tie_threshold must be a number >= 0 (score points), got {threshold!r}")

    @property
    def instruction(self) -> str:
        return _PAIR_REFERENCE_INSTRUCTION if self.with_reference else _PAIR_INSTRUCTION

    def winner_of(self, scores: tuple[float, ...]) -> str | None:
        first, second = scores
        if first - second > self.tie_threshold:
            return "A"
        if second - first > self.tie_threshold:
            return "B"
        return "tie"

    def user_prompt(self, sample: JudgeSample) -> str:
        index = one_turn(sample, self.name, shown="one question and its answers")
        parts = [f"[Question]\n{sample.question_turns[index]}\n\n"]
        if self.with_reference:
            parts.append(f"[Reference Answer]\n{self._reference_text(sample, index)}\n\n")
        for number, answer in enumerate(sample.answers, start=1):
            parts.append(
                f"[The Start of Assistant {number}'s Answer]\n{answer.turns[index]}\n"
                f"[The End of Assistant {number}'s Answer]\n\n"
            )
        parts.append(f"[System]\n{self.instruction}")
        return "".join(parts)

    def swap_judgment(self, text: str) -> str:
        """The judgment as it reads with the answers swapped: the two numbers of the score line trade
        places (separator and decorations kept) and "Assistant 1" / "Assistant 2" are exchanged."""
        found = _first_nonempty_line(text)
        if found is not None:
            line, offset, _ = found
            match = _STRICT_PAIR_LINE.fullmatch(line) or next(
                (m for m in (p.fullmatch(line) for p in _LENIENT_PAIR_LINES) if m is not None), None
            )
            if match is not None:
                (a_start, a_end), (b_start, b_end) = match.span("s1"), match.span("s2")
                line = line[:a_start] + match.group("s2") + line[a_end:b_start] + match.group("s1") + line[b_end:]
                # The score line keeps its own names: "Assistant 1: 8, Assistant 2: 6" becomes
                # "Assistant 1: 6, Assistant 2: 8"; swapping names there too would undo the swap.
                before, after = text[:offset], text[offset + len(found[0]):]
                return super().swap_judgment(before) + line + super().swap_judgment(after)
        return super().swap_judgment(text)


@dataclass(frozen=True)
class JudgeLMSingleFormat(JudgeLMFormat):
    """JudgeLM-style single grading: first line one score on 1-10."""

    num_scores: ClassVar[int] = 1
    markers: ClassVar[VerdictMarkers] = _SINGLE_MARKERS

    @property
    def instruction(self) -> str:
        return _SINGLE_REFERENCE_INSTRUCTION if self.with_reference else _SINGLE_INSTRUCTION

    def user_prompt(self, sample: JudgeSample) -> str:
        index = one_turn(sample, self.name, shown="one question and its answers")
        parts = [f"[Question]\n{sample.question_turns[index]}\n\n"]
        if self.with_reference:
            parts.append(f"[Reference Answer]\n{self._reference_text(sample, index)}\n\n")
        parts.append(
            f"[The Start of the Assistant's Answer]\n{sample.answers[0].turns[index]}\n"
            f"[The End of the Assistant's Answer]\n\n[System]\n{self.instruction}"
        )
        return "".join(parts)


FORMATS: tuple[JudgeLMFormat, ...] = (
    JudgeLMPairFormat(
        name="judgelm-v1", family="judgelm", protocol="pairwise", reference_twin="judgelm-ref-v1",
        protocol_twin="judgelm-single-v1",
        description="JudgeLM pairwise: first line 's1 s2' (1-10 each), then the explanation; winner from the scores",
    ),
    JudgeLMPairFormat(
        name="judgelm-ref-v1", family="judgelm", protocol="pairwise", with_reference=True,
        reference_twin="judgelm-v1", protocol_twin="judgelm-single-ref-v1", target_labels=TARGET_LABELS_WITH_REFERENCE,
        description="JudgeLM pairwise with a reference answer: first line 's1 s2', then the explanation",
    ),
    JudgeLMSingleFormat(
        name="judgelm-single-v1", family="judgelm", protocol="single", reference_twin="judgelm-single-ref-v1",
        protocol_twin="judgelm-v1",
        description="JudgeLM-style single grading: first line one score 1-10, then the explanation",
    ),
    JudgeLMSingleFormat(
        name="judgelm-single-ref-v1", family="judgelm", protocol="single", with_reference=True,
        reference_twin="judgelm-single-v1", protocol_twin="judgelm-ref-v1", target_labels=TARGET_LABELS_WITH_REFERENCE,
        description="JudgeLM-style single grading with a reference answer: first line one score 1-10, then the explanation",
    ),
)
"""The JudgeLM templates."""
