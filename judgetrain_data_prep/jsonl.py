"""The user's own judge data → JudgeSamples, with a field mapping (or canonical sample rows without one).

Without a mapping each row must be a canonical sample (``JudgeSample.to_dict()``: what the
``samples/`` shards of a prepared dir hold). With one (option ``fields``: a dict, or the path of a
YAML file holding it; on the command line ``--map KEY=VALUE`` or ``--map-file FILE``), these keys
name the row's columns (``a.b`` reads a nested field):

==========================  =====================================================================
``question``                the question column (required)
``answers``                 one column (single grading) or two (pairwise), comma-separated
``models``                  the columns naming the model of each answer
``id``                      an id column (default: file name and line)
``reference``, ``rubric``, ``criteria``, ``scenario``, ``category``, ``judgment``,
``judgment_with_reference``, ``turn``   the column holding that field
``winner``                  the column holding the pairwise winner
``scores``                  one column per answer holding its score
==========================  =====================================================================

and these are settings, not columns:

==========================  =====================================================================
``label``                   the key the label is stored under (default ``user``)
``winner_values``           how the winner column's values read, e.g. ``1:A,2:B,0:tie``
                            (default: ``A``, ``B``, ``tie``)
``scale``                   the score scale, e.g. ``1,10`` (required with ``scores``)
``judgment_format``         the template the judgment text was written in (e.g. ``judgelm-v1``);
                            required with ``judgment`` on pairwise data, so swap augmentation can
                            rewrite the answer names inside it
==========================  =====================================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Mapping

from judgetrain.data.fields import RowError, as_score
from judgetrain.data.rows import RawRow, ReadReport, convert_rows, iter_rows
from judgetrain.types import WINNERS, Answer, JudgeSample, Label

SOURCE = "jsonl"
COLUMN_KEYS = (
    "id", "question", "answers", "models", "reference", "rubric", "criteria", "scenario", "category",
    "judgment", "judgment_with_reference", "turn", "winner", "scores",
)
SETTING_KEYS = ("label", "winner_values", "scale", "judgment_format")
_LIST_KEYS = ("answers", "models", "scores")


def _as_list(value: Any, key: str) -> list[str]:
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
    else:
        raise ValueError(f"field mapping {key}: expected column names (a list or comma-separated), got {value!r}")
    if not items:
        raise ValueError(f"field mapping {key}: needs at least one column")
    return items


def parse_winner_values(value: Any) -> dict[str, str]:
    """``"1:A,2:B,0:tie"`` or ``{1: "A", ...}`` → ``{"1": "A", ...}`` (keys compared as text)."""
    if isinstance(value, str):
        pairs = [item.split(":", 1) for item in value.split(",") if item.strip()]
        if any(len(p) != 2 for p in pairs):
            raise ValueError(f"field mapping winner_values: expected VALUE:WINNER pairs like 1:A,2:B,0:tie, got {value!r}")
        mapping = {k.strip(): v.strip() for k, v in pairs}
    elif isinstance(value, Mapping):
        mapping = {str(k): str(v) for k, v in value.items()}
    else:
        raise ValueError(f"field mapping winner_values: expected VALUE:WINNER pairs, got {value!r}")
    bad = sorted(set(mapping.values()) - set(WINNERS))
    if bad:
        raise ValueError(f"field mapping winner_values: winners must be among {WINNERS}, got {bad}")
    return mapping


def load_mapping(fields: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """The field mapping, from a dict or a YAML file; unknown keys and bad values are errors."""
    if isinstance(fields, (str, Path)):
        import yaml

        path = Path(fields)
        if not path.is_file():
            raise ValueError(f"field mapping file {path}: no such file")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise ValueError(f"field mapping file {path}: invalid YAML ({err})") from None
        if not isinstance(loaded, Mapping):
            raise ValueError(f"field mapping file {path}: expected a mapping of KEY: column, got {type(loaded).__name__}")
        fields = loaded
    unknown = sorted(set(fields) - set(COLUMN_KEYS) - set(SETTING_KEYS))
    if unknown:
        raise ValueError(f"field mapping: unknown key(s) {unknown}; columns: {list(COLUMN_KEYS)}; settings: {list(SETTING_KEYS)}")
    mapping: dict[str, Any] = dict(fields)
    if "question" not in mapping or "answers" not in mapping:
        raise ValueError("field mapping: needs at least question=<column> and answers=<column>[,<column>]")
    for key in _LIST_KEYS:
        if key in mapping:
            mapping[key] = _as_list(mapping[key], key)
    if len(mapping["answers"]) not in (1, 2):
        raise ValueError(f"field mapping answers: one column (single grading) or two (pairwise), got {mapping['answers']}")
    for key in ("models", "scores"):
        if key in mapping and len(mapping[key]) != len(mapping["answers"]):
            raise ValueError(f"field mapping {key}: needs one column per answer ({len(mapping['answers'])}), got {mapping[key]}")
    mapping["winner_values"] = parse_winner_values(mapping.get("winner_values", {w: w for w in WINNERS}))
    if "scores" in mapping:
        scale = mapping.get("scale")
        parts = _as_list(scale, "scale") if scale is not None else []
        try:
            low, high = (float(p) for p in parts)
        except ValueError:
            raise ValueError(f"field mapping scale: scores need their scale as LOW,HIGH (e.g. 1,10), got {scale!r}") from None
        mapping["scale"] = (low, high)
    if "winner" in mapping and len(mapping["answers"]) != 2:
        raise ValueError("field mapping winner: a winner needs two answer columns")
    if "judgment" in mapping and len(mapping["answers"]) == 2 and not mapping.get("judgment_format"):
        raise ValueError("field mapping: with a judgment column on pairwise data, set judgment_format=<template name> (see `judgetrain formats`)")
    return mapping


def _get(row: Mapping[str, Any], column: str) -> Any:
    value: Any = row
    for part in column.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _text(row: Mapping[str, Any], column: str, required: bool) -> Any:
    value = _get(row, column)
    if value is None:
        if required:
            raise RowError("missing field", f"missing required field {column!r} (the row has {sorted(row)})")
        return None
    if isinstance(value, (str, list)):
        return value
    raise RowError("invalid value", f"{column}: expected a string (or a list of turns), got {type(value).__name__} {value!r:.80}")


def convert_mapped(raw: RawRow, mapping: Mapping[str, Any]) -> JudgeSample:
    row = raw.row
    answers = tuple(
        Answer(_text(row, column, True), model=None if "models" not in mapping or _get(row, mapping["models"][i]) is None else str(_get(row, mapping["models"][i])))
        for i, column in enumerate(mapping["answers"])
    )
    winner = None
    if "winner" in mapping:
        value = _get(row, mapping["winner"])
        if value is None:
            raise RowError("missing field", f"missing required field {mapping['winner']!r} (the row has {sorted(row)})")
        key = str(value)
        if key not in mapping["winner_values"]:
            raise RowError("label out of range", f"{mapping['winner']}: expected one of {sorted(mapping['winner_values'])}, got {value!r}")
        winner = mapping["winner_values"][key]
    scores = None
    if "scores" in mapping:
        low, high = mapping["scale"]
        scores = []
        for column in mapping["scores"]:
            value = _get(row, column)
            if value is None:
                raise RowError("missing field", f"missing required field {column!r} (the row has {sorted(row)})")
            scores.append(as_score(value, column, low, high))
    labels = {}
    if winner is not None or scores is not None:
        labels[mapping.get("label", "user")] = Label(winner=winner, scores=scores, scale=mapping.get("scale") if scores else None)
    optional = {key: _text(row, mapping[key], False) for key in ("reference", "rubric", "criteria", "scenario", "category", "judgment", "judgment_with_reference") if key in mapping}
    turn = _get(row, mapping["turn"]) if "turn" in mapping else None
    sample_id = _get(row, mapping["id"]) if "id" in mapping else None
    meta: dict[str, Any] = {}
    if (optional.get("judgment") or optional.get("judgment_with_reference")) and mapping.get("judgment_format"):
        meta["judgment_format"] = mapping["judgment_format"]
    return JudgeSample(
        id=f"{SOURCE}:{raw.origin}:{sample_id if sample_id is not None else raw.line_number}",
        source=SOURCE,
        question=_text(row, mapping["question"], True),
        answers=answers,
        turn=turn,
        labels=labels,
        meta=meta,
        **optional,
    )


def convert_canonical(raw: RawRow) -> JudgeSample:
    return JudgeSample.from_dict(raw.row)


def read(
    input: str, *, split: str | None = None, report: ReadReport, on_bad_row: str = "error", fields: Mapping[str, Any] | str | None = None, **options: Any
) -> Iterator[JudgeSample]:
    """Rows of the user's own data, mapped by ``fields`` (or canonical sample rows without a mapping)."""
    if options:
        raise ValueError(f"the jsonl reader takes only the option fields (a mapping), got {sorted(options)}")
    mapping = load_mapping(fields) if fields is not None else None
    schema = "mapped" if mapping is not None else "judgesample"

    def convert(raw: RawRow) -> JudgeSample:
        report.saw_schema(schema)
        return convert_mapped(raw, mapping) if mapping is not None else convert_canonical(raw)

    rows = iter_rows(input, split=split, report=report, on_bad_row=on_bad_row)
    return convert_rows(rows, convert, report=report, on_bad_row=on_bad_row)
