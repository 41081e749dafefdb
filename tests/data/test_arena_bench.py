"""The arena_bench reader: arena-bench-v1's GPT-4 grades (../shared/data/arena-bench-v1 and the copy
shipped in the package) into reference-guided single-grading samples, its bad rows, its held-out split,
pairs from its grades, a hub dataset id (from the hub cache, offline) and ``judgetrain prep``."""

from __future__ import annotations

import gzip
import itertools
import json
import random
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from judgetrain import formats, plugins
from judgetrain.cli import main
from judgetrain.data.prepared import Manifest, read_samples
from judgetrain.data.rows import ReadReport, iter_rows
from judgetrain_data_prep import arena_bench

GRADED_MODELS = {
    "Llama-2-70b-chat", "Mistral-7B-Instruct-v0.1", "Mixtral-8x7B-Instruct-v0.1", "Starling-LM-7B-alpha", "claude-1",
    "claude-2.1", "claude-instant-1", "gpt-3.5-turbo-1106", "gpt-3.5-turbo", "gpt-4-0314", "gpt-4-1106-preview",
    "llama-13b", "openchat_3.5", "palm-2-chat-bison-001", "vicuna-33b-v1.3"}
"""The answer files with grades (vicuna-7b-v1.5 and vicuna-13b-v1.5 have answers only)."""


def read(input, **kwargs):
    report = ReadReport(source="arena_bench")
    samples = list(plugins.reader("arena_bench").read(str(input), report=report, **kwargs))
    return samples, report


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def original(shared_data) -> Path:
    root = shared_data / "arena-bench-v1"
    if not root.is_dir():
        pytest.skip(f"arena-bench-v1 is not in the shared data ({root})")
    return root


@pytest.fixture(scope="module")
def original_read(original):
    return read(original, on_bad_row="skip")


# --- the original dir ----------------------------------------------------------------------------


def test_original_dir_reads_into_reference_guided_single_grades(original, original_read):
    samples, report = original_read
    questions = {r["question_id"]: r["turns"][0] for r in jsonl(original / "question.jsonl")}
    references = {r["question_id"]: r["choices"][0]["turns"][0] for r in jsonl(original / "reference_answer" / "gpt-4.jsonl")}
    answers, file_of_model = {}, {}
    for path in (original / "model_answer").glob("*.jsonl"):
        rows = jsonl(path)
        answers[path.stem] = {r["question_id"]: r["choices"][0]["turns"][0] for r in rows}
        file_of_model.update({r["model_id"]: path.stem for r in rows} | {path.stem: path.stem})
    # What each judgment row should give, decided here from the raw rows: its grade is a score of the
    # texts the dir holds only when its prompt shows them.
    expected_skips: Counter[str] = Counter()
    kept = {}
    for path in sorted((original / "model_judgment").glob("*.jsonl")):
        for row in jsonl(path):
            model = file_of_model[row["model"]]
            answer, reference = answers[model][row["question_id"]], references[row["question_id"]]
            if row["score"] is None:
                expected_skips["no grade"] += 1
            elif answer not in row["user_prompt"]:
                expected_skips["answer mismatch"] += 1
            elif reference not in row["user_prompt"]:
                expected_skips["reference mismatch"] += 1
            else:
                kept[f"arena_bench:{model}:{row['question_id']}"] = row
    assert report.skipped == dict(expected_skips)
    assert sum(expected_skips.values()) + len(kept) == 4500
    assert [s.id for s in samples] == list(kept)
    grader = formats.get("mtbench-single-math-v1")
    for sample in samples:
        row = kept[sample.id]
        question_id = sample.meta["question_id"]
        assert sample.question == questions[question_id] and sample.reference == references[question_id]
        assert sample.answers[0].text == answers[sample.answers[0].model][question_id]
        assert sample.labels["gpt4"].scores == (float(row["score"]),) and sample.labels["gpt4"].scale == (1.0, 10.0)
        assert sample.judgment_with_reference == row["judgment"] and sample.judgment is None
        assert sample.meta["split_group"] == question_id and sample.meta["judgment_format"] == grader.name
        # Rendered with FastChat's reference-guided single prompt, the sample shows GPT-4's own prompt
        # (after FastChat's instruction) and trains on GPT-4's critique.
        system, user, target = grader.render(sample)
        assert user["content"].endswith("\n\n" + row["user_prompt"]) and target["content"] == row["judgment"]
    assert {s.answers[0].model for s in samples} == GRADED_MODELS


def test_judgment_files_are_matched_to_answers_by_their_model(original, original_read):
    samples, _ = original_read
    per_model = Counter(s.answers[0].model for s in samples)
    # gpt-4-turbo.jsonl grades gpt-4-1106-preview's answers, the "judge_any" file llama-13b's, and the
    # Mistral files name their model by its hub id (the answer file's model_id).
    for judgment_file, model in (("gpt-4-turbo", "gpt-4-1106-preview"), ("arena-bench-judgment_judge_any", "llama-13b"),
                                 ("Mistral-7B-Instruct-v0.1", "Mistral-7B-Instruct-v0.1")):
        assert (original / "model_judgment" / f"{judgment_file}.jsonl").is_file()
        assert 0 < per_model[model] <= 300
    assert "gpt-4-turbo" not in per_model and "arena-bench-judgment_judge_any" not in per_model


def test_bad_rows_stop_the_read_naming_file_line_and_field(original):
    with pytest.raises(ValueError, match=r"model_judgment/Llama-2-70b-chat\.jsonl:\d+: user_prompt: does not show the "
                                         r"(answer|reference) of .*--on-bad-row skip"):
        read(original)


# --- the shipped copy ----------------------------------------------------------------------------


def test_shipped_copy_gives_the_same_samples(original_read):
    samples, _ = original_read
    shipped, report = read(arena_bench.SHIPPED_DIR)  # the default policy: the shipped copy has no bad row
    assert [s.to_dict() for s in shipped] == [s.to_dict() for s in samples]
    assert report.rows_skipped == 0
    assert report.notes["judgments without user_prompt (answer and reference not checked against the judge's prompt)"] == len(shipped)


def test_shipped_copy_is_what_write_compact_copy_makes(original, tmp_path):
    made = tmp_path / "arena_bench_v1"
    report = arena_bench.write_compact_copy(original, made)
    assert report.samples_built + report.rows_skipped == 4500
    shipped_files = sorted(p.relative_to(arena_bench.SHIPPED_DIR) for p in arena_bench.SHIPPED_DIR.rglob("*") if p.is_file())
    assert shipped_files == sorted(p.relative_to(made) for p in made.rglob("*") if p.is_file())
    for relative in shipped_files:
        assert (made / relative).read_bytes() == (arena_bench.SHIPPED_DIR / relative).read_bytes(), relative
    assert (arena_bench.SHIPPED_DIR / "LICENSE").read_bytes() == (original / "LICENSE").read_bytes()
    assert all(p.suffix == ".gz" for p in shipped_files if p.name != "LICENSE")
    assert sum((arena_bench.SHIPPED_DIR / p).stat().st_size for p in shipped_files) < 8 * 2**20
    # Only the fields the reader reads are kept.
    judgment = json.loads(gzip.decompress((made / "model_judgment" / "claude-1.jsonl.gz").read_bytes()).splitlines()[0])
    assert sorted(judgment) == ["judgment", "model", "question_id", "score"]


def test_shipped_copy_is_attributed():
    attribution = (Path(arena_bench.SHIPPED_DIR).parent / "quickstart" / "ATTRIBUTION.md").read_text()
    assert "arena_bench_v1/" in attribution and "4a705dd6963f777aba2ae79259e3013934e6e012" in attribution
    assert "Apache-2.0" in attribution
    assert (arena_bench.SHIPPED_DIR / "LICENSE").read_text().lstrip().startswith("Apache License")


# --- the held-out split --------------------------------------------------------------------------


def test_heldout_split_holds_out_a_tenth_of_the_questions_by_id():
    all_samples, _ = read(arena_bench.SHIPPED_DIR)
    train, train_report = read(arena_bench.SHIPPED_DIR, split="train")
    heldout, _ = read(arena_bench.SHIPPED_DIR, split="heldout")
    question_ids = [r["question_id"] for r in jsonl_gz(arena_bench.SHIPPED_DIR / "question.jsonl.gz")]
    held_ids = arena_bench.heldout_question_ids(question_ids)
    assert len(question_ids) == 300 and len(held_ids) == 30
    assert {s.meta["question_id"] for s in heldout} == held_ids
    assert not {s.meta["question_id"] for s in train} & held_ids
    assert sorted(s.id for s in train + heldout) == sorted(s.id for s in all_samples)
    assert train_report.notes["questions in split train"] == 270
    # The rule depends on the ids alone, not on their order.
    shuffled = list(question_ids)
    random.Random(3).shuffle(shuffled)
    assert arena_bench.heldout_question_ids(shuffled) == held_ids
    assert arena_bench.heldout_question_ids(question_ids[:100]) != held_ids  # it is a tenth of what is given
    with pytest.raises(ValueError, match="splits are train, heldout"):
        read(arena_bench.SHIPPED_DIR, split="test")


def jsonl_gz(path: Path) -> list[dict]:
    return [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines() if line.strip()]


# --- pairs from grades ---------------------------------------------------------------------------


def test_pairs_from_grades_on_arena_bench():
    graded, _ = read(arena_bench.SHIPPED_DIR)
    by_question: dict[str, list] = defaultdict(list)
    for sample in graded:
        by_question[sample.meta["question_id"]].append(sample)
    expected = {f"pairs-from-grades:{a.id}|{b.id}": (a, b) for group in by_question.values()
                for a, b in itertools.combinations(group, 2)}
    report = ReadReport()
    pairs = list(plugins.reader("pairs-from-grades").read(str(arena_bench.SHIPPED_DIR), report=report, grades_from="arena_bench"))
    assert [p.id for p in pairs] == list(expected)
    for pair in pairs:
        first, second = expected[pair.id]
        grade_a, grade_b = first.labels["gpt4"].scores[0], second.labels["gpt4"].scores[0]
        label = pair.labels["gpt4"]
        assert label.scores == (grade_a, grade_b)
        assert label.winner == ("A" if grade_a > grade_b else "B" if grade_b > grade_a else "tie")
        assert pair.answers == (first.answers[0], second.answers[0]) and pair.question == first.question
        # Reference-guided pairs: the question's GPT-4 reference answer stays on the pair.
        assert pair.reference == first.reference == second.reference
        assert pair.meta["split_group"] == pair.meta["question_id"] == first.meta["question_id"]
    ties = sum(p.labels["gpt4"].winner == "tie" for p in pairs)
    dropped = ReadReport()
    decisive = list(plugins.reader("pairs-from-grades").read(str(arena_bench.SHIPPED_DIR), report=dropped,
                                                             grades_from="arena_bench", ties="drop"))
    assert len(decisive) == len(pairs) - ties and dropped.notes["tied pairs left out (ties=drop)"] == ties
    # --split goes to the grades' reader: the held-out questions' pairs are the rest of them.
    held = list(plugins.reader("pairs-from-grades").read(str(arena_bench.SHIPPED_DIR), split="heldout", report=ReadReport(),
                                                         grades_from="arena_bench"))
    trained = list(plugins.reader("pairs-from-grades").read(str(arena_bench.SHIPPED_DIR), split="train", report=ReadReport(),
                                                            grades_from="arena_bench"))
    assert sorted(p.id for p in held + trained) == sorted(expected)
    assert not {p.meta["question_id"] for p in held} & {p.meta["question_id"] for p in trained}


# --- a small bench dir: bad rows ------------------------------------------------------------------


def _prompt(question: str, reference: str, answer: str) -> str:
    return (f"[Question]\n{question}\n\n[The Start of Reference Answer]\n{reference}\n[The End of Reference Answer]\n\n"
            f"[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]")


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def small_bench_dir(root: Path, bad: dict | None = None) -> Path:
    """Two questions, two models (one named by a model_id unlike its file name), all four graded; ``bad``
    replaces fields of the last judgment row."""
    questions = {"q1": "What is 2 + 2?", "q2": "Name a prime above 10."}
    references = {"q1": "4", "q2": "11 is a prime above 10."}
    answers = {"alpha": {"q1": "2 + 2 = 4.", "q2": "12."}, "beta": {"q1": "5", "q2": "13 is prime."}}
    _write(root / "question.jsonl", [{"question_id": q, "category": "arena-bench-v1", "turns": [t]} for q, t in questions.items()])
    _write(root / "reference_answer" / "gpt-4.jsonl", [{"question_id": q, "choices": [{"turns": [t]}]} for q, t in references.items()])
    for model, model_id in (("alpha", "alpha"), ("beta", "org/beta-chat")):
        _write(root / "model_answer" / f"{model}.jsonl",
               [{"question_id": q, "model_id": model_id, "choices": [{"turns": [t]}]} for q, t in answers[model].items()])
    grades = {("alpha", "q1"): 9, ("alpha", "q2"): 2, ("beta", "q1"): 1, ("beta", "q2"): 9}
    for model, graded_as in (("alpha", "alpha"), ("beta", "org/beta-chat")):
        rows = [{"question_id": q, "model": graded_as, "score": grades[model, q],
                 "judgment": f"Compared with the reference. Rating: [[{grades[model, q]}]]",
                 "user_prompt": _prompt(questions[q], references[q], answers[model][q])} for q in ("q1", "q2")]
        if model == "beta" and bad:
            rows[-1].update(bad)
        _write(root / "model_judgment" / f"{'judge_beta' if model == 'beta' else model}.jsonl", rows)
    return root


def test_small_bench_dir_reads_every_grade(tmp_path):
    samples, report = read(small_bench_dir(tmp_path / "bench"))
    assert [(s.answers[0].model, s.meta["question_id"], s.labels["gpt4"].scores[0]) for s in samples] == [
        ("alpha", "q1", 9.0), ("alpha", "q2", 2.0), ("beta", "q1", 1.0), ("beta", "q2", 9.0)]
    assert samples[3].answers[0].text == "13 is prime." and samples[3].reference == "11 is a prime above 10."
    assert report.schemas == {"fastchat-bench-single-grades": 4} and report.rows_skipped == 0


@pytest.mark.parametrize("bad,reason,message", [
    ({"score": None}, "no grade", r"score: null"),
    ({"score": 12}, "label out of range", r"score: 12 is outside the scale \[1, 10\]"),
    ({"score": 8}, "grade mismatch", r"judgment: its rating 9 differs from score 8"),
    ({"judgment": "Compared with the reference; no rating given."}, "unparseable grade", r"judgment: no rating in double brackets"),
    ({"user_prompt": _prompt("Name a prime above 10.", "11 is a prime above 10.", "17.")}, "answer mismatch",
     r"user_prompt: does not show the answer of model_answer/beta\.jsonl for question 'q2'"),
    ({"user_prompt": _prompt("Name a prime above 10.", "13.", "13 is prime.")}, "reference mismatch",
     r"user_prompt: does not show the reference of reference_answer/gpt-4\.jsonl"),
    ({"model": "gamma"}, "no answer", r"model: no file in .*model_answer is named 'gamma'"),
    ({"question_id": "q9"}, "unknown question", r"question_id: 'q9' is not in"),
])
def test_a_bad_judgment_row_names_file_line_and_field_or_is_counted(tmp_path, bad, reason, message):
    root = small_bench_dir(tmp_path / "bench", bad)
    with pytest.raises(ValueError, match=rf"model_judgment/judge_beta\.jsonl:2: {message}.*--on-bad-row skip"):
        read(root)
    samples, report = read(root, on_bad_row="skip")
    assert len(samples) == 3 and report.skipped == {reason: 1}
    assert report.skipped_examples[reason][0].startswith(f"{root / 'model_judgment' / 'judge_beta.jsonl'}:2: ")


def test_not_a_bench_dir_is_an_actionable_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"needs question\.jsonl, reference_answer/gpt-4\.jsonl, model_answer/<model>\.jsonl"):
        read(tmp_path / "empty")
    with pytest.raises(ValueError, match="takes no options"):
        read(tmp_path / "empty", models="alpha")


def test_gzip_jsonl_lines_are_numbered_like_plain_ones(tmp_path):
    path = tmp_path / "rows.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}\n{"a": \n{"a": 3}\n'))
    with pytest.raises(ValueError, match=r"rows\.jsonl\.gz:2: invalid JSON"):
        list(iter_rows(path))
    report = ReadReport()
    assert [r.row["a"] for r in iter_rows(path, report=report, on_bad_row="skip")] == [1, 3]
    assert report.skipped == {"invalid JSON": 1}


# --- a hub dataset id ----------------------------------------------------------------------------


def test_hub_dataset_id_reads_the_bench_dir_from_the_hub_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    # The hub cache layout huggingface_hub itself reads offline (HF_HUB_OFFLINE=1 in these tests).
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "datasets--judgetrain-tests--arena-bench-tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    small_bench_dir(repo / "snapshots" / commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    local, _ = read(small_bench_dir(tmp_path / "local"))
    from_hub, report = read("judgetrain-tests/arena-bench-tiny", split="train")
    held_out = arena_bench.heldout_question_ids(["q1", "q2"])
    assert [s.to_dict() for s in from_hub] == [s.to_dict() for s in local if s.meta["question_id"] not in held_out]
    assert report.hub_inputs == [{"dataset": "judgetrain-tests/arena-bench-tiny", "revision": commit, "files": "bench dir"}]
    with pytest.raises(ValueError, match="could not be fetched .*download the bench dir and pass its path"):
        read("judgetrain-tests/not-cached")


# --- judgetrain prep -----------------------------------------------------------------------------


def test_prep_writes_the_held_out_samples_with_their_critiques(tmp_path):
    out = tmp_path / "heldout"
    assert main(["prep", "--source", "arena_bench", "--input", str(arena_bench.SHIPPED_DIR), "--split", "heldout",
                 "--out", str(out), "--format", "mtbench-single-math-v1"]) == 0
    manifest = Manifest.read(out)
    samples = read_samples(out)
    heldout, _ = read(arena_bench.SHIPPED_DIR, split="heldout")
    assert manifest.rows_written == len(samples) == len(heldout) and manifest.rows_skipped == 0
    assert [s.to_dict() for s in samples] == [s.to_dict() for s in heldout]
    shutil.rmtree(out)
