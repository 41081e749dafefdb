"""A real judge run (the tiny random model through the Judging API, both orders) and the same verdicts
fed back through predictions mode must give the same numbers."""

import json
from pathlib import Path

import pytest

from judgetrain.cli import main

FLIP = {"A": "B", "B": "A", "tie": "tie", None: None}


def _eval(capsys, *args) -> dict:
    capsys.readouterr()
    assert main(["eval", *args, "--bootstrap-resamples", "30", "--print-json", "--no-plots"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "judgments.jsonl").read_text().splitlines()]


def _same_numbers(judged: dict, replayed: dict) -> None:
    judged = {k: v for k, v in judged.items() if k != "benchmark"}
    replayed = {k: v for k, v in replayed.items() if k != "benchmark"}
    assert judged.keys() == replayed.keys()
    for key, value in judged.items():
        if isinstance(value, float):
            assert replayed[key] == pytest.approx(value), key
        else:
            assert replayed[key] == value, key


def _replay_both_orders(capsys, tmp_path, common, rows, judged) -> None:
    """Feed a run's own verdicts back as predictions files (the swapped order in swapped
    coordinates) and check they give the same numbers."""
    pred = tmp_path / "pred.jsonl"
    pred.write_text("".join(json.dumps({"id": r["id"], "verdict": r["verdict"]}) + "\n" for r in rows))
    swapped = tmp_path / "swapped.jsonl"
    swapped.write_text("".join(json.dumps({"id": r["id"], "verdict": FLIP[r["verdict_swapped"]]}) + "\n" for r in rows))
    replayed = _eval(capsys, *common, "--predictions", str(pred), "--predictions-swapped", str(swapped),
                     "--out", str(tmp_path / "replayed"))
    _same_numbers(judged, replayed)

def test_tiny_judge_pairwise_then_its_verdicts_as_predictions(shared_data, tmp_path, capsys):
    common = ["--benchmark", "llmbar-natural", "--data-dir", str(shared_data), "--limit", "3"]
    judged = _eval(capsys, *common, "--judge", "tiny", "--max-new-tokens", "12", "--out", str(tmp_path / "judged"))
    rows = _rows(tmp_path / "judged")
    assert len(rows) == 3 and judged["num_items"] == 3
    for row in rows:
        assert row["orders"] == ["original", "swapped"]  # pairwise sets run in both orders
        assert len(row["raw_texts"]) == 2 and len(row["judgments"]) == 2
        assert [j["swapped"] for j in row["judgments"]] == [False, True]
        assert row["judgments"][0]["prompt_messages"]  # exactly what was sent is recorded
        for verdict, failure in ((row["verdict"], row["parse_failures"][0]), (row["verdict_swapped"], row["parse_failures"][1])):
            assert (verdict is None) == (failure is not None)  # a failure is never a verdict, a tie included
    results = json.loads((tmp_path / "judged" / "results.json").read_text())
    assert results["config"]["mode"] == "judge" and results["config"]["format"] == "mtbench-pair-v2"
    assert results["benchmark_version"] == 1
    # The same raw outputs read by the strict and the lenient parser, side by side in both files.
    assert set(results["parser_modes"]) == {"strict", "lenient"}
    strict_failures = sum((r["readings"]["strict"]["verdict"] is None) + (r["readings"]["strict"]["verdict_swapped"] is None)
                          for r in rows)
    assert results["parser_modes"]["strict"]["metrics"]["parse_failure_rate"]["value"] == pytest.approx(strict_failures / 6)
    report = (tmp_path / "judged" / "report.md").read_text()
    assert "## Strict and lenient parsing" in report and "| metric | strict | lenient |" in report
    assert "positional_agreement counts failures as LLMBar does" in report
    # Feed the run's own verdicts back: the original order as is, the swapped order in swapped coordinates.
    _replay_both_orders(capsys, tmp_path, common, rows, judged)


def test_tiny_judge_grading_then_its_grades_as_predictions(shared_data, tmp_path, capsys):
    common = ["--benchmark", "prometheus-mtbench", "--data-dir", str(shared_data), "--limit", "3"]
    judged = _eval(capsys, *common, "--judge", "tiny", "--max-new-tokens", "12", "--out", str(tmp_path / "judged"))
    rows = _rows(tmp_path / "judged")
    assert [r["orders"] for r in rows] == [["original"]] * 3
    assert judged["parse_failure_rate"] == pytest.approx(sum(r["scores"][0] is None for r in rows) / 3)
    pred = tmp_path / "pred.jsonl"
    pred.write_text("".join(json.dumps({"id": r["id"], "score": r["scores"][0]}) + "\n" for r in rows))
    replayed = _eval(capsys, *common, "--predictions", str(pred), "--out", str(tmp_path / "replayed"))
    _same_numbers(judged, replayed)


class _VerdictServer:
    """A real OpenAI-compatible HTTP server on 127.0.0.1 whose judge always answers "[[A]]" (FastChat's
    verdict for the answer shown first): a judge with total first-position bias."""

    def __enter__(self):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                assert body["messages"]
                reply = json.dumps({"choices": [{"index": 0, "finish_reason": "stop",
                                                 "message": {"role": "assistant", "content": "Assistant A is better. [[A]]"}}],
                                    "usage": {"prompt_tokens": 10, "completion_tokens": 5}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_http_judge_with_position_bias_then_its_verdicts_as_predictions(shared_data, tmp_path, capsys):
    common = ["--benchmark", "judgebench-gpt4o", "--data-dir", str(shared_data), "--limit", "6"]
    with _VerdictServer() as base_url:
        judged = _eval(capsys, *common, "--judge", "openai:always-a", "--base-url", base_url, "--api-key-env", "",
                       "--out", str(tmp_path / "judged"))
    rows = _rows(tmp_path / "judged")
    # "[[A]]" in both orders: A as shown, B once the swapped order is mapped back.
    assert all(r["verdict"] == "A" and r["verdict_swapped"] == "B" for r in rows)
    assert judged["consistency"] == 0.0 and judged["prefer_first_rate"] == 1.0 and judged["prefer_second_rate"] == 0.0
    assert judged["parse_failure_rate"] == 0.0
    gold = [r["gold_winner"] for r in rows]
    assert judged["accuracy"] == pytest.approx(gold.count("A") / 6)
    assert judged["judgebench_score"] == 0.0  # +1 and -1 in every pair
    _replay_both_orders(capsys, tmp_path, common, rows, judged)


def test_tiny_judge_grade_pairs_then_its_grades_as_predictions(shared_data, tmp_path, capsys):
    common = ["--benchmark", "hhh-alignment", "--data-dir", str(shared_data), "--limit", "2"]
    judged = _eval(capsys, *common, "--judge", "tiny", "--max-new-tokens", "12", "--out", str(tmp_path / "judged"))
    rows = _rows(tmp_path / "judged")
    # Each answer is graded on its own: two single-answer calls per item.
    assert all(r["orders"] == ["first_answer", "second_answer"] and len(r["judgments"]) == 2 for r in rows)
    assert all(len(j["prompt_messages"]) >= 1 for r in rows for j in r["judgments"])
    pred = tmp_path / "pred.jsonl"
    pred.write_text("".join(json.dumps({"id": r["id"], "scores": r["scores"]}) + "\n" for r in rows))
    replayed = _eval(capsys, *common, "--predictions", str(pred), "--out", str(tmp_path / "replayed"))
    _same_numbers(judged, replayed)
