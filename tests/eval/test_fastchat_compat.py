"""FastChat compatibility of the MT-bench judgment files and of `judgetrain mtbench show`.

The judgment files come from `judgetrain mtbench judge --judge openai:gpt-4` against a local
OpenAI-compatible server that plays the judge (tests/unit/openai_fault_server.py): ratings, pair
verdicts, ties and outputs without a verdict, over FastChat's own MT-bench answers.

FastChat's own code reads them when fschat is installed (`pip install --no-deps fschat`: pure
Python, no torch; the tests that run it skip, saying so, without it):
``fastchat/llm_judge/show_result.py`` (its tables: it reads ``model``, ``score``, ``turn`` of single
rows; ``model_1``, ``model_2``, ``g1_winner``, ``g2_winner`` of pair rows), and the readers of
``fastchat/llm_judge/common.py`` the browser (``qa_browser.py``) uses: ``load_single_model_judgments``
(``judge``, ``question_id``, ``model``, ``score``, ``judgment``), ``load_pairwise_model_judgments``
(``judge``, ``question_id``, ``model_1``, ``model_2``, ``g1_winner``, ``g2_winner``, ``g1_judgment``,
``g2_judgment``) and ``resolve_*_judgment_dict``, which pick a file's rows by the judge tuple
(``("gpt-4", "single-v1")``, ``("gpt-4", "pair-math-v1-multi-turn")``, ...): FastChat keys a row by
question and model(s) only, so the prompt name in ``judge`` is what tells turn 1 from turn 2. The same
field contract is also checked without fschat, as encoded from those files (fschat 0.2.36).

`judgetrain mtbench show` is checked against FastChat's ``show_result.py`` on our files and against
numbers computed by hand below.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import sys
import types
from pathlib import Path
from unittest import mock

import pytest

from judgetrain.cli import main
from tests.unit.openai_fault_server import FaultServer

MODELS = ["alpaca-13b", "llama-13b", "vicuna-13b-v1.3"]
QUESTION_IDS = [81, 92, 108]  # writing, roleplay, reasoning (reference-guided prompts)
CATEGORY = {81: "writing", 92: "roleplay", 108: "reasoning"}

# What FastChat reads of each row (fastchat/llm_judge/show_result.py and common.py, fschat 0.2.36).
SINGLE_FIELDS_READ = {"question_id", "model", "judge", "score", "judgment", "turn"}
PAIR_FIELDS_READ = {"question_id", "model_1", "model_2", "g1_winner", "g2_winner", "judge", "g1_judgment", "g2_judgment"}
# What FastChat's gen_judgment writes besides (play_a_match_single / play_a_match_pair in common.py).
SINGLE_FIELDS_WRITTEN = SINGLE_FIELDS_READ | {"user_prompt", "tstamp"}
PAIR_FIELDS_WRITTEN = PAIR_FIELDS_READ | {"g1_user_prompt", "g2_user_prompt", "turn", "tstamp"}
PAIR_WINNERS = {"model_1", "model_2", "tie", "error"}


def _judge_reply(content: str) -> str:
    """A deterministic stand-in for GPT-4: a verdict drawn from the prompt's hash, now and then none."""
    draw = int(hashlib.sha256(content.encode("utf-8")).hexdigest(), 16)
    if "Assistant B" in content:  # only the pairwise prompts show a second assistant
        return ["Assistant A is better. [[A]]", "Assistant B is better. [[B]]", "Both are equal. [[C]]",
                "I cannot tell which is better."][draw % 4]
    if draw % 5 == 0:
        return "The answer is hard to grade."  # no rating: FastChat's score -1
    return f"A fair answer. Rating: [[{draw % 10 + 1}]]"


@pytest.fixture(scope="module")
def judged(shared_data, tmp_path_factory):
    """(common CLI args, single file, pair file) written by `judgetrain mtbench judge` with judge "gpt-4"."""
    data_dir = tmp_path_factory.mktemp("fastchat-data")
    (data_dir / "mt_bench").symlink_to(shared_data / "fastchat_mt_bench")  # FastChat's mt_bench dir itself
    out = tmp_path_factory.mktemp("fastchat-out")
    common = ["--data-dir", str(data_dir), "--out-dir", str(out), "--question-id", *map(str, QUESTION_IDS)]
    with FaultServer(reply_fn=_judge_reply) as server:
        for mode in ("single", "pairwise-all"):
            assert main(["mtbench", "judge", "--mode", mode, "--judge", "openai:gpt-4", "--base-url", server.url,
                         "--model-list", *MODELS, "--no-cache", *common]) == 0
    judgments = out / "mt_bench" / "model_judgment"
    return common, judgments / "gpt-4_single.jsonl", judgments / "gpt-4_pair.jsonl"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _prompt_name(protocol: str, qid: int, turn: int) -> str:
    base = ("single-" if protocol == "single" else "pair-") + (
        "math-v1" if CATEGORY[qid] == "reasoning" else ("v1" if protocol == "single" else "v2"))
    return base + ("-multi-turn" if turn == 2 else "")


# --- the field contract, as encoded from FastChat's source -----------------------------------------

def test_judgment_rows_carry_every_field_fastchat_reads(judged):
    _, single_file, pair_file = judged
    single, pair = _rows(single_file), _rows(pair_file)
    assert len(single) == len(QUESTION_IDS) * len(MODELS) * 2
    assert len(pair) == len(QUESTION_IDS) * 3 * 2  # three model pairs, two turns
    for row in single:
        assert SINGLE_FIELDS_WRITTEN <= set(row), sorted(SINGLE_FIELDS_WRITTEN - set(row))
        assert isinstance(row["question_id"], int) and row["model"] in MODELS and row["turn"] in (1, 2)
        assert isinstance(row["score"], (int, float)) and (row["score"] == -1 or 1 <= row["score"] <= 10)
        assert row["judge"] == ["gpt-4", _prompt_name("single", row["question_id"], row["turn"])]
    for row in pair:
        assert PAIR_FIELDS_WRITTEN <= set(row), sorted(PAIR_FIELDS_WRITTEN - set(row))
        assert {row["g1_winner"], row["g2_winner"]} <= PAIR_WINNERS
        assert row["judge"] == ["gpt-4", _prompt_name("pair", row["question_id"], row["turn"])]
    # FastChat keys a row by (judge tuple, question, model[s]): no two rows may share a key, or its
    # readers would silently keep only the last.
    assert len({(tuple(r["judge"]), r["question_id"], r["model"]) for r in single}) == len(single)
    assert len({(tuple(r["judge"]), r["question_id"], r["model_1"], r["model_2"]) for r in pair}) == len(pair)
    # The judge's outputs of every kind made it into the files (so the comparisons below mean something).
    assert {r["score"] == -1 for r in single} == {True, False}
    assert {"model_1", "model_2", "tie", "error"} <= {r["g1_winner"] for r in pair} | {r["g2_winner"] for r in pair}
    # A score is FastChat's rating of the judgment text (its one_score_pattern).
    for row in single:
        assert (f"[[{row['score']:g}]]" in row["judgment"]) if row["score"] != -1 else ("[[" not in row["judgment"])


# --- FastChat's own code on our files ---------------------------------------------------------------

def _show_result():
    return pytest.importorskip("fastchat.llm_judge.show_result",
                               reason="fschat not installed (pip install --no-deps fschat) to run FastChat's show_result.py")


@pytest.fixture()
def fastchat_common(monkeypatch):
    """fastchat.llm_judge.common, imported without its judge-calling dependencies.

    common.py imports openai, anthropic and FastChat's model adapter (torch, transformers) at its top
    for the judge calls of gen_judgment; the readers used here touch none of them, so stand-ins serve."""
    _show_result()
    adapter = types.ModuleType("fastchat.model.model_adapter")
    adapter.get_conversation_template = None
    adapter.ANTHROPIC_MODEL_LIST, adapter.OPENAI_MODEL_LIST = [], []
    model_package = types.ModuleType("fastchat.model")
    model_package.__path__ = []
    model_package.model_adapter = adapter
    for name, module in {"openai": types.ModuleType("openai"), "anthropic": types.ModuleType("anthropic"),
                         "fastchat.model": model_package, "fastchat.model.model_adapter": adapter}.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delitem(sys.modules, "fastchat.llm_judge.common", raising=False)
    common = importlib.import_module("fastchat.llm_judge.common")
    yield common
    sys.modules.pop("fastchat.llm_judge.common", None)  # it holds the stand-ins


def _fastchat_show(mode: str, input_file: Path, *, baseline: str | None = None, model_list=None):
    """The tables FastChat's show_result.py prints (its DataFrames, as printed), one list per call."""
    show_result = _show_result()
    args = argparse.Namespace(bench_name="mt_bench", input_file=str(input_file), judge_model="gpt-4",
                              baseline_model=baseline, model_list=model_list, mode=mode)
    printed: list = []
    with mock.patch.object(show_result, "print", printed.append, create=True):
        (show_result.display_result_single if mode == "single" else show_result.display_result_pairwise)(args)
    import pandas as pd

    return [p for p in printed if isinstance(p, pd.DataFrame)]


def _fastchat_single(input_file: Path, model_list=None) -> dict[str, dict[str, float]]:
    first, second, average = _fastchat_show("single", input_file, model_list=model_list)
    out: dict[str, dict[str, float]] = {}
    for frame, name in ((first, "turn_1"), (second, "turn_2")):
        for (model, _turn), score in frame["score"].items():
            out.setdefault(model, {})[name] = score
    for model, score in average["score"].items():
        out.setdefault(model, {})["average"] = score
    return out


def _fastchat_pairwise(input_file: Path, *, baseline: str | None = None, model_list=None) -> dict[str, dict[str, float]]:
    mode = "pairwise-all" if baseline is None else "pairwise-baseline"
    (frame,) = _fastchat_show(mode, input_file, baseline=baseline, model_list=model_list)
    return frame.to_dict("index")


def _our_show(tmp_path: Path, common: list[str], mode: str, input_file: Path, *extra: str) -> dict[str, dict]:
    out = tmp_path / f"show-{mode}.json"
    assert main(["mtbench", "show", "--mode", mode, "--input-file", str(input_file), "--no-plot", "--json", str(out),
                 *common, *extra]) == 0
    return json.loads(out.read_text())["models"]


def _assert_single_tables_equal(ours: dict, fastchat: dict) -> None:
    assert set(ours) == set(fastchat)
    for model, expected in fastchat.items():
        for column, value in expected.items():
            assert ours[model][column] == pytest.approx(value), (model, column)


def _assert_pairwise_tables_equal(ours: dict, fastchat: dict) -> None:
    # A model all of whose matches were errors is in our table (with its error count) and not in FastChat's.
    assert set(fastchat) <= set(ours)
    assert all(ours[m]["win"] + ours[m]["loss"] + ours[m]["tie"] == 0 for m in set(ours) - set(fastchat))
    for model, expected in fastchat.items():
        for column in ("win", "loss", "tie", "win_rate", "loss_rate", "win_rate_adjusted"):
            assert ours[model][column] == pytest.approx(expected[column]), (model, column)


def test_fastchat_readers_and_browser_lookups_read_our_files(judged, fastchat_common):
    _, single_file, pair_file = judged
    single, pair = _rows(single_file), _rows(pair_file)
    by_judge = fastchat_common.load_single_model_judgments(str(single_file))
    pair_by_judge = fastchat_common.load_pairwise_model_judgments(str(pair_file))
    assert sum(len(games) for games in by_judge.values()) == len(single)
    assert sum(len(games) for games in pair_by_judge.values()) == len(pair)
    questions = [{"question_id": qid, "category": CATEGORY[qid]} for qid in QUESTION_IDS]
    for question in questions:
        qid = question["question_id"]
        for turn in (1, 2):
            # The browser's lookups, exactly as qa_browser.py makes them for judge "gpt-4".
            singles = fastchat_common.resolve_single_judgment_dict(question, by_judge, by_judge, multi_turn=turn == 2)
            pairs = fastchat_common.resolve_pairwise_judgment_dict(question, pair_by_judge, pair_by_judge, multi_turn=turn == 2)
            for row in (r for r in single if r["question_id"] == qid and r["turn"] == turn):
                explanation = fastchat_common.get_single_judge_explanation((qid, row["model"]), singles)
                assert row["judgment"] in explanation and f"**Score**: {row['score']}" in explanation
            for row in (r for r in pair if r["question_id"] == qid and r["turn"] == turn):
                explanation = fastchat_common.get_pairwise_judge_explanation((qid, row["model_1"], row["model_2"]), pairs)
                assert row["g1_judgment"] in explanation and row["g2_judgment"] in explanation
                winner = row["g1_winner"] if row["g1_winner"] == row["g2_winner"] else "inconsistent"
                key = tuple(sorted((row["model_1"], row["model_2"])))
                flip = {"model_1": "model_2", "model_2": "model_1"}
                expected = winner if key == (row["model_1"], row["model_2"]) else flip.get(winner, winner)
                assert pairs[(qid, *key)]["winners"] == (expected,)


def test_show_matches_fastchat_show_result_on_our_files(judged, tmp_path):
    common, single_file, pair_file = judged
    _assert_single_tables_equal(_our_show(tmp_path, common, "single", single_file), _fastchat_single(single_file))
    _assert_single_tables_equal(_our_show(tmp_path, common, "single", single_file, "--model-list", *MODELS[:2]),
                                _fastchat_single(single_file, model_list=MODELS[:2]))
    _assert_pairwise_tables_equal(_our_show(tmp_path, common, "pairwise-all", pair_file), _fastchat_pairwise(pair_file))
    _assert_pairwise_tables_equal(_our_show(tmp_path, common, "pairwise-baseline", pair_file, "--baseline", MODELS[2]),
                                  _fastchat_pairwise(pair_file, baseline=MODELS[2]))
    _assert_pairwise_tables_equal(_our_show(tmp_path, common, "pairwise-all", pair_file, "--model-list", MODELS[1]),
                                  _fastchat_pairwise(pair_file, model_list=[MODELS[1]]))


# --- hand-computed tables ----------------------------------------------------------------------------

def _single(qid: int, model: str, turn: int, score: float) -> dict:
    return {"question_id": qid, "model": model, "judge": ["gpt-4", _prompt_name("single", qid, turn)],
            "user_prompt": "", "judgment": f"Rating: [[{score}]]" if score != -1 else "no rating",
            "score": score, "turn": turn, "tstamp": 0.0}


def _pair(qid: int, model_1: str, model_2: str, g1: str, g2: str, turn: int) -> dict:
    return {"question_id": qid, "model_1": model_1, "model_2": model_2, "g1_winner": g1, "g2_winner": g2,
            "judge": ["gpt-4", _prompt_name("pair", qid, turn)], "g1_user_prompt": "", "g1_judgment": "",
            "g2_user_prompt": "", "g2_judgment": "", "turn": turn, "tstamp": 0.0}


HAND_SINGLE = [
    _single(81, "a", 1, 8), _single(81, "a", 2, 7), _single(92, "a", 1, 6), _single(92, "a", 2, 4),
    _single(108, "a", 1, -1),                                      # no rating: left out, counted
    _single(81, "b", 1, 10), _single(81, "b", 2, -1), _single(92, "b", 1, 3), _single(92, "b", 2, 5),
]
HAND_SINGLE_EXPECTED = {
    # turn 1: mean of the turn-1 grades; turn 2 likewise; average: the mean of every grade (not of the
    # two turn means: b's would be (6.5 + 5) / 2 = 5.75); per category: the mean over both turns.
    "a": {"turn_1": (8 + 6) / 2, "turn_2": (7 + 4) / 2, "average": (8 + 7 + 6 + 4) / 4, "num_graded": 4,
          "num_unrated": 1, "categories": {"writing": (8 + 7) / 2, "roleplay": (6 + 4) / 2}},
    "b": {"turn_1": (10 + 3) / 2, "turn_2": 5 / 1, "average": (10 + 3 + 5) / 3, "num_graded": 3,
          "num_unrated": 1, "categories": {"writing": 10 / 1, "roleplay": (3 + 5) / 2}},
}

HAND_PAIRS = [
    _pair(81, "a", "b", "model_1", "model_1", 1),   # 1  both orders: a        -> a win, b loss
    _pair(81, "a", "b", "model_1", "model_2", 2),   # 2  orders disagree       -> tie for a and b
    _pair(92, "a", "b", "tie", "model_1", 1),       # 3  g1 a tie              -> tie for a and b
    _pair(92, "a", "b", "model_2", "model_2", 2),   # 4  both orders: b        -> b win, a loss
    _pair(81, "a", "c", "model_1", "model_1", 1),   # 5                        -> a win, c loss
    _pair(81, "a", "c", "error", "model_1", 2),     # 6  an error              -> left out
    _pair(92, "b", "c", "model_2", "model_2", 1),   # 7                        -> c win, b loss
    _pair(92, "b", "c", "model_1", "tie", 2),       # 8  orders disagree       -> tie for b and c
    _pair(108, "b", "c", "model_2", "error", 1),    # 9  an error              -> left out
    _pair(108, "a", "c", "tie", "tie", 1),          # 10 tie                   -> tie for a and c
]


def _rates(win: int, loss: int, tie: int) -> dict[str, float]:
    total = win + loss + tie
    return {"win": win, "loss": loss, "tie": tie, "win_rate": win / total, "loss_rate": loss / total,
            "win_rate_adjusted": (win + 0.5 * tie) / total}


HAND_PAIR_EXPECTED = {
    # pairwise-all: a: wins 1, 5; loss 4; ties 2, 3, 10.  b: win 4; losses 1, 7; ties 2, 3, 8.
    # c: win 7; loss 5; ties 8, 10.  Errors: a (6), b (9), c (6, 9).
    "pairwise-all": ({"a": _rates(2, 1, 3), "b": _rates(1, 2, 3), "c": _rates(1, 1, 2)}, {"a": 1, "b": 1, "c": 2}),
    # baseline c: only matches with c (5, 7, 8, 10; 6 and 9 are errors), c's own row dropped.
    "pairwise-baseline": ({"a": _rates(1, 0, 1), "b": _rates(0, 1, 1)}, {"a": 1, "b": 1}),
    # --model-list b keeps the matches whose model_1 is b (FastChat filters on model_1 only): 7, 8 (9 an error).
    "model-list b": ({"b": _rates(0, 1, 1), "c": _rates(1, 0, 1)}, {"b": 1, "c": 1}),
}


def test_show_gives_fastchats_numbers_on_a_hand_computed_case(tmp_path):
    single_file, pair_file = tmp_path / "gpt-4_single.jsonl", tmp_path / "gpt-4_pair.jsonl"
    single_file.write_text("".join(json.dumps(r) + "\n" for r in HAND_SINGLE))
    pair_file.write_text("".join(json.dumps(r) + "\n" for r in HAND_PAIRS))
    common = ["--out-dir", str(tmp_path / "out")]  # the packaged MT-bench questions give the categories

    single = _our_show(tmp_path, common, "single", single_file)
    assert set(single) == set(HAND_SINGLE_EXPECTED)
    for model, expected in HAND_SINGLE_EXPECTED.items():
        for column, value in expected.items():
            assert single[model][column] == pytest.approx(value), (model, column)
    assert (single["b"]["turn_1"], single["b"]["average"]) == (6.5, 6.0)  # the arithmetic above, spelled out

    runs = {"pairwise-all": ("pairwise-all",), "pairwise-baseline": ("pairwise-baseline", "--baseline", "c"),
            "model-list b": ("pairwise-all", "--model-list", "b")}
    for name, (mode, *extra) in runs.items():
        expected, errors = HAND_PAIR_EXPECTED[name]
        table = _our_show(tmp_path, common, mode, pair_file, *extra)
        assert set(table) == set(expected), name
        for model, rates in expected.items():
            for column, value in rates.items():
                assert table[model][column] == pytest.approx(value), (name, model, column)
            assert table[model]["num_errors"] == errors[model], (name, model)
    assert HAND_PAIR_EXPECTED["pairwise-all"][0]["a"]["win_rate_adjusted"] == pytest.approx(3.5 / 6)


def test_fastchat_show_result_gives_the_hand_computed_numbers_too(tmp_path):
    """The hand-computed numbers above are FastChat's: its show_result.py gives them on the same files."""
    _show_result()
    single_file, pair_file = tmp_path / "gpt-4_single.jsonl", tmp_path / "gpt-4_pair.jsonl"
    single_file.write_text("".join(json.dumps(r) + "\n" for r in HAND_SINGLE))
    pair_file.write_text("".join(json.dumps(r) + "\n" for r in HAND_PAIRS))
    fastchat = _fastchat_single(single_file)
    assert set(fastchat) == set(HAND_SINGLE_EXPECTED)
    for model, row in fastchat.items():
        for column, value in row.items():
            assert value == pytest.approx(HAND_SINGLE_EXPECTED[model][column]), (model, column)
    runs = {"pairwise-all": {}, "pairwise-baseline": {"baseline": "c"}, "model-list b": {"model_list": ["b"]}}
    for name, options in runs.items():
        fastchat = _fastchat_pairwise(pair_file, **options)
        expected, _ = HAND_PAIR_EXPECTED[name]
        assert set(fastchat) == set(expected), name
        for model, rates in expected.items():
            for column, value in rates.items():
                assert fastchat[model][column] == pytest.approx(value), (name, model, column)
