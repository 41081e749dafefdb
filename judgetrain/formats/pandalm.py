"""PandaLM judge format (Wang et al. 2023, "PandaLM: An Automatic Evaluation Benchmark for LLM
Instruction Tuning Optimization").

PandaLM reads an Alpaca-style task (an instruction, optionally an input) and two responses, and
writes its verdict first, alone on the first line: ``1`` (response 1 better), ``2`` (response 2
better) or ``Tie``; then ``### Reason: …`` and optionally ``### Reference: …`` (a reference answer
it writes itself). The prompt is PandaLM's own (``build_pandalm_prompt`` in
``pandalm/utils/pandalm_inference.py`` of WeOpenML/PandaLM, Apache-2.0), one completion-style
user message with no system prompt:
"Below are two responses for a given task. … ### Instruction: … ### Input: … ### Response 1: …
### Response 2: … ### Evaluation:". PandaLM strips each response before showing it; so do we.

Input. The ``### Input:`` section needs the task's input apart from its instruction. A sample whose
``meta`` holds ``instruction`` and ``input`` strings that still make up its question (the PandaLM
reader keeps them) gets PandaLM's with-input prompt when the input is not empty; any other sample
shows its whole question as the instruction (PandaLM's no-input prompt), since an Alpaca question
"instruction\\n\\ninput" cannot be split back reliably.

Template: ``pandalm-v1``.

Verdict first: generation may stop at the first newline (:meth:`stop_strings`), and the verdict's
first token ("1", "2", "Tie") can be read from one forward pass (:meth:`verdict_options`).

Parsing. Strict is PandaLM's contract: the first line of the evaluation is exactly ``1``, ``2`` or
``Tie``. Lenient also reads the first non-empty line with near-misses: extra spaces, markdown bold, a
trailing period, "tie" in any case, "Response 2", "Result: 1" / "Evaluation: 2". An output that
echoes the prompt is read after its last "### Evaluation:" in both modes (PandaLM's own
post-processing splits there too). A later bare verdict line that differs from the first (a judge
that gave two evaluations) is a ParseFailure. PandaLM's own parser reads every unreadable output as
a tie; here it is a ParseFailure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from judgetrain.formats.base import DEFAULT_TARGET_LABELS, FoundVerdict, JudgeFormat, Message, VerdictMarkers, read_line, swap_names
from judgetrain.types import JudgeSample, ParseFailure, Verdict

TARGET_LABELS = ("gpt35",) + DEFAULT_TARGET_LABELS
"""The labels a target's verdict line comes from when none is chosen, first present wins (PandaLM's
training verdicts come from gpt-3.5-turbo, whose reasons are the samples' judgments)."""

_VERDICT_LINES = {"A": "1", "B": "2", "tie": "Tie"}
# PandaLM's first line for each winner.

EVALUATION_MARKER = "### Evaluation:"

_WITH_INPUT_HEADER = (
    "Below are two responses for a given task. The task is defined by the Instruction with an Input that provides "
    "further context. Evaluate the responses and generate a reference answer for the task."
)
_NO_INPUT_HEADER = (
    "Below are two responses for a given task. The task is defined by the Instruction. Evaluate the responses and "
    "generate a reference answer for the task."
)
# PandaLM removes these special tokens from the responses it shows (its build_pandalm_prompt).
_SPECIAL_TOKENS = re.compile(
    r"<unk>|<pad>|<s>|</s>|\[PAD\]|<\|endoftext\|>|\[UNK\]|\[CLS\]|\[MASK\]|<\|startofpiece\|>|<\|endofpiece\|>|\[gMASK\]|\[sMASK\]"
)

_STRICT_LINE = re.compile(r"(1|2|Tie)")
_LENIENT_LINE = re.compile(
    r"[\s*_#`>\"']*(?:(?:result|evaluation|verdict|winner)\s*[:：]\s*)?[*_`\"']*"
    r"(?:response\s*)?(1|2|tie)[*_`\"']*\s*[.。]?[\s*_`\"']*",
    re.IGNORECASE,
)
_REASON = re.compile(r"###\s*Reason\s*:\s*(?P<reason>.*?)\s*(?:###\s*Reference\s*:.*)?\Z", re.DOTALL)
_WINNER_OF_LINE = {"1": "A", "2": "B", "tie": "tie"}


def _alpaca_question(instruction: str, task_input: str) -> str:
    # The question an Alpaca-style reader builds from the two parts (judgetrain.data.fields.alpaca_question).
    return f"{instruction}\n\n{task_input}" if task_input.strip() else instruction


def _lines_with_offsets(text: str) -> list[tuple[str, int]]:
    out, offset = [], 0
    for line in text.split("\n"):
        out.append((line, offset))
        offset += len(line) + 1
    return out


@dataclass(frozen=True)
class PandaLMFormat(JudgeFormat):
    """PandaLM: the verdict line "1" / "2" / "Tie", then "### Reason: …" (and "### Reference: …")."""

    verdict_first: bool = True
    target_labels: tuple[str, ...] = TARGET_LABELS

    markers: ClassVar[VerdictMarkers] = VerdictMarkers(
        expected="verdict 1, 2 or Tie", strict=(_STRICT_LINE,), read=lambda match: _WINNER_OF_LINE[match.group(1).lower()],
        lenient=(_LENIENT_LINE,),
    )

    answer_names: ClassVar[tuple[tuple[str, str], ...]] = (("Response 1", "Response 2"), ("response 1", "response 2"))

    def stop_strings(self) -> tuple[str, ...]:
        # The verdict is the whole first line.
        return ("\n",)

    def verdict_options(self) -> dict[str, str]:
        """Each winner and its verdict line, which PandaLM's first generated token starts."""
        return dict(_VERDICT_LINES)

    # --- rendering -------------------------------------------------------------------------
    def check_sample(self, sample: JudgeSample) -> None:
        super().check_sample(sample)
        if sample.is_multi_turn:
            raise ValueError(f"sample {sample.id!r} is multi-turn; template {self.name!r} shows one task: use an mtbench -multi-turn template")
        for position, answer in enumerate(sample.answers):
            if len(answer.turns) != 1:
                raise ValueError(f"sample {sample.id!r}: answer {position + 1} has {len(answer.turns)} turns; {self.name!r} shows one")

    def prompt_messages(self, sample: JudgeSample) -> list[Message]:
        instruction, task_input = sample.meta.get("instruction"), sample.meta.get("input")
        split_known = isinstance(instruction, str) and isinstance(task_input, str)
        # The parts are used only while they still make up the question (an edited question wins).
        if not split_known or _alpaca_question(instruction, task_input) != sample.question_turns[0]:
            instruction, task_input = sample.question_turns[0], ""
        first, second = (_SPECIAL_TOKENS.sub("", a.turns[0].strip()).strip() for a in sample.answers)
        responses = f"### Response 1:\n{first}\n\n### Response 2:\n{second}"
        if task_input:
            prompt = f"{_WITH_INPUT_HEADER}\n\n### Instruction:\n{instruction}\n\n### Input:\n{task_input}\n\n{responses}\n\n{EVALUATION_MARKER}\n"
        else:
            prompt = f"{_NO_INPUT_HEADER}\n\n### Instruction:\n{instruction}\n\n{responses}\n\n{EVALUATION_MARKER}\n"
        return [{"role": "user", "content": prompt}]

    def target(self, sample: JudgeSample, target_label: str | None = None) -> str | None:
        """The sample's judgment when it is a whole PandaLM evaluation (it starts with its verdict line);
        otherwise the verdict line from the label, then the judgment as ``### Reason:`` and PandaLM's
        generated reference (``meta["reference_response"]``) as ``### Reference:``."""
        label = self.target_label_of(sample, target_label)
        reason = sample.judgment
        if reason is not None and isinstance(self.parse(reason, strict=True), Verdict):
            return reason
        if label is None or label.winner is None:
            if reason is not None:
                raise ValueError(
                    f"sample {sample.id!r} has a reason but no winner label for {self.name!r}'s verdict line: "
                    f"add a label with a winner (one of {self.target_labels})"
                )
            return None
        parts = [self.verdict_options()[label.winner]]
        if reason:
            parts.append(f"### Reason: {reason.strip()}")
        reference = sample.meta.get("reference_response")
        if reason and isinstance(reference, str) and reference.strip():
            parts.append(f"### Reference: {reference.strip()}")
        return "\n\n".join(parts)

    # --- parsing ---------------------------------------------------------------------------
    def judge_part(self, text: str) -> tuple[str, int]:
        # PandaLM's own post-processing splits an echoed prompt at its last "### Evaluation:" too.
        echo = text.rfind(EVALUATION_MARKER)
        begin = echo + len(EVALUATION_MARKER) if echo >= 0 else 0
        return text[begin:], begin

    def find_verdict(self, own: str, strict: bool) -> FoundVerdict | str | None:
        """The verdict of the first non-empty line (strict: the line stripped is exactly 1, 2 or Tie);
        a reason string when nothing follows the echoed prompt or a later bare verdict line differs."""
        lines = [(line, offset) for line, offset in _lines_with_offsets(own) if line.strip()]
        if not lines:
            return "nothing after '### Evaluation:' (the output only echoes the prompt)"
        first_line, first_offset = lines[0]
        # The strict pattern reads the line without its surrounding spaces; the lenient ones allow them.
        found = read_line(first_line.strip(), self.markers, strict=True)
        if found is not None:
            found = found._replace(end=first_offset + len(first_line))
        elif not strict:
            found = read_line(first_line, self.markers, strict=False, start=first_offset)
        if found is None:
            return None
        for line, _ in lines[1:]:
            again = read_line(line.strip(), self.markers, strict=True)
            if again is not None and again.value != found.value:
                return f"conflicting verdicts in one output: {first_line.strip()!r} and {line.strip()!r}"
        return found

    def no_verdict_reason(self, own: str, strict: bool) -> str:
        first_line = next(line for line in own.split("\n") if line.strip())
        return f"the first line {first_line.strip()[:60]!r} is not a {self.markers.expected}"

    def verdict_from(self, text: str, own: str, begin: int, found: FoundVerdict) -> Verdict | ParseFailure:
        rest = own[found.end:].strip()
        reason = _REASON.search(rest)
        critique = reason.group("reason") if reason is not None else rest
        return Verdict(winner=found.value, critique=critique, template=self.name, lenient=found.lenient)

    # --- augmentation ----------------------------------------------------------------------
    def swap_judgment(self, text: str) -> str:
        """The judgment with the answers swapped: a verdict line "1" <-> "2" (decorations kept; "Tie"
        stays) and "Response 1" <-> "Response 2" in the rest."""
        lines = _lines_with_offsets(text)
        first = next(((line, offset) for line, offset in lines if line.strip()), None)
        if first is not None:
            line, offset = first
            match = _STRICT_LINE.fullmatch(line.strip()) or _LENIENT_LINE.fullmatch(line)
            if match is not None and match.group(1) in ("1", "2"):
                start = line.index(match.group(1)) if _STRICT_LINE.fullmatch(line.strip()) else match.start(1)
                flipped = line[:start] + {"1": "2", "2": "1"}[match.group(1)] + line[start + 1:]
                before, after = text[:offset], text[offset + len(line):]
                return swap_names(before, self.answer_names) + flipped + swap_names(after, self.answer_names)
        return swap_names(text, self.answer_names)


FORMATS: tuple[PandaLMFormat, ...] = (
    PandaLMFormat(
        name="pandalm-v1", family="pandalm", protocol="pairwise",
        description="PandaLM: first line 1 / 2 / Tie, then '### Reason: …' (and '### Reference: …')",
    ),
)
"""The PandaLM templates."""
