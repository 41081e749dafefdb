"""The evaluation core: one row per scored item (:mod:`~judgetrain.evaluation.rows`) and one scorer
(:mod:`~judgetrain.evaluation.scoring`, whose module docstring holds the table of metric names).

``judgetrain eval``'s benchmarks, the quickstart and the training judge-agreement callback all score
through :func:`score_items`, so each metric name has one definition everywhere.
"""

from judgetrain.evaluation.rows import ItemResult, fill_from_judgment, fill_grade_pair, row_of_sample, rows_from_judgments
from judgetrain.evaluation.scoring import METRIC_DEFINITIONS, definition, score_items, value_of

__all__ = ["ItemResult", "fill_from_judgment", "fill_grade_pair", "row_of_sample", "rows_from_judgments",
           "METRIC_DEFINITIONS", "definition", "score_items", "value_of"]
