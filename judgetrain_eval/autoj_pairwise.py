"""autoj-pairwise: Auto-J's pairwise test set (1392 pairs = 58 scenarios x 24, human labels).

Data: ``auto-j/test/testdata_pairwise.jsonl`` under the data dir, or ``--data PATH``. Gold: ``human``
(0 = response 1, 1 = response 2, 2 = tie in the raw file). Groups: the 8 scenario groups of Auto-J's
leaderboard, read from ``scenario_group.json`` (the ``scenario_group`` table of Auto-J's
``codes/leaderboard/utils_constants.py``; the repository has no licence, so it is not shipped here):
pass its path with ``--scenario-groups PATH``, or keep it in the Auto-J data dir (next to ``test/``),
where it is found. Overall figures are the micro average over items, as Auto-J's ``pairwise_eval.py``
sums counts over scenarios. Metrics: ``both_orders_agreement`` (Auto-J's "agreement" for a pairwise
judge: correct in both orders) and ``consistency``, plus accuracy, macro scores, bias and kappa.
Default judge format: ``autoj-pairwise-v1``. Anchor: Auto-J (Li et al. 2023) Table 2 / the
leaderboard README (e.g. GPT-4 overall agreement 62.28, consistency 86.28, in percent).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from judgetrain_eval.base import Benchmark
from judgetrain_eval.pandalm_test import PAIRWISE_METRICS
from judgetrain.types import JudgeSample

SCENARIO_GROUPS_FILE = "scenario_group.json"
SCENARIO_GROUPS_ENV = "JUDGETRAIN_AUTOJ_SCENARIO_GROUPS"
GROUP_NAMES = ("Summarization", "Exam Questions", "Code", "Rewriting", "Creative Writing", "Functional Writing",
               "General Communication", "NLP Tasks")
"""Auto-J's eight scenario groups, in its leaderboard's order."""


def find_scenario_groups(source: str, data_dir: str | Path | None, options: dict[str, Any]) -> Path:
    """The scenario-group file: ``--scenario-groups``, ``$JUDGETRAIN_AUTOJ_SCENARIO_GROUPS``, or
    ``scenario_group.json`` in the Auto-J data dir around ``source`` or under ``<data dir>/auto-j``."""
    explicit = options.get("scenario_groups") or os.environ.get(SCENARIO_GROUPS_ENV)
    if explicit:
        path = Path(explicit)
        if path.is_dir():
            path = path / SCENARIO_GROUPS_FILE
        if not path.is_file():
            raise ValueError(f"autoj-pairwise: scenario groups file {path} does not exist")
        return path
    source_path = Path(source)
    candidates = [source_path / SCENARIO_GROUPS_FILE] + [p / SCENARIO_GROUPS_FILE for p in source_path.parents[:3]]
    if data_dir is not None:
        candidates.append(Path(data_dir) / "auto-j" / SCENARIO_GROUPS_FILE)
    for path in candidates:
        if path.is_file():
            return path
    raise ValueError(
        "autoj-pairwise: the scenario groups file (scenario_group.json, the scenario_group table of Auto-J's "
        "codes/leaderboard/utils_constants.py as JSON) was not found next to the data; pass --scenario-groups PATH "
        f"or set ${SCENARIO_GROUPS_ENV}"
    )


def load_scenario_groups(path: str | Path) -> dict[str, str]:
    """scenario → group, from a ``{group: [scenario, ...]}`` file; a scenario in two groups is an error."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ValueError(f"{path}: expected an object {{group: [scenario, ...]}}")
    group_of: dict[str, str] = {}
    for group, scenarios in data.items():
        for scenario in scenarios:
            if scenario in group_of:
                raise ValueError(f"{path}: scenario {scenario!r} is in groups {group_of[scenario]!r} and {group!r}")
            group_of[scenario] = group
    return group_of


def annotate(samples: list[JudgeSample], source: str, data_dir: str | Path | None, options: dict[str, Any]) -> list[JudgeSample]:
    """Add ``meta["scenario_group"]`` to every sample; a scenario missing from the table is an error."""
    path = find_scenario_groups(source, data_dir, options)
    group_of = load_scenario_groups(path)
    out = []
    for sample in samples:
        if sample.scenario not in group_of:
            raise ValueError(f"autoj-pairwise: sample {sample.id!r} has scenario {sample.scenario!r}, which {path} "
                             f"puts in no group")
        out.append(sample.replace(meta={**sample.meta, "scenario_group": group_of[sample.scenario]}))
    return out


BENCHMARK = Benchmark(
    name="autoj-pairwise",
    version=1,
    description="Auto-J pairwise test set: 1392 pairs in 58 scenarios / 8 groups, gold = human (A / B / tie)",
    kind="pairwise",
    reader="autoj",
    default_path="auto-j/test/testdata_pairwise.jsonl",
    label_key="human",
    default_format="autoj-pairwise-v1",
    # Auto-J's headline for a pairwise judge comes first (it is the one plotted per group).
    metrics=("both_orders_agreement", "consistency") + tuple(k for k in PAIRWISE_METRICS if k not in ("both_orders_agreement", "consistency")),
    group_of=lambda sample: sample.meta.get("scenario_group"),
    group_names=GROUP_NAMES,
    annotate=annotate,
    anchor="Auto-J (Li et al. 2023) Table 2 and codes/leaderboard: agreement (both orders) and consistency per group",
)
