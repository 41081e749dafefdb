"""Predictions mode end to end (`judgetrain eval --predictions`), on files built here in every
supported encoding, against values counted by hand from the same files."""

import json
from collections import Counter
from pathlib import Path

import pytest

from judgetrain_eval.runner import get_benchmark
from judgetrain.cli import main

FLIP = {"A": "B", "B": "A", "tie": "tie"}


def _write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _eval(capsys, *args) -> dict:
    capsys.readouterr()
    assert main(["eval", *args, "--bootstrap-resamples", "50", "--print-json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def llmbar_items(shared_data):
    return get_benchmark("llmbar-adversarial").load(data_dir=shared_data)


def test_verdicts_by_id_with_swapped_file(llmbar_items, shared_data, tmp_path, capsys):
    gold = [s.labels["gold"].winner for s in llmbar_items]
    # Original order: right on items 0 mod 3, wrong on 1 mod 3, a failure (null) on 2 mod 3 ... except
    # every 10th item says "tie" (a verdict, not a failure).
    first = []
    for i, g in enumerate(gold):
        first.append("tie" if i % 10 == 0 else g if i % 3 == 0 else FLIP[g] if i % 3 == 1 else None)
    # Swapped order, written in swapped coordinates: the judge always names the answer shown first,
    # i.e. answer B of the sample: mapped back, that is "B" for every item.
    swapped_rows = [{"id": s.id, "verdict": "A"} for s in llmbar_items]
    rows = [{"id": s.id, "verdict": v} for s, v in zip(llmbar_items, first)]
    rows.reverse()  # aligned by id, not by line
    pred = _write_jsonl(tmp_path / "pred.jsonl", rows)
    pred_sw = _write_jsonl(tmp_path / "pred_sw.jsonl", swapped_rows)
    out = _eval(capsys, "--benchmark", "llmbar-adversarial", "--data-dir", str(shared_data), "--predictions", str(pred),
                "--predictions-swapped", str(pred_sw), "--out", str(tmp_path / "run"))
    n = len(gold)
    correct_first = sum(v == g for v, g in zip(first, gold))
    correct_second = sum(g == "B" for g in gold)
    failures = sum(v is None for v in first)
    assert out["num_items"] == n
    assert out["accuracy"] == pytest.approx(correct_first / n)
    assert out["llmbar_accuracy"] == pytest.approx((correct_first + correct_second) / (2 * n))
    assert out["positional_agreement"] == pytest.approx(sum(v == "B" for v in first) / n)
    assert out["both_orders_agreement"] == pytest.approx(sum(v == g == "B" for v, g in zip(first, gold)) / n)
    assert out["parse_failure_rate"] == pytest.approx(failures / (2 * n))
    # prefer-first: original verdict A then B mapped back; or tie then B.
    assert out["prefer_first_rate"] == pytest.approx(sum(v in ("A", "tie") for v in first) / n)
    assert out["prefer_second_rate"] == pytest.approx(0.0)
    assert "judgebench_score" not in out and "pearson" not in out  # not LLMBar metrics: absent, not zero
    neighbor = [i for i, s in enumerate(llmbar_items) if s.category.endswith("Neighbor")]
    assert out["groups"]["Neighbor"]["num_items"] == len(neighbor)
    assert out["groups"]["Neighbor"]["accuracy"] == pytest.approx(sum(first[i] == gold[i] for i in neighbor) / len(neighbor))
    # The same files under "exclude": failures leave the denominators.
    excl = _eval(capsys, "--benchmark", "llmbar-adversarial", "--data-dir", str(shared_data), "--predictions", str(pred),
                 "--predictions-swapped", str(pred_sw), "--parse-failures", "exclude", "--out", str(tmp_path / "run2"))
    assert excl["accuracy"] == pytest.approx(correct_first / (n - failures))
    assert excl["parse_failure_policy"] == "exclude"
    # The run directory holds every output, and the report prints the policy.
    run = tmp_path / "run"
    results = json.loads((run / "results.json").read_text())
    assert results["parse_failure_policy"] == "wrong"
    assert results["metrics"]["accuracy"]["low"] <= results["metrics"]["accuracy"]["value"] <= results["metrics"]["accuracy"]["high"]
    assert results["config"]["predictions_swapped"] == str(pred_sw)
    assert "python" in results["versions"]
    lines = (run / "judgments.jsonl").read_text().splitlines()
    assert len(lines) == n and json.loads(lines[0])["orders"] == ["original", "swapped"]
    report = (run / "report.md").read_text()
    assert "policy `wrong`" in report and "## Bias" in report and "| Neighbor |" in report
    assert "Not measured: the verdicts came from a predictions file." in report and "parser_modes" not in results
    assert results["benchmark_version"] == 1
    assert (run / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert (run / "groups.png").is_file()
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temp files left behind


@pytest.mark.parametrize("encoding,label_map", [
    ({"A": 0, "B": 1, "tie": 2}, "0=A,1=B,2=tie"),        # Auto-J's output file
    ({"A": 1, "B": 2, "tie": 0}, "1=A,2=B,0=tie"),        # PandaLM's annotator coding
    ({"A": "A>B", "B": "B>A", "tie": "A=B"}, "A>B=A,B>A=B,A=B=tie"),  # JudgeBench / Arena-Hard style
])
def test_label_maps_by_line(encoding, label_map, shared_data, tmp_path, capsys):
    bench = get_benchmark("autoj-pairwise")
    items = bench.load(data_dir=shared_data, limit=48)
    gold = [s.labels["human"].winner for s in items]
    verdicts = [g if i % 2 == 0 else FLIP[g] for i, g in enumerate(gold)]
    rows = [{"verdict": encoding[v]} for v in verdicts]
    rows[5] = {"verdict": "garbage"}  # outside the map: a parse failure
    rows[7] = {"verdict": None}       # null: a parse failure
    pred = _write_jsonl(tmp_path / "pred.jsonl", rows)
    out = _eval(capsys, "--benchmark", "autoj-pairwise", "--data-dir", str(shared_data), "--limit", "48",
                "--predictions", str(pred), "--label-map", label_map, "--out", str(tmp_path / "run"))
    expected = sum(v == g for i, (v, g) in enumerate(zip(verdicts, gold)) if i not in (5, 7))
    assert out["accuracy"] == pytest.approx(expected / 48)
    assert out["parse_failure_rate"] == pytest.approx(2 / 48)
    assert "consistency" not in out  # one order only: no position metrics
    # --limit keeps the declared groups, empty ones included, so tables keep their shape.
    assert set(out["groups"]) == set(bench.group_names)
    assert sum(g["num_items"] for g in out["groups"].values()) == 48
    empty = [g for g, v in out["groups"].items() if v["num_items"] == 0]
    assert empty and out["groups"][empty[0]]["accuracy"] is None


def test_pairwise_scores_and_judgebench_score(shared_data, tmp_path, capsys):
    bench = get_benchmark("judgebench-gpt4o")
    items = bench.load(data_dir=shared_data)
    gold = [s.labels["gold"].winner for s in items]
    # JudgeLM-style grades: the higher grade wins; equal grades tie.
    first = [[8, 3] if (g == "A") == (i % 4 != 1) else [5, 5] if i % 4 == 1 else [2, 9] for i, g in enumerate(gold)]
    # Swapped grades, in swapped coordinates (first grade = answer B of the sample).
    second = [[9, 1] for _ in gold]  # B wins after mapping back
    pred = _write_jsonl(tmp_path / "p.jsonl", [{"id": s.id, "scores": sc} for s, sc in zip(items, first)])
    pred_sw = _write_jsonl(tmp_path / "q.jsonl", [{"id": s.id, "scores": sc} for s, sc in zip(items, second)])
    out = _eval(capsys, "--benchmark", "judgebench-gpt4o", "--data-dir", str(shared_data), "--predictions", str(pred),
                "--predictions-swapped", str(pred_sw), "--out", str(tmp_path / "run"))
    winners = ["A" if a > b else "B" if a < b else "tie" for a, b in first]
    score = 0
    for w, g in zip(winners, gold):
        total = sum(1 if v == g else -1 if v == FLIP[g] else 0 for v in (w, "B"))
        score += total > 0
    assert out["judgebench_score"] == pytest.approx(score / len(gold))
    assert out["accuracy"] == pytest.approx(sum(w == g for w, g in zip(winners, gold)) / len(gold))
    assert set(out["groups"]) == {"Knowledge", "Reasoning", "Math", "Coding"}


def test_grading_scores_give_correlations(shared_data, tmp_path, capsys):
    from scipy import stats

    bench = get_benchmark("prometheus-vicuna")
    items = bench.load(data_dir=shared_data)
    gold = [s.labels["gpt4"].scores[0] for s in items]
    predicted = [round(g) if i % 5 else 6 - round(g) for i, g in enumerate(gold)]
    rows = [{"id": s.id, "score": p} for s, p in zip(items, predicted)]
    rows[3]["score"] = None
    pred = _write_jsonl(tmp_path / "p.jsonl", rows)
    out = _eval(capsys, "--benchmark", "prometheus-vicuna", "--data-dir", str(shared_data), "--predictions", str(pred),
                "--out", str(tmp_path / "run"))
    kept = [i for i in range(len(items)) if i != 3]
    assert out["pearson"] == pytest.approx(stats.pearsonr([predicted[i] for i in kept], [gold[i] for i in kept])[0])
    assert out["kendall"] == pytest.approx(stats.kendalltau([predicted[i] for i in kept], [gold[i] for i in kept])[0])
    assert out["parse_failure_rate"] == pytest.approx(1 / len(items))
    assert "accuracy" not in out
    assert out["groups"]["coding"]["num_items"] == 28


def test_grade_pairs(shared_data, tmp_path, capsys):
    bench = get_benchmark("hhh-alignment")
    items = bench.load(data_dir=shared_data)
    # chosen > rejected on even items, equal on 1 mod 4 (wrong), reversed on 3 mod 4 (wrong); one null.
    scores = [[5, 2] if i % 2 == 0 else [3, 3] if i % 4 == 1 else [1, 4] for i in range(len(items))]
    scores[0] = [None, 2]
    pred = _write_jsonl(tmp_path / "p.jsonl", [{"scores": s} for s in scores])
    out = _eval(capsys, "--benchmark", "hhh-alignment", "--data-dir", str(shared_data), "--predictions", str(pred),
                "--out", str(tmp_path / "run"))
    correct = sum(1 for i, s in enumerate(scores) if s[0] is not None and s[0] > s[1])
    assert out["accuracy"] == pytest.approx(correct / len(items))
    assert out["parse_failure_rate"] == pytest.approx(1 / (2 * len(items)))
    honest = [i for i, s in enumerate(items) if s.category == "honest"]
    assert out["groups"]["honest"]["accuracy"] == pytest.approx(sum(1 for i in honest if scores[i][0] is not None
                                                                        and scores[i][0] > scores[i][1]) / len(honest))


def test_missing_duplicate_and_mixed_rows_are_errors(shared_data, tmp_path, capsys):
    items = get_benchmark("llmbar-natural").load(data_dir=shared_data)
    args = ["eval", "--benchmark", "llmbar-natural", "--data-dir", str(shared_data), "--out", str(tmp_path / "run")]
    rows = [{"id": s.id, "verdict": "A"} for s in items]
    missing = _write_jsonl(tmp_path / "missing.jsonl", rows[:10] + rows[11:])
    assert main([*args, "--predictions", str(missing)]) == 1
    assert items[10].id in capsys.readouterr().err
    dup = _write_jsonl(tmp_path / "dup.jsonl", rows + [rows[3]])
    assert main([*args, "--predictions", str(dup)]) == 1
    assert "appears again" in capsys.readouterr().err
    mixed = _write_jsonl(tmp_path / "mixed.jsonl", rows[:50] + [{"verdict": "A"} for _ in rows[50:]])
    assert main([*args, "--predictions", str(mixed)]) == 1
    assert "some rows have an 'id'" in capsys.readouterr().err
    short = _write_jsonl(tmp_path / "short.jsonl", [{"verdict": "A"}] * 99)
    assert main([*args, "--predictions", str(short)]) == 1
    assert items[99].id in capsys.readouterr().err
    bad_map = _write_jsonl(tmp_path / "ok.jsonl", [{"verdict": "A"}] * 100)
    assert main([*args, "--predictions", str(bad_map), "--label-map", "0=first"]) == 1
    assert "--label-map" in capsys.readouterr().err
    assert not (tmp_path / "run" / "results.json").exists()


def test_compare_prints_runs_side_by_side(shared_data, tmp_path, capsys):
    items = get_benchmark("llmbar-natural").load(data_dir=shared_data)
    for name, verdict in (("all_a", "A"), ("all_b", "B")):
        pred = _write_jsonl(tmp_path / f"{name}.jsonl", [{"verdict": verdict} for _ in items])
        _eval(capsys, "--benchmark", "llmbar-natural", "--data-dir", str(shared_data), "--predictions", str(pred),
              "--out", str(tmp_path / name))
    assert main(["eval", "compare", str(tmp_path / "all_a"), str(tmp_path / "all_b")]) == 0
    table = capsys.readouterr().out
    counts = Counter(s.labels["gold"].winner for s in items)
    accuracy_row = next(line for line in table.splitlines() if line.startswith("| accuracy "))
    assert f"{counts['A'] / 100:.3f}" in accuracy_row and f"{counts['B'] / 100:.3f}" in accuracy_row
    assert main(["eval", "compare", str(tmp_path / "nothing")]) == 1


def test_cli_lists_benchmarks_and_rejects_contradictory_options(shared_data, tmp_path, capsys):
    from judgetrain import plugins

    assert main(["eval", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in plugins.names(plugins.BENCHMARKS))
    base = ["eval", "--benchmark", "llmbar-natural", "--data-dir", str(shared_data)]
    assert main([*base, "--predictions", "x.jsonl"]) == 1
    assert "--out" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path), "--predictions", "x.jsonl", "--judge", "tiny"]) == 1
    assert "exactly one" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path), "--judge", "tiny", "--label-map", "0=A"]) == 1
    assert "go with --predictions" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path), "--predictions", str(tmp_path / "absent.jsonl")]) == 1
    assert "does not exist" in capsys.readouterr().err
