"""hhh-alignment: the HHH-alignment pairs (221: honest 61, helpful 59, harmless 58, other 43) judged by
absolute grading, as prometheus-eval does it.

Data: ``prometheus-eval/hhh_alignment_eval.json`` under the data dir, or ``--data PATH``; the reader
gives one two-answer sample per pair, the chosen response first, label ``human`` = A. Each answer is
graded on its own (two single-answer judge calls); the item is correct when the chosen answer gets a
strictly higher grade (equal grades are wrong, as in prometheus-eval's ``calculate_one_abs_acc``).
Groups: honest / helpful / harmless / other; overall is the micro average over the 221 items (prometheus-
eval's "Average"). Metric key: ``accuracy``. Predictions files give ``scores``: [grade of the chosen
(first) answer, grade of the rejected one]. Default judge format: ``prometheus-absolute-v1``. Anchor:
Prometheus 2 (Kim et al. 2024) Table 4, HHH Alignment with absolute grading.
"""

from judgetrain_eval.base import Benchmark

GROUPS = ("helpful", "harmless", "honest", "other")

BENCHMARK = Benchmark(
    name="hhh-alignment",
    version=1,
    description="HHH alignment: 221 pairs, correct when the chosen answer gets the strictly higher 1-5 grade",
    kind="grade_pair",
    reader="prometheus",
    default_path="prometheus-eval/hhh_alignment_eval.json",
    label_key="human",
    default_format="prometheus-absolute-v1",
    metrics=("accuracy",),
    group_of=lambda sample: sample.category,
    group_names=GROUPS,
    anchor="Prometheus 2 (Kim et al. 2024) Table 4: HHH Alignment accuracy (absolute grading) per subset and average",
)
