"""prometheus-mtbench: MT-bench answers graded 1-5 against GPT-4's grades (320 items = 80 questions x 4
response sources), as in the Prometheus papers.

Data: ``prometheus-eval/mt_bench_eval.json`` under the data dir, or ``--data PATH``. Gold: ``gpt4``, the
mean of GPT-4's three grades (prometheus-eval's ``calculate_results`` correlates with that mean).
Groups: the MT-bench category. Metrics: Pearson, Spearman and Kendall correlation of the judge's grade
with the gold grade; items whose grade did not parse are left out of the correlations and counted in
``parse_failure_rate``. Default judge format: ``prometheus-absolute-v1``. Anchor: Prometheus 2 (Kim et
al. 2024) Table 3, MT Bench column, Pearson with GPT-4 (e.g. Prometheus-2-7B 0.786 on the GPT-4-1106 grades).
"""

from judgetrain_eval.base import Benchmark

GRADING_METRICS = ("pearson", "spearman", "kendall")

BENCHMARK = Benchmark(
    name="prometheus-mtbench",
    version=1,
    description="Prometheus MT-bench grading set: 320 answers, gold = mean of GPT-4's three 1-5 grades",
    kind="grading",
    reader="prometheus",
    default_path="prometheus-eval/mt_bench_eval.json",
    label_key="gpt4",
    default_format="prometheus-absolute-v1",
    metrics=GRADING_METRICS,
    group_of=lambda sample: sample.category,
    anchor="Prometheus 2 (Kim et al. 2024) Table 3: Pearson correlation with GPT-4 grades on MT Bench",
)
