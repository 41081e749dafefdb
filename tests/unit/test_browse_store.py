"""The browser reads metrics under the scorer's names, and scores old run dirs again rather than show
an old figure under a name whose definition changed."""

import json

from judgetrain.browse.pages import index_page
from judgetrain.browse.store import load_run


def _row(item_id: str, first, second, gold="A") -> dict:
    return {"id": item_id, "group": None, "labels": {"gold": {"winner": gold, "scores": None, "scale": None}},
            "gold_winner": gold, "orders": ["original", "swapped"], "verdict": first, "verdict_swapped": second,
            "raw_texts": ["", ""], "parse_failures": [None if first else "no verdict", None if second else "no verdict"]}


def _run_dir(tmp_path, results: dict):
    rows = [_row("a", "A", "A"), _row("b", None, None), _row("c", "A", "B"), _row("d", "B", None)]
    (tmp_path / "judgments.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "results.json").write_text(json.dumps(results))
    return load_run(tmp_path)


def test_an_old_results_json_is_scored_again_under_the_current_definitions(tmp_path):
    # Written before the current definitions: positional_agreement was consistency (1 of 4 here).
    old = {"benchmark": "llmbar-natural", "kind": "pairwise", "parse_failure_policy": "wrong",
           "metrics": {"positional_agreement": {"value": 0.25, "low": None, "high": None, "num_items": 4},
                       "accuracy": {"value": 0.5, "low": None, "high": None, "num_items": 4}}}
    run = _run_dir(tmp_path, old)
    # LLMBar counts the two failed orders of item b as agreeing: a and b of 4.
    assert run.metrics["positional_agreement"]["value"] == 0.5
    assert run.metrics["accuracy"]["value"] == 0.5 and "consistency" not in run.metrics
    assert "positional_agreement=0.500" in index_page([run], [])


def test_a_current_results_json_is_shown_as_written(tmp_path):
    current = {"benchmark": "llmbar-natural", "benchmark_version": 1, "kind": "pairwise", "parse_failure_policy": "wrong",
               "metrics": {"positional_agreement": {"value": 0.75, "low": 0.5, "high": 1.0, "num_items": 4}}}
    run = _run_dir(tmp_path, current)
    assert run.metrics == current["metrics"]
