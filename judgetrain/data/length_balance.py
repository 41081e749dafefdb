"""Length-balanced training pools: as much weight on pairs the shorter answer wins as on pairs the
longer answer wins, so that answer length alone cannot lower the training loss.

A judge taught by GPT-4 preferences learns that the longer answer wins (it does in 76% of the
AlpacaEval pairs with a winner). Balancing the pool removes that shortcut from the training signal;
it does not remove length from what the judge sees.

Every pair of the training pool is put on one side by comparing the length of its two answers in
characters (Python ``len``: Unicode code points, every turn of a multi-turn answer counted) with the
winner its training label names:

- ``longer_wins`` / ``shorter_wins``: the pairs that are balanced;
- ``equal_length`` (both answers as long) and ``no_winner`` (a tie, no usable label, a single-answer
  sample): left as they are, kept and weighted 1.

Swapping the answers of a pair flips both its winner and which answer comes first, so it never
changes the side: online swap augmentation and the swapped twins of pair-symmetric training
(``meta["pair_id"]``) leave the balance as it is. The two orders of one pair are one unit here, kept
or dropped together (pair-symmetric training puts both in one optimizer step), and counted once.

Two ways (``data.length_balance``):

- ``resample``: the larger of the two sides is subsampled, seeded, to the size of the smaller.
  Subsampling rather than oversampling the smaller side: every pair is still seen once per epoch, so
  an epoch stays one pass over distinct pairs and no shorter-wins pair is shown three or four times
  per epoch to be memorised (at 76% longer wins, oversampling would repeat each shorter-wins pair
  3.2 times). The price is the data left out, counted in the run's data summary; ``weight`` keeps it.
- ``weight``: every pair is kept, with a loss weight: ``(L + S) / (2 L)`` on each of the L
  longer-wins rows, ``(L + S) / (2 S)`` on each of the S shorter-wins rows, 1 on the others. The two
  sides then weigh the same, and the weights average 1 over the pool, so the loss keeps its scale.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from judgetrain.data.augment import PAIR_ID_KEY
from judgetrain.types import Answer, JudgeSample

logger = logging.getLogger(__name__)

LONGER_WINS = "longer_wins"
SHORTER_WINS = "shorter_wins"
EQUAL_LENGTH = "equal_length"
NO_WINNER = "no_winner"
SIDES = (LONGER_WINS, SHORTER_WINS, EQUAL_LENGTH, NO_WINNER)
"""Where a pair of the pool stands; only the first two are balanced."""

BALANCE_MODES = ("none", "resample", "weight")


def answer_length_chars(answer: Answer) -> int:
    """The length of ``answer`` in characters (Unicode code points), all its turns together."""
    return sum(len(turn) for turn in answer.turns)


def length_side(sample: JudgeSample, winner: str | None) -> str:
    """Whether ``winner`` (``A``, ``B``, ``tie`` or None) of ``sample`` is its longer answer
    (:data:`LONGER_WINS`), its shorter one (:data:`SHORTER_WINS`), or neither: both answers as long
    (:data:`EQUAL_LENGTH`), or no winner to compare (:data:`NO_WINNER`: a tie, no label, one answer)."""
    if sample.protocol != "pairwise" or winner not in ("A", "B"):
        return NO_WINNER
    length_a, length_b = (answer_length_chars(answer) for answer in sample.answers)
    if length_a == length_b:
        return EQUAL_LENGTH
    longer = "A" if length_a > length_b else "B"
    return LONGER_WINS if winner == longer else SHORTER_WINS


def twin_units(samples: Sequence[JudgeSample]) -> list[list[int]]:
    """The positions of ``samples`` grouped into units: the two orders of one pair (same
    ``meta["pair_id"]``, different ids) together, every other sample alone; units in the order of their
    first position. A pair drawn twice by a mixing weight above 1 gives two units."""
    units: list[list[int]] = []
    waiting: dict[str, list[list[int]]] = {}  # pair id -> its units still missing the other order, oldest first
    for position, sample in enumerate(samples):
        pair_id = sample.meta.get(PAIR_ID_KEY)
        if pair_id is None:
            units.append([position])
            continue
        open_units = waiting.setdefault(pair_id, [])
        partner = next((unit for unit in open_units if samples[unit[0]].id != sample.id), None)
        if partner is not None:
            partner.append(position)
            open_units.remove(partner)
        else:
            units.append([position])
            open_units.append(units[-1])
    return units


def _consecutive_units(unit_sizes: Sequence[int], num_rows: int) -> list[list[int]]:
    assert sum(unit_sizes) == num_rows, f"unit_sizes add up to {sum(unit_sizes)} rows, but there are {num_rows}"
    units, start = [], 0
    for size in unit_sizes:
        units.append(list(range(start, start + size)))
        start += size
    return units


@dataclass
class LengthBalance:
    """The training pool after length balancing: which rows stay, with which loss weights."""

    mode: str
    """``none``, ``resample`` or ``weight`` (``data.length_balance``)."""
    kept_units: list[list[int]]
    """The row positions of every unit kept (a pair's two orders, or one row), in row order."""
    row_weights: list[float] | None = None
    """``weight``: the loss weight of every row (in row order, every row kept); None otherwise."""
    stats: dict[str, Any] = field(default_factory=dict)
    """What the data summary records: the mode, the number of pairs on each side (a pair trained in
    both orders counts once), what was dropped (``resample``) or the weight of each side (``weight``)."""

    @property
    def row_indices(self) -> list[int]:
        """The positions of the rows kept, in their original order."""
        return sorted(position for unit in self.kept_units for position in unit)

    @property
    def unit_sizes(self) -> list[int]:
        """The number of rows of every unit kept, in row order."""
        return [len(unit) for unit in self.kept_units]

    def apply_to_rows(self, rows, weight_column: str | None = None):
        """``rows`` (a ``datasets.Dataset`` in the order the balance was computed on) with only the kept
        rows, and for ``weight`` the loss weights in ``weight_column``."""
        if self.row_weights is not None:
            if weight_column is None:
                raise ValueError("data.length_balance=weight needs a column to hold the loss weights")
            return rows.add_column(weight_column, self.row_weights)
        indices = self.row_indices
        return rows if len(indices) == len(rows) else rows.select(indices)


def balance_by_length(samples: Sequence[JudgeSample], winner_of: Callable[[JudgeSample], str | None], *, mode: str,
                      seed: int, unit_sizes: Sequence[int] | None = None) -> LengthBalance:
    """Balance a training pool (``samples``: the sample of every training row, in row order) so the
    pairs its longer answer wins weigh as much as those its shorter answer wins (see the module doc).

    ``winner_of`` gives the winner a sample is trained towards (``A``, ``B``, ``tie`` or None).
    ``unit_sizes`` lays the rows out in units of consecutive rows (pair-symmetric rows: a pair's two
    orders); None groups the two orders of a pair wherever they are (:func:`twin_units`). ``mode``:
    ``none`` only counts, ``resample`` subsamples the larger side (seeded by ``seed``), ``weight``
    sets loss weights. ValueError when one side is empty and the other is not: balancing would drop
    or zero every pair with a winner."""
    if mode not in BALANCE_MODES:
        raise ValueError(f"data.length_balance={mode!r} is not one of {', '.join(BALANCE_MODES)}")
    units = twin_units(samples) if unit_sizes is None else _consecutive_units(unit_sizes, len(samples))
    # Both orders of a pair share a side (a swap flips the winner and the answer order together).
    sides = [length_side(samples[unit[0]], winner_of(samples[unit[0]])) for unit in units]
    by_side = {side: [i for i, s in enumerate(sides) if s == side] for side in SIDES}
    num_longer, num_shorter = len(by_side[LONGER_WINS]), len(by_side[SHORTER_WINS])
    stats: dict[str, Any] = {"mode": mode, "length_unit": "characters",
                             **{f"num_{side}": len(by_side[side]) for side in SIDES}}
    if mode == "none":
        return LengthBalance(mode, units, stats=stats)
    if num_longer == 0 and num_shorter == 0:
        logger.warning("data.length_balance=%s has no effect: no training pair has a winner and answers of different lengths", mode)
        return LengthBalance(mode, units, row_weights=[1.0] * len(samples) if mode == "weight" else None, stats=stats)
    if num_longer == 0 or num_shorter == 0:
        present, missing = (LONGER_WINS, SHORTER_WINS) if num_shorter == 0 else (SHORTER_WINS, LONGER_WINS)
        raise ValueError(
            f"data.length_balance={mode}: the training pool has {len(by_side[present])} pairs where the "
            f"{present.split('_')[0]} answer wins and none where the {missing.split('_')[0]} one does, so balancing would "
            "leave no pair with a winner to learn from; add data where it does, or set data.length_balance=none"
        )
    if mode == "resample":
        larger, smaller = (LONGER_WINS, SHORTER_WINS) if num_longer >= num_shorter else (SHORTER_WINS, LONGER_WINS)
        drawn = random.Random(f"{seed}:length-balance").sample(by_side[larger], len(by_side[smaller]))
        dropped = set(by_side[larger]) - set(drawn)
        kept_units = [unit for i, unit in enumerate(units) if i not in dropped]
        # Only pairs with a winner are ever dropped: a pair trained in both orders counts once, its rows twice.
        stats.update({"subsampled_side": larger, "num_pairs_dropped": len(dropped),
                      "num_rows_dropped": sum(len(units[i]) for i in dropped)})
        logger.warning("data.length_balance=resample: %d pairs where the longer answer wins, %d where the shorter does; "
                       "%d of the %s pairs (%d rows) left out", num_longer, num_shorter, len(dropped), larger,
                       stats["num_rows_dropped"])
        return LengthBalance(mode, kept_units, stats=stats)
    # Rows, not units, carry the loss: a unit holding both orders of a pair weighs twice.
    rows_longer, rows_shorter = (sum(len(units[i]) for i in by_side[side]) for side in (LONGER_WINS, SHORTER_WINS))
    balanced = rows_longer + rows_shorter
    weight_of_side = {LONGER_WINS: balanced / (2 * rows_longer), SHORTER_WINS: balanced / (2 * rows_shorter)}
    row_weights = [1.0] * len(samples)
    for unit, side in zip(units, sides):
        for position in unit:
            row_weights[position] = weight_of_side.get(side, 1.0)
    stats.update({"longer_wins_weight": weight_of_side[LONGER_WINS], "shorter_wins_weight": weight_of_side[SHORTER_WINS]})
    logger.warning("data.length_balance=weight: %d pairs where the longer answer wins weigh %.4f each, %d where the shorter "
                   "does %.4f each", num_longer, weight_of_side[LONGER_WINS], num_shorter, weight_of_side[SHORTER_WINS])
    return LengthBalance(mode, units, row_weights=row_weights, stats=stats)


__all__ = ["LONGER_WINS", "SHORTER_WINS", "EQUAL_LENGTH", "NO_WINNER", "SIDES", "BALANCE_MODES", "LengthBalance",
           "answer_length_chars", "length_side", "twin_units", "balance_by_length"]
