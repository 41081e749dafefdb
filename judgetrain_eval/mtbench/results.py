"""``show``: FastChat ``show_result.py`` tables from the judgment files, plus per-category scores and
a radar plot.

- single: per model the mean score of turn 1, of turn 2 and over both (FastChat's "Average": the mean
  of every graded turn), rows with ``score == -1`` (no rating) left out and counted; the per-category
  table is the mean over both turns of each category's questions, as in FastChat's radar plot.
- pairwise: win / loss / tie and the win rates of :func:`judgetrain.metrics.win_rates` (FastChat's
  rule: a match whose two orders disagree, or whose first order is a tie, is a tie for both models;
  a match with an ``error`` in either order is left out); in ``pairwise-baseline`` only matches with
  the baseline count and the baseline's own row is dropped. The per-category table holds the adjusted
  win rate.
- pairs from single grades (``--from-single``): two models' grades of the same question and turn
  are compared as FastChat's ``play_a_match_pair`` compares them for a single-grading judge: a tie
  when they differ by at most :data:`TIE_DELTA` (0.1), else the higher grade wins; the winner is
  written to both ``g1_winner`` and ``g2_winner``.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

from judgetrain_eval.mtbench.data import CATEGORIES, TIE_DELTA, read_jsonl
from judgetrain_eval.mtbench.judgment import model_pairs
from judgetrain import metrics
from judgetrain.atomic import atomic_path

PAIR_WINNER = {"model_1": "A", "model_2": "B", "tie": "tie", "error": None}
"""FastChat's pairwise winner names as the library's winners (``error``: no verdict)."""


def read_judgments(path: str | os.PathLike[str], protocol: str) -> list[dict[str, Any]]:
    """The rows of a FastChat judgment file; ValueError naming file, line and missing field."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no judgment file at {path}: run `judgetrain mtbench judge` first, or give --input-file")
    needed = ("question_id", "model", "score", "turn") if protocol == "single" else (
        "question_id", "model_1", "model_2", "g1_winner", "g2_winner")
    rows = []
    for number, row in read_jsonl(path):
        for name in needed:
            if name not in row:
                kind = "single-grading" if protocol == "single" else "pairwise"
                raise ValueError(f"{path}:{number}: missing field {name!r} of a FastChat {kind} judgment row")
        if protocol != "single" and row["g1_winner"] not in PAIR_WINNER:
            raise ValueError(f"{path}:{number}: g1_winner {row['g1_winner']!r} is not one of {sorted(PAIR_WINNER)}")
        rows.append(row)
    return rows


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def single_table(rows: Iterable[dict[str, Any]], categories: dict[Any, str],
                 model_list: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """model -> {turn_1, turn_2, average, num_graded, num_unrated, categories {category: mean}}."""
    graded: dict[str, list[dict[str, Any]]] = defaultdict(list)
    unrated: dict[str, int] = defaultdict(int)
    for row in rows:
        if model_list and row["model"] not in model_list:
            continue
        if row["score"] == -1:
            unrated[row["model"]] += 1
        else:
            graded[row["model"]].append(row)
    out = {}
    for model in sorted(set(graded) | set(unrated)):
        mine = graded.get(model, [])
        per_category: dict[str, list[float]] = defaultdict(list)
        for row in mine:
            per_category[categories.get(row["question_id"], "unknown")].append(float(row["score"]))
        out[model] = {
            "turn_1": _mean([float(r["score"]) for r in mine if r["turn"] == 1]),
            "turn_2": _mean([float(r["score"]) for r in mine if r["turn"] == 2]),
            "average": _mean([float(r["score"]) for r in mine]),
            "num_graded": len(mine),
            "num_unrated": unrated.get(model, 0),
            "categories": {c: _mean(v) for c, v in sorted(per_category.items())},
        }
    return out


def pairs_from_single(rows: Iterable[dict[str, Any]], mode: str, models: Sequence[str], baseline: str | None = None,
                      tie_delta: float = TIE_DELTA) -> list[dict[str, Any]]:
    """Pairwise rows built from single grades (FastChat's single-judge pair match; see the module doc).
    A pair where either grade is missing or -1 is an ``error``."""
    scores: dict[tuple[str, str, int], float] = {}
    questions: dict[str, Any] = {}
    for row in rows:
        key = (str(row["question_id"]), row["model"], int(row["turn"]))
        scores[key] = float(row["score"])
        questions[str(row["question_id"])] = row["question_id"]
    turns = sorted({k[2] for k in scores})
    out = []
    for qid_text, qid in questions.items():
        for turn in turns:
            for model_1, model_2 in model_pairs(mode, models, baseline):
                s1, s2 = scores.get((qid_text, model_1, turn)), scores.get((qid_text, model_2, turn))
                if s1 is None and s2 is None:
                    continue
                if s1 is None or s2 is None or s1 == -1 or s2 == -1:
                    winner = "error"
                elif abs(s1 - s2) <= tie_delta:
                    winner = "tie"
                else:
                    winner = "model_1" if s1 > s2 else "model_2"
                out.append({"question_id": qid, "model_1": model_1, "model_2": model_2, "g1_winner": winner,
                            "g2_winner": winner, "m1_score": s1, "m2_score": s2, "turn": turn})
    return out


def pairwise_table(rows: Iterable[dict[str, Any]], categories: dict[Any, str], *, baseline: str | None = None,
                   model_list: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """model -> FastChat's win, loss, tie, win_rate, loss_rate, win_rate_adjusted, plus ``categories``
    (category -> adjusted win rate) and ``num_errors`` (matches left out for an ``error``)."""
    kept, errors = [], defaultdict(int)
    for row in rows:
        # FastChat filters on model_1 only, and with a baseline keeps the matches that include it.
        if model_list and row["model_1"] not in model_list:
            continue
        if baseline is not None and baseline not in (row["model_1"], row["model_2"]):
            continue
        if row["g1_winner"] == "error" or row["g2_winner"] == "error":
            errors[row["model_1"]] += 1
            errors[row["model_2"]] += 1
            continue
        kept.append(row)

    def matches(selected: Iterable[dict[str, Any]]) -> list[tuple[str, str, Any, Any]]:
        return [(r["model_1"], r["model_2"], PAIR_WINNER[r["g1_winner"]], PAIR_WINNER[r["g2_winner"]]) for r in selected]

    table = metrics.win_rates(matches(kept))
    by_category: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in kept:
        by_category[categories.get(row["question_id"], "unknown")].append(row)
    category_rates = {c: metrics.win_rates(matches(rs)) for c, rs in sorted(by_category.items())}
    out = {}
    for model in sorted(set(table) | set(errors)):
        if model == baseline:
            continue
        entry = dict(table.get(model, {"win": 0, "loss": 0, "tie": 0, "win_rate": None, "loss_rate": None,
                                       "win_rate_adjusted": None}))
        entry["num_errors"] = errors.get(model, 0)
        entry["categories"] = {c: rates[model]["win_rate_adjusted"] for c, rates in category_rates.items() if model in rates}
        out[model] = entry
    return out


def _cell(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with aligned columns."""
    cells = [list(columns)] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def category_columns(table: dict[str, dict[str, Any]]) -> list[str]:
    """MT-bench's categories in radar order, then any other category the judgments hold."""
    present = {c for entry in table.values() for c in entry["categories"]}
    return [c for c in CATEGORIES if c in present] + sorted(present - set(CATEGORIES))


def radar_plot(table: dict[str, dict[str, Any]], path: str | os.PathLike[str], *, title: str,
               value_max: float) -> Path:
    """A radar (polar) plot of each model's per-category values over MT-bench's categories, as PNG
    (matplotlib, Agg backend), written atomically. Missing categories plot as 0."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    extra = sorted({c for e in table.values() for c in e["categories"]} - set(CATEGORIES))
    labels = list(CATEGORIES) + extra
    angles = [2 * math.pi * i / len(labels) for i in range(len(labels))]
    figure = plt.figure(figsize=(7, 7))
    axes = figure.add_subplot(projection="polar")
    for model, entry in sorted(table.items(), key=lambda kv: -(kv[1].get("average") or kv[1].get("win_rate_adjusted") or 0)):
        values = [entry["categories"].get(c) or 0.0 for c in labels]
        axes.plot(angles + angles[:1], values + values[:1], linewidth=1.5, label=model)
        axes.fill(angles + angles[:1], values + values[:1], alpha=0.08)
    axes.set_xticks(angles)
    axes.set_xticklabels(labels)
    axes.set_ylim(0, value_max)
    axes.set_title(title)
    axes.legend(loc="upper right", bbox_to_anchor=(1.3, 1.1), fontsize="small")
    try:
        with atomic_path(path, suffix=".png") as tmp:
            figure.savefig(tmp, format="png", bbox_inches="tight", dpi=100)
    finally:
        plt.close(figure)
    return path
