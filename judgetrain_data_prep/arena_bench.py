"""arena-bench-v1 (lmarena/arena-hard-auto ``data/arena-bench-v1``) → single-grading JudgeSamples with
GPT-4's reference-guided 1-10 grades and critiques.

The input is a FastChat ``llm_judge`` bench dir (a local path, the copy shipped in
``judgetrain/resources/arena_bench_v1``, or a hub dataset repo holding the same files):

- ``question.jsonl``: ``question_id``, ``category``, ``turns`` (one user turn);
- ``reference_answer/gpt-4.jsonl``: GPT-4's reference answer (``question_id``, ``choices[0].turns``);
- ``model_answer/<model>.jsonl``: each model's answer (``question_id``, ``model_id``, ``choices[0].turns``);
- ``model_judgment/<file>.jsonl``: GPT-4's grade of one model's answers: ``question_id``, ``model``,
  ``judgment`` (the critique, stating its rating as ``[[x]]``), ``score`` (that rating) and
  ``user_prompt`` (the judge prompt: question, reference answer, the model's answer).

Every file may also be gzip-compressed (``.jsonl.gz``, as shipped). A judgment's ``model`` names its
answer file by the file's name or by the ``model_id`` inside it (``gpt-4-turbo.jsonl`` grades
``model_answer/gpt-4-1106-preview.jsonl``, ``arena-bench-judgment_judge_any.jsonl`` grades
``llama-13b``); the sample's answer carries that file's name as its model, as FastChat names models.

Each judgment row becomes one sample: ``question`` (the turn), the one answer (its first turn: the one
graded), ``reference`` (GPT-4's reference answer), label ``"gpt4"`` (``score``, scale 1-10),
``judgment_with_reference`` (the critique, written for a prompt that shows the reference;
``meta["judgment_format"]`` = ``mtbench-single-math-v1``, FastChat's reference-guided single-grading
prompt) and ``meta`` ``question_id`` and ``split_group`` (the question id, so a held-out split never
puts one question on both sides).

Bad rows (an error naming file, line and field; or skipped and counted with ``--on-bad-row skip``):
``score`` null (GPT-4's rating did not parse when the grades were made), a ``score`` outside 1-10, a
critique whose rating FastChat's parser does not read or that differs from ``score``, and a judgment
whose ``user_prompt`` does not show the question, the answer or the reference answer the dir holds
(the grade is then of another text). Of arena-bench-v1's 4,500 rows, 3,904 are read: 39 have a null
score, 258 graded another answer than the model's answer file holds, 299 another reference answer. A
judgment without ``user_prompt`` (the shipped copy, which holds only rows that passed these checks) is
counted in the notes, unchecked.

Split (``--split``, the same rule for prep and for the ``arena-bench-heldout`` benchmark): ``heldout``
reads the questions :func:`heldout_question_ids` picks (10% of them, by a stable hash of the question
id), ``train`` the others; without a split every question is read. :func:`write_compact_copy` writes
the shipped copy (``python -m judgetrain_data_prep.arena_bench compact SOURCE_DIR OUT_DIR``).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import itertools
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import judgetrain
from judgetrain import formats
from judgetrain.data.fields import RowError, as_score, require, require_text
from judgetrain.data.rows import RawRow, ReadReport, check_on_bad_row, convert_rows, is_local, iter_file_rows, parse_rows
from judgetrain.types import Answer, JudgeSample, Label, ParseFailure
from judgetrain_data_prep.mtbench import collect_by_question_id

SOURCE = "arena_bench"
SCHEMA = "fastchat-bench-single-grades"
JUDGMENT_FORMAT = "mtbench-single-math-v1"
"""FastChat's reference-guided single-grading template: what GPT-4 was shown, and how its critique states the rating."""
SCALE = (1.0, 10.0)
LABEL_KEY = "gpt4"

SPLITS = ("train", "heldout")
HELDOUT_FRACTION = 0.1
HELDOUT_HASH_PREFIX = "arena-bench-heldout:"

SHIPPED_DIR = Path(judgetrain.__file__).resolve().parent / "resources" / "arena_bench_v1"
"""The compact copy of arena-bench-v1 shipped inside the package (Apache-2.0; see its LICENSE)."""

REFERENCE_MODEL = "gpt-4"
ROW_FILE_ENDINGS = (".jsonl.gz", ".jsonl")
HUB_FILE_PATTERNS = ["question.jsonl*", "reference_answer/*", "model_answer/*", "model_judgment/*", "LICENSE"]


# --- the held-out split -----------------------------------------------------------------------


def heldout_question_ids(question_ids: Iterable[Any]) -> frozenset[str]:
    """The questions held out for evaluation: the :data:`HELDOUT_FRACTION` (rounded) of ``question_ids``
    whose sha256 of ``"arena-bench-heldout:<question_id>"`` is lowest, as strings.

    It depends on the ids alone (not on file order or on which models answered), so prep and evaluation
    agree, and every copy of the bench dir (original, shipped, hub) holds out the same questions: 30 of
    arena-bench-v1's 300."""
    ids = sorted({str(q) for q in question_ids})
    ranked = sorted(ids, key=lambda q: hashlib.sha256(f"{HELDOUT_HASH_PREFIX}{q}".encode("utf-8")).hexdigest())
    return frozenset(ranked[: int(len(ranked) * HELDOUT_FRACTION + 0.5)])


def check_split(split: str | None) -> None:
    """ValueError unless ``split`` is None (every question) or one of :data:`SPLITS`."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split {split!r}: the arena_bench reader's splits are {', '.join(SPLITS)} (or none: every question)")


# --- the bench dir ----------------------------------------------------------------------------


def row_file(directory: Path, name: str) -> Path | None:
    """``directory/name.jsonl.gz`` or ``directory/name.jsonl``, whichever exists (None for neither)."""
    for ending in ROW_FILE_ENDINGS:
        path = directory / f"{name}{ending}"
        if path.is_file():
            return path
    return None


def row_files(directory: Path) -> dict[str, Path]:
    """The JSONL (or ``.jsonl.gz``) files of ``directory`` by name without the ending, sorted."""
    files: dict[str, Path] = {}
    for path in sorted(directory.iterdir()) if directory.is_dir() else []:
        for ending in ROW_FILE_ENDINGS:
            if path.is_file() and path.name.endswith(ending) and not path.name.startswith("."):
                name = path.name[: -len(ending)]
                if name in files:
                    raise ValueError(f"{directory}: both {files[name].name} and {path.name} hold {name!r}; keep one")
                files[name] = path
                break
    return files


def bench_dir(input: str, report: ReadReport) -> Path:
    """The local bench dir of ``input``: the path itself, or the snapshot of a hub dataset repo
    (``huggingface_hub.snapshot_download``, served from the hub cache when offline)."""
    if is_local(input):
        path = Path(input)
        if not path.is_dir():
            raise ValueError(f"{path}: the arena_bench reader reads a bench dir (question.jsonl, reference_answer/, "
                             "model_answer/, model_judgment/), not a single file")
        return path
    from huggingface_hub import snapshot_download

    try:
        snapshot = Path(snapshot_download(repo_id=input, repo_type="dataset", allow_patterns=HUB_FILE_PATTERNS))
    except Exception as err:  # offline without a cached copy, no such repo, no access: say what to do instead
        raise ValueError(f"{input}: no such local dir, and the hub dataset could not be fetched ({type(err).__name__}: "
                         f"{err}); download the bench dir and pass its path") from None
    report.hub_inputs.append({"dataset": input, "revision": snapshot.name, "files": "bench dir"})
    return snapshot


def _first_turn(row: dict[str, Any], report: ReadReport, what: str) -> str:
    choices = require(row, "choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise RowError("invalid value", f"choices: expected a list of {{'turns': [...]}}, got {choices!r:.80}")
    turns = require(choices[0], "turns")
    if not isinstance(turns, list) or not turns or not all(isinstance(t, str) for t in turns):
        raise RowError("invalid value", f"choices[0].turns: expected a non-empty list of strings, got {turns!r:.80}")
    if len(turns) > 1:
        # The questions have one turn and the judge was shown the first answer turn; later ones are unjudged.
        report.note(f"{what} with more than one turn (the first, the one graded, is read)")
    return turns[0]


@dataclass
class BenchDir:
    """The questions, reference answers and model answers of a bench dir, keyed by question id."""

    root: Path
    questions: dict[Any, str] = field(default_factory=dict)
    categories: dict[Any, str | None] = field(default_factory=dict)
    references: dict[Any, str] = field(default_factory=dict)
    answers: dict[str, dict[Any, str]] = field(default_factory=dict)
    model_ids: dict[str, str] = field(default_factory=dict)
    """``model_id`` (inside an answer file) → the file's name, where the two differ."""
    judgment_files: dict[str, Path] = field(default_factory=dict)

    def answer_model(self, model: str) -> str | None:
        """The answer file a judgment's ``model`` names: by file name, else by the model_id inside it."""
        return model if model in self.answers else self.model_ids.get(model)


def load_bench_dir(root: Path, report: ReadReport, on_bad_row: str) -> BenchDir:
    """Read a bench dir's questions, reference answers and model answers (bad rows under ``on_bad_row``)."""
    questions_file = row_file(root, "question")
    reference_file = row_file(root / "reference_answer", REFERENCE_MODEL)
    answer_files = row_files(root / "model_answer")
    judgment_files = row_files(root / "model_judgment")
    missing = [name for name, present in (("question.jsonl", questions_file), (f"reference_answer/{REFERENCE_MODEL}.jsonl", reference_file),
                                          ("model_answer/<model>.jsonl", answer_files),
                                          ("model_judgment/<model>.jsonl", judgment_files)) if not present]
    if missing:
        raise ValueError(f"{root}: an arena-bench dir needs {', '.join(missing)} (FastChat llm_judge's bench layout; .jsonl or .jsonl.gz)")
    bench = BenchDir(root=root, judgment_files=judgment_files)

    def question(raw: RawRow) -> tuple[Any, tuple[str, str | None]]:
        turns = require(raw.row, "turns")
        if not isinstance(turns, list) or not turns or not all(isinstance(t, str) for t in turns):
            raise RowError("invalid value", f"turns: expected a non-empty list of strings (one per turn), got {turns!r:.80}")
        if len(turns) > 1:
            report.note("questions with more than one turn (the first, the one graded, is read)")
        return require(raw.row, "question_id"), (turns[0], raw.row.get("category"))

    for question_id, (text, category) in collect_by_question_id(questions_file, question, report, on_bad_row, "question").items():
        bench.questions[question_id] = text
        bench.categories[question_id] = category
    bench.references = collect_by_question_id(reference_file, lambda raw: (require(raw.row, "question_id"), _first_turn(raw.row, report, "reference answers")),
                                report, on_bad_row, "reference answer")
    for model, path in answer_files.items():
        ids: set[str] = set()

        def answer(raw: RawRow) -> tuple[Any, str]:
            if isinstance(raw.row.get("model_id"), str):
                ids.add(raw.row["model_id"])
            return require(raw.row, "question_id"), _first_turn(raw.row, report, "model answers")

        bench.answers[model] = collect_by_question_id(path, answer, report, on_bad_row, "model answer")
        for model_id in ids - {model}:
            bench.model_ids.setdefault(model_id, model)
    return bench


# --- judgment rows → samples -------------------------------------------------------------------


def _grade(row: dict[str, Any]) -> float:
    if row.get("score") is None:
        raise RowError("no grade", f"score: null (GPT-4's rating did not parse when the grades were made; the file's own "
                                   f"mark of an unusable row), the row has {sorted(row)}")
    return as_score(row["score"], "score", *SCALE)


def _check_critique(judgment: str, score: float) -> None:
    parsed = formats.get(JUDGMENT_FORMAT).parse(judgment, strict=True)
    if isinstance(parsed, ParseFailure):
        raise RowError("unparseable grade", f"judgment: {parsed.reason}: the critique states no rating [[x]] for score {score:g}")
    if parsed.scores[0] != score:
        raise RowError("grade mismatch", f"judgment: its rating {parsed.scores[0]:g} differs from score {score:g}")


def convert_judgment(raw: RawRow, bench: BenchDir, report: ReadReport, wanted: frozenset[str] | None) -> JudgeSample | None:
    """The sample of one judgment row, or None when its question is not in the ``wanted`` split."""
    row = raw.row
    question_id = require(row, "question_id")
    if wanted is not None and str(question_id) not in wanted:
        return None
    report.saw_schema(SCHEMA)
    if question_id not in bench.questions:
        raise RowError("unknown question", f"question_id: {question_id!r} is not in {bench.root / 'question.jsonl'}")
    graded = require_text(row, "model", allow_empty=False)
    model = bench.answer_model(graded)
    if model is None:
        raise RowError("no answer", f"model: no file in {bench.root / 'model_answer'} is named {graded!r} or holds "
                                    f"model_id {graded!r}; answer files: {sorted(bench.answers)}")
    answer = bench.answers[model].get(question_id)
    if answer is None:
        raise RowError("no answer", f"question_id: model_answer/{model} has no answer to question {question_id!r}")
    reference = bench.references.get(question_id)
    if reference is None:
        raise RowError("no reference", f"question_id: reference_answer/{REFERENCE_MODEL} has no answer to question {question_id!r}")
    if row.get("turn") not in (None, 1):
        raise RowError("invalid value", f"turn: {row['turn']!r}; the single-turn judgments of turn 1 are read")
    score = _grade(row)
    judgment = require_text(row, "judgment", allow_empty=False)
    _check_critique(judgment, score)
    prompt = row.get("user_prompt")
    if prompt is None:
        report.note("judgments without user_prompt (answer and reference not checked against the judge's prompt)")
    else:
        if not isinstance(prompt, str):
            raise RowError("invalid value", f"user_prompt: expected a string, got {type(prompt).__name__}")
        # The grade is of what the judge was shown: a prompt without these very texts graded other ones.
        for what, text, where in (("question", bench.questions[question_id], "question.jsonl"),
                                  ("answer", answer, f"model_answer/{model}.jsonl"),
                                  ("reference", reference, f"reference_answer/{REFERENCE_MODEL}.jsonl")):
            if text not in prompt:
                raise RowError(f"{what} mismatch", f"user_prompt: does not show the {what} of {where} for question "
                                                   f"{question_id!r}; GPT-4 graded another {what}")
    return JudgeSample(
        id=f"{SOURCE}:{model}:{question_id}",
        source=SOURCE,
        question=bench.questions[question_id],
        answers=(Answer(answer, model=model),),
        reference=reference,
        category=bench.categories.get(question_id),
        labels={LABEL_KEY: Label(scores=(score,), scale=SCALE)},
        judgment_with_reference=judgment,
        meta={"question_id": question_id, "split_group": str(question_id), "judgment_format": JUDGMENT_FORMAT},
    )


def read_bench_dir(root: Path, *, split: str | None, report: ReadReport, on_bad_row: str) -> Iterator[JudgeSample]:
    """Every judgment of a bench dir as a sample, judgment files in name order, rows in file order."""
    bench = load_bench_dir(root, report, on_bad_row)
    wanted = None
    if split is not None:
        heldout = heldout_question_ids(bench.questions)
        wanted = heldout if split == "heldout" else frozenset(str(q) for q in bench.questions) - heldout
        report.note(f"questions in split {split}", len(wanted))
    rows = itertools.chain.from_iterable(iter_file_rows(path, report=report, on_bad_row=on_bad_row) for path in bench.judgment_files.values())
    yield from convert_rows(rows, lambda raw: convert_judgment(raw, bench, report, wanted), report=report, on_bad_row=on_bad_row)


def read(input: str, *, split: str | None = None, report: ReadReport, on_bad_row: str = "error", **options: Any) -> Iterator[JudgeSample]:
    """GPT-4's single grades of a FastChat bench dir (arena-bench-v1: local, shipped or hub) as samples."""
    if options:
        raise ValueError(f"the arena_bench reader takes no options, got {sorted(options)}")
    check_split(split)
    check_on_bad_row(on_bad_row)
    root = bench_dir(str(input), report)
    return read_bench_dir(root, split=split, report=report, on_bad_row=on_bad_row)


# --- the shipped copy -------------------------------------------------------------------------


def _write_gzip_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    text = "".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n" for row in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0 and no file name in the header: the same rows always give the same bytes.
    path.write_bytes(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))


def write_compact_copy(source: str | Path, out_dir: str | Path) -> ReadReport:
    """Write the compact copy of the bench dir ``source`` into ``out_dir`` (the one shipped as
    :data:`SHIPPED_DIR`): gzip JSONL in the same layout, with only the fields this reader reads, the
    first answer turn, the answer files of graded models, and only the judgment rows that build a
    sample (bad rows of ``source`` are left out and counted in the returned report), without
    ``user_prompt`` (each kept row was checked against it here). ``LICENSE`` is copied when present."""
    root, out = Path(source), Path(out_dir)
    report = ReadReport(source=SOURCE)
    bench = load_bench_dir(root, report, "skip")
    kept: dict[str, list[dict[str, Any]]] = {}
    graded_models: set[str] = set()
    for name, path in bench.judgment_files.items():
        rows = iter_file_rows(path, report=report, on_bad_row="skip")
        for raw, sample in parse_rows(rows, lambda raw: convert_judgment(raw, bench, report, None), report=report, on_bad_row="skip"):
            assert sample is not None
            kept.setdefault(name, []).append({k: raw.row[k] for k in ("question_id", "model", "judgment", "score")})
            graded_models.add(sample.answers[0].model or "")
            report.samples_built += 1
    if out.exists():
        shutil.rmtree(out)
    _write_gzip_jsonl(out / "question.jsonl.gz", ({"question_id": q, "category": bench.categories[q], "turns": [text]}
                                                   for q, text in bench.questions.items()))
    _write_gzip_jsonl(out / "reference_answer" / f"{REFERENCE_MODEL}.jsonl.gz",
                      ({"question_id": q, "choices": [{"turns": [text]}]} for q, text in bench.references.items()))
    model_id_of = {file_name: model_id for model_id, file_name in bench.model_ids.items()}
    for model in sorted(graded_models):
        _write_gzip_jsonl(out / "model_answer" / f"{model}.jsonl.gz",
                          ({"question_id": q, "model_id": model_id_of.get(model, model), "choices": [{"turns": [text]}]}
                           for q, text in bench.answers[model].items()))
    for name, rows in kept.items():
        _write_gzip_jsonl(out / "model_judgment" / f"{name}.jsonl.gz", rows)
    if (root / "LICENSE").is_file():
        shutil.copyfile(root / "LICENSE", out / "LICENSE")
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m judgetrain_data_prep.arena_bench compact SOURCE_DIR OUT_DIR``: write the compact copy."""
    parser = argparse.ArgumentParser(prog="python -m judgetrain_data_prep.arena_bench", description=main.__doc__)
    parser.add_argument("action", choices=["compact"])
    parser.add_argument("source", help="the original arena-bench-v1 bench dir")
    parser.add_argument("out", help="where to write the compact copy (replaced)")
    args = parser.parse_args(argv)
    report = write_compact_copy(args.source, args.out)
    print(json.dumps(report.to_dict(), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
