"""Field helpers for readers: take a field out of a raw row, check its type or range, and raise a
:class:`RowError` whose reason is the category counted in the read report (``"missing field"``,
``"invalid value"``, ``"label out of range"`` …) and whose message names the field and the bad value.

The bad-row policy that turns these errors into ``file:line`` errors or counted skips lives in
:mod:`judgetrain.data.rows`.
"""

from __future__ import annotations

from typing import Any, Mapping


class RowError(ValueError):
    """A row that cannot become a sample. ``reason`` is the short category counted in the report
    (``"missing field"``, ``"label out of range"``, ``"invalid JSON"`` …); the message says the rest."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class SkipRow(Exception):
    """A well-formed row that its source documents as unusable (JudgeLM's teacher calls that returned
    ``"error"``). Always skipped and counted, whatever ``on_bad_row`` says."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def require(row: Mapping[str, Any], name: str) -> Any:
    """``row[name]``; a missing field raises RowError naming it and the fields the row has."""
    if name not in row or row[name] is None:
        raise RowError("missing field", f"missing required field {name!r} (the row has {sorted(row)})")
    return row[name]


def require_text(row: Mapping[str, Any], name: str, *, allow_empty: bool = True) -> str:
    """A required string field."""
    value = require(row, name)
    if not isinstance(value, str):
        raise RowError("invalid value", f"{name}: expected a string, got {type(value).__name__} {value!r:.80}")
    if not allow_empty and not value.strip():
        raise RowError("invalid value", f"{name}: expected a non-empty string, got {value!r}")
    return value


def require_choice(row: Mapping[str, Any], name: str, mapping: Mapping[Any, Any], meaning: str = "") -> Any:
    """Map a label field through ``mapping``; a value outside it raises RowError naming the value."""
    value = require(row, name)
    try:
        return mapping[value]
    except (KeyError, TypeError):
        allowed = ", ".join(repr(k) for k in mapping)
        hint = f" ({meaning})" if meaning else ""
        raise RowError("label out of range", f"{name}: expected one of {allowed}{hint}, got {value!r}") from None


def as_score(value: Any, name: str, low: float, high: float) -> float:
    """A number within [low, high]; a string holding a number is accepted (Auto-J writes "5.0")."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise RowError("invalid value", f"{name}: expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise RowError("invalid value", f"{name}: expected a number, got {value!r:.80}")
    if not low <= value <= high:
        raise RowError("label out of range", f"{name}: {value!r} is outside the scale [{low:g}, {high:g}]")
    return float(value)


def alpaca_question(instruction: str, input: str | None) -> str:
    """An Alpaca-style question: the instruction, then a blank line and the input when there is one."""
    return f"{instruction}\n\n{input}" if input and input.strip() else instruction


__all__ = ["RowError", "SkipRow", "alpaca_question", "as_score", "require", "require_choice", "require_text"]
