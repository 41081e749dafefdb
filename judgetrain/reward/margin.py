"""The tie margin of a reward judge (or of a generative judge deciding by its verdict probabilities),
chosen on a dev split and kept beside the checkpoint.

A reward judge calls a pair a tie when |r_A − r_B| ≤ margin. The margin is picked where it is most
accurate on held-out pairs of the training mixture (every labelled pair, ties included), with
:func:`judgetrain.judging.judge.choose_tie_margin`, and written to ``tie_margin.json`` in the run's
final dir; ``judgetrain export`` copies it into the judge card. A test set is never used for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

from judgetrain.atomic import write_text_atomic
from judgetrain.reward.data import LABEL_KEYS, winner_label

TIE_MARGIN_FILE = "tie_margin.json"
REWARD_MARGIN_GRID = tuple(round(0.05 * i, 2) for i in range(0, 41))
"""Margins tried, in reward units (logits): 0, 0.05, …, 2.0."""


def labelled_pairs(samples: Sequence[Any], label_keys: Sequence[str] = LABEL_KEYS) -> tuple[list[Any], list[str]]:
    """The pairwise samples with a winner label (A, B or tie) and those winners."""
    chosen, gold = [], []
    for sample in samples:
        label = winner_label(sample, label_keys) if sample.protocol == "pairwise" else None
        if label is not None and label.winner in ("A", "B", "tie"):
            chosen.append(sample)
            gold.append(label.winner)
    return chosen, gold


def choose_reward_tie_margin(judge: Any, samples: Sequence[Any], *, source: str) -> dict[str, Any] | None:
    """The most accurate tie margin of ``judge`` (a RewardJudge) on the labelled pairs of ``samples``,
    as the record :func:`save_tie_margin` writes; None when no sample has a winner label."""
    return _choose_margin(judge, samples, source=source, margins=REWARD_MARGIN_GRID,
                          difference_of=lambda j: j.verdict.scores[0] - j.verdict.scores[1] if j.verdict is not None else None)


def choose_probability_tie_margin(judge: Any, samples: Sequence[Any], *, source: str) -> dict[str, Any] | None:
    """The same choice for a generative judge deciding pairs by its verdict probabilities (a
    :class:`~judgetrain.judging.Judge` with ``both_orders=True, aggregation="probabilities"``): the
    margin on P(A) − P(B) (``both_orders.p_a_minus_p_b``; for a template whose first token is a grade,
    the normalised expected-grade difference) from :data:`judgetrain.judging.judge.DEFAULT_TIE_MARGINS`.
    Pairs either order could not judge, or that fell back to the verdicts rule, are left out (None
    when that leaves none). The record goes into the judge card with ``judgetrain export --aggregation probabilities --tie-margin M``."""
    from judgetrain.judging.judge import DEFAULT_TIE_MARGINS

    def difference_of(judgment: Any) -> float | None:
        record = judgment.both_orders
        return record.p_a_minus_p_b if record is not None and record.aggregated_by == "probabilities" else None

    return _choose_margin(judge, samples, source=source, margins=DEFAULT_TIE_MARGINS, difference_of=difference_of)


def _choose_margin(judge: Any, samples: Sequence[Any], *, source: str, margins: Sequence[float],
                   difference_of: Callable[[Any], float | None]) -> dict[str, Any] | None:
    from judgetrain.judging.judge import choose_tie_margin

    pairs, gold = labelled_pairs(samples)
    if not pairs:
        return None
    judgments = judge.judge(pairs)
    differences = [difference_of(j) for j in judgments]
    kept = [(d, g) for d, g in zip(differences, gold) if d is not None and d == d]
    if not kept:  # every pair failed to parse in an order (an untrained generative judge): nothing to choose on
        return None
    margin, accuracy = choose_tie_margin([d for d, _ in kept], [g for _, g in kept], margins=margins)
    return {"tie_margin": margin, "accuracy": accuracy, "num_pairs": len(kept),
            "num_ties": sum(1 for _, g in kept if g == "tie"), "source": source}


def save_tie_margin(directory: str | Path, record: dict[str, Any]) -> Path:
    path = Path(directory) / TIE_MARGIN_FILE
    write_text_atomic(path, json.dumps(record, indent=2) + "\n")
    return path


def read_tie_margin(directory: str | Path) -> dict[str, Any] | None:
    path = Path(directory) / TIE_MARGIN_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(record.get("tie_margin"), (int, float)) or record["tie_margin"] < 0:
        raise ValueError(f"{path}: tie_margin must be a number >= 0, got {record.get('tie_margin')!r}")
    return record


__all__ = ["TIE_MARGIN_FILE", "REWARD_MARGIN_GRID", "labelled_pairs", "choose_reward_tie_margin",
           "choose_probability_tie_margin", "save_tie_margin", "read_tie_margin"]
