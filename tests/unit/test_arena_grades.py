"""The MT-bench single-grade parser on every GPT-4 critique of arena-bench-v1 (4,500 in
../shared/data/arena-bench-v1/model_judgment): each grade form found there, described here by its own
patterns (not the parser's), is read as the file's ``score`` says, and what states no grade is a parse
failure in both modes, never a grade."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from judgetrain import formats
from judgetrain.types import ParseFailure, Verdict

GRADER = formats.get("mtbench-single-math-v1")

# Grade forms, described by what the critique shows (the parser is checked against these, not built from them).
DOUBLE_BRACKET = re.compile(r"\[\[(\d+(?:\.\d+)?)\]\]")
LABELLED_FRACTION_AT_END = re.compile(r":\s*(\d+(?:\.\d+)?)\s*/\s*10\W*$")
CUT_INSIDE_BRACKETS = re.compile(r"\[\[\d*$")
IN_GRAMMAR = ("Rating: [[x]]", '"Rating: [[x]]"', "[[x]]", "[[x]] out of 10", "[[x]] followed by more critique",
              "Rating: [[x.5]]", "[[x.5]] out of 10", "[[x.5]]")
LENIENT_ONLY = ("x/10 ending the critique",)
OUTSIDE = ("no rating (critique cut off)", "cut off inside [[x", "$ERROR$ (no critique)")


def grade_form(critique: str) -> tuple[str, float | None]:
    """The form in which ``critique`` states its grade, and the grade it states (None: none)."""
    matches = list(DOUBLE_BRACKET.finditer(critique))
    if matches:
        last = matches[-1]
        value = float(last.group(1))
        number = "x.5" if "." in last.group(1) else "x"
        after = critique[last.end():]
        if not re.fullmatch(r"[\s.\"*]*(out of 10)?[\s.\"*]*", after):
            return "[[x]] followed by more critique", value
        label = re.search(r"(\")?rating\s*:\s*$", critique[:last.start()], re.IGNORECASE)
        form = f"Rating: [[{number}]]" if label else f"[[{number}]]"
        if label and label.group(1):
            form = f'"{form}"'
        if re.match(r"\s*out of 10", after):
            form += " out of 10"
        return form, value
    fraction = LABELLED_FRACTION_AT_END.search(critique)
    if fraction:
        return "x/10 ending the critique", float(fraction.group(1))
    if CUT_INSIDE_BRACKETS.search(critique.rstrip()):
        return "cut off inside [[x", None
    if critique.strip() == "$ERROR$":
        return "$ERROR$ (no critique)", None
    return "no rating (critique cut off)", None


@pytest.fixture(scope="module")
def judgment_rows(shared_data) -> list[tuple[str, int, dict]]:
    judgments = shared_data / "arena-bench-v1" / "model_judgment"
    if not judgments.is_dir():
        pytest.skip(f"arena-bench-v1 is not in the shared data ({judgments})")
    rows = []
    for path in sorted(judgments.glob("*.jsonl")):
        for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            rows.append((path.name, line_number, json.loads(line)))
    return rows


def _grade(text: str, strict: bool) -> float | None:
    parsed = GRADER.parse(text, strict=strict)
    return parsed.scores[0] if isinstance(parsed, Verdict) else None


def test_every_graded_critique_parses_to_the_files_score(judgment_rows):
    graded = [(name, line, row) for name, line, row in judgment_rows if row["score"] is not None]
    assert len(judgment_rows) == 4500 and graded
    wrong = [(name, line, row["score"], _grade(row["judgment"], True), _grade(row["judgment"], False))
             for name, line, row in graded
             if not _grade(row["judgment"], True) == _grade(row["judgment"], False) == float(row["score"])]
    assert wrong == []


def test_the_grade_forms_found_and_what_each_parser_reads(judgment_rows):
    forms: Counter[str] = Counter()
    for name, line, row in judgment_rows:
        form, stated = grade_form(row["judgment"])
        forms[form] += 1
        strict, lenient = _grade(row["judgment"], True), _grade(row["judgment"], False)
        where = f"{name}:{line} ({form})"
        if form in IN_GRAMMAR:
            assert strict == lenient == stated, where
        elif form in LENIENT_ONLY:
            assert strict is None and lenient == stated, where
        else:
            assert form in OUTSIDE, where
            # Text that states no grade is a failure in both modes: never mapped to a grade.
            assert isinstance(GRADER.parse(row["judgment"], strict=True), ParseFailure), where
            assert isinstance(GRADER.parse(row["judgment"], strict=False), ParseFailure), where
        if row["score"] is None:
            # The file's own failures: its decimals ([[9.5]]) and what states no grade at all.
            assert form in OUTSIDE + LENIENT_ONLY or "x.5" in form, where
    assert forms == {
        "Rating: [[x]]": 3982, "[[x]]": 377, '"Rating: [[x]]"': 69, "[[x]] followed by more critique": 26,
        "[[x]] out of 10": 7, "Rating: [[x.5]]": 2, "[[x.5]] out of 10": 1, "[[x.5]]": 1,
        "x/10 ending the critique": 1,
        "no rating (critique cut off)": 32, "cut off inside [[x": 1, "$ERROR$ (no critique)": 1,
    }
    strict_failures = sum(_grade(row["judgment"], True) is None for _, _, row in judgment_rows)
    lenient_failures = sum(_grade(row["judgment"], False) is None for _, _, row in judgment_rows)
    assert strict_failures == sum(forms[f] for f in OUTSIDE + LENIENT_ONLY)
    assert lenient_failures == sum(forms[f] for f in OUTSIDE)


@pytest.mark.parametrize("text,strict,lenient", [
    ("The code is wrong.\n\n```c\nBall balls[2] = {\n    { -0.5f, 0.01f },\n", None, None),  # an index, not a grade
    ("See the docs [3] for the API; the answer misses it entirely", None, None),  # a citation mid-critique
    ("Relevant and well told. \n\nThe assistant's response: 9/10.", None, 9.0),
    ("Fits the question.\n\nRating: [[1", None, None),  # cut off: [[1]] or [[10]]
    ("Overall, I would rate the assistant's response as a [[9.5]] out of 10.", 9.5, 9.5),
    ('Therefore, I would rate it as follows: "Rating: [[7]]".', 7.0, 7.0),
    ("Decent, but thin. [4]", None, 4.0),
    ("The probability is 3/10, as the reference says", None, None),  # a fraction inside the text
])
def test_grade_forms_near_the_edge_of_the_grammar(text, strict, lenient):
    assert _grade(text, True) == strict
    assert _grade(text, False) == lenient
