"""MT-bench judge formats: FastChat ``llm_judge``'s eight judge prompts, verbatim.

The prompt texts are read from ``judgetrain/resources/mt_bench/judge_prompts.jsonl``, an unmodified
copy of FastChat's ``fastchat/llm_judge/data/judge_prompts.jsonl`` (see ATTRIBUTION.md there), and
rendered exactly as FastChat's ``run_judge_pair`` / ``run_judge_single`` render them for an OpenAI
judge: ``system_prompt`` as the system message, ``prompt_template.format(**fields)`` as the user
message, with FastChat's field names (``question``, ``answer_a``, ``answer_b``, ``ref_answer_1``;
multi-turn ``question_1``, ``question_2``, ``answer_a_1`` … ``ref_answer_2``; single ``answer`` or
``answer_1`` / ``answer_2``). Template ``mtbench-<name>`` is FastChat's prompt ``<name>``.

Turns. FastChat judges turn 1 of a conversation with the plain template (turn-1 texts only) and
turn 2 with the ``-multi-turn`` template (the whole two-turn conversation, judged on the second
answer). A multi-turn sample therefore needs ``turn=1`` for a plain template and ``turn=2`` (or
None) for a multi-turn one; anything else is a ValueError naming the template to use.

Output contracts and parsing:

- pairwise: the verdict token ``[[A]]``, ``[[B]]`` or ``[[C]]`` (tie), after the explanation.
  FastChat takes the first of ``[[A]]``, ``[[B]]``, ``[[C]]`` present in that priority order; here
  two different verdict tokens in one output are a ParseFailure (a judge that wrote both did not
  give one verdict). Strict reads only the exact tokens; lenient also reads ``[[ a ]]``, ``[[Tie]]``
  and a stated verdict without double brackets ("Final verdict: **A**.", "verdict: [B]").
- single: ``[[rating]]`` on 1-10, e.g. "Rating: [[5]]". Strict is FastChat's main pattern
  ``\\[\\[(\\d+\\.?\\d*)\\]\\]`` (so "Rating: [[7.5]]" reads 7.5, as in FastChat); lenient adds
  spaces inside the brackets, "Rating: 7.5" / "Rating: **7**" / "Rating: 7/10", a labelled fraction
  of ten ending the critique ("The assistant's response: 9/10."), and FastChat's fallback pattern
  ``\\[(\\d+\\.?\\d*)\\]`` (single brackets) only as the critique's last word, since anywhere else
  it reads an index or a citation ("balls[2]", "[1]") as a grade. Two different ratings are a
  ParseFailure (FastChat takes the first); a rating outside 1-10 is a ParseFailure (FastChat would
  keep it). Strict and lenient together read every grade form of arena-bench-v1's 4,500 GPT-4
  critiques (``tests/unit/test_arena_grades.py``).

Both prompts spell the verdict tokens out ("[[A]]" if assistant A is better, … ; "[[rating]]", for
example: "Rating: [[5]]"). That instruction is removed from the output before parsing, so a judge
that echoes its prompt is never read as having voted (and the echo is not counted as a conflict).
"""

from __future__ import annotations

import abc
import functools
import importlib.resources
import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from judgetrain.formats.base import FoundVerdict, JudgeFormat, Message, VerdictMarkers, format_score, group_1
from judgetrain.types import JudgeSample, Label, ParseFailure, Verdict

PROMPTS_RESOURCE = "resources/mt_bench/judge_prompts.jsonl"
"""FastChat's judge prompts, relative to the ``judgetrain`` package."""

SCORE_SCALE = (1.0, 10.0)
"""FastChat's single-grading scale ("rate the response on a scale of 1 to 10")."""

_WINNER_TOKENS = {"A": "[[A]]", "B": "[[B]]", "tie": "[[C]]"}
# The pairwise verdict token of each winner.


@functools.cache
def fastchat_prompts() -> dict[str, dict[str, Any]]:
    """FastChat's judge prompts keyed by FastChat's name (``pair-v2``, ``single-math-v1``, …)."""
    text = importlib.resources.files("judgetrain").joinpath(PROMPTS_RESOURCE).read_text(encoding="utf-8")
    prompts: dict[str, dict[str, Any]] = {}
    for line_number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            row = json.loads(line)
            assert {"name", "type", "system_prompt", "prompt_template", "output_format"} <= set(row), (
                f"{PROMPTS_RESOURCE}:{line_number}: missing FastChat prompt fields"
            )
            prompts[row["name"]] = row
    return prompts


def _without_echo(text: str, instruction: re.Pattern[str]) -> tuple[str, int]:
    """``text`` with every echo of the verdict instruction blanked out (same length, so offsets hold),
    and where the explanation can start: after the last echo, or 0."""
    echoes = list(instruction.finditer(text))
    blanked = instruction.sub(lambda m: " " * len(m.group(0)), text)
    return blanked, (echoes[-1].end() if echoes else 0)


_VERDICT_LABEL = re.compile(
    r"(?:(?:my\s+)?(?:final\s+)?verdict(?:\s+is)?|rating)\s*[:：]?[\s*_\"'`\[]*$", re.IGNORECASE
)


def _critique(text: str, begin: int, match: re.Match[str]) -> str:
    """The explanation around the verdict ``match``: what precedes it from ``begin`` on (FastChat's
    judges explain first, and anything before an echoed prompt is not theirs), else what follows it."""
    before = text[begin:match.start()] if begin < match.start() else ""
    # "… Rating: [[8]]" / "Final verdict: [[A]]": the label belongs to the verdict, not the critique.
    before = _VERDICT_LABEL.sub("", before).strip()
    return before if before else text[match.end():].strip()


@dataclass(frozen=True)
class MtBenchFormat(JudgeFormat):
    """One FastChat judge prompt. ``fastchat_name`` is its name in ``judge_prompts.jsonl``."""

    fastchat_name: str = ""

    def __post_init__(self) -> None:
        prompt = fastchat_prompts().get(self.fastchat_name)
        assert prompt is not None, f"{self.name}: FastChat has no judge prompt {self.fastchat_name!r}"
        template = prompt["prompt_template"]
        # The flags must say what the FastChat template shows, or check_sample would let through
        # samples the template cannot be filled from.
        assert ("{ref_answer_1}" in template) == self.with_reference, self.name
        assert ("{question_2}" in template) == self.multi_turn, self.name
        assert prompt["type"] == self.protocol, self.name

    @property
    def system_prompt(self) -> str:
        """FastChat's system prompt of this template, verbatim."""
        return fastchat_prompts()[self.fastchat_name]["system_prompt"]

    @property
    def prompt_template(self) -> str:
        """FastChat's user-prompt template of this template, verbatim (``str.format`` fields)."""
        return fastchat_prompts()[self.fastchat_name]["prompt_template"]

    # --- rendering -------------------------------------------------------------------------
    def check_sample(self, sample: JudgeSample) -> None:
        super().check_sample(sample)
        self.prompt_fields(sample)

    def prompt_fields(self, sample: JudgeSample) -> dict[str, str]:
        """FastChat's ``str.format`` fields for ``sample``; ValueError when the turns do not fit."""
        question = sample.question_turns
        if self.multi_turn:
            if len(question) != 2:
                raise ValueError(f"sample {sample.id!r} has {len(question)} question turns; template {self.name!r} shows exactly 2")
            if sample.turn == 1:
                plain = self.name.removesuffix("-multi-turn")
                raise ValueError(f"sample {sample.id!r} is judged on turn 1; FastChat judges turn 1 with {plain!r}, not {self.name!r}")
            index = None
        elif not sample.is_multi_turn:
            index = 0
        elif sample.turn == 1:
            index = 0
        else:
            which = "the whole conversation (turn=None)" if sample.turn is None else f"turn {sample.turn}"
            raise ValueError(
                f"sample {sample.id!r} is multi-turn and judged on {which}; template {self.name!r} shows one turn: "
                f"use {self.name + '-multi-turn'!r} (FastChat's prompt for turn 2), or set turn=1"
            )
        answer_turns = []
        for position, answer in enumerate(sample.answers):
            if len(answer.turns) != len(question):
                raise ValueError(
                    f"sample {sample.id!r}: answer {position + 1} has {len(answer.turns)} turn(s), the question {len(question)}"
                )
            answer_turns.append(answer.turns)
        fields: dict[str, str] = {}
        if index is None:
            fields.update(question_1=question[0], question_2=question[1])
            if self.protocol == "pairwise":
                (a1, a2), (b1, b2) = answer_turns
                fields.update(answer_a_1=a1, answer_a_2=a2, answer_b_1=b1, answer_b_2=b2)
            else:
                fields.update(answer_1=answer_turns[0][0], answer_2=answer_turns[0][1])
        else:
            fields["question"] = question[index]
            if self.protocol == "pairwise":
                fields.update(answer_a=answer_turns[0][index], answer_b=answer_turns[1][index])
            else:
                fields["answer"] = answer_turns[0][index]
        if self.with_reference:
            assert sample.reference is not None  # check_sample's contract
            reference = sample.reference if isinstance(sample.reference, tuple) else (sample.reference,)
            needed = 2 if self.multi_turn else 1
            if len(reference) < needed:
                raise ValueError(f"sample {sample.id!r}: template {self.name!r} needs a reference answer for {needed} turns, got {len(reference)}")
            # FastChat passes the reference's first turn as ref_answer_1 whatever turn is judged.
            fields["ref_answer_1"] = reference[0]
            if self.multi_turn:
                fields["ref_answer_2"] = reference[1]
        return fields

    def prompt_messages(self, sample: JudgeSample) -> list[Message]:
        fields = self.prompt_fields(sample)
        return [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": self.prompt_template.format(**fields)},
        ]

    def target(self, sample: JudgeSample, target_label: str | None = None) -> str | None:
        label = self.target_label_of(sample, target_label)
        text = getattr(sample, self.judgment_field)
        if text is not None:
            return text
        return self.label_target(sample, label) if label is not None else None

    @abc.abstractmethod
    def label_target(self, sample: JudgeSample, label: Label) -> str | None:
        """The short, critique-less target that states ``label`` in this format, or None."""


# Echoed verdict instructions: the one sentence of each prompt that spells out verdict tokens.
_PAIR_INSTRUCTION = re.compile(
    r'"\[\[A\]\]"\s*if\s+assistant\s+A\s+is\s+better,\s*"\[\[B\]\]"\s*if\s+assistant\s+B\s+is\s+better,'
    r'\s*and\s+"\[\[C\]\]"\s*for\s+a\s+tie',
    re.IGNORECASE,
)
_SINGLE_INSTRUCTION = re.compile(r'"\[\[rating\]\]",\s*for\s+example:\s*"Rating:\s*\[\[5\]\]"', re.IGNORECASE)

_PAIR_STRICT = re.compile(r"\[\[([ABC])\]\]")
_PAIR_LENIENT = (
    re.compile(r"\[\[\s*(A|B|C|tie)\s*\]\]", re.IGNORECASE),
    # A stated verdict without the double brackets: "Final verdict: **A**.", "my verdict is [B]".
    re.compile(
        # The letters are case-sensitive so "my verdict is a tie" is not read as A.
        r"verdict\s*(?:is\s*)?[:：]?\s*[*_\"'`\[\s]*(?:assistant\s+)?((?-i:[ABC])|(?:a\s+)?tie)(?![\w])[*_\"'`\]]*",
        re.IGNORECASE,
    ),
)
_PAIR_WINNER = {"A": "A", "B": "B", "C": "tie", "TIE": "tie"}

_SINGLE_STRICT = re.compile(r"\[\[(\d+\.?\d*)\]\]")  # FastChat's one_score_pattern
# What may follow a grade that ends the critique: spaces, markdown, quotes, a full stop.
_CLOSING = r"[\s*_`\"'.!)]*\Z"
_SINGLE_LENIENT = (
    re.compile(r"\[\[\s*(\d+\.?\d*)\s*\]\]"),
    re.compile(r"rating\s*[:：]\s*[*_`\s]*\[?\s*(\d+(?:\.\d+)?)\s*\]?[*_`]*(?:\s*/\s*10)?", re.IGNORECASE),
    # FastChat's one_score_pattern_backup ([x]), read only as the critique's last word: anywhere else a
    # single-bracketed number is far more often an index or a citation ("balls[2]", "[1]") than a grade.
    re.compile(r"(?<![\w\]])\[(\d+(?:\.\d+)?)\]" + _CLOSING),
    # A grade stated as a fraction of ten after a label, ending the critique: "The assistant's response: 9/10."
    re.compile(r"[:：]\s*[*_`\"']*(\d+(?:\.\d+)?)\s*/\s*10" + _CLOSING),
)


@dataclass(frozen=True)
class MtBenchPairFormat(MtBenchFormat):
    """A FastChat pairwise prompt: verdict ``[[A]]`` / ``[[B]]`` / ``[[C]]`` (tie)."""

    answer_names: ClassVar[tuple[tuple[str, str], ...]] = (
        ("Assistant A", "Assistant B"),
        ("assistant A", "assistant B"),
        ("[[A]]", "[[B]]"),
    )

    markers: ClassVar[VerdictMarkers] = VerdictMarkers(
        expected="verdict token [[A]], [[B]] or [[C]]",
        strict=(_PAIR_STRICT,), read=group_1(lambda token: _PAIR_WINNER[token]),
        lenient=_PAIR_LENIENT, read_lenient=group_1(lambda token: _PAIR_WINNER[token.split()[-1].upper()]),
    )

    def verdict_options(self) -> dict[str, str]:
        return dict(_WINNER_TOKENS)

    def label_target(self, sample: JudgeSample, label: Label) -> str | None:
        return self.verdict_options()[label.winner] if label.winner is not None else None

    def judge_part(self, text: str) -> tuple[str, int]:
        return _without_echo(text, _PAIR_INSTRUCTION)

    def no_verdict_reason(self, own: str, strict: bool) -> str:
        return "no verdict token [[A]], [[B]] or [[C]]" if strict else "no verdict: neither [[A]] / [[B]] / [[C]] nor a stated final verdict"

    def verdict_from(self, text: str, own: str, begin: int, found: FoundVerdict) -> Verdict | ParseFailure:
        return Verdict(winner=found.value, critique=_critique(own, begin, found.match), template=self.name, lenient=found.lenient)


@dataclass(frozen=True)
class MtBenchSingleFormat(MtBenchFormat):
    """A FastChat single-grading prompt: ``[[rating]]`` on 1-10."""

    score_scale: tuple[float, float] | None = SCORE_SCALE

    markers: ClassVar[VerdictMarkers] = VerdictMarkers(
        expected="rating in double brackets, e.g. [[7]]", strict=(_SINGLE_STRICT,), read=group_1(float), lenient=_SINGLE_LENIENT,
    )

    def verdict_options(self) -> dict[str, str]:
        return {str(grade): f"Rating: [[{grade}]]" for grade in range(1, 11)}

    def label_target(self, sample: JudgeSample, label: Label) -> str | None:
        scores = self.label_scores(sample, label)
        return None if scores is None else f"Rating: [[{format_score(scores[0])}]]"

    def judge_part(self, text: str) -> tuple[str, int]:
        return _without_echo(text, _SINGLE_INSTRUCTION)

    def no_verdict_reason(self, own: str, strict: bool) -> str:
        return "no rating in double brackets, e.g. [[7]]" if strict else "no rating: neither [[x]], [x] nor 'Rating: x'"

    def verdict_from(self, text: str, own: str, begin: int, found: FoundVerdict) -> Verdict | ParseFailure:
        low, high = SCORE_SCALE
        if not low <= found.value <= high:
            return self.failure(text, f"rating {format_score(found.value)} is outside the scale 1-10")
        return Verdict(scores=(found.value,), critique=_critique(own, begin, found.match), template=self.name, lenient=found.lenient)


def _pair(fastchat_name: str, twin: str, description: str) -> MtBenchPairFormat:
    return MtBenchPairFormat(
        name=f"mtbench-{fastchat_name}", family="mtbench", protocol="pairwise",
        with_reference="math" in fastchat_name, multi_turn=fastchat_name.endswith("multi-turn"),
        description=description, fastchat_name=fastchat_name, reference_twin=f"mtbench-{twin}",
    )


def _single(fastchat_name: str, twin: str, description: str) -> MtBenchSingleFormat:
    return MtBenchSingleFormat(
        name=f"mtbench-{fastchat_name}", family="mtbench", protocol="single",
        with_reference="math" in fastchat_name, multi_turn=fastchat_name.endswith("multi-turn"),
        description=description, fastchat_name=fastchat_name, reference_twin=f"mtbench-{twin}",
    )


# Each general prompt's twin is FastChat's reference-guided ("math") prompt of the same kind and turn.
FORMATS: tuple[MtBenchFormat, ...] = (
    _pair("pair-v2", "pair-math-v1", "FastChat pairwise, general questions: [[A]] / [[B]] / [[C]] (tie)"),
    _pair("pair-v2-multi-turn", "pair-math-v1-multi-turn", "FastChat pairwise, two-turn conversation judged on turn 2"),
    _pair("pair-math-v1", "pair-v2", "FastChat pairwise with a reference answer (math, reasoning, coding)"),
    _pair("pair-math-v1-multi-turn", "pair-v2-multi-turn", "FastChat pairwise with reference answers, two turns judged on turn 2"),
    _single("single-v1", "single-math-v1", "FastChat single grading, general questions: Rating: [[1-10]]"),
    _single("single-math-v1", "single-v1", "FastChat single grading with a reference answer (math, reasoning, coding)"),
    _single("single-v1-multi-turn", "single-math-v1-multi-turn", "FastChat single grading, two-turn conversation judged on turn 2"),
    _single("single-math-v1-multi-turn", "single-v1-multi-turn", "FastChat single grading with reference answers, two turns judged on turn 2"),
)
"""FastChat's eight judge prompts, each named ``mtbench-<FastChat name>``."""
