"""One judge protocol for both kinds, built from the card by every command that takes a judge.

Tiny judges trained here (a reward judge two steps, a LoRA judge on FastChat's ``mtbench-pair-v2``
one step), each exported with an evaluation result in its run dir, and driven through the real CLI
(``judgetrain.cli.main``) and a real ``judgetrain serve`` on 127.0.0.1:

- ``judgetrain formats`` lists the reward judge's template, and ``judge --format reward-chat-v1``
  judges with a reward export;
- a generative template or a generative backend given for a reward export is an error naming the
  reward judge, before any model loads; so is a reward checkpoint without a card;
- ``eval`` reads the package's own canonical eval file, with ``--on-bad-row error|skip``;
- every card's ``evaluation[].path`` is a file of the export, for both kinds;
- the factory gives the right kind from a dir and from a URL, and ``mtbench judge`` takes either
  kind's card or refuses what the card contradicts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judgetrain.cli import main

SHIPPED_EVAL = Path(__file__).resolve().parents[2] / "judgetrain" / "resources" / "quickstart" / "eval_pandalm.jsonl"
EVAL_RESULT = {"benchmark": "toy", "metrics": {"accuracy": 0.25}}

pytestmark = pytest.mark.usefixtures("one_torch_thread")




def _with_eval_result(checkpoint: Path) -> None:
    (checkpoint.parent / "eval").mkdir(exist_ok=True)
    (checkpoint.parent / "eval" / "results.json").write_text(json.dumps(EVAL_RESULT), encoding="utf-8")


@pytest.fixture(scope="module")
def reward(tiny_reward_checkpoint, tmp_path_factory) -> tuple[Path, Path]:
    """(the checkpoint, the export) of the tiny reward judge, in a copy of its run dir that holds an eval result."""
    import shutil

    from judgetrain.export import export

    root = tmp_path_factory.mktemp("reward")
    shutil.copytree(tiny_reward_checkpoint.parent, root / "run")
    checkpoint = root / "run" / tiny_reward_checkpoint.name
    _with_eval_result(checkpoint)
    return checkpoint, export(checkpoint, root / "judge", dtype="fp32")


@pytest.fixture(scope="module")
def generative(tmp_path_factory) -> tuple[Path, Path]:
    """(the checkpoint, the export) of a tiny LoRA judge on mtbench-pair-v2, one step, an eval result in its run dir."""
    from judgetrain.export import export
    from tests.e2e.test_export import train_tiny_lora

    root = tmp_path_factory.mktemp("generative")
    checkpoint = train_tiny_lora(root, max_steps=1)
    _with_eval_result(checkpoint)
    return checkpoint, export(checkpoint, root / "judge", dtype="fp32", max_new_tokens=4)


@pytest.fixture(scope="module")
def samples_file(tmp_path_factory) -> Path:
    """Three pairs of the shipped PandaLM eval file (canonical samples)."""
    path = tmp_path_factory.mktemp("samples") / "pairs.jsonl"
    path.write_text("".join(SHIPPED_EVAL.read_text(encoding="utf-8").splitlines(keepends=True)[:3]), encoding="utf-8")
    return path


def _served(export_dir: Path):
    from judgetrain.serve import start_server

    server, _ = start_server(str(export_dir), "127.0.0.1", 0, batch_size=2)
    return server, f"http://127.0.0.1:{server.server_address[1]}"


# --- formats -------------------------------------------------------------------------------------


def test_formats_lists_the_reward_template_and_explains_it(capsys):
    from judgetrain import formats

    assert main(["formats"]) == 0
    listing = capsys.readouterr().out
    row = next(line for line in listing.splitlines() if line.startswith("reward-chat-v1"))
    assert row.split()[:2] == ["reward-chat-v1", "reward"] and "pairwise, single" in row
    assert main(["formats", "--show", "reward-chat-v1"]) == 0
    shown = capsys.readouterr().out
    assert "no prompt, no parser" in shown and "scored alone" in shown
    # Each answer's own conversation, never both answers in one prompt.
    assert "[user] What is 12 * 7?\n[assistant] 12 * 7 = 84.\n\n--- scored conversation of answer B" in shown
    # Not a prompt format pretending to be one: get() explains instead of rendering.
    with pytest.raises(ValueError, match="reward judge's template, not a judge format"):
        formats.get("reward-chat-v1")
    assert "reward-chat-v1" not in formats.names()


# --- judge ---------------------------------------------------------------------------------------


def test_judge_with_the_reward_template_judges_with_the_reward_export(reward, samples_file, tmp_path):
    import judgetrain
    from judgetrain.data.prepared import read_sample_file

    _, export_dir = reward
    out = tmp_path / "judgments.jsonl"
    assert main(["judge", "--format", "reward-chat-v1", "--model", str(export_dir), "--input", str(samples_file),
                 "--out", str(out), "--no-progress", "--no-cache"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    expected = judgetrain.Judge.from_card(export_dir).judge(read_sample_file(samples_file))
    assert [r["template"] for r in rows] == ["reward-chat-v1"] * 3
    assert [r["verdict"]["scores"] for r in rows] == [list(j.verdict.scores) for j in expected]


def test_judge_refuses_a_generative_format_for_a_reward_export(reward, samples_file, tmp_path, capsys):
    checkpoint, export_dir = reward
    out = tmp_path / "judgments.jsonl"
    assert main(["judge", "--format", "pandalm-v1", "--model", str(export_dir), "--input", str(samples_file),
                 "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{export_dir} is a reward judge" in err and "drop --format" in err and f"judgetrain judge --model {export_dir}" in err
    assert not out.exists()
    assert main(["judge", "--backend", "hf", "--model", str(export_dir), "--input", str(samples_file), "--out", str(out)]) == 1
    assert "--backend hf" in capsys.readouterr().err
    # The checkpoint has no card: still a reward model, never loaded as a causal LM.
    assert main(["judge", "--format", "pandalm-v1", "--model", str(checkpoint), "--input", str(samples_file),
                 "--out", str(out)]) == 1
    assert "is a reward model" in capsys.readouterr().err and not out.exists()


def test_judge_refuses_flags_the_generative_card_contradicts(generative, samples_file, tmp_path, capsys):
    _, export_dir = generative
    out = tmp_path / "judgments.jsonl"
    base = ["judge", "--model", str(export_dir), "--input", str(samples_file), "--out", str(out)]
    assert main([*base, "--format", "pandalm-v1"]) == 1
    assert "fixes the template mtbench-pair-v2" in capsys.readouterr().err
    assert main([*base, "--disagreement", "inconsistent"]) == 1
    assert "makes a both-orders disagreement 'tie'" in capsys.readouterr().err
    assert main([*base, "--backend", "openai"]) == 1
    assert "is an export dir" in capsys.readouterr().err
    assert not out.exists()


# --- eval ----------------------------------------------------------------------------------------


def test_eval_reads_the_shipped_canonical_file(reward, tmp_path, capsys):
    _, export_dir = reward
    out = tmp_path / "eval"
    assert main(["eval", "--benchmark", "pandalm-test", "--judge", str(export_dir), "--data", str(SHIPPED_EVAL),
                 "--limit", "4", "--bootstrap-resamples", "0", "--no-plots", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["metrics"]["num_items"]["value"] == 4
    assert results["config"]["data_read"]["schemas"] == {"judgesample": 4} and results["config"]["data_read"]["rows_skipped"] == 0
    assert results["config"]["judge_card"]["kind"] == "reward"


def test_eval_on_bad_row_stops_or_skips_and_counts(reward, tmp_path, capsys):
    _, export_dir = reward
    lines = SHIPPED_EVAL.read_text(encoding="utf-8").splitlines(keepends=True)[:3]
    unlabelled = json.loads(lines[0]) | {"id": "no-label", "labels": {}}
    data = tmp_path / "items.jsonl"
    data.write_text(lines[0] + '{"id": "broken", "source": "x", "question": "q", "answers": [{"txt": "a"}]}\n'
                    + json.dumps(unlabelled) + "\n" + "".join(lines[1:]), encoding="utf-8")
    base = ["eval", "--benchmark", "pandalm-test", "--judge", str(export_dir), "--data", str(data),
            "--bootstrap-resamples", "0", "--no-plots"]
    assert main([*base, "--out", str(tmp_path / "stopped")]) == 1
    assert f"{data}:2: answers[0]" in capsys.readouterr().err
    assert main([*base, "--on-bad-row", "skip", "--out", str(tmp_path / "skipped")]) == 0
    printed = capsys.readouterr().out
    results = json.loads((tmp_path / "skipped" / "results.json").read_text())
    read = results["config"]["data_read"]
    assert results["metrics"]["num_items"]["value"] == 3 and read["rows_skipped"] == 2 and read["on_bad_row"] == "skip"
    assert set(read["skipped"]) == {"invalid value", "not a benchmark item"}
    assert "bad rows skipped (--on-bad-row skip): 2" in printed
    assert "2 bad rows skipped" in (tmp_path / "skipped" / "report.md").read_text()


# --- export --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["reward", "generative"])
def test_card_names_only_files_the_export_holds(kind, request):
    _, export_dir = request.getfixturevalue(kind)
    card = json.loads((export_dir / "judge_card.json").read_text())
    assert card["kind"] == kind and card["evaluation"]
    for entry in card["evaluation"]:
        copied = export_dir / entry["path"]
        assert copied.is_file(), f"the card names {entry['path']}, which the export does not hold"
        assert json.loads(copied.read_text()) == EVAL_RESULT and entry["metrics"] == EVAL_RESULT["metrics"]


# --- the factory -----------------------------------------------------------------------------------


def test_factory_builds_either_kind_from_a_dir_and_a_url(reward, generative):
    from judgetrain.judging import Judge
    from judgetrain.judging.protocol import JudgeProtocol, judge_from_card
    from judgetrain.reward.judge import RewardJudge

    question, first, second = "Tell me about salt.", "Salt is common and useful every day.", "I do not know."
    for (_, export_dir), kind in ((reward, RewardJudge), (generative, Judge)):
        local = judge_from_card(export_dir, batch_size=2)
        server, url = _served(export_dir)
        try:
            remote = judge_from_card(url, batch_size=2)
            assert type(local) is kind and type(remote) is kind
            assert isinstance(local, JudgeProtocol) and isinstance(remote, JudgeProtocol)
            assert remote.card.template == local.card.template
            here, there = local.compare(question, first, second), remote.compare(question, first, second)
            assert (here.winner, here.raw_text) == (there.winner, there.raw_text)
            assert local.rerank(question, [second, first]).ranking == remote.rerank(question, [second, first]).ranking
            remote.close()
        finally:
            server.shutdown()
            server.server_close()
            local.close()
    with pytest.raises(ValueError, match="is a generative judge's"):
        RewardJudge.from_card(generative[1])
    with pytest.raises(ValueError, match="a reward judge.*drop --max-new-tokens"):
        judge_from_card(reward[1], max_new_tokens=8)


# --- mtbench judge -----------------------------------------------------------------------------------


def _mtbench_answers(out_dir: Path) -> None:
    for model, text in (("model-a", "A short answer."), ("model-b", "A longer answer, with some detail in it.")):
        path = out_dir / "mt_bench" / "model_answer" / f"{model}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"question_id": 81, "model_id": model,
                                    "choices": [{"index": 0, "turns": [text, text + " Again."]}]}) + "\n", encoding="utf-8")


def test_mtbench_judge_takes_either_card(reward, generative, tmp_path, capsys):
    _mtbench_answers(tmp_path)
    base = ["mtbench", "judge", "--model-list", "model-a", "model-b", "--question-id", "81", "--out-dir", str(tmp_path),
            "--no-cache"]
    reward_export, generative_export = reward[1], generative[1]
    assert main([*base, "--mode", "single", "--judge", str(reward_export)]) == 1
    assert "reward judge" in capsys.readouterr().err
    assert main([*base, "--mode", "single", "--judge", str(generative_export)]) == 1
    assert "fixes the template mtbench-pair-v2" in capsys.readouterr().err
    assert main([*base, "--mode", "pairwise-all", "--judge", str(reward_export), "--judge-name", "rm"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "mt_bench" / "model_judgment" / "rm_pair.jsonl").read_text().splitlines()]
    assert sorted(r["turn"] for r in rows) == [1, 2] and {r["template"] for r in rows} == {"reward-chat-v1"}
    # Turn 1 is scored on the first turn only, as the reward judge scores that conversation itself.
    from judgetrain.judging.protocol import judge_from_card

    judge = judge_from_card(reward_export)
    first_turn = judge.compare("Compose an engaging travel blog post about a recent trip to Hawaii, highlighting cultural "
                               "experiences and must-see attractions.", "A short answer.",
                               "A longer answer, with some detail in it.")
    judge.close()
    names = {"A": "model_1", "B": "model_2", "tie": "tie"}
    assert next(r for r in rows if r["turn"] == 1)["g1_winner"] == names[first_turn.winner]
    assert main([*base, "--mode", "pairwise-all", "--judge", str(generative_export), "--judge-name", "gen"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "mt_bench" / "model_judgment" / "gen_pair.jsonl").read_text().splitlines()]
    assert {r["template"] for r in rows} == {"mtbench-pair-v2", "mtbench-pair-v2-multi-turn"}
    assert all(r["decoding"]["max_new_tokens"] == 4 for r in rows), "the card's generation budget, not FastChat's 2048"


def test_the_playground_and_the_client_use_the_same_factory(reward):
    """The playground judges with a reward export (a pair, and one answer graded by its reward), and
    the client's names are the library's own."""
    import judgetrain.client as client
    from judgetrain.browse.playground import JudgeChoice, Playground
    from judgetrain.judging import protocol, ranking
    from judgetrain.judging.protocol import judge_from_card

    assert client.judge_from_card is protocol.judge_from_card and client.rerank_batch is ranking.rerank_batch
    _, export_dir = reward
    playground = Playground()
    try:
        choice = JudgeChoice(kind="export", target=str(export_dir))
        pair = playground.judge("Tell me about salt.", ["Salt is common and useful every day.", "I do not know."], choice)
        single = playground.judge("Tell me about salt.", ["I do not know."], choice)
        with pytest.raises(ValueError, match="a reward judge generates nothing"):
            playground.judge("Tell me about salt.", ["I do not know."], choice, max_new_tokens=8)
    finally:
        playground.close()
    judge = judge_from_card(export_dir)
    try:
        expected = judge.compare("Tell me about salt.", "Salt is common and useful every day.", "I do not know.")
        assert pair.template == "reward-chat-v1" and pair.both_orders.by_construction
        assert (pair.winner, pair.verdict.scores) == (expected.winner, expected.verdict.scores)
        assert single.verdict.scores == (judge.rerank("Tell me about salt.", ["I do not know.", "x"]).points[0],)
    finally:
        judge.close()
