"""pandalm-test: PandaLM's human-annotated test set (999 pairs, 3 annotators each).

Data: ``pandalm/testset-v1.json`` under the data dir (WeOpenML/PandaLM ``data/testset-v1.json``), or
``--data PATH``. Gold: ``human_majority``, the vote at least two of the three annotators agree on
(0 = tie, 1 = response 1, 2 = response 2 in the raw file → tie / A / B). Metrics: accuracy and macro
P / R / F1 (PandaLM's table), plus the both-orders, bias and kappa figures. Default judge format:
``pandalm-v1``. Anchor: PandaLM (Wang et al. 2023) Table 2, accuracy / precision / recall / F1
against the human test set (e.g. GPT-3.5 71.07 / 58.39 / 58.79 / 58.59 in percent).
"""

from judgetrain_eval.base import Benchmark

PAIRWISE_METRICS = ("accuracy", "macro_precision", "macro_recall", "macro_f1", "both_orders_agreement", "consistency",
                    "prefer_first_rate", "prefer_second_rate", "position_bias", "kappa")

BENCHMARK = Benchmark(
    name="pandalm-test",
    version=1,
    description="PandaLM human-annotated test set: 999 pairs, gold = majority of 3 annotators (A / B / tie)",
    kind="pairwise",
    reader="pandalm",
    default_path="pandalm/testset-v1.json",
    label_key="human_majority",
    default_format="pandalm-v1",
    metrics=PAIRWISE_METRICS,
    anchor="PandaLM (Wang et al. 2023) Table 2: accuracy, macro precision / recall / F1 vs the human test set",
)
