"""Benchmarks: one module per benchmark, registered by name in ``BENCHMARKS``.

Each module defines ``BENCHMARK`` (an :class:`eval.base.Benchmark`): where its data lives, the
``data_prep`` reader that reads it, the gold label, its groups, the metrics that apply and the judge
format it runs with by default. ``judgetrain eval --benchmark NAME`` finds the module here by name;
the judgetrain library never imports this package.
"""

BENCHMARKS: dict[str, str] = {
    "pandalm-test": "eval.pandalm_test",
    "autoj-pairwise": "eval.autoj_pairwise",
    "llmbar-natural": "eval.llmbar_natural",
    "llmbar-adversarial": "eval.llmbar_adversarial",
    "llmbar-mtbench": "eval.llmbar_mtbench",
    "judgebench-gpt4o": "eval.judgebench_gpt4o",
    "judgebench-claude": "eval.judgebench_claude",
    "prometheus-mtbench": "eval.prometheus_mtbench",
    "prometheus-vicuna": "eval.prometheus_vicuna",
    "hhh-alignment": "eval.hhh_alignment",
    "judgelm-val": "eval.judgelm_val",
    "mtbench-human": "eval.mtbench_human",
}
"""Benchmark name (``--benchmark``) → the module defining it."""
