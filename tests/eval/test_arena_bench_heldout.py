"""arena-bench-heldout: its items (the reader's held-out split, from the shipped copy or the original),
GPT-4's own critiques served by a real HTTP judge on 127.0.0.1 reproducing GPT-4's grades through the
whole eval path, and the answer-length baseline scored by the same scorer."""

from __future__ import annotations

import json

import pytest
from scipy import stats

from judgetrain import formats
from judgetrain.cli import main
from judgetrain.data.rows import ReadReport
from judgetrain_data_prep import arena_bench
from judgetrain_eval import arena_bench_heldout
from judgetrain_eval.runner import get_benchmark
from tests.unit.openai_fault_server import FaultServer


def _eval(capsys, *args) -> dict:
    capsys.readouterr()
    assert main(["eval", "--benchmark", "arena-bench-heldout", *args, "--bootstrap-resamples", "20", "--print-json",
                 "--no-plots"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def heldout():
    return get_benchmark("arena-bench-heldout").load(data=str(arena_bench.SHIPPED_DIR))


def test_items_are_the_readers_heldout_split_from_either_copy(heldout, shared_data, tmp_path):
    bench = get_benchmark("arena-bench-heldout")
    assert bench.kind == "grading" and bench.default_format == "mtbench-single-math-v1" and bench.label_key == "gpt4"
    # Without arena-bench-v1 under the data dir, the copy shipped in the package is read.
    assert bench.resolve_source(None, tmp_path) == str(arena_bench.SHIPPED_DIR)
    expected = list(arena_bench.read(str(arena_bench.SHIPPED_DIR), split="heldout", report=ReadReport()))
    assert [s.to_dict() for s in heldout] == [s.to_dict() for s in expected]
    question_ids = {s.meta["question_id"] for s in heldout}
    assert len(question_ids) == 30 and question_ids == arena_bench.heldout_question_ids(
        s.meta["question_id"] for s in arena_bench.read(str(arena_bench.SHIPPED_DIR), report=ReadReport()))
    original = shared_data / "arena-bench-v1"
    if original.is_dir():
        # The original's bad rows are not items; the warning says how many were left out.
        with pytest.warns(UserWarning, match=r"held-out judgment rows of .* are not items \(answer mismatch \d+"):
            from_original = bench.load(data_dir=shared_data)
        assert [s.to_dict() for s in from_original] == [s.to_dict() for s in heldout]


def test_gpt4s_critiques_as_the_judge_give_perfect_correlations(heldout, tmp_path, capsys):
    grader = formats.get("mtbench-single-math-v1")
    critique_of_prompt = {grader.render(s, include_target=False)[-1]["content"]: s.judgment_with_reference for s in heldout}
    assert len(critique_of_prompt) == len(heldout)
    with FaultServer(reply_fn=lambda user_message: critique_of_prompt[user_message]) as server:
        judged = _eval(capsys, "--data-dir", str(tmp_path), "--judge", "openai:gpt-4-replay", "--base-url", server.url,
                       "--api-key-env", "", "--out", str(tmp_path / "run"))
    assert server.num_ok == len(heldout)
    assert judged["num_items"] == len(heldout) and judged["parse_failure_rate"] == 0.0
    assert judged["pearson"] == pytest.approx(1.0) and judged["spearman"] == pytest.approx(1.0)
    assert judged["kendall"] == pytest.approx(1.0)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["config"]["format"] == "mtbench-single-math-v1" and results["benchmark_version"] == 1
    assert set(results["parser_modes"]) == {"strict", "lenient"}


def test_length_baseline_is_what_the_scorer_gives_for_answer_lengths(heldout, tmp_path, capsys):
    baseline = arena_bench_heldout.length_baseline(heldout, num_resamples=20)
    lengths = [len(s.answers[0].text) for s in heldout]
    grades = [s.labels["gpt4"].scores[0] for s in heldout]
    assert baseline["spearman"].value == pytest.approx(stats.spearmanr(lengths, grades)[0])
    assert baseline["pearson"].value == pytest.approx(stats.pearsonr(lengths, grades)[0])
    assert baseline["kendall"].value == pytest.approx(stats.kendalltau(lengths, grades)[0])
    # The same figures through `judgetrain eval --predictions`, one answer length per item.
    predictions = tmp_path / "lengths.jsonl"
    predictions.write_text("".join(json.dumps({"id": s.id, "score": float(n)}) + "\n" for s, n in zip(heldout, lengths)))
    scored = _eval(capsys, "--data-dir", str(tmp_path), "--predictions", str(predictions), "--out", str(tmp_path / "run"))
    for key in ("pearson", "spearman", "kendall"):
        assert scored[key] == pytest.approx(baseline[key].value), key
    assert arena_bench_heldout.main(["--data-dir", str(tmp_path), "--bootstrap-resamples", "20"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["num_items"] == len(heldout) and printed["num_questions"] == 30
    assert printed["length_baseline"]["spearman"]["value"] == pytest.approx(baseline["spearman"].value)
