"""Auto-J judge formats (Li et al. 2023, "Generative Judge for Evaluating Alignment").

Auto-J reads a user's query and one or two responses, writes its critique, and ends with its verdict:

- pairwise: it names the factors that tell the two responses apart, compares them, and closes with
  "So, the final decision is Response 1" / "… Response 2" / "… Tie";
- single: it critiques the one response and closes with a 1-10 rating "Rating: [[x]]" (Auto-J's
  GPT-4 training ratings include halves such as 6.5, so a decimal rating is part of the contract).

Auto-J's repository carries no licence, so none of its prompt text is shipped here: the prompts below
are our own wording of the task the paper describes. What is kept is the output contract (the two
closing statements above, which Auto-J's published targets end with) and the data layout markers
("[BEGIN DATA]", "[Query]:", "[Response 1]:", "[END DATA]"). When a sample carries scenario
``criteria`` (or a ``rubric``), they are shown in the prompt as the criteria to judge by; the
criteria text always comes from the sample.

Templates:

- ``autoj-pairwise-v1``: two responses; "So, the final decision is Response 1 / Response 2 / Tie".
- ``autoj-single-v1``: one response; "Rating: [[x]]" on 1-10.

Parsing. Auto-J reads the *last* decision statement of an output; here every decision statement of
the judge's own text must agree, and two different ones are a ParseFailure. Strict reads only the
contract ("final decision is Response 1|Response 2|Tie", case as written; "Rating: [[x]]"). Lenient
also reads near-misses: other letter case, extra spaces, bold or quoted verdicts, "Final decision:
Response 2", "Response1"; for single grading "Rating: 7.5", "Rating: **7**", "Rating: 7/10" and a
bare "[[7]]". A judge that echoes its prompt is read from the end of the echo on (after the last
"[END DATA]" or echoed instruction), and the instruction's own spelling of the verdicts is never read
as a vote. A rating outside 1-10 is a ParseFailure; nothing unreadable becomes a tie.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass
from typing import ClassVar

from judgetrain.formats.base import FoundVerdict, JudgeFormat, Message, VerdictMarkers, format_score, group_1, one_turn
from judgetrain.types import JudgeSample, Label, ParseFailure, Verdict

SCORE_SCALE = (1.0, 10.0)
"""Auto-J's single-grading scale."""

_DECISION_STATEMENTS = {"A": "So, the final decision is Response 1", "B": "So, the final decision is Response 2",
                        "tie": "So, the final decision is Tie"}
# The closing statement of a pairwise judgment for each winner (Auto-J's output contract).

SYSTEM_PROMPT = "You are a careful, impartial evaluator of AI assistants' responses to user queries."

END_OF_DATA = "[END DATA]"

_PAIR_INSTRUCTION = (
    "Compare the two responses above as answers to the user's query. First point out the factors that matter "
    "most for telling them apart, and weigh both responses on each factor. Then state your conclusion in one "
    "closing sentence that begins with \"So, the final decision is\" followed by exactly one of: Response 1, "
    "Response 2, or Tie. The conclusion must follow from your comparison; the order in which the responses "
    "are shown must not sway it."
)
_SINGLE_INSTRUCTION = (
    "Write a critique of the response above as an answer to the user's query: what it does well, where it "
    "falls short, and what would make it better. After the critique, grade the response from 1 (worst) to 10 "
    "(best) on a last line written exactly as \"Rating: [[x]]\", with x replaced by your rating."
)
_CRITERIA_INTRO = "Judge by these criteria for this kind of query (they come with the query):"

_NUMBER = r"\d+(?:\.\d+)?"
# The verdicts as an instruction spells them out ("Response 1 / Response 2 / Tie"): never a vote.
_SPELLED_OUT = re.compile(r"final\s+decision\s+is\s*:?\s*\"?\s*Response\s*1\s*/\s*Response\s*2\s*/\s*Tie", re.IGNORECASE)

_PAIR_STRICT = re.compile(r"final decision is (Response 1|Response 2|Tie|tie)(?!\w)")
_PAIR_LENIENT = re.compile(
    r"final\s+decision\s*(?:is|was)?\s*[:：]?\s*[*_\"'`\[(\s]*(response\s*1|response\s*2|tie)(?!\w)", re.IGNORECASE
)
_SINGLE_STRICT = re.compile(rf"Rating: \[\[({_NUMBER})\]\]")
_SINGLE_LENIENT = (
    re.compile(rf"rating\s*[:：]?\s*[*_`\s]*\[\[\s*({_NUMBER})\s*\]\]", re.IGNORECASE),
    re.compile(rf"rating\s*[:：]\s*[*_`\s]*\[?\s*({_NUMBER})\s*\]?[*_`]*(?:\s*/\s*10)?", re.IGNORECASE),
    re.compile(rf"\[\[\s*({_NUMBER})\s*\]\]"),
)


@dataclass(frozen=True)
class AutoJFormat(JudgeFormat):
    """An Auto-J template: critique first, the verdict statement last."""

    @property
    def instruction(self) -> str:
        """The instruction closing the prompt; an output echoing it is read from after the echo."""
        return _PAIR_INSTRUCTION if self.protocol == "pairwise" else _SINGLE_INSTRUCTION

    # --- rendering -------------------------------------------------------------------------
    def check_sample(self, sample: JudgeSample) -> None:
        super().check_sample(sample)
        one_turn(sample, self.name, shown="one query and its response(s)")

    def prompt_messages(self, sample: JudgeSample) -> list[Message]:
        index = one_turn(sample, self.name, shown="one query and its response(s)")
        parts = ["[BEGIN DATA]\n***\n", f"[Query]: {sample.question_turns[index]}\n***\n"]
        if self.protocol == "pairwise":
            for number, answer in enumerate(sample.answers, start=1):
                parts.append(f"[Response {number}]: {answer.turns[index]}\n***\n")
        else:
            parts.append(f"[Response]: {sample.answers[0].turns[index]}\n***\n")
        parts.append(f"{END_OF_DATA}\n\n")
        criteria = sample.criteria or sample.rubric
        if criteria:
            parts.append(f"{_CRITERIA_INTRO}\n{criteria.strip()}\n\n")
        parts.append(self.instruction)
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "".join(parts)}]

    def target(self, sample: JudgeSample, target_label: str | None = None) -> str | None:
        label = self.target_label_of(sample, target_label)
        if sample.judgment is not None:
            return sample.judgment
        return self.label_target(sample, label) if label is not None else None

    @abc.abstractmethod
    def label_target(self, sample: JudgeSample, label: Label) -> str | None:
        """The closing verdict statement alone, stating ``label``; None when the label lacks what the
        format states (a winner, or a score)."""

    # --- parsing ---------------------------------------------------------------------------
    def judge_part(self, text: str) -> tuple[str, int]:
        """``text`` with the instruction's own spelling of the verdicts blanked (same length, so offsets
        hold), and where the judge's own text starts: after the last echoed "[END DATA]" or
        instruction, else 0."""
        begin = 0
        for marker in (END_OF_DATA, self.instruction):
            at = text.rfind(marker)
            if at >= 0:
                begin = max(begin, at + len(marker))
        readable = _SPELLED_OUT.sub(lambda m: " " * len(m.group(0)), text)
        readable = readable.replace(self.instruction, " " * len(self.instruction))
        return " " * begin + readable[begin:], begin


@dataclass(frozen=True)
class AutoJPairFormat(AutoJFormat):
    """Auto-J pairwise: the judgment closes with "So, the final decision is Response 1 / Response 2 / Tie"."""

    answer_names: ClassVar[tuple[tuple[str, str], ...]] = (("Response 1", "Response 2"), ("response 1", "response 2"))

    markers: ClassVar[VerdictMarkers] = VerdictMarkers(
        expected="final decision 'final decision is Response 1 / Response 2 / Tie'",
        strict=(_PAIR_STRICT,), read=group_1(lambda v: _PAIR_WINNERS[v.lower()]),
        lenient=(_PAIR_LENIENT,), read_lenient=group_1(lambda v: _lenient_winner(v)),
    )

    def verdict_options(self) -> dict[str, str]:
        return dict(_DECISION_STATEMENTS)

    def label_target(self, sample: JudgeSample, label: Label) -> str | None:
        return self.verdict_options()[label.winner] + "." if label.winner is not None else None

    def verdict_from(self, text: str, own: str, begin: int, found: FoundVerdict) -> Verdict | ParseFailure:
        return Verdict(winner=found.value, critique=text[begin:].strip(), template=self.name, lenient=found.lenient)


_PAIR_WINNERS = {"response 1": "A", "response 2": "B", "tie": "tie"}


def _lenient_winner(verdict: str) -> str:
    # "Response  1", "response1", "TIE" -> the canonical spelling.
    return _PAIR_WINNERS[re.sub(r"\s+", "", verdict.lower()).replace("response", "response ")]


@dataclass(frozen=True)
class AutoJSingleFormat(AutoJFormat):
    """Auto-J single grading: the critique closes with "Rating: [[x]]" on 1-10."""

    score_scale: tuple[float, float] | None = SCORE_SCALE

    markers: ClassVar[VerdictMarkers] = VerdictMarkers(
        expected="rating 'Rating: [[x]]'", strict=(_SINGLE_STRICT,), read=group_1(float), lenient=_SINGLE_LENIENT,
    )

    def verdict_options(self) -> dict[str, str]:
        return {str(grade): f"Rating: [[{grade}]]" for grade in range(1, 11)}

    def label_target(self, sample: JudgeSample, label: Label) -> str | None:
        scores = self.label_scores(sample, label)
        return None if scores is None else f"Rating: [[{format_score(scores[0])}]]"

    def verdict_from(self, text: str, own: str, begin: int, found: FoundVerdict) -> Verdict | ParseFailure:
        score = found.value
        if not SCORE_SCALE[0] <= score <= SCORE_SCALE[1]:
            return self.failure(text, f"rating {format_score(score)} is outside the scale 1-10")
        return Verdict(scores=(score,), critique=text[begin:].strip(), template=self.name, lenient=found.lenient)


FORMATS: tuple[AutoJFormat, ...] = (
    AutoJPairFormat(
        name="autoj-pairwise-v1", family="autoj", protocol="pairwise",
        description="Auto-J pairwise: critique, then 'So, the final decision is Response 1 / Response 2 / Tie'",
    ),
    AutoJSingleFormat(
        name="autoj-single-v1", family="autoj", protocol="single",
        description="Auto-J single grading: critique, then 'Rating: [[x]]' on 1-10",
    ),
)
"""The Auto-J templates."""
