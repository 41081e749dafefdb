"""Loss-masked tokenization of judge samples: render with a format, apply the chat template, mask the prompt.

The token layout of one sample is ``prompt tokens | target tokens | end-of-turn token(s)``:

- The prompt is everything the chat template produces for the system + user messages with
  ``add_generation_prompt=True`` (so it ends with the assistant header, e.g. ``<|im_start|>assistant\\n``).
  Its labels are -100.
- The supervised tokens are the target (the judgment the format renders) and the end-of-turn token(s)
  the template writes after the assistant content, up to and including the last special token of that
  trailer (``<|im_end|>`` for ChatML, ``<|eot_id|>`` for Llama 3, ``<end_of_turn>`` for Gemma): the
  model must learn to stop. Anything the template writes after that token (ChatML's ``"\\n"``) is
  neither supervised nor kept, since nothing after it is ever trained on.
- The boundary is found by tokenizing the prompt alone and the whole conversation and checking that the
  prompt ids are a prefix of the conversation ids; a template for which they are not (one that rewrites
  earlier turns once an assistant turn follows) raises a ValueError instead of masking the wrong tokens.
- A tokenizer without a chat template gets the raw prompt :func:`raw_prompt_text` followed by the
  target and the EOS token; prompt and target are tokenized separately, so the prompt ids are exactly
  what a judge will see at inference.

Truncation shortens the answers only (each answer's tail, in proportion to its length, ending in
:data:`TRUNCATION_MARKER`), never the instructions, the rubric, the reference or the target: the sample
is re-rendered with shortened answers until it fits ``max_seq_len``. A sample whose target, or whose
prompt without any answer text, cannot fit is skipped and counted with its reason.

Training either uses the rows as they are (unpacked, batched by length with transformers'
``TrainingArguments(train_sampling_strategy="group_by_length")``, which reads the ``length`` column, and
padded by ``DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)``), or packs them
(:mod:`judgetrain.data.packing`).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from typing import Any, Iterable

import numpy as np
import torch

from judgetrain.data import augment
from judgetrain.formats.base import JudgeFormat, Message
from judgetrain.types import Answer, JudgeSample

IGNORE_INDEX = -100
"""Label of a token that is not trained on (``torch.nn.CrossEntropyLoss``'s default ignore_index)."""

TRUNCATION_MARKER = " …[truncated]"
"""Appended to an answer whose tail was cut, so the judge sees that the answer goes on."""

SKIP_TARGET_TOO_LONG = "target_too_long"
"""Skip reason: the target and its end-of-turn token alone fill ``max_seq_len``."""

SKIP_PROMPT_TOO_LONG = "prompt_too_long"
"""Skip reason: with every answer cut to nothing, the instructions, reference and target still do not fit."""

_MAX_SHORTENING_ROUNDS = 16


def raw_prompt_text(messages: list[Message]) -> str:
    """The prompt for a tokenizer without a chat template: the message contents, each followed by a
    blank line (the target follows directly)."""
    return "".join(m["content"] + "\n\n" for m in messages)


def _special_token_ids(tokenizer) -> set[int]:
    ids = set(tokenizer.all_special_ids)
    ids.update(i for i, token in tokenizer.added_tokens_decoder.items() if token.special)
    return ids


def encode_messages(messages: list[Message], tokenizer) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` for a conversation whose last message is the assistant target.

    Labels are -100 on every prompt token; the supervised tokens are the target plus the end-of-turn
    token(s) after it (see the module docstring).
    """
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError("encode_messages needs a conversation ending with the assistant target")
    prompt_messages, target = messages[:-1], messages[-1]["content"]
    if getattr(tokenizer, "chat_template", None):
        prompt_text = tokenizer.apply_chat_template(prompt_messages, tokenize=False, add_generation_prompt=True)
        full_text = tokenizer.apply_chat_template(messages, tokenize=False)
        # The templates put BOS (when the model has one) in the text, so the tokenizer must not add it again.
        prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        full_ids = tokenizer(full_text, add_special_tokens=False)["input_ids"]
        if full_ids[: len(prompt_ids)] != prompt_ids:
            raise ValueError(
                f"the chat template of {tokenizer.name_or_path!r} does not render the prompt as a prefix of the "
                "conversation (it changes earlier turns once the assistant answers), so the prompt/target boundary "
                "is unknown; use a tokenizer whose template appends turns, or one without a chat template"
            )
        trailer = full_ids[len(prompt_ids):]
        special = _special_token_ids(tokenizer)
        last_special = max((i for i, token in enumerate(trailer) if token in special), default=len(trailer) - 1)
        supervised = trailer[: last_special + 1]
    else:
        prompt_ids = tokenizer(raw_prompt_text(prompt_messages))["input_ids"]
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        supervised = tokenizer(target, add_special_tokens=False)["input_ids"] + eos
    input_ids = list(prompt_ids) + list(supervised)
    labels = [IGNORE_INDEX] * len(prompt_ids) + list(supervised)
    return input_ids, labels


def _resolve(sample: JudgeSample, fmt: str | JudgeFormat) -> JudgeFormat:
    return augment.format_for(sample, fmt)


def _render(sample: JudgeSample, template: JudgeFormat, tokenizer, target_label: str | None) -> tuple[list[int], list[int]]:
    messages = template.render(sample, target_label=target_label)
    if messages[-1]["role"] != "assistant":
        raise ValueError(
            f"sample {sample.id!r} has no training target for template {template.name!r}: it carries neither a "
            "judgment nor a label the template can turn into one; label it first or leave it out of training data"
        )
    return encode_messages(messages, tokenizer)


def _prefix(text: str, num_tokens: int, tokenizer) -> str:
    """The first ``num_tokens`` tokens of ``text``, cut at a character boundary of the original text."""
    if num_tokens <= 0:
        return ""
    if getattr(tokenizer, "is_fast", False):
        offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        return text[: offsets[num_tokens - 1][1]]
    return tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"][:num_tokens])


def _shorten_answers(
    sample: JudgeSample, keep_fraction: float, turn_lengths: list[list[int]], marker_tokens: int, tokenizer
) -> JudgeSample:
    answers = []
    for answer, lengths in zip(sample.answers, turn_lengths):
        turns = []
        for text, num_tokens in zip(answer.turns, lengths):
            keep = math.ceil(num_tokens * keep_fraction)
            # A cut that saves no more tokens than the marker costs would only lengthen the prompt.
            if num_tokens - keep <= marker_tokens:
                turns.append(text)
            else:
                turns.append((_prefix(text, keep, tokenizer).rstrip() + TRUNCATION_MARKER).lstrip())
        text = turns[0] if isinstance(answer.text, str) else tuple(turns)
        answers.append(Answer(text=text, model=answer.model))
    return sample.replace(answers=tuple(answers))


def _row(input_ids: list[int], labels: list[int], template: JudgeFormat, truncated: bool) -> dict[str, Any]:
    return {
        "input_ids": input_ids,
        "labels": labels,
        "length": len(input_ids),
        "num_target_tokens": sum(1 for label in labels if label != IGNORE_INDEX),
        "truncated": truncated,
        "template": template.name,
    }


def tokenize_with_reason(
    sample: JudgeSample, fmt: str | JudgeFormat, tokenizer, *, max_seq_len: int, target_label: str | None = None
) -> tuple[dict[str, Any] | None, str]:
    """:func:`tokenize_sample` and, when the sample is skipped, why (``SKIP_*``; ``""`` when kept)."""
    if max_seq_len < 2:
        raise ValueError(f"max_seq_len must be at least 2 tokens, got {max_seq_len}")
    template = _resolve(sample, fmt)
    input_ids, labels = _render(sample, template, tokenizer, target_label)
    if len(input_ids) <= max_seq_len:
        return _row(input_ids, labels, template, truncated=False), ""
    num_target_tokens = sum(1 for label in labels if label != IGNORE_INDEX)
    if num_target_tokens >= max_seq_len:
        return None, SKIP_TARGET_TOO_LONG

    turn_lengths = [[len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in a.turns] for a in sample.answers]
    total_answer_tokens = sum(map(sum, turn_lengths))
    if total_answer_tokens == 0:
        return None, SKIP_PROMPT_TOO_LONG
    marker_tokens = len(tokenizer(TRUNCATION_MARKER, add_special_tokens=False)["input_ids"])
    num_turns = sum(len(lengths) for lengths in turn_lengths)
    # First guess: cut the overflow plus one marker per turn; tokens merge differently inside the
    # template, so re-render and cut the remaining overflow until it fits.
    tokens_to_remove = len(input_ids) - max_seq_len + marker_tokens * num_turns
    for round_index in range(_MAX_SHORTENING_ROUNDS):
        keep_fraction = max(0.0, 1.0 - tokens_to_remove / total_answer_tokens)
        if round_index == _MAX_SHORTENING_ROUNDS - 1:
            keep_fraction = 0.0
        shortened = _shorten_answers(sample, keep_fraction, turn_lengths, marker_tokens, tokenizer)
        input_ids, labels = _render(shortened, template, tokenizer, target_label)
        if len(input_ids) <= max_seq_len:
            return _row(input_ids, labels, template, truncated=True), ""
        if keep_fraction == 0.0:
            return None, SKIP_PROMPT_TOO_LONG
        tokens_to_remove += len(input_ids) - max_seq_len
    raise AssertionError("unreachable: the last round cuts every answer to nothing")


def tokenize_sample(sample: JudgeSample, fmt: str | JudgeFormat, tokenizer, *, max_seq_len: int,
                    target_label: str | None = None) -> dict[str, Any] | None:
    """One training row for ``sample``, or None when it cannot fit ``max_seq_len`` (see the module docstring).

    ``fmt`` is a template name or a JudgeFormat; the sample is rendered with its with-reference or
    without-reference variant according to whether it has a reference (:func:`augment.format_for`).
    ``target_label`` names the label the target is built from (:meth:`JudgeFormat.target_label_of`;
    None: the template's order). The row holds ``input_ids``, ``labels`` (-100 on the prompt), ``length`` (tokens),
    ``num_target_tokens`` (supervised tokens), ``truncated`` (answers were shortened) and ``template``.
    """
    row, _reason = tokenize_with_reason(sample, fmt, tokenizer, max_seq_len=max_seq_len, target_label=target_label)
    return row


def _tokenize_json_row(row: dict[str, Any], fmt: str | JudgeFormat, tokenizer, max_seq_len: int,
                       target_label: str | None) -> dict[str, Any]:
    sample = JudgeSample.from_dict(json.loads(row["sample_json"]))
    out, reason = tokenize_with_reason(sample, fmt, tokenizer, max_seq_len=max_seq_len, target_label=target_label)
    if out is None:
        out = {"input_ids": [], "labels": [], "length": 0, "num_target_tokens": 0, "truncated": False, "template": ""}
    out["skip_reason"] = reason
    return out


def _length_stats(lengths: list[int]) -> dict[str, float]:
    if not lengths:
        return {}
    values = np.asarray(lengths)
    stats = {"min": int(values.min()), "mean": float(values.mean()), "max": int(values.max())}
    for q in (50, 90, 95, 99):
        stats[f"p{q}"] = float(np.percentile(values, q))
    return stats


def tokenize_samples(
    samples: Iterable[JudgeSample], fmt: str | JudgeFormat, tokenizer, *, max_seq_len: int, num_proc: int = 1,
    target_label: str | None = None,
) -> tuple["datasets.Dataset", dict[str, Any]]:  # noqa: F821
    """Tokenize ``samples`` with ``datasets.map`` over ``num_proc`` processes (``target_label`` as in
    :func:`tokenize_sample`).

    Returns the dataset of kept rows (columns ``id`` and those of :func:`tokenize_sample`) and the stats:
    ``num_samples`` (in), ``num_tokenized`` (out), ``num_truncated``, ``num_skipped_target_too_long``,
    ``num_skipped_prompt_too_long``, ``num_skipped``, ``skipped`` (each skipped id with its reason),
    ``num_target_tokens``, ``length_tokens`` (min / mean / p50 / p90 / p95 / p99 / max of kept rows),
    ``templates`` (rows per template), ``max_seq_len``, ``target_label``.
    """
    import datasets

    if num_proc < 1:
        raise ValueError(f"num_proc must be at least 1, got {num_proc}")
    ids, blobs = [], []
    digest = hashlib.sha256()
    for sample in samples:
        blob = json.dumps(sample.to_dict(), ensure_ascii=False)
        ids.append(sample.id)
        blobs.append(blob)
        digest.update(blob.encode())
    fmt_name = fmt.name if isinstance(fmt, JudgeFormat) else fmt
    for part in (fmt_name, tokenizer.name_or_path, str(len(tokenizer)), str(getattr(tokenizer, "chat_template", "")), str(max_seq_len),
                 f"target_label={target_label}"):
        digest.update(part.encode())
    rows = datasets.Dataset.from_dict({"id": ids, "sample_json": blobs})
    mapped = rows.map(
        _tokenize_json_row,
        fn_kwargs={"fmt": fmt, "tokenizer": tokenizer, "max_seq_len": max_seq_len, "target_label": target_label},
        num_proc=num_proc if num_proc > 1 and len(rows) > 1 else None,
        remove_columns=["sample_json"],
        desc="tokenizing",
        # Hashing a tokenizer to fingerprint the map is slow and unstable; the inputs are hashed above.
        new_fingerprint=digest.hexdigest()[:32],
    )
    reasons = mapped["skip_reason"]
    kept_mask = [reason == "" for reason in reasons]
    lengths = [n for n, keep in zip(mapped["length"], kept_mask) if keep]
    templates: dict[str, int] = {}
    for name, keep in zip(mapped["template"], kept_mask):
        if keep:
            templates[name] = templates.get(name, 0) + 1
    stats = {
        "num_samples": len(ids),
        "num_tokenized": sum(kept_mask),
        "num_truncated": sum(1 for t, keep in zip(mapped["truncated"], kept_mask) if keep and t),
        "num_skipped_target_too_long": reasons.count(SKIP_TARGET_TOO_LONG),
        "num_skipped_prompt_too_long": reasons.count(SKIP_PROMPT_TOO_LONG),
        "num_skipped": len(ids) - sum(kept_mask),
        "skipped": [{"id": i, "reason": r} for i, r in zip(ids, reasons) if r],
        "num_target_tokens": int(sum(mapped["num_target_tokens"])),
        "length_tokens": _length_stats(lengths),
        "templates": templates,
        "max_seq_len": max_seq_len,
        "target_label": target_label,
    }
    kept = mapped.filter(lambda reason: reason == "", input_columns="skip_reason", desc="dropping skipped rows")
    return kept.remove_columns("skip_reason"), stats


class OnlineJudgeDataset(torch.utils.data.Dataset):
    """Samples augmented afresh each epoch (:func:`augment.apply`), rendered and tokenized per item.

    Items are ``{"input_ids", "labels"}`` lists; pad them with
    ``DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100)`` or flatten them with
    ``DataCollatorWithFlattening``. Call :meth:`set_epoch` at the start of every epoch (a Trainer
    callback's ``on_epoch_begin``); items depend only on (stored sample, seed, epoch), so DataLoader
    workers and resumed runs see the same augmentation.

    Every variant a sample can take (swapped or not × reference kept or dropped) is tokenized once at
    construction; a sample with a variant that cannot fit ``max_seq_len`` is left out and listed in
    ``skipped`` (id, reason), so no item ever fails during training.
    """

    def __init__(
        self,
        samples: Iterable[JudgeSample],
        fmt: str | JudgeFormat,
        tokenizer,
        *,
        max_seq_len: int,
        swap_probability: float,
        p_include_reference: float,
        seed: int,
        target_label: str | None = None,
    ) -> None:
        self.fmt = fmt
        self.target_label = target_label
        self.tokenizer = tokenizer
        self.max_seq_len = max_seq_len
        self.swap_probability = swap_probability
        self.p_include_reference = p_include_reference
        self.seed = seed
        self.epoch = 0
        self.samples: list[JudgeSample] = []
        self.skipped: list[dict[str, str]] = []
        self.num_truncated_variants = 0
        # Validates both probabilities before the (slower) pre-pass.
        for sample in samples:
            augment.apply(sample, swap_probability=swap_probability, p_include_reference=p_include_reference, seed=seed, epoch=0)
            reason = self._first_unfit_variant(sample)
            if reason:
                self.skipped.append({"id": sample.id, "reason": reason})
            else:
                self.samples.append(sample)

    def _variants(self, sample: JudgeSample) -> list[JudgeSample]:
        orders = [sample]
        if self.swap_probability > 0 and sample.protocol == "pairwise":
            orders = [augment.swap(sample)] if self.swap_probability >= 1 else [sample, augment.swap(sample)]
        choices = [p for p in (1.0, 0.0) if (p == 1.0 and self.p_include_reference > 0) or (p == 0.0 and self.p_include_reference < 1)]
        variants = []
        for ordered in orders:
            for p in choices:
                variant = augment.choose_reference(ordered, p_include_reference=p, rng=random.Random(0))
                if variant not in variants:
                    variants.append(variant)
        return variants

    def _first_unfit_variant(self, sample: JudgeSample) -> str:
        for variant in self._variants(sample):
            row, reason = tokenize_with_reason(variant, self.fmt, self.tokenizer, max_seq_len=self.max_seq_len,
                                               target_label=self.target_label)
            if row is None:
                return reason
            self.num_truncated_variants += row["truncated"]
        return ""

    def set_epoch(self, epoch: int) -> None:
        """Augment the next items as for ``epoch``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def augmented(self, index: int) -> JudgeSample:
        """The sample at ``index`` as augmented for the current epoch."""
        return augment.apply(
            self.samples[index], swap_probability=self.swap_probability, p_include_reference=self.p_include_reference,
            seed=self.seed, epoch=self.epoch,
        )

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        row = tokenize_sample(self.augmented(index), self.fmt, self.tokenizer, max_seq_len=self.max_seq_len,
                              target_label=self.target_label)
        assert row is not None, "every variant was checked to fit at construction"
        return {"input_ids": row["input_ids"], "labels": row["labels"]}


__all__ = [
    "IGNORE_INDEX",
    "TRUNCATION_MARKER",
    "SKIP_TARGET_TOO_LONG",
    "SKIP_PROMPT_TOO_LONG",
    "OnlineJudgeDataset",
    "encode_messages",
    "raw_prompt_text",
    "tokenize_sample",
    "tokenize_samples",
    "tokenize_with_reason",
]
