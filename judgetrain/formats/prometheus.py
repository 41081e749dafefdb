"""Prometheus judge formats (Kim et al. 2023 / 2024, "Prometheus" and "Prometheus 2").

Prometheus grades against a rubric. Absolute grading reads an instruction, one response, optionally a
reference answer that earns a 5, and a 1-5 score rubric, and writes its feedback followed by
``[RESULT] n`` (n an integer 1-5). Relative grading reads two responses and writes its feedback
followed by ``[RESULT] A`` or ``[RESULT] B``; it has no tie.

The prompt texts are prometheus-eval's (prometheus-eval/prometheus-eval, Apache-2.0), verbatim:

- absolute, with and without reference: as in the prompts of the published evaluation sets
  (``eval/benchmark/data/mt_bench_eval.json`` / ``vicuna_eval.json`` with a reference,
  ``hhh_alignment_eval.json`` without), whose output-format line reads "Feedback: (write a feedback
  for criteria) [RESULT] (an integer number between 1 and 5)"; rendering a sample read from those
  files reproduces their prompt byte for byte;
- relative: ``RELATIVE_PROMPT`` / ``RELATIVE_PROMPT_WO_REF`` of ``libs/prometheus-eval/prometheus_eval/prompts.py``;
- system prompts: ``ABS_SYSTEM_PROMPT`` / ``REL_SYSTEM_PROMPT`` of the same file.

The rubric shown is the sample's ``rubric`` (else its ``criteria``), as it is: Prometheus rubrics are
"[criterion]\\nScore 1: …\\nScore 5: …"; a sample with neither is an error.

Templates: ``prometheus-absolute-v1`` (no reference), ``prometheus-absolute-ref-v1``,
``prometheus-relative-v1`` (no reference), ``prometheus-relative-ref-v1``.

Targets. A judgment that already ends in a readable verdict is used as it is. A critique without one
(the published evaluation sets keep GPT-4's feedback and its grades apart) gets ``[RESULT] n``
appended, n being the grade of the label chosen for training (``data.target_label``), else of the
label the critique was written for (``meta["judgment_label"]``), else of the first of
:data:`TARGET_LABELS`. The published critiques were written with the
reference shown and are stored in ``judgment``; a with-reference template takes
``judgment_with_reference`` when the sample has one, else ``judgment``.

Parsing. Strict reads ``[RESULT] n`` (``[RESULT] A`` / ``[RESULT] B``) exactly, one space after the
marker. Lenient also reads ``[RESULT]: 4``, ``[RESULT] Score: 1.``, ``[RESULT] **4**``, ``[RESULT]
(4)``, ``[RESULT] 4/5``, ``[RESULT] 4.0``, ``[RESULT] Response B``, and, when there is no
``[RESULT]`` at all, a "Score: 4" / "Result: B" statement. "a score of 5" is never read: the
published critiques say "does not fully meet the criteria for a score of 5" of a response they grade
4. Two different results are a ParseFailure; a grade outside 1-5 or not an integer is a
ParseFailure; a relative "tie" is a ParseFailure. An output that echoes the prompt is read after its
"###Feedback:" following its rubric, and the output-format instruction is never read as a verdict.
"""

from __future__ import annotations

import abc
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
    group_1,
    swap_names,
)
from judgetrain.types import JudgeSample, Label, ParseFailure, Verdict

SCORE_SCALE = (1.0, 5.0)
"""Prometheus's absolute-grading scale (integers)."""

TARGET_LABELS = ("gpt4_1",) + DEFAULT_TARGET_LABELS
"""The labels a target's result comes from when neither the run nor the sample names one, first
present wins: the grade GPT-4's first critique was written for, then the teacher's (possibly averaged)
grade and the others of :data:`~judgetrain.formats.base.DEFAULT_TARGET_LABELS`."""

ABS_SYSTEM_PROMPT = (
    "You are a fair judge assistant tasked with providing clear, objective feedback based on specific criteria, "
    "ensuring each assessment reflects the absolute standards set for performance."
)
REL_SYSTEM_PROMPT = (
    "You are a fair judge assistant assigned to deliver insightful feedback that compares individual performances, "
    "highlighting how each stands relative to others within the same cohort."
)

ABSOLUTE_PROMPT = """###Task Description:
An instruction (might include an Input inside it), a response to evaluate, a reference answer that gets a score of 5, and a score rubric representing a evaluation criteria are given.
1. Write a detailed feedback that assess the quality of the response strictly based on the given score rubric, not evaluating in general.
2. After writing a feedback, write a score that is an integer between 1 and 5. You should refer to the score rubric.
3. The output format should look as follows: "Feedback: (write a feedback for criteria) [RESULT] (an integer number between 1 and 5)"
4. Please do not generate any other opening, closing, and explanations.

###The instruction to evaluate:
{instruction}

###Response to evaluate:
{response}

###Reference Answer (Score 5):
{reference_answer}

###Score Rubrics:
{rubric}

###Feedback: """

ABSOLUTE_PROMPT_WO_REF = """###Task Description:
An instruction (might include an Input inside it), a response to evaluate, and a score rubric representing a evaluation criteria are given.
1. Write a detailed feedback that assess the quality of the response strictly based on the given score rubric, not evaluating in general.
2. After writing a feedback, write a score that is an integer between 1 and 5. You should refer to the score rubric.
3. The output format should look as follows: "Feedback: (write a feedback for criteria) [RESULT] (an integer number between 1 and 5)"
4. Please do not generate any other opening, closing, and explanations.

###The instruction to evaluate:
{instruction}

###Response to evaluate:
{response}

###Score Rubrics:
{rubric}

###Feedback: """

RELATIVE_PROMPT = """###Task Description:
An instruction (might include an Input inside it), a response to evaluate, a reference answer, and a score rubric representing a evaluation criteria are given.
1. Write a detailed feedback that assess the quality of two responses strictly based on the given score rubric, not evaluating in general.
2. After writing a feedback, choose a better response between Response A and Response B. You should refer to the score rubric.
3. The output format should look as follows: "(write a feedback for criteria) [RESULT] (A or B)"
4. Please do not generate any other opening, closing, and explanations.

###Instruction:
{instruction}

###Response A:
{response_A}

###Response B:
{response_B}

###Reference Answer:
{reference_answer}

###Score Rubric:
{rubric}

###Feedback: """

RELATIVE_PROMPT_WO_REF = """###Task Description:
An instruction (might include an Input inside it), a response to evaluate, and a score rubric representing a evaluation criteria are given.
1. Write a detailed feedback that assess the quality of two responses strictly based on the given score rubric, not evaluating in general.
2. After writing a feedback, choose a better response between Response A and Response B. You should refer to the score rubric.
3. The output format should look as follows: "(write a feedback for criteria) [RESULT] (A or B)"
4. Please do not generate any other opening, closing, and explanations.

###Instruction:
{instruction}

###Response A:
{response_A}

###Response B:
{response_B}

###Score Rubric:
{rubric}

###Feedback: """

FEEDBACK_MARKER = "###Feedback:"
RUBRIC_MARKER = "###Score Rubrics:"
RUBRIC_MARKER_RELATIVE = "###Score Rubric:"

# The output-format instructions spell out "[RESULT] (…)": blanked before reading, never a verdict.
_FORMAT_INSTRUCTION = re.compile(r"\[RESULT\]\s*\((?:an integer number between 1 and 5|A or B)\)", re.IGNORECASE)

_NUMBER = r"\d+(?:\.\d+)?"
_ABS_STRICT = re.compile(r"\[RESULT\] (\d+)(?![\w.]*\d)")
_ABS_LENIENT = (
    re.compile(
        rf"\[\s*RESULT\s*\]\s*[:：]?\s*[*_`\"'(\[\s]*(?:score\s*[:：]?\s*)?[*_`\"'(\[\s]*(-?{_NUMBER})(?:\s*/\s*5|\s*out\s+of\s+5)?",
        re.IGNORECASE,
    ),
    re.compile(rf"(?<![\w])(?:score|result)\s*[:：]\s*[*_`\"'(\[\s]*(-?{_NUMBER})(?:\s*/\s*5|\s*out\s+of\s+5)?", re.IGNORECASE),
)
_REL_STRICT = re.compile(r"\[RESULT\] ([AB])(?!\w)")
_REL_LENIENT = (
    re.compile(r"\[\s*RESULT\s*\]\s*[:：]?\s*[*_`\"'(\[\s]*(?:response\s+)?((?-i:[AB])|(?:a\s+)?tie)(?!\w)", re.IGNORECASE),
    re.compile(r"(?<![\w])result\s*[:：]\s*[*_`\"'(\[\s]*(?:response\s+)?((?-i:[AB])|(?:a\s+)?tie)(?!\w)", re.IGNORECASE),
)
# A verdict marker inside a judgment, for swapping: the letter after "[RESULT]" and its decorations.
_REL_MARKER = re.compile(r"(\[\s*RESULT\s*\]\s*[:：]?\s*[*_`\"'(\[\s]*(?:[Rr]esponse\s+)?)((?-i:[AB]))(?!\w)", re.IGNORECASE)


@dataclass(frozen=True)
class PrometheusFormat(JudgeFormat):
    """A Prometheus template: feedback, then ``[RESULT] …``."""

    target_labels: tuple[str, ...] = TARGET_LABELS

    @property
    def system_prompt(self) -> str:
        return ABS_SYSTEM_PROMPT if self.protocol == "single" else REL_SYSTEM_PROMPT

    @property
    def prompt_template(self) -> str:
        """prometheus-eval's prompt of this template, verbatim (``str.format`` fields)."""
        if self.protocol == "single":
            return ABSOLUTE_PROMPT if self.with_reference else ABSOLUTE_PROMPT_WO_REF
        return RELATIVE_PROMPT if self.with_reference else RELATIVE_PROMPT_WO_REF

    # --- rendering -------------------------------------------------------------------------
    def check_sample(self, sample: JudgeSample) -> None:
        super().check_sample(sample)
        if not (sample.rubric or sample.criteria):
            raise ValueError(
                f"sample {sample.id!r} has no rubric; template {self.name!r} grades against one: set the sample's "
                "rubric (\"[criterion]\\nScore 1: …\\n…\\nScore 5: …\") or criteria"
            )
        if sample.is_multi_turn:
            raise ValueError(
                f"sample {sample.id!r} is multi-turn; template {self.name!r} shows one instruction: write the earlier "
                "turns into the instruction (as Prometheus's MT-bench prompts do) or use an mtbench -multi-turn template"
            )
        for position, answer in enumerate(sample.answers):
            if len(answer.turns) != 1:
                raise ValueError(f"sample {sample.id!r}: answer {position + 1} has {len(answer.turns)} turns; {self.name!r} shows one")

    def prompt_messages(self, sample: JudgeSample) -> list[Message]:
        fields = {"instruction": sample.question_turns[0], "rubric": sample.rubric or sample.criteria}
        if self.with_reference:
            assert sample.reference is not None  # check_sample's contract
            fields["reference_answer"] = sample.reference if isinstance(sample.reference, str) else sample.reference[0]
        if self.protocol == "single":
            fields["response"] = sample.answers[0].turns[0]
        else:
            fields["response_A"], fields["response_B"] = (a.turns[0] for a in sample.answers)
        return [{"role": "system", "content": self.system_prompt},
                {"role": "user", "content": self.prompt_template.format(**fields)}]

    def target(self, sample: JudgeSample, target_label: str | None = None) -> str | None:
        chosen = self.target_label_of(sample, target_label) if target_label is not None else None
        # The published critiques were written with the reference shown but are stored in judgment.
        text = getattr(sample, self.judgment_field)
        text = text if text is not None else sample.judgment
        if text is not None and isinstance(self.parse(text, strict=True), Verdict):
            return text
        named = sample.meta.get("judgment_label") if text is not None else None
        label = chosen or (sample.labels.get(named) if isinstance(named, str) else None) or self.target_label_of(sample)
        result = self.result_of(sample, label) if label is not None else None
        if result is None:
            if text is not None:
                raise ValueError(
                    f"sample {sample.id!r} has a critique without a result and no label {self.name!r} can state: "
                    f"add a label (one of {self.target_labels}) or end the critique with '[RESULT] …'"
                )
            return None
        if text is None:
            return f"[RESULT] {result}"
        critique = text.strip()
        # A critique ending in a result the strict reading missed ("[RESULT] Score: 1."): keep the
        # feedback, state the label's result in the contract's form.
        cut = critique.rfind("[RESULT]")
        if cut >= 0:
            critique = critique[:cut].rstrip()
        return f"{critique} [RESULT] {result}"

    @abc.abstractmethod
    def result_of(self, sample: JudgeSample, label: Label) -> str | None:
        """What follows ``[RESULT]`` for ``label``, or None when the label does not say it."""

    # --- parsing ---------------------------------------------------------------------------
    def judge_part(self, text: str) -> tuple[str, int]:
        """The judge's own text with the output-format instruction blanked, and its offset in
        ``text``. An echoed prompt ends with its rubric and then "###Feedback:": the judge's text
        starts after the first "###Feedback:" that follows the last rubric header. A "###Feedback:"
        with no rubric before it is the judge's own heading (GPT-4 writes one in 3 of the 960
        published MT-bench critiques) and is kept."""
        rubric_at = max(text.rfind(RUBRIC_MARKER), text.rfind(RUBRIC_MARKER_RELATIVE))
        at = text.find(FEEDBACK_MARKER, rubric_at) if rubric_at >= 0 else -1
        begin = at + len(FEEDBACK_MARKER) if at >= 0 else 0
        own = _FORMAT_INSTRUCTION.sub(lambda m: " " * len(m.group(0)), text[begin:])
        return own, begin


def _critique(own: str, match: re.Match[str]) -> str:
    critique = own[:match.start()].strip() or own[match.end():].strip()
    return re.sub(r"\A(?:###\s*)?Feedback\s*:\s*", "", critique)


@dataclass(frozen=True)
class PrometheusAbsoluteFormat(PrometheusFormat):
    """Prometheus absolute grading: feedback, then ``[RESULT] n`` with n an integer 1-5."""

    score_scale: tuple[float, float] | None = SCORE_SCALE

    def result_of(self, sample: JudgeSample, label: Label) -> str | None:
        scores = self.label_scores(sample, label)
        if scores is None:
            return None
        score = scores[0]
        if not score.is_integer():
            raise ValueError(
                f"sample {sample.id!r}: grade {score} is not an integer 1-5, which {self.name!r}'s result must be: "
                "build the target from one grader's label (e.g. gpt4_1), not an average"
            )
        return format_score(score)

    markers: ClassVar[VerdictMarkers] = VerdictMarkers(
        expected="result '[RESULT] n' with n in 1-5", strict=(_ABS_STRICT,), read=group_1(float), lenient=_ABS_LENIENT,
    )

    def verdict_options(self) -> dict[str, str]:
        return {str(grade): f"[RESULT] {grade}" for grade in range(1, 6)}

    def verdict_from(self, text: str, own: str, begin: int, found: FoundVerdict) -> Verdict | ParseFailure:
        score = found.value
        if not float(score).is_integer():
            return self.failure(text, f"result {score} is not an integer 1-5")
        if not SCORE_SCALE[0] <= score <= SCORE_SCALE[1]:
            return self.failure(text, f"result {format_score(score)} is outside the scale 1-5")
        return Verdict(scores=(float(score),), critique=_critique(own, found.match), template=self.name, lenient=found.lenient)


_REL_WINNERS = {"A": "A", "B": "B", "TIE": "tie"}


@dataclass(frozen=True)
class PrometheusRelativeFormat(PrometheusFormat):
    """Prometheus relative grading: feedback, then ``[RESULT] A`` or ``[RESULT] B`` (no tie)."""

    answer_names: ClassVar[tuple[tuple[str, str], ...]] = (("Response A", "Response B"), ("response A", "response B"))

    def result_of(self, sample: JudgeSample, label: Label) -> str | None:
        # Prometheus's relative grading has no tie: a tie label states nothing it can say.
        return label.winner if label.winner in ("A", "B") else None

    markers: ClassVar[VerdictMarkers] = VerdictMarkers(
        expected="result '[RESULT] A' or '[RESULT] B'",
        strict=(_REL_STRICT,), read=group_1(lambda v: _REL_WINNERS[v.upper()]),
        lenient=_REL_LENIENT, read_lenient=group_1(lambda v: _REL_WINNERS[v.split()[-1].upper()]),
    )

    def verdict_options(self) -> dict[str, str]:
        # No tie: Prometheus's relative grading always picks a response.
        return {"A": "[RESULT] A", "B": "[RESULT] B"}

    def verdict_from(self, text: str, own: str, begin: int, found: FoundVerdict) -> Verdict | ParseFailure:
        if found.value == "tie":
            return self.failure(text, "the result is a tie, which Prometheus's relative grading does not give (A or B)")
        return Verdict(winner=found.value, critique=_critique(own, found.match), template=self.name, lenient=found.lenient)

    def swap_judgment(self, text: str) -> str:
        """The judgment with the answers swapped: "[RESULT] A" <-> "[RESULT] B" (decorations kept) and
        "Response A" <-> "Response B" elsewhere, in one pass."""
        pieces, last = [], 0
        for match in _REL_MARKER.finditer(text):
            pieces.append(swap_names(text[last:match.start()], self.answer_names))
            pieces.append(swap_names(match.group(1), self.answer_names) + {"A": "B", "B": "A"}[match.group(2)])
            last = match.end()
        pieces.append(swap_names(text[last:], self.answer_names))
        return "".join(pieces)


FORMATS: tuple[PrometheusFormat, ...] = (
    PrometheusAbsoluteFormat(
        name="prometheus-absolute-v1", family="prometheus", protocol="single", reference_twin="prometheus-absolute-ref-v1",
        description="Prometheus absolute grading on a 1-5 rubric: feedback, then '[RESULT] n'",
    ),
    PrometheusAbsoluteFormat(
        name="prometheus-absolute-ref-v1", family="prometheus", protocol="single", with_reference=True,
        reference_twin="prometheus-absolute-v1",
        description="Prometheus absolute grading with a reference answer (score 5): feedback, then '[RESULT] n'",
    ),
    PrometheusRelativeFormat(
        name="prometheus-relative-v1", family="prometheus", protocol="pairwise", reference_twin="prometheus-relative-ref-v1",
        description="Prometheus relative grading against a rubric: feedback, then '[RESULT] A' or '[RESULT] B'",
    ),
    PrometheusRelativeFormat(
        name="prometheus-relative-ref-v1", family="prometheus", protocol="pairwise", with_reference=True,
        reference_twin="prometheus-relative-v1",
        description="Prometheus relative grading with a reference answer: feedback, then '[RESULT] A' or '[RESULT] B'",
    ),
)
"""The Prometheus templates."""
