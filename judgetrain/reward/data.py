"""What a reward judge reads, and the pair rows it trains on.

The scored text (template ``reward-chat-v1``) is the conversation in the model's own chat template:
each question turn as a user message and each answer turn as an assistant message, with nothing
about judging in it, so the model scores the answer in the setting it was written in. A reference
answer, a rubric or the other answer are never shown.

Over the token budget, training and judging cut differently. A training row
(:func:`encode_conversation`, used by :func:`pair_rows`) keeps its question and loses the end of its
last answer, as it always has. A judged input (:func:`fit_reward_sample`, :func:`encode_for_judging`)
loses the middle of its question first and keeps the answers whole as far as they fit
(:mod:`judgetrain.judging.truncation`): cutting the answers first would score two different answers
under a long question as the same empty answer, a silent tie. Both conversations of a pair share one
cut question, so each answer is scored in the same context.

Training rows come from pairwise samples whose label names a winner: ``chosen_input_ids`` (the
winner's conversation) and ``rejected_input_ids``. A tie has no winner to prefer, so it is counted
(``num_ties``) and left out, like a sample without a usable label; nothing is mapped to a tie or to
a winner it does not have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

# REWARD_TEMPLATE, the name recorded in judgments and judge cards for the conversation defined here, is
# declared with the judge formats, so `judgetrain formats` lists it as the reward kind's template.
from judgetrain.formats import REWARD_TEMPLATE
from judgetrain.judging.truncation import InputCut, fit_sample, fit_texts
from judgetrain.types import JudgeSample

LABEL_KEYS = ("human_majority", "human", "gold", "gpt4")
"""Which label a training pair's winner comes from: the first one the sample has (else its only one)."""

_TRUNCATION_ROUNDS = 4


def reward_messages(sample: JudgeSample, answer_index: int) -> list[dict[str, str]]:
    """The conversation scored for answer ``answer_index`` of ``sample``: user and assistant turns."""
    questions = sample.question_turns
    answers = sample.answers[answer_index].turns
    if len(answers) > len(questions):
        raise ValueError(f"sample {sample.id!r}: answer {answer_index + 1} has {len(answers)} turns for {len(questions)} question turns")
    messages: list[dict[str, str]] = []
    for question, answer in zip(questions, answers):
        messages.append({"role": "user", "content": question})
        messages.append({"role": "assistant", "content": answer})
    return messages


def conversation_text(tokenizer: Any, messages: Sequence[dict[str, str]]) -> str:
    """The exact text scored: the chat template without a generation prompt, or the turns joined."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([dict(m) for m in messages], tokenize=False)
    return "\n\n".join(m["content"] for m in messages)


def _ids(tokenizer: Any, text: str) -> list[int]:
    templated = bool(getattr(tokenizer, "chat_template", None))
    return list(tokenizer(text, add_special_tokens=not templated)["input_ids"])


def encode_conversation(tokenizer: Any, messages: Sequence[dict[str, str]], max_seq_len: int) -> tuple[list[int], bool]:
    """(token ids, truncated?) of a training conversation within ``max_seq_len`` tokens (judged inputs
    are cut by :func:`encode_for_judging` instead). The last message (the answer) is shortened from its
    end first; only when it is empty are earlier messages shortened, from the last one back. The
    template's own tokens are always kept."""
    messages = [dict(m) for m in messages]
    ids = _ids(tokenizer, conversation_text(tokenizer, messages))
    truncated = False
    position = len(messages) - 1
    for _ in range(_TRUNCATION_ROUNDS * len(messages)):
        excess = len(ids) - max_seq_len
        if excess <= 0:
            return ids, truncated
        while position >= 0 and not messages[position]["content"]:
            position -= 1
        if position < 0:
            break
        truncated = True
        content = tokenizer(messages[position]["content"], add_special_tokens=False)["input_ids"]
        # Cut a little more than the excess: re-tokenizing at the cut can merge differently.
        keep = max(0, len(content) - excess - 4)
        messages[position]["content"] = tokenizer.decode(content[:keep]) if keep else ""
        ids = _ids(tokenizer, conversation_text(tokenizer, messages))
    if len(ids) > max_seq_len:
        raise ValueError(f"a conversation does not fit max_seq_len={max_seq_len} tokens ({len(ids)} tokens after shortening "
                         "its messages); raise data.max_seq_len")
    return ids, truncated


def fit_reward_sample(sample: JudgeSample, tokenizer: Any, max_seq_len: int) -> tuple[JudgeSample, InputCut | None]:
    """``sample`` shortened so that each answer's conversation fits ``max_seq_len`` tokens (question
    first, see the module doc), and what was cut (None, and the sample itself, when it fits). The
    answers of a pair share the cut question and one cap, so both are cut by the same rule."""
    def longest_conversation(shown: JudgeSample) -> int:
        return max(len(_ids(tokenizer, conversation_text(tokenizer, reward_messages(shown, index))))
                   for index in range(len(shown.answers)))

    return fit_sample(sample, longest_conversation, tokenizer, max_seq_len,
                      how_to_fit="raise the reward judge's max_seq_len (the card's reward.max_seq_len)")


def encode_for_judging(tokenizer: Any, messages: Sequence[dict[str, str]], max_seq_len: int) -> tuple[list[int], InputCut | None]:
    """(token ids, what was cut or None) of one conversation to score, e.g. a ``/pooling`` request:
    the user turns are the question and the assistant turns the answer, shortened question first
    (see the module doc) to fit ``max_seq_len``; other messages (a system prompt) are kept whole."""
    messages = [dict(m) for m in messages]
    question_at = [i for i, m in enumerate(messages) if m["role"] == "user"]
    answer_at = [i for i, m in enumerate(messages) if m["role"] == "assistant"]

    def with_texts(question: Sequence[str], answers: Sequence[Sequence[str]]) -> list[dict[str, str]]:
        shown = [dict(m) for m in messages]
        for position, text in zip(question_at, question):
            shown[position]["content"] = text
        for position, text in zip(answer_at, answers[0]):
            shown[position]["content"] = text
        return shown

    def num_tokens(question: Sequence[str], answers: Sequence[Sequence[str]]) -> int:
        return len(_ids(tokenizer, conversation_text(tokenizer, with_texts(question, answers))))

    question, answers, cut = fit_texts([messages[i]["content"] for i in question_at], [[messages[i]["content"] for i in answer_at]],
                                       num_tokens, tokenizer, max_seq_len, what="the conversation to score",
                                       how_to_fit="raise the reward judge's max_seq_len (the card's reward.max_seq_len)")
    return _ids(tokenizer, conversation_text(tokenizer, with_texts(question, answers))), cut


def winner_label(sample: JudgeSample, label_keys: Sequence[str] = LABEL_KEYS):
    """The label a training pair's winner is read from (see :data:`LABEL_KEYS`), or None."""
    return sample.label(*label_keys) or sample.label()


def pair_rows(samples: Sequence[JudgeSample], tokenizer: Any, *, max_seq_len: int,
              label_keys: Sequence[str] = LABEL_KEYS, drop_long: bool = False) -> tuple[Any, dict[str, Any]]:
    """A ``datasets.Dataset`` with ``id``, ``chosen_input_ids``, ``rejected_input_ids`` and ``length``
    (the longer of the two, for length grouping) for every pairwise sample with a winner, and the counts
    of what was left out and why. ``drop_long`` leaves out (and counts) a pair with an answer that does
    not fit ``max_seq_len`` instead of cutting that answer's end."""
    import datasets

    rows: dict[str, list] = {"id": [], "chosen_input_ids": [], "rejected_input_ids": [], "length": []}
    stats = {"num_pairs": 0, "num_ties": 0, "num_without_winner": 0, "num_single_answer": 0, "num_truncated_answers": 0,
             "num_long_pairs_dropped": 0}
    cache: dict[tuple[str, int], tuple[list[int], bool]] = {}
    for sample in samples:
        if sample.protocol != "pairwise":
            stats["num_single_answer"] += 1
            continue
        label = winner_label(sample, label_keys)
        winner = label.winner if label is not None else None
        if winner == "tie":
            stats["num_ties"] += 1
            continue
        if winner not in ("A", "B"):
            stats["num_without_winner"] += 1
            continue
        encoded = []
        for index in (0, 1):
            key = (sample.id, index)
            if key not in cache:
                cache[key] = encode_conversation(tokenizer, reward_messages(sample, index), max_seq_len)
            encoded.append(cache[key])
        (first, cut_first), (second, cut_second) = encoded
        if drop_long and (cut_first or cut_second):
            stats["num_long_pairs_dropped"] += 1
            continue
        stats["num_truncated_answers"] += int(cut_first) + int(cut_second)
        chosen, rejected = (first, second) if winner == "A" else (second, first)
        rows["id"].append(sample.id)
        rows["chosen_input_ids"].append(chosen)
        rows["rejected_input_ids"].append(rejected)
        rows["length"].append(max(len(chosen), len(rejected)))
        stats["num_pairs"] += 1
    return datasets.Dataset.from_dict(rows), stats


@dataclass
class RewardPairCollator:
    """Batches pair rows as one padded tensor: the chosen conversations first, then the rejected ones
    (row i and row i + B are one pair). Right padding with the pad token; the sequence-classification
    head reads each row's last non-pad token."""

    pad_token_id: int

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        sequences = [list(f["chosen_input_ids"]) for f in features] + [list(f["rejected_input_ids"]) for f in features]
        width = max(len(s) for s in sequences)
        input_ids = torch.full((len(sequences), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, ids in enumerate(sequences):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}


__all__ = ["REWARD_TEMPLATE", "LABEL_KEYS", "reward_messages", "conversation_text", "encode_conversation",
           "fit_reward_sample", "encode_for_judging", "winner_label", "pair_rows", "RewardPairCollator"]
