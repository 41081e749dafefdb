"""The Bradley-Terry loss of a reward judge.

P(chosen beats rejected) = σ(r_chosen − r_rejected), so the negative log-likelihood of a batch of pairs
is ``mean(softplus(r_rejected − r_chosen))`` (``-log σ(x) = softplus(-x)``, which stays finite for
any margin). Only differences of rewards enter, so the head's offset is free: a reward means something
only next to another reward for the same question.

Length-balanced weights (``data.length_balance: weight``): each pair row carries its loss weight in
:data:`PAIR_WEIGHT_COLUMN`, :class:`PairWeightCollator` puts them into the batch as
:data:`PAIR_WEIGHTS_KEY`, and the loss is ``mean(w · softplus(r_rejected − r_chosen))``. The weights
average 1 over the training pool (:mod:`judgetrain.data.length_balance`), so this is the pool's
weighted mean ``Σ w·ℓ / Σ w`` taken batch by batch. Dividing each micro-batch by its own ``Σ w``
instead would give the pairs of a light micro-batch more pull than the same pairs in a heavy one,
and the Trainer's averaging over accumulation steps and processes (equal pairs per micro-batch)
would no longer be a mean over the pairs of the global batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

PAIR_WEIGHT_COLUMN = "pair_weight"
"""Column of the pair rows holding each pair's loss weight (only with ``data.length_balance: weight``)."""
PAIR_WEIGHTS_KEY = "pair_weights"
"""Batch key of the pairs' loss weights, a float tensor with one entry per pair."""


def pair_rewards(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen rewards, rejected rewards) of a :class:`~judgetrain.reward.data.RewardPairCollator` batch."""
    rewards = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0].float()
    num_pairs = rewards.shape[0] // 2
    assert rewards.shape[0] == 2 * num_pairs, "a pair batch holds the chosen rows, then as many rejected rows"
    return rewards[:num_pairs], rewards[num_pairs:]


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor, pair_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean ``-log σ(chosen − rejected)`` over the pairs of a batch; with ``pair_weights`` (one per
    pair, averaging 1 over the training pool), the mean of each pair's loss times its weight."""
    losses = F.softplus(rejected - chosen)
    if pair_weights is None:
        return losses.mean()
    if pair_weights.shape != losses.shape:
        raise ValueError(f"pair_weights has shape {tuple(pair_weights.shape)} for {tuple(losses.shape)} pairs; give one weight per pair")
    return (losses * pair_weights.to(losses.device, losses.dtype)).mean()


@dataclass
class PairWeightCollator:
    """A pair collator (``collate``, e.g. :class:`~judgetrain.reward.data.RewardPairCollator`) whose
    batches also carry :data:`PAIR_WEIGHTS_KEY` when the rows have a :data:`PAIR_WEIGHT_COLUMN`
    (training rows); rows without one (held-out pairs scored for evaluation) batch as before."""

    collate: Callable[[list[dict[str, Any]]], dict[str, Any]]

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collate(features)
        if features and PAIR_WEIGHT_COLUMN in features[0]:
            batch[PAIR_WEIGHTS_KEY] = torch.tensor([float(f[PAIR_WEIGHT_COLUMN]) for f in features], dtype=torch.float32)
        return batch


__all__ = ["PAIR_WEIGHT_COLUMN", "PAIR_WEIGHTS_KEY", "pair_rewards", "bradley_terry_loss", "PairWeightCollator"]
