"""The judge-agreement evaluation during training: the live model judges a small labelled set.

Every ``eval.every_steps`` optimizer steps the model being trained generates verdicts on
``eval.judge.num_samples`` labelled pairwise samples through :class:`judgetrain.judging.Judge`
(the same rendering, decoding and parsing as ``judgetrain eval``) with a
:class:`~judgetrain.judging.backends.transformers_backend.TransformersBackend` wrapped around the
in-memory model, and logs (through the Trainer's log, so stdout and wandb get them):

``judge/<name>`` for each of :data:`CALLBACK_METRICS`, scored by the evaluation scorer
(:func:`judgetrain.evaluation.scoring.score_items`, whose module docstring defines every name) under
the same names as ``judgetrain eval``:

- ``judge/accuracy``: share of samples whose original-order verdict equals the gold winner (a parse
  failure counts as wrong);
- ``judge/combined_accuracy`` and ``judge/consistency`` (with ``eval.judge.both_orders``): the
  both-orders verdict's accuracy, and the share of samples with the same verdict in both orders;
- ``judge/parse_failure_rate``: share of judge calls whose output did not parse;
- ``judge/num_items``: the number of samples judged.

No result cache is used: the weights change between evaluations, and the cache key names the
model, not its weights. Where the weights are whole on every process (single process, DDP,
ZeRO-1/2) rank 0 judges alone; under ZeRO-3 the parameters are sharded and every process must take
part in each forward, so every process judges the same prompts (generate synchronises them).
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import torch
from transformers import TrainerCallback

from judgetrain.types import JudgeSample

logger = logging.getLogger(__name__)

METRIC_PREFIX = "judge/"


def gold_winner(sample: JudgeSample, label: str | None) -> str | None:
    """The gold pairwise winner of ``sample``: from labels[label], or the first label that has one."""
    if label is not None:
        found = sample.labels.get(label)
        return found.winner if found is not None else None
    for found in sample.labels.values():
        if found.winner is not None:
            return found.winner
    return None


def select_labelled(samples: Sequence[JudgeSample], num_samples: int, label: str | None, where: str) -> list[JudgeSample]:
    """The first ``num_samples`` pairwise samples of ``samples`` with a gold winner; ValueError when none."""
    chosen = [s for s in samples if s.protocol == "pairwise" and gold_winner(s, label) is not None][:num_samples]
    if not chosen:
        wanted = f"label {label!r}" if label else "any label with a winner"
        raise ValueError(f"eval.judge: {where} holds no pairwise samples with {wanted}; set eval.judge.data to a "
                         "labelled prepared dir or eval.judge.label to a label the samples have")
    if len(chosen) < num_samples:
        logger.warning("eval.judge.num_samples=%d but %s has only %d labelled pairwise samples; judging those",
                       num_samples, where, len(chosen))
    return chosen


CALLBACK_METRICS = ("accuracy", "combined_accuracy", "consistency", "parse_failure_rate")
"""The metrics the callback logs (as ``judge/<name>``), plus ``judge/num_items``."""


def agreement_metrics(judgments: Sequence[Any], gold: Sequence[str]) -> dict[str, float | None]:
    """:data:`CALLBACK_METRICS` of ``judgments`` (from ``Judge.judge``) against ``gold``, keyed
    ``judge/<name>``; the both-orders metrics only when every sample was judged in both orders."""
    from judgetrain.evaluation import ItemResult, fill_from_judgment, score_items, value_of

    if len(judgments) != len(gold):
        raise ValueError(f"{len(judgments)} judgments but {len(gold)} gold winners; give one of each per sample")
    rows = [fill_from_judgment(ItemResult(id=j.sample_id, group=None, labels={}, gold_winner=g), j, "pairwise")
            for j, g in zip(judgments, gold)]
    # No bootstrap: the callback logs point values every few steps.
    result = score_items(rows, kind="pairwise", metrics=CALLBACK_METRICS, num_resamples=0)
    out: dict[str, float | None] = {f"{METRIC_PREFIX}{key}": value_of(result, key) for key in CALLBACK_METRICS
                                    if key in result["metrics"]}
    out[f"{METRIC_PREFIX}num_items"] = float(len(judgments))
    return out


class JudgeAgreementCallback(TrainerCallback):
    """Judges ``samples`` with the live model every ``every_steps`` optimizer steps and logs the metrics.

    Give it the Trainer with :meth:`attach` (``build_trainer`` does), so the metrics go through
    ``Trainer.log`` to every logging integration; ``history`` keeps ``(step, metrics)`` of each evaluation.
    """

    def __init__(self, samples: Sequence[JudgeSample], gold: Sequence[str], tokenizer, *, format_name: str, every_steps: int,
                 both_orders: bool = True, max_new_tokens: int | None = None, batch_size: int = 8):
        if every_steps < 1:
            raise ValueError(f"JudgeAgreementCallback: every_steps must be >= 1, got {every_steps}")
        assert len(samples) == len(gold)
        self.samples = list(samples)
        self.gold = list(gold)
        self.tokenizer = tokenizer
        self.format_name = format_name
        self.every_steps = every_steps
        self.both_orders = both_orders
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.trainer = None
        self.history: list[tuple[int, dict[str, float | None]]] = []

    @classmethod
    def from_config(cls, config, tokenizer, data) -> "JudgeAgreementCallback":
        """The callback of a run: samples from ``eval.judge.data`` or the held-out split of ``data``."""
        judge_config = config.eval.judge
        if judge_config.data is not None:
            from judgetrain.data.prepared import read_samples

            pool, where = read_samples(judge_config.data), judge_config.data
        else:
            pool, where = data.held_out_samples, "the held-out split (data.held_out_fraction)"
        samples = select_labelled(pool, judge_config.num_samples, judge_config.label, where)
        format_name = judge_config.format or config.data.format or data.format_name
        if format_name is None:
            raise ValueError("eval.judge: the judge template is unknown; set eval.judge.format or data.format")
        return cls(samples, [gold_winner(s, judge_config.label) for s in samples], tokenizer, format_name=format_name,
                   every_steps=config.eval.every_steps, both_orders=judge_config.both_orders,
                   max_new_tokens=judge_config.max_new_tokens, batch_size=judge_config.batch_size)

    def attach(self, trainer) -> None:
        """Log through ``trainer`` (its stdout / wandb callbacks and ``state.log_history``)."""
        self.trainer = trainer

    def _judges_on_this_process(self, args, state) -> bool:
        zero3 = False
        if args.deepspeed:
            from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

            zero3 = is_deepspeed_zero3_enabled()
        return zero3 or state.is_world_process_zero

    def evaluate(self, model, *, unwrap: bool = True) -> dict[str, float | None]:
        """Judge the samples with ``model`` now (in eval mode, without gradients) and return the metrics."""
        from judgetrain.judging import Judge, default_decoding
        from judgetrain.judging.backends.transformers_backend import TransformersBackend
        from judgetrain import formats

        fmt = formats.get(self.format_name)
        backend = TransformersBackend(model, self.tokenizer, batch_size=self.batch_size)
        decoding = default_decoding(fmt, max_new_tokens=self.max_new_tokens)
        judge = Judge(fmt, backend, decoding, both_orders=self.both_orders)
        was_training = model.training
        model.eval()
        # Training runs without the KV cache (gradient checkpointing, packing); generation wants it.
        config = getattr(model, "config", None)
        use_cache = getattr(config, "use_cache", None)
        if config is not None:
            config.use_cache = True
        try:
            with torch.no_grad():
                judgments = judge.judge(self.samples)
        finally:
            if config is not None:
                config.use_cache = use_cache
            model.train(was_training)
        return agreement_metrics(judgments, self.gold)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every_steps or model is None:
            return control
        if not self._judges_on_this_process(args, state):
            return control
        values = self.evaluate(model)
        self.history.append((state.global_step, values))
        if state.is_world_process_zero:
            logs = {key: value for key, value in values.items() if value is not None}
            if self.trainer is not None:
                self.trainer.log(logs)
            else:
                state.log_history.append({**logs, "step": state.global_step})
        return control


__all__ = ["JudgeAgreementCallback", "CALLBACK_METRICS", "agreement_metrics", "gold_winner", "select_labelled"]
