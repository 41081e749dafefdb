"""The Bradley-Terry loss of a reward judge.

P(chosen beats rejected) = σ(r_chosen − r_rejected), so the negative log-likelihood of a batch of pairs
is ``mean(softplus(r_rejected − r_chosen))`` (``-log σ(x) = softplus(-x)``, which stays finite for
any margin). Only differences of rewards enter, so the head's offset is free: a reward means something
only next to another reward for the same question.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pair_rewards(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen rewards, rejected rewards) of a :class:`~judgetrain.reward.data.RewardPairCollator` batch."""
    rewards = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0].float()
    num_pairs = rewards.shape[0] // 2
    assert rewards.shape[0] == 2 * num_pairs, "a pair batch holds the chosen rows, then as many rejected rows"
    return rewards[:num_pairs], rewards[num_pairs:]


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """Mean ``-log σ(chosen − rejected)`` over the pairs of a batch."""
    return F.softplus(rejected - chosen).mean()


__all__ = ["pair_rewards", "bradley_terry_loss"]
