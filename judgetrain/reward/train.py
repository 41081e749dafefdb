"""Training pieces of a reward judge (``kind: reward``), used by :mod:`judgetrain.train.trainer`.

- :func:`build_reward_model`: the base model with a one-output sequence-classification head
  (``AutoModelForSequenceClassification(num_labels=1)``; the head starts from the base model's own
  initialisation, the body from the pretrained weights);
- :func:`build_reward_data`: pair rows from the prepared dirs, with the same mixing weights and the
  same held-out split (by sample id, or the group a reader recorded) as a generative run;
- :class:`RewardAgreementCallback`: every ``eval.every_steps``, the live model scores held-out pairs
  and logs ``reward/pair_accuracy`` (the share of pairs whose labelled winner gets the higher reward)
  and ``reward/held_out_loss``.

The loss itself is :func:`judgetrain.reward.loss.bradley_terry_loss`, applied by ``RewardTrainer``
in the trainer module.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from transformers import TrainerCallback

from judgetrain.data.length_balance import balance_by_length
from judgetrain.reward.data import RewardPairCollator, pair_rows, winner_label
from judgetrain.reward.loss import PAIR_WEIGHT_COLUMN, PairWeightCollator, bradley_terry_loss, pair_rewards

logger = logging.getLogger(__name__)


def build_reward_model(config):
    """The model of a ``kind: reward`` run: the base with a one-output classification head."""
    from transformers import AutoModelForSequenceClassification

    from judgetrain.models import TINY_MODEL, load_tokenizer, resolve_model_path, tiny_config, torch_dtype

    dtype = torch_dtype(config.model.dtype)
    # The new head (and a tiny model's every weight) is drawn from torch's RNG: seeding here makes the
    # untrained model a benchmark or the quickstart judges "before training" the one training starts from.
    torch.manual_seed(config.optim.seed)
    if config.model.path == TINY_MODEL:
        tokenizer = load_tokenizer(TINY_MODEL)
        model_config = tiny_config(len(tokenizer), pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                                   bos_token_id=None, num_labels=1)
        model = AutoModelForSequenceClassification.from_config(model_config, dtype=dtype)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(
            resolve_model_path(config.model.path), num_labels=1, dtype=dtype, attn_implementation=config.model.attention,
            use_safetensors=None, trust_remote_code=config.model.trust_remote_code,
        )
    if model.config.pad_token_id is None:
        tokenizer = load_tokenizer(config.model.tokenizer or config.model.path)
        # The head reads each row's last non-pad token, so the model must know the pad token.
        model.config.pad_token_id = tokenizer.pad_token_id
    model.config.problem_type = "regression"
    return model


def freeze_lower_layers(model, num_trainable_layers: int) -> dict[str, int]:
    """Freeze everything but the top ``num_trainable_layers`` decoder layers, the final norm and the
    output head (``score`` or ``lm_head``); returns the trainable / total parameter counts."""
    base = model.base_model
    layers = getattr(base, "layers", None)
    if layers is None:
        raise ValueError(f"method.trainable_layers: {type(model).__name__} has no decoder layer list (base_model.layers)")
    if num_trainable_layers > len(layers):
        raise ValueError(f"method.trainable_layers={num_trainable_layers} but the model has {len(layers)} decoder layers")
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    trainable = list(layers[len(layers) - num_trainable_layers:]) if num_trainable_layers else []
    for name in ("norm", "final_layernorm"):
        if getattr(base, name, None) is not None:
            trainable.append(getattr(base, name))
    head = getattr(model, "score", None) or model.get_output_embeddings()
    if head is not None:
        trainable.append(head)
    for module in trainable:
        for parameter in module.parameters():
            parameter.requires_grad_(True)
    counts = {"trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
              "total": sum(p.numel() for p in model.parameters())}
    logger.info("method.trainable_layers=%d: %d of %d parameters train", num_trainable_layers, counts["trainable"], counts["total"])
    return counts


def build_reward_data(config, tokenizer, *, seed: int):
    """:class:`~judgetrain.train.data.TrainData` of pair rows for a reward run."""
    import datasets

    from judgetrain.data.prepared import Manifest, read_samples
    from judgetrain.train.data import TrainData, is_held_out, mixed_indices

    data_config = config.data
    if not data_config.datasets:
        raise ValueError("data.datasets is empty; name at least one prepared dir (judgetrain prep --out DIR)")
    manifests = {spec.path: Manifest.read(spec.path) for spec in data_config.datasets}
    parts, held_out, stats = [], [], {"datasets": {}}
    pool_samples = []  # the sample of every training pair row, in row order over all dirs
    for index, spec in enumerate(data_config.datasets):
        samples = read_samples(spec.path)
        if not samples:
            raise ValueError(f"{spec.path}: the prepared dir holds no samples")
        kept = [s for s in samples if not is_held_out(s, data_config.held_out_fraction, seed)]
        out = [s for s in samples if is_held_out(s, data_config.held_out_fraction, seed)]
        chosen = [kept[i] for i in mixed_indices(len(kept), spec.weight, seed + index)]
        rows, counts = pair_rows(chosen, tokenizer, max_seq_len=data_config.max_seq_len,
                                 drop_long=data_config.long_pairs == "drop")
        parts.append(rows)
        by_id = {s.id: s for s in chosen}
        pool_samples.extend(by_id[sample_id] for sample_id in rows["id"])
        # The held-out pairs mirror the training mixture: a dir drawn at weight 0.05 contributes 5% of its
        # held-out split (a weight above 1 repeats nothing here), so the tie margin chosen on them fits the
        # mixture trained on, and a large dir drawn thinly does not make that pass score thousands of pairs.
        if spec.weight < 1:
            out = [out[i] for i in mixed_indices(len(out), spec.weight, seed + index)]
        held_out.extend(out)
        stats["datasets"][spec.path] = {"num_samples": len(samples), "num_held_out": len(out), "weight": spec.weight,
                                        "manifest_hash": manifests[spec.path].manifest_hash, **counts}
    train_rows = datasets.concatenate_datasets(parts)
    # data.length_balance: as many longer-wins as shorter-wins pairs (resample), or weights to that effect.
    balance = balance_by_length(pool_samples, lambda s: getattr(winner_label(s), "winner", None),
                                mode=data_config.length_balance, seed=seed)
    train_rows = balance.apply_to_rows(train_rows, PAIR_WEIGHT_COLUMN)
    stats["length_balance"] = balance.stats
    collator = RewardPairCollator(tokenizer.pad_token_id)
    if balance.row_weights is not None:
        collator = PairWeightCollator(collator)
    if len(train_rows) == 0:
        raise ValueError("no training pairs are left: a reward judge trains on pairs whose label names a winner (A or B); "
                         f"see the counts {stats['datasets']}")
    stats["num_train_pairs"] = len(train_rows)
    stats["num_train_tokens"] = int(sum(train_rows["length"]))
    return TrainData(train_dataset=train_rows, data_collator=collator, eval_dataset=None,
                     packed=False, format_name=None, held_out_samples=held_out,
                     manifest_hashes={path: m.manifest_hash for path, m in manifests.items()}, stats=stats)


@torch.inference_mode()
def score_pairs(model, collator: RewardPairCollator, rows, *, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen, rejected) rewards of pair rows under ``model`` (eval mode for the call)."""
    was_training = model.training
    model.eval()
    chosen, rejected = [], []
    device = next(model.parameters()).device
    try:
        for start in range(0, len(rows), batch_size):
            batch = collator([rows[i] for i in range(start, min(start + batch_size, len(rows)))])
            c, r = pair_rewards(model, {k: v.to(device) for k, v in batch.items()})
            chosen.append(c.cpu())
            rejected.append(r.cpu())
    finally:
        if was_training:
            model.train()
    return torch.cat(chosen), torch.cat(rejected)


class RewardAgreementCallback(TrainerCallback):
    """Held-out pair accuracy and Bradley-Terry loss of the live reward model, logged every
    ``eval.every_steps`` optimizer steps (rank 0 scores; the figures go through ``Trainer.log``)."""

    def __init__(self, rows, collator: RewardPairCollator, *, every_steps: int, batch_size: int):
        self.rows = rows
        self.collator = collator
        self.every_steps = every_steps
        self.batch_size = batch_size
        self.trainer = None
        self.history: list[dict[str, Any]] = []

    @classmethod
    def from_config(cls, config, tokenizer, data) -> "RewardAgreementCallback":
        samples = data.held_out_samples
        if config.eval.judge.data:
            from judgetrain.data.prepared import read_samples

            samples = read_samples(config.eval.judge.data)
        rows, counts = pair_rows(samples, tokenizer, max_seq_len=config.data.max_seq_len)
        if len(rows) == 0:
            raise ValueError(f"eval.judge.num_samples is set but the held-out samples give no pair with a winner ({counts})")
        rows = rows.select(range(min(config.eval.judge.num_samples, len(rows))))
        return cls(rows, data.data_collator, every_steps=config.eval.every_steps, batch_size=config.eval.judge.batch_size)

    def attach(self, trainer) -> None:
        self.trainer = trainer

    def evaluate(self, model) -> dict[str, float]:
        chosen, rejected = score_pairs(model, self.collator, self.rows, batch_size=self.batch_size)
        return {"reward/pair_accuracy": float((chosen > rejected).float().mean()),
                "reward/held_out_loss": float(bradley_terry_loss(chosen, rejected)),
                "reward/num_pairs": float(len(chosen))}

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if not self.every_steps or state.global_step % self.every_steps or model is None:
            return
        if not state.is_world_process_zero:
            return
        figures = self.evaluate(model)
        self.history.append({"step": state.global_step, **figures})
        if self.trainer is not None:
            self.trainer.log(figures)


__all__ = ["build_reward_model", "freeze_lower_layers", "build_reward_data", "score_pairs", "RewardAgreementCallback"]
