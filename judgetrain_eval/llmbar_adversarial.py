"""llmbar-adversarial: LLMBar's Adversarial sets Neighbor (134), GPTInst (92), GPTOut (47) and
Manual (46), 319 pairs in all; each set is a group and the overall figure is their union (micro
average over items; LLMBar's tables also give the plain average of the four, computable from the
groups).

Data: the directory ``llmbar/Dataset/LLMBar/Adversarial`` under the data dir (the reader reads its four
``dataset.json`` files and names each item's set), or ``--data PATH``. Gold: ``gold`` (A / B, no ties).
Metrics and default format as ``llmbar-natural``. Anchor: LLMBar (Zeng et al. 2024) Table 3,
Adversarial columns.
"""

from judgetrain_eval.base import Benchmark
from judgetrain_eval.llmbar_natural import LLMBAR_METRICS

SUBSETS = ("Neighbor", "GPTInst", "GPTOut", "Manual")


def subset_of(sample) -> str | None:
    """The Adversarial subset of an item, from the set name the reader recorded (``LLMBar/Adversarial/Neighbor``)."""
    name = sample.category or sample.meta.get("llmbar_set") or ""
    last = name.rsplit("/", 1)[-1]
    return last if last in SUBSETS else None


BENCHMARK = Benchmark(
    name="llmbar-adversarial",
    version=1,
    description="LLMBar Adversarial: Neighbor / GPTInst / GPTOut / Manual (319 pairs), gold A / B",
    kind="pairwise",
    reader="llmbar",
    default_path="llmbar/Dataset/LLMBar/Adversarial",
    label_key="gold",
    default_format="mtbench-pair-v2",
    metrics=LLMBAR_METRICS,
    group_of=subset_of,
    group_names=SUBSETS,
    anchor="LLMBar (Zeng et al. 2024) Table 3: Adversarial Neighbor / GPTInst / GPTOut / Manual",
)
