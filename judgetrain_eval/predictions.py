"""Read verdicts someone already produced (GPT-4 outputs, another framework's judge) and line them up
with the benchmark items.

A predictions file is JSONL, one row per benchmark item: ``{"id": ..., "verdict": "A"}`` for a
pairwise verdict, ``{"score": 4}`` for a grade, ``{"scores": [7, 8]}`` for one grade per answer
(pairwise verdicts are then read from the grades, JudgeLM style: the higher grade wins, equal grades
tie). Rows are aligned with the items by ``id`` when every row has one, and by line otherwise. A
``--label-map`` such as ``"0=A,1=B,2=tie"`` translates other encodings; a verdict that is null or
outside the map is a parse failure. A benchmark item with no row is an error that names it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from judgetrain.types import WINNERS, JudgeSample, flip_winner
from judgetrain.data.rows import read_jsonl

IDENTITY_LABEL_MAP = {w: w for w in WINNERS}


def parse_label_map(spec: str | None) -> dict[str, str]:
    """``"0=A,1=B,2=tie"`` → ``{"0": "A", "1": "B", "2": "tie"}``. Keys are matched against the
    verdict's text (``0`` and ``"0"`` are the same key); the value after the last ``=`` must be A, B or
    tie, so ``"A>B=A,B>A=B,A=B=tie"`` works. No spec: only A, B and tie are verdicts."""
    if spec is None or not spec.strip():
        return dict(IDENTITY_LABEL_MAP)
    mapping: dict[str, str] = {}
    for part in spec.split(","):
        part = part.strip()
        if "=" not in part:
            raise ValueError(f"--label-map entry {part!r} has no '='; write it as VALUE=A, VALUE=B or VALUE=tie, "
                             f"comma-separated, e.g. \"0=A,1=B,2=tie\"")
        key, value = part.rsplit("=", 1)
        key, value = key.strip(), value.strip()
        if value not in WINNERS:
            raise ValueError(f"--label-map entry {part!r}: {value!r} is not one of {WINNERS}")
        if key in mapping:
            raise ValueError(f"--label-map names {key!r} twice")
        mapping[key] = value
    return mapping


def _key(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


@dataclass(frozen=True)
class Prediction:
    """One row, read: the verdict (in the sample's order), grade(s), and why it did not parse."""

    winner: str | None = None
    scores: tuple[float | None, ...] | None = None
    raw: str = ""
    parse_failure: str | None = None


def _number(value: Any, where: str, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return None
        else:
            raise ValueError(f"{where}: field {field!r} must be a number or null, got {value!r:.80}")
    if math.isnan(float(value)):
        return None
    return float(value)


def read_row(row: dict[str, Any], *, where: str, kind: str, label_map: dict[str, str], swapped: bool) -> Prediction:
    """Read one predictions row for a benchmark of ``kind`` (see ``judgetrain_eval.base.KINDS``).

    ``swapped`` rows hold verdicts of the swapped presentation (answer B shown first): the winner is
    mapped back to the sample's order here, and so are per-answer grades."""
    raw = json.dumps({k: v for k, v in row.items() if k != "id"}, ensure_ascii=False)
    if kind == "grading":
        if "score" not in row and "scores" not in row:
            raise ValueError(f"{where}: a grading benchmark needs field 'score' (a number or null)")
        value = row["score"] if "score" in row else row["scores"]
        if isinstance(value, list):
            if len(value) != 1:
                raise ValueError(f"{where}: 'scores' of a grading benchmark holds one grade, got {value!r:.80}")
            value = value[0]
        score = _number(value, where, "score")
        return Prediction(scores=(score,), raw=raw, parse_failure=None if score is not None else f"no grade in {value!r:.40}")
    if kind == "grade_pair":
        value = row.get("scores")
        if not isinstance(value, list) or len(value) != 2:
            raise ValueError(f"{where}: a grade-pair benchmark needs field 'scores': [grade of the first answer, "
                             f"grade of the second] (null for one that did not parse)")
        scores = tuple(_number(v, where, "scores") for v in value)
        if swapped:
            scores = scores[::-1]
        failed = None if all(s is not None for s in scores) else "a grade did not parse"
        return Prediction(scores=scores, raw=raw, parse_failure=failed)
    # pairwise
    if "verdict" in row:
        value = row["verdict"]
        winner = None if value is None else label_map.get(_key(value))
        failure = None if winner is not None else ("verdict is null" if value is None else
                                                   f"verdict {value!r:.40} is not in the label map {sorted(label_map)}")
        scores = None
    elif "scores" in row:
        value = row["scores"]
        if not isinstance(value, list) or len(value) != 2:
            raise ValueError(f"{where}: 'scores' of a pairwise benchmark holds two grades, got {value!r:.80}")
        scores = tuple(_number(v, where, "scores") for v in value)
        if None in scores:
            winner, failure = None, "a grade did not parse"
        else:
            winner = "A" if scores[0] > scores[1] else "B" if scores[0] < scores[1] else "tie"
            failure = None
    else:
        raise ValueError(f"{where}: a pairwise benchmark needs field 'verdict' (A / B / tie, or values of "
                         f"--label-map) or 'scores' [grade of answer 1, grade of answer 2]")
    if swapped:
        winner = flip_winner(winner)
        scores = scores[::-1] if scores is not None else None
    return Prediction(winner=winner, scores=scores, raw=raw, parse_failure=failure)


def read_predictions(path: str | Path, samples: Sequence[JudgeSample], *, kind: str, label_map: dict[str, str],
                     swapped: bool = False, limited: bool = False) -> list[Prediction]:
    """One :class:`Prediction` per sample, in the samples' order.

    Rows align by ``id`` when every row has one, by line otherwise. ``limited`` (the run used
    ``--limit``) lets the file hold more rows than the items scored; otherwise an extra row is an
    error, as is a missing item, a duplicate id or a row that is not a JSON object."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"predictions file {path} does not exist")
    rows = list(read_jsonl(path))
    with_id = [("id" in row) for _, row in rows]
    if rows and all(with_id):
        by_id: dict[str, tuple[int, dict[str, Any]]] = {}
        for line_number, row in rows:
            row_id = str(row["id"])
            if row_id in by_id:
                raise ValueError(f"{path}:{line_number}: id {row_id!r} appears again (first on line {by_id[row_id][0]})")
            by_id[row_id] = (line_number, row)
        missing = [s.id for s in samples if s.id not in by_id]
        if missing:
            raise ValueError(f"{path}: no row for benchmark item(s) {missing[:5]}{' …' if len(missing) > 5 else ''} "
                             f"({len(missing)} missing); every item needs a row with its id")
        if not limited:
            wanted = {s.id for s in samples}
            extra = [(n, i) for i, (n, _) in by_id.items() if i not in wanted]
            if extra:
                line_number, row_id = extra[0]
                raise ValueError(f"{path}:{line_number}: id {row_id!r} is not an item of this benchmark "
                                 f"({len(extra)} such rows); is this the right benchmark?")
        aligned = [by_id[s.id] for s in samples]
    else:
        if any(with_id):
            first = next(n for (n, _), has in zip(rows, with_id) if not has)
            raise ValueError(f"{path}:{first}: some rows have an 'id' and this one does not; give every row an id "
                             f"(aligned by id) or none (aligned by line)")
        if len(rows) < len(samples):
            raise ValueError(f"{path}: {len(rows)} rows for {len(samples)} items (aligned by line); no row for item "
                             f"{samples[len(rows)].id!r} (item {len(rows) + 1}) and after")
        if len(rows) > len(samples) and not limited:
            raise ValueError(f"{path}: {len(rows)} rows for {len(samples)} items (aligned by line); "
                             f"is this the right benchmark?")
        aligned = rows[: len(samples)]
    return [read_row(row, where=f"{path}:{line_number}", kind=kind, label_map=label_map, swapped=swapped)
            for line_number, row in aligned]
