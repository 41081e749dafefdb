"""llmbar-mtbench: LLMBar's processed MT-Bench set (200 tie-free pairs from the MT-bench human
judgments, gold = majority of the human votes).

Data: ``llmbar/Dataset/Processed/MT-Bench/dataset.json`` under the data dir, or ``--data PATH``.
Gold: ``gold`` (A / B). Metrics and default format as ``llmbar-natural``. Anchor: LLMBar (Zeng et al.
2024) Table 9 (MT-Bench column, existing meta-evaluation sets).
"""

from judgetrain_eval.base import Benchmark
from judgetrain_eval.llmbar_natural import LLMBAR_METRICS

BENCHMARK = Benchmark(
    name="llmbar-mtbench",
    version=1,
    description="LLMBar Processed/MT-Bench: 200 tie-free MT-bench pairs, gold = human majority (A / B)",
    kind="pairwise",
    reader="llmbar",
    default_path="llmbar/Dataset/Processed/MT-Bench/dataset.json",
    label_key="gold",
    default_format="mtbench-pair-v2",
    metrics=LLMBAR_METRICS,
    anchor="LLMBar (Zeng et al. 2024) appendix table on existing sets (MT-Bench column)",
)
