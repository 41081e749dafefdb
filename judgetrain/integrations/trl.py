"""An exported judge as a TRL reward function (GRPO, online DPO).

    from trl import GRPOTrainer
    from judgetrain.integrations.trl import JudgeReward, ReferenceReward

    grader = JudgeReward.from_card("judges/my-grader")             # or "http://127.0.0.1:8000"
    GRPOTrainer(model=..., reward_funcs=grader, train_dataset=..., args=...)

    versus_reference = ReferenceReward.from_card("judges/my-pairwise-judge")   # the dataset has a "reference" column
    OnlineDPOTrainer(model=..., reward_funcs=versus_reference, train_dataset=..., args=...)

Both are callables in TRL's reward-function signature, ``reward(prompts, completions, **columns) ->
list[float | None]``, one value per completion, built from a judge card by the same factory as
:meth:`judgetrain.judging.Judge.from_card`: a local export dir or the ``http://`` URL of
``judgetrain serve`` (generative or reward kind). A reward export dir can also be handed to TRL as
it is (``reward_funcs="judges/my-reward"``); TRL then scores ``prompt + completion`` itself, with the
export's chat template for conversational data but as the bare concatenated text for plain-text
prompts, where the reward judge was trained on the chat template. The callables here always build the
conversation the judge was trained on.

What TRL passes. A conversational row is a prompt of messages and a completion of assistant messages;
the judge sees the user turns as the question and the assistant turns (the prompt's earlier ones, then
the completion) as the answer, so every user turn needs its answer. A prompt ending with an assistant
message is continued by the completion (TRL's ``continue_final_message``). System messages are not
shown: a judge template has no place for the policy's system prompt. A plain-text row is one question
and one answer. Other columns of the dataset come as keyword arguments (``reference_column``).

What comes back. :class:`JudgeReward` returns a single-grading judge's grade or a reward judge's
reward. :class:`ReferenceReward` judges each completion (answer A) against the row's reference
answer (answer B) in both orders, whatever the card says, because a policy trained against a judge
learns whichever position it favours; the two orders are combined by the card's tie policy (its
disagreement policy, aggregation and tie margin; a reward judge's tie margin) and the verdict becomes
``win`` (1.0), ``tie`` (0.5) or ``loss`` (0.0). A completion without a value (a parse failure, a
judge error, an ``inconsistent`` pair under that policy, a verdict without a grade) is ``None``, never
a number: GRPO leaves it out of the group's baseline and gives it no advantage. (TRL 1.16's
``OnlineDPOTrainer`` adds its reward functions up with ``nansum``, so there a lone ``None`` counts
as 0; read :attr:`JudgeReward.counts`.) Every call adds to :attr:`~JudgeReward.counts`, and under
GRPO also logs the rates of each kind of failure as metrics (``<name>/parse_failure_rate`` …) and each
completion's outcome as a column of the completions table (``<name>/outcome``). A call in which the
judge answered no completion at all (a server down) raises instead of training on nothing.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Sequence

from judgetrain.judging.judge import outcome_of
from judgetrain.types import Answer, JudgeSample, Judgment

DEFAULT_REFERENCE_COLUMN = "reference"
"""The dataset column :class:`ReferenceReward` (and a reference-showing grader) reads the reference answer from."""

_SHOWN_ROLES = ("user", "assistant")


@dataclass
class RewardCounts:
    """What a reward function's judgments were, summed over its calls.

    ``num_scored`` completions got a value; the others got ``None``: ``num_parse_failures``,
    ``num_errors`` (the backend failed), ``num_inconsistent`` (the orders disagreed under the
    ``inconsistent`` policy), ``num_without_score`` (a verdict with no grade). ``num_lenient`` of the
    scored ones were read by the lenient parser only."""

    num_completions: int = 0
    num_scored: int = 0
    num_parse_failures: int = 0
    num_errors: int = 0
    num_inconsistent: int = 0
    num_without_score: int = 0
    num_lenient: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


# --- TRL rows → judge samples --------------------------------------------------------------------


def _message_text(message: Any, where: str) -> tuple[str, str]:
    """(role, text) of one chat message; content given as parts must be text parts."""
    if not isinstance(message, Mapping) or "role" not in message or "content" not in message:
        raise ValueError(f"{where}: a chat message is a {{'role', 'content'}} mapping, got {message!r:.120}")
    role, content = message["role"], message["content"]
    if isinstance(content, str):
        return role, content
    if isinstance(content, Sequence) and all(isinstance(part, Mapping) for part in content):
        kinds = sorted({str(part.get("type")) for part in content} - {"text"})
        if kinds:
            raise ValueError(f"{where}: a {role} message has {kinds} content; a judge reads text only")
        return role, "".join(str(part.get("text", "")) for part in content)
    raise ValueError(f"{where}: message content must be a string or a list of text parts, got {type(content).__name__}")


def conversation_turns(prompt: Any, completion: Any, where: str = "row") -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(question turns, answer turns) of one TRL row: the user turns, and the assistant turns of the
    prompt followed by the completion (see the module doc). ``where`` names the row in errors."""
    if isinstance(prompt, str) and isinstance(completion, str):
        return (prompt,), (completion,)
    if isinstance(prompt, str) or isinstance(completion, str):
        raise ValueError(f"{where}: the prompt is {type(prompt).__name__} and the completion {type(completion).__name__}; "
                         "give both as text or both as lists of chat messages")
    questions: list[str] = []
    answers: list[str] = []
    previous_role = None
    for position, message in enumerate([*prompt, *completion]):
        from_completion = position >= len(prompt)
        role, text = _message_text(message, f"{where}, {'completion' if from_completion else 'prompt'} message {position}")
        if role == "system":
            continue
        if role not in _SHOWN_ROLES:
            raise ValueError(f"{where}: a {role!r} message; a judge reads user and assistant turns only "
                             "(score tool-using completions with a reward function of your own)")
        if role == "user":
            questions.append(text)
        elif previous_role == "assistant" and answers:
            # The completion continues the prompt's final assistant message, or an answer comes in
            # several assistant messages: one turn either way.
            answers[-1] += text
        else:
            answers.append(text)
        previous_role = role
    if not questions:
        raise ValueError(f"{where}: the prompt has no user message to judge the completion against")
    if len(answers) != len(questions):
        raise ValueError(f"{where}: {len(questions)} user turn(s) but {len(answers)} assistant turn(s); "
                         "every user turn needs its answer, the last one from the completion")
    return tuple(questions), tuple(answers)


def _text(turns: tuple[str, ...]) -> str | tuple[str, ...]:
    return turns[0] if len(turns) == 1 else turns


def _column(columns: Mapping[str, Any], name: str, num_rows: int) -> list[Any]:
    if name not in columns:
        shown = sorted(k for k in columns if k not in ("trainer_state", "log_metric", "log_extra", "completion_ids", "environments"))
        raise ValueError(f"the judge needs the reference answer of each row from the dataset column {name!r}, which is not "
                         f"there (columns: {shown}); add it, or pass reference_column=<the column holding it>")
    values = list(columns[name])
    if len(values) != num_rows:
        raise ValueError(f"column {name!r} has {len(values)} values for {num_rows} completions")
    return values


def reference_text(reference: Any, where: str = "row") -> str:
    """The reference answer to a row's last user turn, given as a string or as assistant messages
    (the way TRL gives a completion)."""
    if isinstance(reference, str):
        return reference
    if isinstance(reference, Sequence) and reference and all(isinstance(m, Mapping) for m in reference):
        parts = [_message_text(m, f"{where}, reference") for m in reference]
        if any(role != "assistant" for role, _ in parts):
            raise ValueError(f"{where}: a reference given as messages must be assistant messages")
        return "".join(text for _, text in parts)
    raise ValueError(f"{where}: the reference answer is {reference!r:.80}; give a string or assistant messages")


def _sample_id(index: int) -> str:
    return f"completion-{index}"


# --- the reward functions ------------------------------------------------------------------------


class _CardReward:
    """What both reward functions share: the judge, the name TRL logs under, the counts."""

    judge: Any
    counts: RewardCounts

    def __init__(self, judge: Any, name: str | None):
        self.judge = judge
        card = getattr(judge, "card", None)
        # TRL names a reward function's metrics after its __name__ (rewards/<name>/mean).
        self.__name__ = name or _metric_name(getattr(card, "name", None) or "judge")
        self.counts = RewardCounts()

    @property
    def is_reward_judge(self) -> bool:
        return getattr(self.judge, "kind", None) == "reward"

    def _record(self, judgments: Sequence[Judgment], values: list[float | None], outcomes: list[str],
                columns: Mapping[str, Any]) -> None:
        """Add one call's judgments to the counts and, under GRPO, log them; raise when none was answered."""
        errors = [j for j in judgments if j.error is not None]
        if judgments and len(errors) == len(judgments):
            raise RuntimeError(f"{self.__name__}: the judge answered none of the {len(judgments)} completions "
                               f"(first error: {errors[0].error}); is its server running?")
        batch = RewardCounts(num_completions=len(judgments), num_scored=sum(v is not None for v in values),
                             num_parse_failures=outcomes.count("parse_failure"), num_errors=len(errors),
                             num_inconsistent=outcomes.count("inconsistent"), num_without_score=outcomes.count("no_score"),
                             num_lenient=sum(1 for j, v in zip(judgments, values)
                                             if v is not None and j.verdict is not None and j.verdict.lenient))
        for key, value in batch.to_dict().items():
            setattr(self.counts, key, getattr(self.counts, key) + value)
        log_metric: Callable[[str, float], None] | None = columns.get("log_metric")
        if log_metric is not None and judgments:
            for rate_name, count in (("parse_failure_rate", batch.num_parse_failures), ("error_rate", batch.num_errors),
                                     ("inconsistent_rate", batch.num_inconsistent), ("without_score_rate", batch.num_without_score)):
                log_metric(f"{self.__name__}/{rate_name}", count / len(judgments))
        log_extra: Callable[[str, list], None] | None = columns.get("log_extra")
        if log_extra is not None:
            log_extra(f"{self.__name__}/outcome", outcomes)


def _metric_name(card_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", card_name).strip("_") or "judge"


class JudgeReward(_CardReward):
    """One value per completion from a pointwise judge: a single-grading generative judge's grade,
    or a reward judge's reward (see the module doc for what TRL passes and what comes back).

    Args:
        judge: a :class:`judgetrain.judging.Judge` with a single-grading template, or a
            :class:`judgetrain.reward.judge.RewardJudge`; :meth:`from_card` builds one from a card.
        name: the name TRL logs the rewards under (``rewards/<name>/mean``); default the card's name.
        reference_column: the dataset column of the reference answer, read only when the judge's
            template shows one (``judgelm-single-ref-v1``, ``prometheus-absolute-ref-v1``).
    """

    def __init__(self, judge: Any, *, name: str | None = None, reference_column: str = DEFAULT_REFERENCE_COLUMN):
        super().__init__(judge, name)
        fmt = judge.format
        if not self.is_reward_judge and fmt.protocol != "single":
            raise ValueError(f"judge template {fmt.name!r} compares two answers, so it gives no score for one completion; "
                             "use ReferenceReward (each completion against the dataset's reference answer) or a "
                             "single-grading judge")
        self.reference_column = reference_column
        self.needs_reference = not self.is_reward_judge and bool(getattr(fmt, "with_reference", False))

    @classmethod
    def from_card(cls, path_or_url: Any, *, name: str | None = None, reference_column: str = DEFAULT_REFERENCE_COLUMN,
                  **judge_options: Any) -> "JudgeReward":
        """The reward function of the judge a card describes: an export dir or a ``judgetrain serve``
        URL; ``judge_options`` go to :meth:`judgetrain.judging.Judge.from_card` (``batch_size``, ``api_key_env`` …)."""
        from judgetrain.judging.judge import Judge

        return cls(Judge.from_card(path_or_url, **judge_options), name=name, reference_column=reference_column)

    def samples(self, prompts: Sequence[Any], completions: Sequence[Any], columns: Mapping[str, Any]) -> list[JudgeSample]:
        """The one-answer judge sample of each (prompt, completion), in order."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions; TRL passes one prompt per completion")
        references = _column(columns, self.reference_column, len(prompts)) if self.needs_reference else None
        out = []
        for index, (prompt, completion) in enumerate(zip(prompts, completions)):
            where = f"completion {index}"
            questions, answers = conversation_turns(prompt, completion, where)
            reference = reference_text(references[index], where) if references is not None else None
            out.append(JudgeSample(id=_sample_id(index), source="trl", question=_text(questions),
                                   answers=(Answer(_text(answers)),), reference=reference))
        return out

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[float | None]:
        """One grade or reward per completion, ``None`` where there is none (counted in :attr:`counts`)."""
        judgments = self.judge.judge(self.samples(prompts, completions, columns))
        values: list[float | None] = []
        outcomes: list[str] = []
        for judgment in judgments:
            outcome = outcome_of(judgment)
            scores = judgment.verdict.scores if judgment.verdict is not None else None
            value = scores[0] if outcome == "score" and scores else None
            if outcome == "score" and value is None:
                outcome = "no_score"
            values.append(float(value) if value is not None else None)
            outcomes.append(outcome)
        self._record(judgments, values, outcomes, columns)
        return values


class ReferenceReward(_CardReward):
    """Each completion judged against its row's reference answer by a pairwise judge, in both orders
    under the card's tie policy: ``win`` when the completion is preferred, ``tie``, ``loss`` when the
    reference is (see the module doc).

    Args:
        judge: a :class:`judgetrain.judging.Judge` with a pairwise template that shows no reference
            of its own, or a :class:`judgetrain.reward.judge.RewardJudge` (its verdict by the card's
            tie margin); :meth:`from_card` builds one from a card.
        reference_column: the dataset column holding each row's reference answer: a string (the
            answer to the last user turn) or assistant messages.
        win, tie, loss: the reward of each verdict.
        name: the name TRL logs the rewards under; default the card's name.
    """

    def __init__(self, judge: Any, *, reference_column: str = DEFAULT_REFERENCE_COLUMN, win: float = 1.0, tie: float = 0.5,
                 loss: float = 0.0, name: str | None = None):
        super().__init__(judge, name)
        fmt = judge.format
        if not self.is_reward_judge:
            if fmt.protocol != "pairwise":
                raise ValueError(f"judge template {fmt.name!r} grades one answer; use JudgeReward for it, or a pairwise judge here")
            if getattr(fmt, "with_reference", False):
                raise ValueError(f"judge template {fmt.name!r} shows a reference answer besides the two answers, so the "
                                 f"reference would be shown twice; use its twin without one ({fmt.reference_twin!r})")
        if not win > tie > loss:
            raise ValueError(f"the rewards must rank win > tie > loss, got win={win}, tie={tie}, loss={loss}")
        self.reference_column = reference_column
        self.values = {"A": float(win), "tie": float(tie), "B": float(loss)}

    @classmethod
    def from_card(cls, path_or_url: Any, *, reference_column: str = DEFAULT_REFERENCE_COLUMN, win: float = 1.0,
                  tie: float = 0.5, loss: float = 0.0, name: str | None = None, **judge_options: Any) -> "ReferenceReward":
        """The reward function of the pairwise judge a card describes (an export dir or a
        ``judgetrain serve`` URL); ``judge_options`` go to :meth:`judgetrain.judging.Judge.from_card`."""
        from judgetrain.judging.judge import Judge

        judge = Judge.from_card(path_or_url, **judge_options)
        return cls(judge, reference_column=reference_column, win=win, tie=tie, loss=loss, name=name)

    def samples(self, prompts: Sequence[Any], completions: Sequence[Any], columns: Mapping[str, Any]) -> list[JudgeSample]:
        """The pair (completion as answer A, reference as answer B) of each row, in order."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions; TRL passes one prompt per completion")
        references = _column(columns, self.reference_column, len(prompts))
        out = []
        for index, (prompt, completion, reference) in enumerate(zip(prompts, completions, references)):
            where = f"completion {index}"
            questions, answers = conversation_turns(prompt, completion, where)
            # The reference answers the last user turn; the earlier turns are the conversation's own.
            reference_answer = (*answers[:-1], reference_text(reference, where))
            out.append(JudgeSample(id=_sample_id(index), source="trl", question=_text(questions),
                                   answers=(Answer(_text(answers)), Answer(_text(reference_answer)))))
        return out

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[float | None]:
        """One reward per completion (``win`` / ``tie`` / ``loss``), ``None`` where the pair has no verdict."""
        samples = self.samples(prompts, completions, columns)
        both_orders = self.judge.both_orders
        self.judge.both_orders = True
        try:
            judgments = self.judge.judge(samples)
        finally:
            self.judge.both_orders = both_orders
        outcomes = [outcome_of(j) for j in judgments]
        values = [self.values.get(outcome) for outcome in outcomes]
        self._record(judgments, values, outcomes, columns)
        return values


__all__ = ["JudgeReward", "ReferenceReward", "RewardCounts", "conversation_turns", "reference_text", "DEFAULT_REFERENCE_COLUMN"]
