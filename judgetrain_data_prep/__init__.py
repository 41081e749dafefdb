"""Readers of public judge datasets: one module per source, each registered by name as an entry point
of the ``judgetrain.readers`` group (judgetrain's pyproject.toml; see :mod:`judgetrain.plugins`).

Each module exposes::

    read(input: str, *, split: str | None = None, report: ReadReport, on_bad_row: str = "error",
         **options) -> Iterator[JudgeSample]

``input`` is a local path (a file or a directory of JSONL / JSON / parquet files) or a Hugging Face
hub id. Where one source has several schemas, the reader tells them apart by their fields and
counts each in ``report.schemas``. ``judgetrain prep --source NAME`` finds the module through that
registry; the judgetrain library never imports this package.
"""
