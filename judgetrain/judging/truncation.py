"""Fit a judged input into the judge's token budget: the question is shortened first, the answers last.

What a judge compares is the answers; the question is their context. So when a sample does not fit
the budget, the question gives way first and the answers are kept whole as far as they fit. Cutting
an answer first would change what is judged, and with a long enough question it cuts every answer to
nothing, so two different answers would be scored identically: a tie nobody decided.

- The question keeps its start and its end, and loses its middle (marked with
  :data:`QUESTION_CUT_MARKER`). A long question is most often an instruction around bulky material
  (a pasted document, code, a transcript) and the request sits before it ("Summarise the text below")
  or after it ("…given the above, which line fails?"); keeping both ends keeps the request wherever
  it is, while the middle is the material the answers quote anyway. The question keeps at least
  :data:`MIN_QUESTION_SHARE` of the budget (all of it when it is shorter), so long answers can never
  push the question out entirely.
- The answers are cut only when the question is at that floor and the input still does not fit. They
  share one cap in tokens, so the same rule cuts both: the longer answer loses its end first, the
  shorter one is cut only once the longer is down to its length, and a cut answer always keeps at
  least as many tokens as the other answer when that one is whole (never nothing against a whole
  answer). A multi-turn conversation cuts its turns the same way: every question turn (answer turn)
  over the cap is brought to it.
- Only the texts are cut; the prompt is rendered again from the cut texts, so the chat template and
  the judge template keep their structure, and "fits" is measured on the exact token ids sent.

:class:`InputCut` records how many tokens were cut from the question and from each answer; the
judges put it in the judgment's ``meta`` (:meth:`InputCut.to_meta`: ``input_truncated: true``,
``question_tokens_cut``, ``answer_tokens_cut``, ``input_budget_tokens``), and ``judgetrain eval``
counts those judgments in its report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from judgetrain.types import Answer, JudgeSample

QUESTION_CUT_MARKER = " …[truncated]… "
"""Stands in for the middle of a shortened question, so the judge (and a reader) sees text is missing."""

MIN_QUESTION_SHARE = 0.25
"""The share of the token budget a shortened question keeps at least (a shorter question is kept whole)."""

INPUT_CUT_META_KEYS = ("input_truncated", "question_tokens_cut", "answer_tokens_cut", "input_budget_tokens")
"""The keys :meth:`InputCut.to_meta` writes into a judgment's meta."""


@dataclass(frozen=True)
class InputCut:
    """What was cut from one judged input to fit ``max_tokens``: tokens (of the original texts'
    tokenization) cut from the question, all turns together, and from each answer, in the sample's order."""

    question_tokens_cut: int
    answer_tokens_cut: tuple[int, ...]
    max_tokens: int

    def to_meta(self) -> dict[str, Any]:
        """The judgment meta entries that mark a cut input."""
        return {"input_truncated": True, "question_tokens_cut": self.question_tokens_cut,
                "answer_tokens_cut": list(self.answer_tokens_cut), "input_budget_tokens": self.max_tokens}


def input_cut_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The input-cut entries of a judgment's ``meta`` (empty when its input was not cut)."""
    return {key: meta[key] for key in INPUT_CUT_META_KEYS if key in meta} if meta.get("input_truncated") else {}


class _Text:
    """One question or answer turn and its token ids, shortened to a cap on demand."""

    def __init__(self, tokenizer: Any, text: str, *, keep_both_ends: bool, marker: str):
        self.tokenizer = tokenizer
        self.text = text
        self.ids = list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []
        self.keep_both_ends = keep_both_ends
        self.marker = marker

    def kept(self, cap: int | None) -> int:
        """Tokens of the original kept under ``cap`` (None: no cap)."""
        return len(self.ids) if cap is None else min(len(self.ids), cap)

    def shortened(self, cap: int | None) -> str:
        if cap is None or len(self.ids) <= cap:
            return self.text
        if not self.keep_both_ends:
            return self.tokenizer.decode(self.ids[:cap]) + self.marker
        head, tail = (cap + 1) // 2, cap // 2
        head_text = self.tokenizer.decode(self.ids[:head]) if head else ""
        tail_text = self.tokenizer.decode(self.ids[len(self.ids) - tail:]) if tail else ""
        return head_text + self.marker + tail_text


def _smallest_cap_keeping(texts: Sequence[_Text], tokens: int) -> int:
    """The smallest common cap under which ``texts`` keep at least ``tokens`` tokens together."""
    low, high = 0, max((len(t.ids) for t in texts), default=0)
    while low < high:
        middle = (low + high) // 2
        if sum(t.kept(middle) for t in texts) >= tokens:
            high = middle
        else:
            low = middle + 1
    return low


def _largest_fitting_cap(fits: Callable[[int], bool], low: int, high: int) -> int:
    """The largest cap in [low, high) that fits, given that ``low`` fits and ``high`` does not.

    The token count grows with the cap (up to a token or two where re-tokenizing at a cut merges
    differently), so a bisection finds it; the cap returned was itself measured to fit."""
    while high - low > 1:
        middle = (low + high) // 2
        if fits(middle):
            low = middle
        else:
            high = middle
    return low


def fit_texts(question_turns: Sequence[str], answer_turns: Sequence[Sequence[str]],
              num_tokens: Callable[[tuple[str, ...], tuple[tuple[str, ...], ...]], int], tokenizer: Any, max_tokens: int, *,
              answer_marker: str = "", what: str = "the input",
              how_to_fit: str = "raise the judge's max_seq_len"
              ) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...], InputCut | None]:
    """(question turns, answers' turns, cut) that fit ``max_tokens`` by the rule in the module doc.

    Args:
        question_turns: the question's turns that are shown (each may be cut).
        answer_turns: per answer, its turns that are shown.
        num_tokens: the token count of the input built from (question turns, answers' turns): the
            exact ids the judge reads (for a reward judge, its longest conversation).
        tokenizer: the judge's tokenizer; texts are cut on its tokens.
        max_tokens: the budget.
        answer_marker: appended to an answer turn whose end was cut (the marker the judge was trained
            to read, if any).
        what: names the input in the error message (e.g. ``"sample 'q12'"``).
        how_to_fit: what the error message tells the user to change.
    Returns:
        The texts unchanged and None when they fit; else the cut texts and what was cut.
    Raises:
        ValueError: when even the question at its floor and every answer cut to one token do not fit.
    """
    question = tuple(question_turns)
    answers = tuple(tuple(turns) for turns in answer_turns)
    if num_tokens(question, answers) <= max_tokens:
        return question, answers, None
    question_texts = [_Text(tokenizer, t, keep_both_ends=True, marker=QUESTION_CUT_MARKER) for t in question]
    answer_texts = [[_Text(tokenizer, t, keep_both_ends=False, marker=answer_marker) for t in turns] for turns in answers]
    measured: dict[tuple[int | None, int | None], int] = {}

    def build(question_cap: int | None, answer_cap: int | None) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
        return (tuple(t.shortened(question_cap) for t in question_texts),
                tuple(tuple(t.shortened(answer_cap) for t in turns) for turns in answer_texts))

    def size(question_cap: int | None, answer_cap: int | None) -> int:
        key = (question_cap, answer_cap)
        if key not in measured:
            measured[key] = num_tokens(*build(question_cap, answer_cap))
        return measured[key]

    longest_question_turn = max((len(t.ids) for t in question_texts), default=0)
    question_tokens = sum(len(t.ids) for t in question_texts)
    question_floor = _smallest_cap_keeping(question_texts, min(question_tokens, int(max_tokens * MIN_QUESTION_SHARE)))
    question_cap: int | None = None
    answer_cap: int | None = None
    if question_floor < longest_question_turn and size(question_floor, None) <= max_tokens:
        question_cap = _largest_fitting_cap(lambda cap: size(cap, None) <= max_tokens, question_floor, longest_question_turn)
    else:
        if question_floor < longest_question_turn:
            question_cap = question_floor
        longest_answer_turn = max((len(t.ids) for turns in answer_texts for t in turns), default=0)
        if longest_answer_turn < 1 or size(question_cap, 1) > max_tokens:
            floor_size = size(question_cap, 1 if longest_answer_turn else None)
            kept_question = sum(t.kept(question_cap) for t in question_texts)
            raise ValueError(
                f"{what} does not fit {max_tokens} tokens: with the question cut to {kept_question} "
                f"tokens and every answer to 1 token it still takes {floor_size} (the template, the reference or the "
                f"rubric take the rest); {how_to_fit}")
        answer_cap = _largest_fitting_cap(lambda cap: size(question_cap, cap) <= max_tokens, 1, longest_answer_turn)
    cut = InputCut(question_tokens_cut=sum(len(t.ids) - t.kept(question_cap) for t in question_texts),
                   answer_tokens_cut=tuple(sum(len(t.ids) - t.kept(answer_cap) for t in turns) for turns in answer_texts),
                   max_tokens=max_tokens)
    return (*build(question_cap, answer_cap), cut)


def fit_sample(sample: JudgeSample, num_tokens: Callable[[JudgeSample], int], tokenizer: Any, max_tokens: int, *,
               answer_marker: str = "", how_to_fit: str = "raise the judge's max_seq_len") -> tuple[JudgeSample, InputCut | None]:
    """``sample`` with its question (then its answers) cut by :func:`fit_texts` so that
    ``num_tokens(sample)`` (the tokens the judge reads for it) is at most ``max_tokens``, and the cut
    (None, and the sample itself, when it fits). For a sample judged on one turn (``sample.turn``)
    only the turns up to it are shown, so only those are cut. Reference, rubric and criteria are
    never cut."""
    shown = sample.turn

    def rebuilt(question: tuple[str, ...], answers: tuple[tuple[str, ...], ...]) -> JudgeSample:
        question_turns = question + sample.question_turns[len(question):]
        new_answers = tuple(Answer(_as_text(turns + old.turns[len(turns):], old.text), old.model)
                            for turns, old in zip(answers, sample.answers))
        return sample.replace(question=_as_text(question_turns, sample.question), answers=new_answers)

    question, answers, cut = fit_texts(
        sample.question_turns[:shown], [a.turns[:shown] for a in sample.answers],
        lambda q, a: num_tokens(rebuilt(q, a)), tokenizer, max_tokens, answer_marker=answer_marker,
        what=f"sample {sample.id!r}", how_to_fit=how_to_fit)
    return (sample, None) if cut is None else (rebuilt(question, answers), cut)


def _as_text(turns: tuple[str, ...], like: str | tuple[str, ...]) -> str | tuple[str, ...]:
    """``turns`` in the shape of ``like``: a plain string for a one-turn text given as one."""
    return turns[0] if isinstance(like, str) else turns


__all__ = ["QUESTION_CUT_MARKER", "MIN_QUESTION_SHARE", "INPUT_CUT_META_KEYS", "InputCut", "input_cut_meta", "fit_texts",
           "fit_sample"]
