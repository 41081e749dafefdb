"""arena-bench-heldout: a judge's 1-10 grades of arena-bench-v1's held-out answers against GPT-4's.

Items: every graded answer to the questions ``judgetrain_data_prep.arena_bench`` holds out (its
``heldout`` split: 30 of the 300 questions, by a stable hash of the question id; the same rule
``judgetrain prep --source arena_bench --split train`` leaves them out of training with), read by the
``arena_bench`` reader. Data: ``arena-bench-v1/`` under the data dir, else the copy shipped in the
package, or ``--data PATH`` (the original dir, the shipped copy, or a hub dataset id). Rows the
reader counts as bad (no grade; a judgment of another answer or reference) are not items: they are
left out, with a warning giving their count.

Gold: ``gpt4``, GPT-4's reference-guided grade. Metrics: Pearson, Spearman and Kendall correlation of
the judge's grade with it (:func:`judgetrain.metrics.correlations`); items whose grade did not parse
are left out of the correlations and counted in ``parse_failure_rate``. Default judge format:
``mtbench-single-math-v1`` (FastChat's reference-guided single grading, the prompt GPT-4 graded
with). Baseline: :func:`length_baseline`, the same correlations of the answer's length alone
(``python -m judgetrain_eval.arena_bench_heldout`` prints it).
"""

from __future__ import annotations

import argparse
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from judgetrain import metrics
from judgetrain.data.rows import ReadReport
from judgetrain.types import JudgeSample
from judgetrain_data_prep import arena_bench
from judgetrain_eval.base import Benchmark, default_data_dir
from judgetrain_eval.prometheus_mtbench import GRADING_METRICS


def length_baseline(samples: Sequence[JudgeSample], *, num_resamples: int = metrics.DEFAULT_BOOTSTRAP_RESAMPLES,
                    seed: int = 0) -> dict[str, metrics.Estimate]:
    """Pearson, Spearman and Kendall correlation of each answer's length in characters with its GPT-4
    grade, with bootstrap intervals over items: what a judge that only measures length scores here."""
    lengths = [float(len(s.answers[0].text)) for s in samples]
    gold = [s.labels[arena_bench.LABEL_KEY].scores[0] for s in samples]
    return metrics.estimate_statistics(
        lambda idx: metrics.correlations([lengths[i] for i in idx], [gold[i] for i in idx]),
        len(samples), num_resamples=num_resamples, seed=seed)


@dataclass(frozen=True)
class ArenaBenchHeldout(Benchmark):
    """The held-out split of arena-bench-v1, from the data dir's copy or the shipped one."""

    def resolve_source(self, data: str | None, data_dir: str | Path | None) -> str:
        if data:
            return str(data)
        local = Path(data_dir if data_dir is not None else default_data_dir()) / (self.default_path or "")
        return str(local if local.is_dir() else arena_bench.SHIPPED_DIR)

    def read(self, source: str, *, limit: int | None = None, on_bad_row: str = "error", report: Any = None) -> list[JudgeSample]:
        # The original dir holds rows that are not grades of its own texts (arena_bench's bad rows); they
        # are not items, whatever the caller's policy, and their count is shown.
        report = report if report is not None else ReadReport(source=self.reader)
        samples = Benchmark.read(self, source, limit=limit, on_bad_row="skip", report=report)
        if report.rows_skipped:
            reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(report.skipped.items()))
            warnings.warn(f"{self.name}: {report.rows_skipped} held-out judgment rows of {source} are not items ({reasons})",
                          stacklevel=3)
        return samples


BENCHMARK = ArenaBenchHeldout(
    name="arena-bench-heldout",
    version=1,
    description="arena-bench-v1 held-out questions (30 of 300): a judge's 1-10 grades vs GPT-4's reference-guided grades",
    kind="grading",
    reader="arena_bench",
    default_path="arena-bench-v1",
    split="heldout",
    label_key=arena_bench.LABEL_KEY,
    default_format=arena_bench.JUDGMENT_FORMAT,
    metrics=GRADING_METRICS,
    anchor="judgetrain's own held-out split of arena-bench-v1 (lmarena/arena-hard-auto @ 4a705dd); baseline: "
           "the answer's length alone (length_baseline)",
)


def main(argv: list[str] | None = None) -> int:
    """Print the held-out items' count and the length baseline's correlations with GPT-4's grades."""
    parser = argparse.ArgumentParser(prog="python -m judgetrain_eval.arena_bench_heldout", description=main.__doc__)
    parser.add_argument("--data", help="the bench dir (default: arena-bench-v1 under --data-dir, else the shipped copy)")
    parser.add_argument("--data-dir", help="root of the local benchmark files (default: $JUDGETRAIN_DATA_DIR or ./data)")
    parser.add_argument("--bootstrap-resamples", type=int, default=metrics.DEFAULT_BOOTSTRAP_RESAMPLES)
    args = parser.parse_args(argv)
    samples = BENCHMARK.load(args.data, args.data_dir)
    baseline = length_baseline(samples, num_resamples=args.bootstrap_resamples)
    print(json.dumps({"benchmark": BENCHMARK.name, "data": BENCHMARK.resolve_source(args.data, args.data_dir),
                      "num_items": len(samples), "num_questions": len({s.meta["question_id"] for s in samples}),
                      "length_baseline": {k: v.to_dict() for k, v in baseline.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
