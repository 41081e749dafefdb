"""llmbar-natural: LLMBar's Natural set (100 pairs from existing preference data, gold curated by the
authors; no ties).

Data: ``llmbar/Dataset/LLMBar/Natural/dataset.json`` under the data dir, or ``--data PATH``. Gold:
``gold`` (label 1 / 2 → A / B). Metrics: LLMBar's accuracy (mean of the two orders' accuracies) and
positional agreement (same verdict in both orders), plus single-order accuracy and bias rates.
Default judge format: ``mtbench-pair-v2`` (LLMBar's own "Vanilla" prompt is a plain pairwise
comparison like it). Anchor: LLMBar (Zeng et al. 2024) Table 3, "Natural" accuracy and positional
agreement (e.g. GPT-4 Vanilla 93.5 / 97.0 in percent).
"""

from judgetrain_eval.base import Benchmark

LLMBAR_METRICS = ("llmbar_accuracy", "positional_agreement", "accuracy", "both_orders_agreement", "prefer_first_rate",
                  "prefer_second_rate", "position_bias", "macro_f1", "kappa")

BENCHMARK = Benchmark(
    name="llmbar-natural",
    version=1,
    description="LLMBar Natural: 100 pairs, gold = objectively better output (A / B, no ties)",
    kind="pairwise",
    reader="llmbar",
    default_path="llmbar/Dataset/LLMBar/Natural/dataset.json",
    label_key="gold",
    default_format="mtbench-pair-v2",
    metrics=LLMBAR_METRICS,
    anchor="LLMBar (Zeng et al. 2024) Table 3: Natural accuracy (mean of both orders) and positional agreement",
)
