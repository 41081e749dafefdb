"""judgelm-val: JudgeLM's 5K validation set with GPT-4's judgments as gold (hub ``BAAI/JudgeLM-100K``).

The set is two files, as JudgeLM ships it: ``judgelm_val_5k.jsonl`` (question, two answers, reference)
and ``judgelm_val_5k_gpt4.jsonl`` (GPT-4's review of each row: ``text`` and ``score`` [s1, s2]),
aligned line by line (JudgeLM's own evaluation zips them). Data: downloaded from the hub by default
(``huggingface_hub``), or ``--data PATH``: a directory holding both files, the questions file with the
GPT-4 file next to it, or one file whose rows carry both (``question_body`` … and ``score``).

Gold: ``gpt4``, the winner implied by GPT-4's two 1-10 scores (the higher wins, equal scores tie;
JudgeLM's ``translate_score_to_win_list`` with T = 0). Rows whose GPT-4 call failed (score [-1, -1])
are dropped, as JudgeLM's ``filt_pred_score_list_by_gt_score_list`` does, and counted. Metrics:
JudgeLM's agreement (``accuracy``), macro precision / recall / F1, consistency and the prefer-first /
prefer-second rates. Default judge format: ``judgelm-v1``. Anchor: JudgeLM (Zhu et al. 2023) Table 3
(e.g. JudgeLM-7B agreement 81.11, consistency 83.71 in percent, without reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from judgetrain_eval.base import Benchmark, fetch_hub_file
from judgetrain_eval.pandalm_test import PAIRWISE_METRICS
from judgetrain.types import JudgeSample, Label

HUB_ID = "BAAI/JudgeLM-100K"
QUESTIONS_FILE = "judgelm_val_5k.jsonl"
GPT4_FILE = "judgelm_val_5k_gpt4.jsonl"
SCALE = (1.0, 10.0)


def gpt4_labels(path: str | Path) -> list[Label | None]:
    """GPT-4's label for each line of the review file (None where GPT-4's call failed: [-1, -1])."""
    from judgetrain.data.rows import ReadReport, iter_rows

    labels: list[Label | None] = []
    for raw in iter_rows(str(path), report=ReadReport()):
        score = raw.row.get("score")
        if not isinstance(score, list) or len(score) != 2 or not all(isinstance(s, (int, float)) for s in score):
            raise ValueError(f"{raw.where}: score: expected [score of answer 1, score of answer 2], got {score!r:.80}")
        if score == [-1, -1]:
            labels.append(None)
            continue
        s1, s2 = (float(s) for s in score)
        labels.append(Label(winner="A" if s1 > s2 else "B" if s1 < s2 else "tie", scores=(s1, s2), scale=SCALE))
    return labels


@dataclass(frozen=True)
class JudgeLMVal(Benchmark):
    """JudgeLM's validation set: questions joined with GPT-4's reviews line by line."""

    def resolve_source(self, data: str | None, data_dir: str | Path | None) -> str:
        if data:
            return str(data)
        questions = fetch_hub_file(HUB_ID, QUESTIONS_FILE)
        fetch_hub_file(HUB_ID, GPT4_FILE)  # the hub cache keeps both files in one snapshot dir
        return questions

    def read(self, source: str, *, limit: int | None = None, on_bad_row: str = "error", report: Any = None) -> list[JudgeSample]:
        path = Path(source)
        questions = path / QUESTIONS_FILE if path.is_dir() else path
        samples = Benchmark.read(self, str(questions), on_bad_row=on_bad_row, report=report)
        if samples and all("gpt4" in s.labels for s in samples):
            return samples[:limit] if limit is not None else samples  # one file holding both
        reviews = questions.parent / GPT4_FILE
        if not reviews.is_file():
            raise ValueError(f"judgelm-val: {questions} has no GPT-4 scores and {reviews} does not exist; "
                             f"pass --data DIR holding {QUESTIONS_FILE} and {GPT4_FILE}")
        labels = gpt4_labels(reviews)
        if len(labels) != len(samples):
            raise ValueError(f"judgelm-val: {questions} has {len(samples)} rows and {reviews} {len(labels)}; "
                             f"they are joined line by line and must match")
        joined = [s.replace(labels={**s.labels, "gpt4": label}) for s, label in zip(samples, labels) if label is not None]
        return joined[:limit] if limit is not None else joined


BENCHMARK = JudgeLMVal(
    name="judgelm-val",
    version=1,
    description="JudgeLM val 5K: pairs judged by GPT-4 (scores -> A / B / tie), JudgeLM's agreement / consistency / bias",
    kind="pairwise",
    reader="judgelm",
    hub_id=HUB_ID,
    label_key="gpt4",
    default_format="judgelm-v1",
    metrics=PAIRWISE_METRICS,
    anchor="JudgeLM (Zhu et al. 2023) Table 3: agreement, precision, recall, F1, consistency vs GPT-4",
)
