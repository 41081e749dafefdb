"""Every reader on the real judge data in ../shared/data and on the hand-written fixtures of hub-only schemas."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from judgetrain import plugins
from judgetrain.data.prepared import Manifest, SamplesSection, read_samples, write_samples
from judgetrain.data.rows import ReadReport, iter_hub_rows, iter_rows, local_row_files
from judgetrain.types import JudgeSample

FIXTURES = Path(__file__).resolve().parents[1] / "assets" / "fixtures"


def read(source: str, input, **options) -> tuple[list[JudgeSample], ReadReport]:
    report = ReadReport(source=source)
    samples = list(plugins.reader(source).read(str(input), report=report, **options))
    return samples, report


def winners(samples, key) -> Counter:
    return Counter(s.labels[key].winner for s in samples)


def raw_rows(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if text.lstrip().startswith("[") else [json.loads(line) for line in text.splitlines() if line.strip()]


# --- the registry ------------------------------------------------------------------------------


def test_every_registered_source_has_a_reader():
    sources = plugins.names(plugins.READERS)
    assert set(sources) == {"judgelm", "alpaca_eval", "autoj", "pandalm", "prometheus", "llmbar", "judgebench", "mtbench", "jsonl",
                            "pairs-from-grades", "arena_bench"}
    for name in sources:
        module = plugins.reader(name)
        assert module.__name__.startswith("judgetrain_data_prep."), name
        assert callable(module.read), name
    with pytest.raises(ValueError, match=r"unknown data source \(--source\) 'pandalmm'\. Did you mean pandalm"):
        plugins.reader("pandalmm")


# --- PandaLM -----------------------------------------------------------------------------------


def test_pandalm_test_set_counts_and_majority_labels(shared_data):
    samples, report = read("pandalm", shared_data / "pandalm" / "testset-v1.json")
    assert len(samples) == 999 and report.rows_read == 999 and report.rows_skipped == 0
    assert report.schemas == {"pandalm-test": 999}
    assert winners(samples, "human_majority") == Counter({"tie": 105, "A": 422, "B": 472})
    rows = raw_rows(shared_data / "pandalm" / "testset-v1.json")
    vote = {0: "tie", 1: "A", 2: "B"}
    for sample, row in zip(samples, rows):
        for k in ("annotator1", "annotator2", "annotator3"):
            assert sample.labels[k].winner == vote[row[k]]
        # instruction + blank line + input, the input only when there is one
        expected = row["instruction"] + ("\n\n" + row["input"] if row["input"].strip() else "")
        assert sample.question == expected
        assert [a.model for a in sample.answers] == row["cmp_key"].split("_")
    # The six responses stored as JSON booleans are read as text and counted, not dropped.
    assert sum(report.notes.values()) == 6
    assert all(isinstance(a.text, str) for s in samples for a in s.answers)


def test_pandalm_training_fixtures_both_layouts():
    nested, report = read("pandalm", FIXTURES / "pandalm_train_sample.jsonl")
    assert report.schemas == {"pandalm-train": 3}
    assert [s.labels["gpt35"].winner for s in nested] == ["tie", "A", "B"]
    assert nested[1].question == "Convert 5 kilometres to metres."  # empty input: no blank line
    assert nested[0].question == "Find an example of the given kind of data\n\nQualitative data"
    assert nested[0].judgment.startswith("Both responses are correct")
    assert nested[0].reference is None and nested[0].meta["reference_response"].startswith("An example")
    assert all(s.meta["judgment_format"] == "pandalm-v1" for s in nested)
    flat, report = read("pandalm", FIXTURES / "pandalm_train_flat_sample.jsonl")
    assert report.schemas == {"pandalm-train-flat": 3}
    assert [s.labels["gpt35"].winner for s in flat] == ["A", "B", "tie"]
    assert flat[0].judgment == "Response 1 gives the antonym; warm is not the opposite of hot."
    assert flat[0].meta["reference_response"] == "cold" and "reference_response" not in flat[2].meta


# --- Auto-J ------------------------------------------------------------------------------------


def test_autoj_pairwise_test_counts_and_labels(shared_data):
    samples, report = read("autoj", shared_data / "auto-j" / "test" / "testdata_pairwise.jsonl")
    assert len(samples) == 1392 and report.schemas == {"autoj-pairwise-test": 1392}
    assert winners(samples, "human") == Counter({"A": 520, "B": 499, "tie": 373})
    assert len({s.scenario for s in samples}) == 58


def test_autoj_single_training_reads_query_and_response_out_of_the_prompt(shared_data):
    single_prompt = json.loads((FIXTURES / "autoj_prompts.json").read_text(encoding="utf-8"))["single"]
    path = shared_data / "auto-j" / "training" / "single_traindata.jsonl"
    samples, report = read("autoj", path)
    assert len(samples) == 960 and report.schemas == {"autoj-single-train": 960}
    for sample, row in zip(samples, raw_rows(path)):
        assert sample.protocol == "single"
        # The parsed query and response rebuild the published prompt byte for byte.
        assert single_prompt.format(prompt=sample.question, response=sample.answers[0].text) == row["usrmsg"]
        assert sample.judgment == row["target_output"]
        rating = float(re.findall(r"Rating: \[\[([\d.]+)\]\]", row["target_output"])[-1])
        assert sample.labels["gpt4"].scores == (rating,) == (float(row["pred_score"]),)
        assert sample.labels["gpt4"].scale == (1.0, 10.0)
        assert sample.meta["judgment_format"] == "autoj-single-v1"


def test_autoj_pairwise_training_fixture():
    samples, report = read("autoj", FIXTURES / "autoj_pairwise_train_sample.jsonl")
    assert report.schemas == {"autoj-pairwise-train": 4}
    assert [s.labels["human"].winner for s in samples] == ["A", "B", "tie", "tie"]
    assert [s.labels["gpt4"].winner for s in samples] == ["A", "B", "tie", "B"]
    assert samples[0].question == "How do I boil an egg?"
    assert samples[0].answers[1].text == "Eggs are a good source of protein."
    assert samples[0].judgment.endswith("Response 2 does not.")
    assert all(s.meta["judgment_format"] == "autoj-pairwise-v1" for s in samples)


# --- LLMBar / JudgeBench -------------------------------------------------------------------------

LLMBAR_SETS = {
    "LLMBar/Natural": 100,
    "LLMBar/Adversarial/Neighbor": 134,
    "LLMBar/Adversarial/GPTInst": 92,
    "LLMBar/Adversarial/GPTOut": 47,
    "LLMBar/Adversarial/Manual": 46,
    "CaseStudy/Constraint": 89,
    "CaseStudy/Negation": 59,
    "CaseStudy/Normal": 59,
    "CaseStudy/Base_9": 54,
    "CaseStudy/Base_10": 54,
    "Processed/FairEval": 66,
    "Processed/LLMEval^2": 200,
    "Processed/MT-Bench": 200,
}


@pytest.mark.parametrize("subset,size", sorted(LLMBAR_SETS.items()))
def test_llmbar_set_sizes_and_gold_labels(shared_data, subset, size):
    path = shared_data / "llmbar" / "Dataset" / subset / "dataset.json"
    samples, _ = read("llmbar", path)
    assert len(samples) == size
    assert {s.category for s in samples} == {subset}
    expected = Counter({1: "A", 2: "B"}[row["label"]] for row in raw_rows(path))
    assert winners(samples, "gold") == expected and "tie" not in expected


def test_llmbar_whole_directory_has_unique_ids(shared_data):
    samples, report = read("llmbar", shared_data / "llmbar" / "Dataset")
    assert len(samples) == sum(LLMBAR_SETS.values()) == report.rows_read
    assert len({s.id for s in samples}) == len(samples)


@pytest.mark.parametrize("model,size", [("gpt-4o-2024-05-13", 350), ("claude-3-5-sonnet-20240620", 270)])
def test_judgebench_sizes_and_objective_labels(shared_data, model, size):
    path = shared_data / "judgebench" / "data" / f"dataset=judgebench,response_model={model}.jsonl"
    samples, _ = read("judgebench", path)
    assert len(samples) == size
    assert winners(samples, "gold") == Counter({"A>B": "A", "B>A": "B"}[row["label"]] for row in raw_rows(path))
    assert {a.model for s in samples for a in s.answers} == {model}


# --- Prometheus ---------------------------------------------------------------------------------


def _prometheus_prompt(head: str, sample: JudgeSample, answer: int = 0) -> str:
    from judgetrain_data_prep import prometheus as p

    out = head + p.INSTRUCTION_HEADER + sample.question + "\n\n" + p.RESPONSE_HEADER + sample.answers[answer].text + "\n\n"
    if sample.reference is not None:
        out += p.REFERENCE_HEADER + sample.reference + "\n\n"
    return out + p.RUBRIC_HEADER + sample.rubric + "\n\n" + p.FEEDBACK_HEADER


@pytest.mark.parametrize("name", ["mt_bench_eval.json", "vicuna_eval.json"])
def test_prometheus_absolute_sets(shared_data, name):
    from judgetrain_data_prep.prometheus import INSTRUCTION_HEADER

    path = shared_data / "prometheus-eval" / name
    samples, report = read("prometheus", path)
    assert len(samples) == 320 and report.schemas == {"prometheus-absolute": 320}
    for sample, row in zip(samples, raw_rows(path)):
        head = row["instruction"][: row["instruction"].find(INSTRUCTION_HEADER)]
        assert _prometheus_prompt(head, sample) == row["instruction"]  # the parts rebuild the prompt exactly
        assert sample.reference is not None and sample.rubric.startswith("[")
        grades = [float(g) for g in row["gpt4_score"]]
        assert sample.labels["gpt4"].scores == (pytest.approx(sum(grades) / 3),)
        assert [sample.labels[f"gpt4_{i}"].scores[0] for i in (1, 2, 3)] == grades
        assert sample.judgment == row["gpt4_feedback"][0] and sample.meta["judgment_label"] == "gpt4_1"
    if name == "mt_bench_eval.json":
        assert all(len(s.meta["dialogue"]["user_turns"]) == 2 for s in samples)


def test_prometheus_hhh_pairs_chosen_first(shared_data):
    from judgetrain_data_prep.prometheus import INSTRUCTION_HEADER

    path = shared_data / "prometheus-eval" / "hhh_alignment_eval.json"
    samples, report = read("prometheus", path)
    assert len(samples) == 221 and report.schemas == {"prometheus-hhh": 221}
    assert winners(samples, "human") == Counter({"A": 221})
    assert Counter(s.category for s in samples) == Counter({"honest": 61, "helpful": 59, "harmless": 58, "other": 43})
    for sample, row in zip(samples, raw_rows(path)):
        head = row["chosen_instruction"][: row["chosen_instruction"].find(INSTRUCTION_HEADER)]
        assert _prometheus_prompt(head, sample, 0) == row["chosen_instruction"]
        assert _prometheus_prompt(head, sample, 1) == row["rejected_instruction"]


def test_pairs_from_grades_on_prometheus_vicuna(shared_data):
    path = shared_data / "prometheus-eval" / "vicuna_eval.json"
    singles, _ = read("prometheus", path)
    pairs, report = read("pairs-from-grades", path)
    assert len(pairs) == 80 * 6  # 4 graded answers per question → 6 pairs each
    assert report.rows_read == 320 and report.notes["graded answers read"] == 320
    by_id = {s.id: s for s in singles}
    for pair in pairs:
        first, second = (by_id[i] for i in pair.meta["pair_of"])
        s1, s2 = first.labels["gpt4"].scores[0], second.labels["gpt4"].scores[0]
        label = pair.labels["gpt4"]
        assert label.scores == (s1, s2)
        assert label.winner == ("tie" if s1 == s2 else "A" if s1 > s2 else "B")
        assert pair.question == first.question == second.question
    loose, _ = read("pairs-from-grades", path, tie_threshold="1")
    assert winners(loose, "gpt4")["tie"] == sum(abs(p.labels["gpt4"].scores[0] - p.labels["gpt4"].scores[1]) <= 1 for p in pairs)
    assert winners(loose, "gpt4")["tie"] > winners(pairs, "gpt4")["tie"]


def test_pairs_from_grades_builds_multi_turn_pairs_from_mt_bench(shared_data):
    pairs, _ = read("pairs-from-grades", shared_data / "prometheus-eval" / "mt_bench_eval.json")
    assert len(pairs) == 80 * 6
    for pair in pairs:
        assert pair.turn == 2 and len(pair.question_turns) == 2
        assert all(len(a.turns) == 2 for a in pair.answers)
        assert pair.answers[0].model != pair.answers[1].model


# --- MT-bench ------------------------------------------------------------------------------------


def test_mtbench_fastchat_answers_into_pairs(shared_data):
    root = shared_data / "fastchat_mt_bench"
    models = ["alpaca-13b", "claude-v1", "gpt-4"]
    samples, report = read("mtbench", root, models=",".join(models))
    assert len(samples) == 80 * 3 * 2  # questions × model pairs × judged turns
    assert report.schemas == {"fastchat-answers": 1}
    questions = {row["question_id"]: row for row in raw_rows(root / "question.jsonl")}
    gpt4 = {row["question_id"]: row["choices"][0]["turns"] for row in raw_rows(root / "model_answer" / "gpt-4.jsonl")}
    for sample in samples:
        question = questions[sample.meta["question_id"]]
        assert list(sample.question) == question["turns"] and sample.turn in (1, 2)
        assert (sample.reference is not None) == (question["category"] in ("math", "reasoning", "coding"))
        for answer in sample.answers:
            if answer.model == "gpt-4":
                assert list(answer.text) == gpt4[sample.meta["question_id"]]
    assert sum(s.reference is not None for s in samples) == 30 * 3 * 2


def test_mtbench_human_judgments_fixture():
    samples, report = read("mtbench", FIXTURES / "mt_bench_human_judgments_sample.jsonl")
    assert report.schemas == {"mt-bench-human-judgments": 6}
    assert [next(iter(s.labels.values())).winner for s in samples] == ["A", "A", "B", "tie", "tie", "A"]
    assert [next(iter(s.labels)) for s in samples] == ["human"] * 5 + ["gpt4"]
    assert [s.turn for s in samples] == [1, 2, 1, 2, 2, 2]
    assert samples[4].meta["tie_kind"] == "bothbad" and "tie_kind" not in samples[3].meta
    assert samples[5].meta["judge"] == "gpt-4/pair-v2-multi-turn"
    assert samples[0].question == ("Compose a two-line poem about the sea.", "Now rewrite it so that every line starts with the letter S.")
    assert samples[0].answers[1].turns == ("Waves.", "Sea waves.")


def _gpt4_pair_rows(winners: list[str]) -> list[dict]:
    """Rows shaped like the ``gpt4_pair`` split of lmsys/mt_bench_human_judgments: the fixture's GPT-4
    row (judge ``["gpt-4", "pair-v2-multi-turn"]``) once per winner."""
    gpt4_row = raw_rows(FIXTURES / "mt_bench_human_judgments_sample.jsonl")[5]
    return [{**gpt4_row, "question_id": 81 + i, "winner": winner} for i, winner in enumerate(winners)]


def test_mtbench_gpt4_pair_inconsistent_tie_is_a_tie_of_its_kind(tmp_path):
    # GPT-4's two orders disagreed: FastChat counts "tie (inconsistent)" as a tie.
    path = tmp_path / "gpt4_pair.jsonl"
    rows = _gpt4_pair_rows(["tie (inconsistent)", "model_a", "tie", "tie (bothbad)", "model_b"])
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    samples, report = read("mtbench", path)
    assert report.rows_read == 5 and report.rows_skipped == 0
    assert [s.labels["gpt4"].winner for s in samples] == ["tie", "A", "tie", "tie", "B"]
    assert [s.meta.get("tie_kind") for s in samples] == ["inconsistent", None, None, "bothbad", None]


def test_mtbench_vote_winner_neither_a_model_nor_a_tie_names_file_line_and_field(tmp_path):
    path = tmp_path / "gpt4_pair.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _gpt4_pair_rows(["tie (inconsistent)", "model_c"])))
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}:2: winner: expected one of 'model_a', 'model_b', 'tie'.*got 'model_c'"):
        read("mtbench", path)


# --- JudgeLM -------------------------------------------------------------------------------------


def test_judgelm_fixture_labels_and_teacher_errors():
    samples, report = read("judgelm", FIXTURES / "judgelm_100k_sample.jsonl")
    assert report.rows_read == 5 and len(samples) == 4
    assert report.skipped == {"teacher error": 1} and ":4:" in report.skipped_examples["teacher error"][0]
    assert winners(samples, "gpt4") == Counter({"B": 1, "A": 2, "tie": 1})
    first = samples[0]
    assert first.labels["gpt4"].scores == (3.0, 9.0) and first.labels["gpt4_with_reference"].scores == (2.0, 10.0)
    assert first.judgment.startswith("3 9\n") and first.judgment_with_reference.startswith("2 10\n")
    assert first.reference == "Canberra is the capital city of Australia."
    assert [a.model for a in first.answers] == ["alpaca-native", "vicuna-13b"]
    assert first.meta["judgment_format"] == "judgelm-v1"


def test_judgelm_teacher_error_skipped_even_when_errors_are_fatal(tmp_path):
    path = tmp_path / "err.jsonl"
    path.write_text((FIXTURES / "judgelm_100k_sample.jsonl").read_text().splitlines()[3] + "\n")
    samples, report = read("judgelm", path)
    assert samples == [] and report.rows_skipped == 1


# --- jsonl ---------------------------------------------------------------------------------------


def test_jsonl_field_mapping(tmp_path):
    path = tmp_path / "mine.jsonl"
    rows = [
        {"uid": "q1", "prompt": "2+2?", "a": "4", "b": "5", "pref": 1, "sa": 9, "sb": 2, "why": "Answer A is right."},
        {"uid": "q2", "prompt": "Capital of France?", "a": "Lyon", "b": "Paris", "pref": 2, "sa": 1, "sb": 10, "why": "Answer B is right."},
        {"uid": "q3", "prompt": "Colour of snow?", "a": "white", "b": "White.", "pref": 0, "sa": 9, "sb": 9, "why": "Both are right."},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fields = {
        "id": "uid", "question": "prompt", "answers": "a,b", "winner": "pref", "winner_values": "1:A,2:B,0:tie",
        "scores": "sa,sb", "scale": "1,10", "label": "human", "judgment": "why", "judgment_format": "judgelm-v1",
    }
    samples, report = read("jsonl", path, fields=fields)
    assert report.schemas == {"mapped": 3}
    assert [s.labels["human"].winner for s in samples] == ["A", "B", "tie"]
    assert samples[1].labels["human"].scores == (1.0, 10.0) and samples[1].id == "jsonl:mine:q2"
    assert samples[0].judgment == "Answer A is right." and samples[0].meta["judgment_format"] == "judgelm-v1"
    # A YAML file holds the same mapping.
    yaml_path = tmp_path / "map.yaml"
    yaml_path.write_text("".join(f"{k}: '{v}'\n" for k, v in fields.items()))
    from_yaml, _ = read("jsonl", path, fields=str(yaml_path))
    assert from_yaml == samples


def test_jsonl_without_mapping_reads_canonical_samples_back(tmp_path, shared_data):
    samples, _ = read("llmbar", shared_data / "llmbar" / "Dataset" / "LLMBar" / "Natural" / "dataset.json")
    write_samples(samples, tmp_path / "prep")
    again, report = read("jsonl", tmp_path / "prep" / "samples")
    assert again == samples and report.schemas == {"judgesample": len(samples)}


def test_jsonl_mapping_mistakes_are_named(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"q": "hi", "a": "x"}\n')
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['anwsers'\]"):
        read("jsonl", path, fields={"question": "q", "anwsers": "a"})
    with pytest.raises(ValueError, match="scale"):
        read("jsonl", path, fields={"question": "q", "answers": "a", "scores": "s"})


# --- bad input -----------------------------------------------------------------------------------


def _pandalm_row(**changes) -> dict:
    row = {"idx": 0, "motivation_app": "x", "cmp_key": "a_b", "instruction": "Say hi.", "input": "", "response1": "hi", "response2": "hello",
           "annotator1": 1, "annotator2": 1, "annotator3": 0}
    row.update(changes)
    return {k: v for k, v in row.items() if v is not None}


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_malformed_json_line_names_file_and_line(tmp_path):
    path = _write_jsonl(tmp_path / "bad.jsonl", [_pandalm_row(), '{"idx": 1, "instruction": ', _pandalm_row(idx=2)])
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}:2: invalid JSON \(Expecting value"):
        read("pandalm", path)
    samples, report = read("pandalm", path, on_bad_row="skip")
    assert [s.meta["idx"] for s in samples] == [0, 2]
    assert report.skipped == {"invalid JSON": 1} and report.skipped_examples["invalid JSON"][0].startswith(f"{path}:2:")


def test_missing_field_is_named(tmp_path):
    path = _write_jsonl(tmp_path / "missing.jsonl", [_pandalm_row(), _pandalm_row(idx=1, response2=None)])
    with pytest.raises(ValueError, match=r"missing\.jsonl:2: missing required field 'response2'"):
        read("pandalm", path)
    _, report = read("pandalm", path, on_bad_row="skip")
    assert report.skipped == {"missing field": 1}


def test_label_out_of_range_names_the_value(tmp_path):
    path = _write_jsonl(tmp_path / "range.jsonl", [_pandalm_row(annotator2=3)])
    with pytest.raises(ValueError, match=r"range\.jsonl:1: annotator2: expected one of 0, 1, 2 .* got 3"):
        read("pandalm", path)
    bench = _write_jsonl(tmp_path / "jb.jsonl", [{"pair_id": "p", "question": "q", "response_A": "a", "response_B": "b", "label": "A=B"}])
    with pytest.raises(ValueError, match=r"label: expected one of 'A>B', 'B>A'.*got 'A=B'"):
        read("judgebench", bench)
    judgelm = _write_jsonl(tmp_path / "jl.jsonl", [{"question_id": 1, "question_body": "q", "answer1_body": "a", "answer2_body": "b", "text": "11 2\nx", "score": [11, 2]}])
    with pytest.raises(ValueError, match=r"jl\.jsonl:1: score\[0\]: 11 is outside the scale \[1, 10\]"):
        read("judgelm", judgelm)


def test_unknown_schema_lists_the_fields(tmp_path):
    path = _write_jsonl(tmp_path / "other.jsonl", [{"foo": 1}])
    with pytest.raises(ValueError, match=r"other\.jsonl:1: fields \['foo'\] match no Auto-J schema"):
        read("autoj", path)


def test_reader_options_are_checked(shared_data):
    with pytest.raises(ValueError, match="takes no options"):
        read("llmbar", shared_data / "llmbar" / "Dataset", subset="x")
    with pytest.raises(ValueError, match="grades_from: unknown source 'nope'"):
        read("pairs-from-grades", shared_data / "prometheus-eval" / "vicuna_eval.json", grades_from="nope")
    with pytest.raises(ValueError, match=r"no answer file for \['gpt-5'\]"):
        read("mtbench", shared_data / "fastchat_mt_bench", models="gpt-4,gpt-5")


# --- io ------------------------------------------------------------------------------------------


def test_json_array_parquet_and_directories(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [_pandalm_row(idx=i) for i in range(3)]
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "train.json").write_text(json.dumps(rows))
    pq.write_table(pa.Table.from_pylist([_pandalm_row(idx=i) for i in range(3, 5)]), tmp_path / "d" / "train-00001.parquet")
    _write_jsonl(tmp_path / "d" / "test.jsonl", [_pandalm_row(idx=9)])
    (tmp_path / "d" / "notes.txt").write_text("not data")
    assert [p.name for p in local_row_files(tmp_path / "d", split="train")] == ["train-00001.parquet", "train.json"]
    got = list(iter_rows(tmp_path / "d", split="train"))
    assert [r.row["idx"] for r in got] == [3, 4, 0, 1, 2]
    assert got[0].where.endswith("train-00001.parquet: record 1")
    assert len(list(iter_rows(tmp_path / "d"))) == 6
    broken = tmp_path / "broken.json"
    broken.write_text('[\n {"a": 1},\n {"a": \n]')
    with pytest.raises(ValueError, match=r"broken\.json:4: invalid JSON"):
        list(iter_rows(broken))


def test_hub_loader_reads_a_dataset_dir_with_datasets(tmp_path):
    # datasets.load_dataset reads a local dataset dir exactly as it reads a hub repo's files.
    repo = tmp_path / "repo"
    repo.mkdir()
    _write_jsonl(repo / "train.jsonl", [_pandalm_row(idx=i) for i in range(4)])
    _write_jsonl(repo / "test.jsonl", [_pandalm_row(idx=9)])
    report = ReadReport()
    rows = list(iter_hub_rows(str(repo), split="train", report=report))
    assert [r.row["idx"] for r in rows] == [0, 1, 2, 3] and rows[0].origin == "train"
    assert report.hub_inputs[0]["split"] == "train" and report.hub_inputs[0]["num_rows"] == 4
    with pytest.raises(ValueError, match="choose one with --split"):
        list(iter_hub_rows(str(repo), split=None, report=ReadReport()))


def test_write_and_read_samples_shards_and_manifest(tmp_path, shared_data):
    samples, _ = read("llmbar", shared_data / "llmbar" / "Dataset" / "LLMBar" / "Natural" / "dataset.json")
    out = tmp_path / "prep"
    section = write_samples(samples, out, samples_per_shard=30)
    assert [s.num_samples for s in section.shards] == [30, 30, 30, 10]
    written = Manifest(source="llmbar", seed=1, samples=section).write(out)
    assert read_samples(out) == samples
    manifest = Manifest.read(out)
    assert manifest == written and manifest.samples == section and len(manifest.manifest_hash) == 64
    # A rewrite with fewer samples replaces the old shards instead of mixing with them.
    Manifest(source="llmbar", seed=1, samples=write_samples(samples[:5], out)).write(out)
    assert read_samples(out) == samples[:5] and len(list((out / "samples").iterdir())) == 1
    # A hand-edited manifest is refused.
    text = (out / "manifest.json").read_text().replace('"seed": 1', '"seed": 2')
    (out / "manifest.json").write_text(text)
    with pytest.raises(ValueError, match="manifest_hash does not match"):
        Manifest.read(out)
    with pytest.raises(ValueError, match="appears twice"):
        write_samples([samples[0], samples[0]], tmp_path / "dup")


def test_manifest_hash_ignores_creation_time(tmp_path):
    section = SamplesSection(num_samples=0, samples_per_shard=1, shards=())
    a = Manifest(source="x", samples=section, created_utc="2020-01-01T00:00:00").write(tmp_path / "a")
    b = Manifest(source="x", samples=section, created_utc="2030-01-01T00:00:00").write(tmp_path / "b")
    c = Manifest(source="y", samples=section, created_utc="2030-01-01T00:00:00").write(tmp_path / "c")
    assert a.manifest_hash == b.manifest_hash != c.manifest_hash


def test_the_library_imports_no_plugin_package():
    """Readers and benchmarks reach the library only through the entry-point registry: no module under
    judgetrain/ imports them, statically or by a module-name string."""
    import ast

    plugin_packages = ("judgetrain_data_prep", "judgetrain_eval")
    library = Path(__file__).resolve().parents[2] / "judgetrain"
    checked = 0
    for path in library.rglob("*.py"):
        checked += 1
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] in plugin_packages for n in names), f"{path} imports {names}"
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not any(re.match(rf"{p}(\.|$)", node.value) for p in plugin_packages), f"{path} names the module {node.value!r}"
    assert checked > 50


def test_atomic_writes_leave_the_old_file_or_the_new_one(tmp_path):
    from judgetrain.atomic import atomic_path, write_jsonl_atomic, write_text_atomic

    target = tmp_path / "sub" / "out.jsonl"
    write_jsonl_atomic(target, [{"a": 1}, {"b": "é"}])
    assert target.read_text(encoding="utf-8") == '{"a": 1}\n{"b": "é"}\n'
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half", encoding="utf-8")
            raise RuntimeError("killed mid-write")
    assert target.read_text(encoding="utf-8") == '{"a": 1}\n{"b": "é"}\n'
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.jsonl"]  # no temp file left behind
    write_text_atomic(target, "new\n")
    assert target.read_text(encoding="utf-8") == "new\n"


# --- AlpacaEval --------------------------------------------------------------------------------


def test_alpaca_eval_annotations_counts_winners_and_bad_rows(shared_data):
    directory = shared_data / "alpaca_eval"
    with pytest.raises(ValueError, match=r"annotations\.json: record \d+: preference: .* got 0\.0 \(0 or null: the annotator gave no usable verdict\)"):
        read("alpaca_eval", directory)
    samples, report = read("alpaca_eval", directory, on_bad_row="skip")
    # PROVENANCE: 15,295 rows; output_2 preferred 11,389, output_1 3,812, tie 15, unusable 79.
    assert report.rows_read == 15295 and report.rows_skipped == 79 and len(samples) == 15216
    assert winners(samples, "gpt4") == Counter({"B": 11389, "A": 3812, "tie": 15})
    first = samples[0]
    assert first.answers[0].model == "text_davinci_003" and first.meta["annotator"] == "alpaca_eval_gpt4"
    # Every model's row for one instruction shares its split group, so a dev split by group never leaks it.
    same = [s for s in samples if s.question == first.question]
    assert len(same) > 10 and len({s.meta["split_group"] for s in same}) == 1


def test_alpaca_eval_preference_values():
    from judgetrain_data_prep.alpaca_eval import winner_of
    from judgetrain.data.fields import RowError

    assert [winner_of(v) for v in (1, 2.0, "1.5", "2")] == ["A", "B", "tie", "B"]
    for bad in (0, 0.0, None, "x", 3):
        with pytest.raises(RowError):
            winner_of(bad)


def test_alpaca_eval_graded_answers_pair_across_models(shared_data):
    directory = shared_data / "alpaca_eval"
    graded, report = read("alpaca_eval", directory, on_bad_row="skip", answers="graded")
    assert len(graded) == 15216 and all(s.protocol == "single" for s in graded)
    # The grade is the evaluated answer's result against the reference: the pairs' winner counts, as grades.
    assert Counter(s.labels["gpt4"].scores[0] for s in graded) == Counter({1.0: 11389, 0.0: 3812, 0.5: 15})
    assert all(s.answers[0].model != "text_davinci_003" and s.meta["graded_against"] == "text_davinci_003" for s in graded)
    with pytest.raises(ValueError, match="option answers"):
        read("alpaca_eval", directory, answers="both")

    pairs, pair_report = read("pairs-from-grades", directory, grades_from="alpaca_eval", answers="graded", ties="drop",
                              on_bad_row="skip")
    by_question = Counter(s.question for s in graded)
    group_of = {s.question: s.meta["split_group"] for s in graded}
    wins = Counter((s.question, s.labels["gpt4"].scores[0]) for s in graded)
    # Every two answers to one instruction with different grades make one pair; equal grades are counted, not written.
    expected = sum(wins[q, a] * wins[q, b] for q in by_question for a, b in ((1.0, 0.0), (1.0, 0.5), (0.5, 0.0)))
    assert len(pairs) == expected == pair_report.samples_built
    assert pair_report.notes["tied pairs left out (ties=drop)"] == sum(n * (n - 1) // 2 for n in by_question.values()) - expected
    for pair in pairs[:500]:
        label = pair.labels["gpt4"]
        assert label.winner == ("A" if label.scores[0] > label.scores[1] else "B")
        assert "text_davinci_003" not in (pair.answers[0].model, pair.answers[1].model)
        # The instruction's split group travels with the pair, so a held-out split never leaks an instruction.
        assert pair.meta["split_group"] == group_of[pair.question]
    with pytest.raises(ValueError, match="option ties"):
        read("pairs-from-grades", directory, grades_from="alpaca_eval", ties="maybe")
