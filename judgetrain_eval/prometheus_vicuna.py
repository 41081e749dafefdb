"""prometheus-vicuna: Vicuna-bench answers graded 1-5 against GPT-4's grades (320 items = 80 questions
x 4 response sources). Data: ``prometheus-eval/vicuna_eval.json`` under the data dir, or
``--data PATH``. Gold, metrics and default format as ``prometheus-mtbench``; groups: the category.
Anchor: Prometheus 2 (Kim et al. 2024) Table 3, Vicuna Bench column.
"""

from judgetrain_eval.base import Benchmark
from judgetrain_eval.prometheus_mtbench import GRADING_METRICS

BENCHMARK = Benchmark(
    name="prometheus-vicuna",
    version=1,
    description="Prometheus Vicuna-bench grading set: 320 answers, gold = mean of GPT-4's three 1-5 grades",
    kind="grading",
    reader="prometheus",
    default_path="prometheus-eval/vicuna_eval.json",
    label_key="gpt4",
    default_format="prometheus-absolute-v1",
    metrics=GRADING_METRICS,
    group_of=lambda sample: sample.category,
    anchor="Prometheus 2 (Kim et al. 2024) Table 3: Pearson correlation with GPT-4 grades on Vicuna Bench",
)
