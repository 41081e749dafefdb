"""judgebench-gpt4o: JudgeBench pairs answered by GPT-4o (350 pairs; gold = objective correctness).

Data: ``judgebench/data/dataset=judgebench,response_model=gpt-4o-2024-05-13.jsonl`` under the data
dir, or ``--data PATH``. Gold: ``gold`` ("A>B" / "B>A" → A / B; no ties). Groups: JudgeBench's
categories, Knowledge (mmlu-pro-*), Reasoning (livebench-reasoning), Math (livebench-math) and Coding
(livecodebench). Metric: ``judgebench_score`` (both orders; +1 per order matching the label, -1 per
order matching the flipped label, a tie or a parse failure 0; correct if the sum is > 0), plus
single-order accuracy, consistency and bias. Default judge format: ``mtbench-pair-v2`` (JudgeBench's
vanilla / Arena-Hard prompts are pairwise A / B prompts). Anchor: JudgeBench (Tan et al. 2024)
Table 2 (e.g. GPT-4o Arena-Hard judge overall 50.86 in percent).
"""

from judgetrain_eval.base import Benchmark

JUDGEBENCH_METRICS = ("judgebench_score", "accuracy", "consistency", "prefer_first_rate", "prefer_second_rate",
                      "position_bias", "both_orders_agreement", "kappa")
CATEGORIES = ("Knowledge", "Reasoning", "Math", "Coding")


def category_of(sample) -> str | None:
    """JudgeBench's category of a pair from its ``source`` (``mmlu-pro-law`` → Knowledge …)."""
    source = sample.category or sample.meta.get("source") or ""
    if source.startswith("mmlu-pro"):
        return "Knowledge"
    if source.startswith("livebench-reasoning"):
        return "Reasoning"
    if source.startswith("livebench-math"):
        return "Math"
    if source.startswith("livecodebench"):
        return "Coding"
    return None


BENCHMARK = Benchmark(
    name="judgebench-gpt4o",
    version=1,
    description="JudgeBench, GPT-4o responses: 350 pairs, gold = objectively correct response (A / B)",
    kind="pairwise",
    reader="judgebench",
    default_path="judgebench/data/dataset=judgebench,response_model=gpt-4o-2024-05-13.jsonl",
    label_key="gold",
    default_format="mtbench-pair-v2",
    metrics=JUDGEBENCH_METRICS,
    group_of=category_of,
    group_names=CATEGORIES,
    anchor="JudgeBench (Tan et al. 2024) Table 2: Knowledge / Reasoning / Math / Coding / Overall",
)
