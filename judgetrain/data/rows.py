"""Reading raw judge data rows from local files, directories or a Hugging Face hub dataset.

Rows come from a local path (a JSONL file, a JSON array file, a parquet file, or a directory of them,
read in sorted order) or from a hub dataset id, read with ``datasets.load_dataset``. Every row is
yielded as a :class:`RawRow` that knows its file and line, so a bad row is reported as
``file:line: what is wrong``. Readers turn rows into samples through :func:`convert_rows`, which
applies the ``on_bad_row`` policy ("error" stops at the first bad row, "skip" skips and counts it in
the :class:`ReadReport`); nothing is dropped silently.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NamedTuple, TypeVar

from judgetrain.data.fields import RowError, SkipRow
from judgetrain.types import JudgeSample

ROW_FILE_SUFFIXES = (".jsonl", ".json", ".parquet")
"""File types read from a local path; other files in a directory are ignored."""

ON_BAD_ROW_CHOICES = ("error", "skip")

T = TypeVar("T")

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def check_on_bad_row(on_bad_row: str) -> None:
    """Raise ValueError unless ``on_bad_row`` is one of :data:`ON_BAD_ROW_CHOICES`."""
    if on_bad_row not in ON_BAD_ROW_CHOICES:
        raise ValueError(f"on_bad_row must be one of {ON_BAD_ROW_CHOICES}, got {on_bad_row!r}")


# --- the report --------------------------------------------------------------------------------


@dataclass
class ReadReport:
    """What a read did: rows read, samples built and written, rows skipped by reason (with the first
    few examples, each naming file:line), the schema(s) detected, and the inputs read."""

    source: str = ""
    rows_read: int = 0
    samples_built: int = 0
    rows_written: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_examples: dict[str, list[str]] = field(default_factory=dict)
    schemas: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)
    input_files: list[str] = field(default_factory=list)
    hub_inputs: list[dict[str, Any]] = field(default_factory=list)

    MAX_EXAMPLES_PER_REASON = 3

    @property
    def rows_skipped(self) -> int:
        return sum(self.skipped.values())

    def skip(self, reason: str, where: str, message: str) -> None:
        """Count one skipped row under ``reason``; keep the first few messages as examples."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        examples = self.skipped_examples.setdefault(reason, [])
        if len(examples) < self.MAX_EXAMPLES_PER_REASON:
            examples.append(f"{where}: {message}")

    def saw_schema(self, name: str, count: int = 1) -> None:
        """Record that ``count`` row(s) of schema ``name`` were read."""
        self.schemas[name] = self.schemas.get(name, 0) + count

    def note(self, what: str, count: int = 1) -> None:
        """Count something worth showing that is not a skip (e.g. rows without a majority label)."""
        self.notes[what] = self.notes.get(what, 0) + count

    def add_input_file(self, path: str | os.PathLike) -> None:
        resolved = str(Path(path).resolve())
        if resolved not in self.input_files:
            self.input_files.append(resolved)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rows_read": self.rows_read,
            "samples_built": self.samples_built,
            "rows_written": self.rows_written,
            "rows_skipped": self.rows_skipped,
            "skipped": {
                reason: {"count": count, "examples": list(self.skipped_examples.get(reason, []))}
                for reason, count in sorted(self.skipped.items())
            },
            "schemas": dict(sorted(self.schemas.items())),
            "notes": dict(sorted(self.notes.items())),
        }


# --- reading rows ------------------------------------------------------------------------------


class RawRow(NamedTuple):
    """One input row and where it came from.

    ``line_number`` is the 1-based line of a JSONL file, or the 1-based record number in a JSON
    array, a parquet file or a hub split (``unit`` says which). ``origin`` is a short stable name of
    the file (its stem) or of the hub split, used in sample ids.
    """

    file: str
    line_number: int
    row: dict[str, Any]
    unit: str = "line"
    origin: str = ""

    @property
    def where(self) -> str:
        if self.unit == "line":
            return f"{self.file}:{self.line_number}"
        return f"{self.file}: record {self.line_number}"


def is_local(input: str) -> bool:
    """True when ``input`` names an existing local file or directory."""
    return Path(input).exists()


def local_row_files(input: str | os.PathLike, *, split: str | None = None) -> list[Path]:
    """The row files under a local path: the file itself, or the JSONL/JSON/parquet files of a
    directory (recursively, sorted). With ``split``, a directory contributes only files whose name is
    the split (``train.jsonl``) or starts with it followed by ``-``, ``_`` or ``.`` (``train-0001.parquet``)."""
    path = Path(input)
    if path.is_file():
        if split is not None:
            warnings.warn(f"split {split!r} has no effect on a single file ({path}); it selects files in a directory or a hub split", stacklevel=2)
        return [path]
    if not path.is_dir():
        raise ValueError(f"{path}: no such file or directory")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(ROW_FILE_SUFFIXES) and not p.name.startswith("."))
    if split is not None:
        files = [p for p in files if p.name.split(".")[0] == split or re.match(rf"{re.escape(split)}[-_.]", p.name)]
    if not files:
        wanted = f" for split {split!r}" if split is not None else ""
        raise ValueError(f"{path}: no {'/'.join(ROW_FILE_SUFFIXES)} files{wanted} in this directory")
    return files


def iter_rows(
    input: str | os.PathLike,
    *,
    split: str | None = None,
    report: ReadReport | None = None,
    on_bad_row: str = "error",
) -> Iterator[RawRow]:
    """Every row of a local path or a hub dataset, with its file and line.

    A malformed JSON line raises ``ValueError("file:line: invalid JSON (<reason>)")``, or is skipped
    and counted in ``report`` when ``on_bad_row="skip"``. A name that is not a local path and looks
    like ``owner/name`` is loaded from the hub with ``datasets.load_dataset(input, split=split)``.
    """
    check_on_bad_row(on_bad_row)
    report = report if report is not None else ReadReport()
    input_str = os.fspath(input)
    if is_local(input_str):
        for path in local_row_files(input_str, split=split):
            yield from iter_file_rows(path, report=report, on_bad_row=on_bad_row)
    elif _HUB_ID.fullmatch(input_str):
        yield from iter_hub_rows(input_str, split=split, report=report)
    else:
        raise ValueError(
            f"{input_str}: no such file or directory, and not a Hugging Face dataset id (owner/name). "
            "Give a JSONL / JSON / parquet file, a directory of them, or a hub id."
        )


def iter_file_rows(path: str | os.PathLike, *, report: ReadReport, on_bad_row: str = "error") -> Iterator[RawRow]:
    """The rows of one local JSONL (or gzip-compressed ``.jsonl.gz``), JSON (array, or JSON lines) or parquet file."""
    path = Path(path)
    report.add_input_file(path)
    if path.suffix == ".parquet":
        yield from _iter_parquet(path, report)
        return
    with path.open("rb") as f:
        first = f.read(4096).lstrip()
    if path.suffix == ".json" and first.startswith(b"["):
        yield from _iter_json_array(path, report)
    else:
        yield from _iter_jsonl(path, report, on_bad_row)


def _bad_row(report: ReadReport, on_bad_row: str, where: str, reason: str, detail: str) -> None:
    if on_bad_row == "skip":
        report.skip(reason, where, detail)
        return
    raise ValueError(f"{where}: {reason} ({detail}). Fix the line, or pass --on-bad-row skip to skip and count it")


def _iter_jsonl(path: Path, report: ReadReport, on_bad_row: str) -> Iterator[RawRow]:
    origin = path.name.split(".")[0]
    # A ``.jsonl.gz`` file is read through gzip, line by line, like a plain one (the packaged data ships so).
    with (gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")) as f:
        # Bytes in, so json.loads decodes UTF-8 itself and an undecodable line is one bad row,
        # not an exception out of the file iterator.
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue  # a blank line holds no row
            report.rows_read += 1
            where = f"{path}:{line_number}"
            try:
                row = json.loads(line)
            except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
                _bad_row(report, on_bad_row, where, "invalid JSON", str(err))
                continue
            if not isinstance(row, dict):
                _bad_row(report, on_bad_row, where, "not a JSON object", f"got {type(row).__name__}")
                continue
            yield RawRow(str(path), line_number, row, "line", origin)


def _iter_json_array(path: Path, report: ReadReport) -> Iterator[RawRow]:
    origin = path.name.split(".")[0]
    try:
        with path.open("rb") as f:
            rows = json.load(f)
    except json.JSONDecodeError as err:
        # One malformed array cannot be partly read, so this is an error whatever on_bad_row says.
        raise ValueError(f"{path}:{err.lineno}: invalid JSON ({err.msg} at column {err.colno}); the whole array is unreadable") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: invalid JSON (not UTF-8: {err})") from None
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON array of objects or JSON lines, got a {type(rows).__name__}")
    for index, row in enumerate(rows, start=1):
        report.rows_read += 1
        if not isinstance(row, dict):
            raise ValueError(f"{path}: record {index}: expected a JSON object, got {type(row).__name__}")
        yield RawRow(str(path), index, row, "record", origin)


def _iter_parquet(path: Path, report: ReadReport) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    origin = path.name.split(".")[0]
    index = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            index += 1
            report.rows_read += 1
            yield RawRow(str(path), index, row, "record", origin)


def iter_hub_rows(name_or_path: str, *, split: str | None, report: ReadReport) -> Iterator[RawRow]:
    """The rows of a dataset loaded with ``datasets.load_dataset`` (a hub id, or a local dataset dir).

    Without ``split`` a dataset with one split is read whole; with several, the user must choose.
    """
    import datasets

    loaded = datasets.load_dataset(name_or_path, split=split)
    if isinstance(loaded, datasets.DatasetDict):
        splits = sorted(loaded)
        if len(splits) != 1:
            raise ValueError(f"{name_or_path} has splits {splits}; choose one with --split")
        split = splits[0]
        loaded = loaded[split]
    where = f"{name_or_path}[{split}]"
    report.hub_inputs.append(
        {"dataset": name_or_path, "split": split, "num_rows": loaded.num_rows, "fingerprint": loaded._fingerprint}
    )
    for index, row in enumerate(loaded, start=1):
        report.rows_read += 1
        yield RawRow(where, index, dict(row), "record", str(split))


# --- rows to samples -------------------------------------------------------------------------


def parse_rows(
    rows: Iterable[RawRow],
    parse: Callable[[RawRow], T],
    *,
    report: ReadReport,
    on_bad_row: str = "error",
) -> Iterator[tuple[RawRow, T]]:
    """Apply ``parse`` to each row under the bad-row policy, yielding ``(row, result)``.

    ``parse`` raises :class:`RowError` (or any ValueError, e.g. from JudgeSample's own validation)
    for a bad row, which is re-raised as ``file:line: message`` or, under ``on_bad_row="skip"``,
    skipped and counted by its reason; it raises :class:`SkipRow` for a row its source documents as
    unusable, which is always skipped and counted.
    """
    check_on_bad_row(on_bad_row)
    for raw in rows:
        try:
            result = parse(raw)
        except SkipRow as skip:
            report.skip(skip.reason, raw.where, str(skip))
            continue
        except ValueError as err:
            reason = getattr(err, "reason", None) or _reason_of(str(err))
            if on_bad_row == "skip":
                report.skip(reason, raw.where, str(err))
                continue
            raise ValueError(f"{raw.where}: {err}. Fix the row, or pass --on-bad-row skip to skip and count it") from None
        yield raw, result


def _reason_of(message: str) -> str:
    """The report category of a ValueError raised by the canonical types' own validation."""
    if "missing required field" in message:
        return "missing field"
    if "outside the scale" in message or "winner must be one of" in message:
        return "label out of range"
    return "invalid value"


def convert_rows(
    rows: Iterable[RawRow],
    convert: Callable[[RawRow], JudgeSample | Iterable[JudgeSample] | None],
    *,
    report: ReadReport,
    on_bad_row: str = "error",
) -> Iterator[JudgeSample]:
    """Turn rows into samples with ``convert`` (a sample, several, or None per row) under the bad-row
    policy of :func:`parse_rows`. Sample ids must be unique: a repeated id is a bad row."""
    seen_ids: dict[str, str] = {}

    def parse(raw: RawRow) -> list[JudgeSample]:
        out = convert(raw)
        built = [] if out is None else [out] if isinstance(out, JudgeSample) else list(out)
        for sample in built:
            if sample.id in seen_ids:
                raise RowError("duplicate id", f"sample id {sample.id!r} was already built from {seen_ids[sample.id]}")
        return built

    for raw, built in parse_rows(rows, parse, report=report, on_bad_row=on_bad_row):
        for sample in built:
            seen_ids[sample.id] = raw.where
            report.samples_built += 1
            yield sample


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file. A line that is not one JSON
    object is a ValueError naming the file and the line."""
    path = Path(path)
    with path.open("rb") as f:
        # Bytes in, so json.loads decodes UTF-8 itself and an undecodable line names its line number.
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
                raise ValueError(f"{path}:{line_number}: not valid JSON ({err}); each line must be one JSON object") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{line_number}: expected a JSON object, got {type(row).__name__}")
            yield line_number, row


# --- input fingerprints ---------------------------------------------------------------------------


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def input_fingerprints(report: ReadReport) -> list[dict[str, Any]]:
    """sha256 and size of every local file read, and the fingerprint of every hub split read."""
    out: list[dict[str, Any]] = [
        {"path": path, "sha256": file_sha256(path), "num_bytes": os.path.getsize(path)} for path in report.input_files
    ]
    out.extend(dict(hub) for hub in report.hub_inputs)
    return out


__all__ = [
    "ON_BAD_ROW_CHOICES",
    "ROW_FILE_SUFFIXES",
    "RawRow",
    "ReadReport",
    "check_on_bad_row",
    "convert_rows",
    "file_sha256",
    "input_fingerprints",
    "is_local",
    "iter_file_rows",
    "iter_hub_rows",
    "iter_rows",
    "local_row_files",
    "parse_rows",
    "read_jsonl",
]
