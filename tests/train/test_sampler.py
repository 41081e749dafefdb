"""The length-grouped order of a run depends on its seed and epoch only, never on the global RNG, so a
run resumed in a later epoch trains the rest of that epoch in the uninterrupted run's order."""

import torch

from judgetrain.train.data import EpochSeededLengthGroupedSampler

LENGTHS = [5 + (i * 37) % 200 for i in range(64)]


def _order(epoch: int, seed: int = 7) -> list[int]:
    sampler = EpochSeededLengthGroupedSampler(LENGTHS, batch_size=4, seed=seed)
    sampler.set_epoch(epoch)
    return list(sampler)


def test_order_follows_seed_and_epoch_not_the_global_rng():
    torch.manual_seed(0)
    first = _order(2)
    torch.manual_seed(1)
    torch.rand(1000)
    assert _order(2) == first
    assert sorted(first) == list(range(len(LENGTHS)))
    assert _order(3) != first and _order(2, seed=8) != first


def test_batches_hold_samples_of_similar_length():
    order = _order(0)
    batches = [order[i:i + 4] for i in range(0, len(order), 4)]
    spread = sum(max(LENGTHS[i] for i in b) - min(LENGTHS[i] for i in b) for b in batches) / len(batches)
    shuffled = torch.randperm(len(LENGTHS), generator=torch.Generator().manual_seed(0)).tolist()
    random_batches = [shuffled[i:i + 4] for i in range(0, len(shuffled), 4)]
    random_spread = sum(max(LENGTHS[i] for i in b) - min(LENGTHS[i] for i in b) for b in random_batches) / len(random_batches)
    # The longest sample leads (transformers puts it in the first batch to surface memory errors early).
    assert LENGTHS[order[0]] == max(LENGTHS)
    assert spread < random_spread / 2
