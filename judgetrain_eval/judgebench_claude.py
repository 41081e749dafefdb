"""judgebench-claude: JudgeBench pairs answered by Claude-3.5-Sonnet (270 pairs; gold = objective
correctness). Data: ``judgebench/data/dataset=judgebench,response_model=claude-3-5-sonnet-20240620.jsonl``
under the data dir, or ``--data PATH``. Gold, groups, metrics and default format as
``judgebench-gpt4o``. Anchor: JudgeBench (Tan et al. 2024), the Claude-response results in its appendix.
"""

from judgetrain_eval.base import Benchmark
from judgetrain_eval.judgebench_gpt4o import CATEGORIES, JUDGEBENCH_METRICS, category_of

BENCHMARK = Benchmark(
    name="judgebench-claude",
    version=1,
    description="JudgeBench, Claude-3.5-Sonnet responses: 270 pairs, gold = objectively correct response (A / B)",
    kind="pairwise",
    reader="judgebench",
    default_path="judgebench/data/dataset=judgebench,response_model=claude-3-5-sonnet-20240620.jsonl",
    label_key="gold",
    default_format="mtbench-pair-v2",
    metrics=JUDGEBENCH_METRICS,
    group_of=category_of,
    group_names=CATEGORIES,
    anchor="JudgeBench (Tan et al. 2024): results on the Claude-3.5-Sonnet response pairs",
)
