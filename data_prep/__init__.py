"""Readers of public judge datasets: one module per source, registered by name in ``SOURCES``.

Each module exposes::

    read(input: str, *, split: str | None = None, report: ReadReport, on_bad_row: str = "error",
         **options) -> Iterator[JudgeSample]

``input`` is a local path (a file or a directory of JSONL / JSON / parquet files) or a Hugging Face
hub id. Where one source has several schemas, the reader tells them apart by their fields and
counts each in ``report.schemas``. ``judgetrain prep --source NAME`` finds the module here by name
with importlib; the judgetrain library never imports this package.
"""

SOURCES: dict[str, str] = {
    "judgelm": "data_prep.judgelm",
    "alpaca_eval": "data_prep.alpaca_eval",
    "autoj": "data_prep.autoj",
    "pandalm": "data_prep.pandalm",
    "prometheus": "data_prep.prometheus",
    "llmbar": "data_prep.llmbar",
    "judgebench": "data_prep.judgebench",
    "mtbench": "data_prep.mtbench",
    "jsonl": "data_prep.jsonl",
    "pairs-from-grades": "data_prep.pairs_from_grades",
}
"""Source name (``--source``) → the module that reads it."""
