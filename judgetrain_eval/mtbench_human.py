"""mtbench-human: agreement with the MT-bench expert votes (hub ``lmsys/mt_bench_human_judgments``,
splits ``human`` and ``gpt4_pair``), FastChat's ``compute_agreement.py`` conventions.

Data: the hub dataset by default, or ``--data PATH`` to a local copy: a directory holding the two
splits as files (``human.jsonl`` / ``gpt4_pair.jsonl``, or parquet files named by split), or a single
file of human votes. The ``data_prep`` reader gives one sample per vote; here the votes are gathered
into one item per (question, model pair, turn) (FastChat's key, the model names sorted), every vote
turned to the item's model order. The judge judges each item once, in both orders; its vote is
FastChat's conservative one (the verdict when both orders agree, a tie when they disagree).

Labels on an item: one per expert vote, keyed ``expert:<judge id>`` (FastChat counts only the
``expert_*`` judges as "human"; the ``author_*`` votes are left out), ``gpt4`` for the GPT-4 pair vote,
and ``human_majority`` (the most common expert vote, a tie when two winners are equally common) for
the confusion matrix. Metrics: ``s1_agreement`` (with ties) and ``s2_agreement`` (comparisons with a tie
vote on either side left out) with the experts, per turn (the groups) and over both turns; the same
against GPT-4 as ``s1_agreement_gpt4`` / ``s2_agreement_gpt4``; consistency and bias rates; and
FastChat ``show_result`` win rates of the models from the judge's votes. Default judge format:
``mtbench-pair-v2`` (``-multi-turn`` for turn 2). Anchor: MT-bench paper (Zheng et al. 2023) Table 2
(GPT-4 pair vs human: S1 66%, S2 85% on turn 1).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from judgetrain_eval.base import Benchmark
from judgetrain.types import JudgeSample, Label, flip_winner

HUB_ID = "lmsys/mt_bench_human_judgments"
SPLITS = ("human", "gpt4_pair")
EXPERT_PREFIX = "expert"
MTBENCH_METRICS = ("s1_agreement", "s2_agreement", "consistency", "prefer_first_rate", "prefer_second_rate",
                   "position_bias")


def item_key(sample: JudgeSample) -> tuple[Any, str, str, int]:
    """FastChat's vote key plus the turn: (question_id, sorted model names, turn)."""
    models = sorted(a.model or "" for a in sample.answers)
    return (sample.meta.get("question_id"), models[0], models[1], sample.turn or 1)


def _majority(winners: list[str]) -> str:
    counts = Counter(winners).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return "tie"
    return counts[0][0]


def gather_votes(votes: list[JudgeSample]) -> list[JudgeSample]:
    """One item per (question, model pair, turn) holding every expert vote and the GPT-4 vote on it,
    in the order of the first vote seen; items without an expert vote are dropped (nothing to agree with)."""
    items: dict[tuple, JudgeSample] = {}
    labels: dict[tuple, dict[str, Label]] = {}
    for vote in votes:
        key = item_key(vote)
        judge = str(vote.meta.get("judge", ""))
        if "gpt4" in vote.labels:
            who = "gpt4"
        elif judge.startswith(EXPERT_PREFIX):
            who = f"{EXPERT_PREFIX}:{judge}"
        else:
            continue  # author votes: FastChat's "author" judge, not in the human agreement
        if key not in items:
            items[key] = vote.replace(id=f"mtbench-human:{key[0]}:{key[1]}:{key[2]}:turn{key[3]}", labels={},
                                      meta={"question_id": key[0], "turn": key[3]})
            labels[key] = {}
        label = next(iter(vote.labels.values()))
        winner = label.winner
        if vote.answers[0].model != items[key].answers[0].model:
            winner = flip_winner(winner)
        if who in labels[key]:
            if who == "gpt4":
                raise ValueError(f"mtbench-human: two GPT-4 votes on question {key[0]} {key[1]} vs {key[2]} turn {key[3]}")
            continue  # one vote per expert per item, as collected
        labels[key][who] = Label(winner=winner)
    out = []
    for key, item in items.items():
        expert_votes = [lab.winner for who, lab in labels[key].items() if who.startswith(EXPERT_PREFIX)]
        if not expert_votes:
            continue
        out.append(item.replace(labels={"human_majority": Label(winner=_majority(expert_votes)), **labels[key]}))
    return out


@dataclass(frozen=True)
class MtBenchHuman(Benchmark):
    """The benchmark whose items are gathered from several vote rows (and two splits)."""

    def read(self, source: str, *, limit: int | None = None, on_bad_row: str = "error", report: Any = None) -> list[JudgeSample]:
        splits: list[str | None]
        path = Path(source)
        if path.is_file():
            splits = [None]
        elif path.is_dir():
            splits = [s for s in SPLITS if any(p.name.split(".")[0] == s or p.name.startswith(f"{s}-") for p in path.rglob("*"))]
            if not splits:
                raise ValueError(f"mtbench-human: {path} holds no split files named {SPLITS} (human.jsonl, gpt4_pair.jsonl …)")
        else:
            splits = list(SPLITS)
        votes: list[JudgeSample] = []
        for split in splits:
            votes.extend(Benchmark.read(self.replace_split(split), source, on_bad_row=on_bad_row, report=report))
        items = gather_votes(votes)
        return items[:limit] if limit is not None else items

    def replace_split(self, split: str | None) -> Benchmark:
        return Benchmark(name=self.name, description=self.description, kind=self.kind, reader=self.reader,
                         label_key=self.label_key, default_format=self.default_format, metrics=self.metrics,
                         version=self.version, hub_id=self.hub_id, split=split)


def format_for_turn(sample: JudgeSample, base_format: str) -> str:
    """The multi-turn variant of the template for a turn-2 item (FastChat's ``pair-v2-multi-turn``)."""
    if (sample.turn or 1) > 1 and not base_format.endswith("-multi-turn"):
        return f"{base_format}-multi-turn"
    return base_format


BENCHMARK = MtBenchHuman(
    name="mtbench-human",
    version=1,
    description="MT-bench human judgments: agreement (S1 with ties, S2 without) with expert and GPT-4 votes, per turn",
    kind="pairwise",
    reader="mtbench",
    hub_id=HUB_ID,
    label_key="human_majority",
    default_format="mtbench-pair-v2",
    metrics=MTBENCH_METRICS,
    group_of=lambda sample: f"turn {sample.turn or 1}",
    group_names=("turn 1", "turn 2"),
    format_of=format_for_turn,
    anchor="MT-bench (Zheng et al. 2023) Table 2: agreement with experts, S1 (with tie) / S2 (without tie), per turn",
)
