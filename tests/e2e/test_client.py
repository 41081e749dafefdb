"""The client against a real `judgetrain serve` on 127.0.0.1, serving a tiny exported judge.

A judge built from the server's URL must say exactly what the same judge says locally (the server
applies the export's chat template to the card's messages), and compare / rerank must use both orders.
"""

import json

import pytest

from judgetrain.quickstart import read_shipped
from tests.conftest import TINY_JUDGE_TEMPLATE as FORMAT


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from judgetrain.export import export
    from judgetrain.serve import start_server
    from judgetrain.train.config import load_config
    from judgetrain.train.trainer import train
    from judgetrain.data.prepare import prepare_dataset

    tmp = tmp_path_factory.mktemp("client")
    # Trained long enough on the bare verdict targets that the tiny model writes "[[A]]" / "[[B]]".
    prepare_dataset(read_shipped("train_llmbar.jsonl")[:8], tmp / "data", format_name=FORMAT, source="test", seed=0)
    (tmp / "train.yaml").write_text(
        "model: {path: tiny}\n"
        f"data: {{datasets: [{{path: '{tmp / 'data'}'}}], format: {FORMAT}}}\n"
        "method: {name: lora, lora: {r: 16, alpha: 32, dropout: 0.0}}\n"
        "optim: {lr: 5.0e-3, max_steps: 60, per_device_batch_size: 8, warmup_ratio: 0.0, schedule: constant}\n"
        "logging: {stdout: true, every_steps: 100}\n"
        "checkpoint: {every_steps: 0, resume: never}\n"
        f"output_dir: '{tmp / 'run'}'\n",
        encoding="utf-8",
    )
    checkpoint = train(load_config(tmp / "train.yaml")).final_dir
    out = export(checkpoint, tmp / "judge", dtype="fp32", max_new_tokens=8)
    server, _ = start_server(str(out), "127.0.0.1", 0, batch_size=4)
    yield out, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_server_publishes_the_card(served):
    import httpx

    from judgetrain.serve import without_local_paths

    out, url = served
    # The export's card, with the absolute paths it records (its training data dirs) cut to their names.
    assert httpx.get(f"{url}/v1/judge_card").json() == without_local_paths(json.loads((out / "judge_card.json").read_text()))


def test_http_judge_says_what_the_local_judge_says(served):
    from judgetrain import Judge

    out, url = served
    remote = Judge.from_card(url)
    local = Judge.from_card(out)
    assert remote.backend.name == "openai" and local.backend.name == "transformers"
    assert remote.format.name == local.format.name == FORMAT and remote.both_orders and local.both_orders
    samples = read_shipped("eval_pandalm.jsonl")[:3]
    remote_judgments, local_judgments = remote.judge(samples), local.judge(samples)
    for r, l in zip(remote_judgments, local_judgments):
        assert r.error is None, r.error
        assert [o.raw_text for o in (r.both_orders.original, r.both_orders.swapped)] == [o.raw_text for o in (l.both_orders.original, l.both_orders.swapped)]
        assert r.winner == l.winner
    # The trained judge writes verdicts the format reads (so the comparison above is of verdicts, not only of noise).
    assert all(j.verdict is not None for j in local_judgments)
    remote.backend.close()


def test_compare_uses_both_orders(served):
    from judgetrain import Judge

    _, url = served
    judge = Judge.from_card(url, both_orders=False)
    sample = read_shipped("eval_pandalm.jsonl")[0]
    result = judge.compare(sample.question_turns[0], sample.answers[0].text, sample.answers[1].text)
    assert [o.swapped for o in (result.both_orders.original, result.both_orders.swapped)] == [False, True]
    assert result.both_orders.outcome in ("A", "B", "tie", "parse_failure")
    assert judge.both_orders is False, "compare leaves the judge's own setting alone"
    judge.backend.close()


def test_rerank_round_robin(served):
    from judgetrain import Judge

    out, _ = served
    judge = Judge.from_card(out)
    candidates = ["Paris.", "The capital of France is Paris, on the Seine.", "Lyon."]
    result = judge.rerank("What is the capital of France?", candidates)
    assert len(result.judgments) == 3 and all(j.both_orders is not None for j in result.judgments)
    assert sorted(result.ranking) == [0, 1, 2] and result.best_index == result.ranking[0]
    # Each pair with a verdict hands out exactly one point; unread pairs hand out none.
    assert sum(result.points) == pytest.approx(3 - result.num_unread)
    assert all(result.points[a] >= result.points[b] for a, b in zip(result.ranking, result.ranking[1:]))


def test_vllm_style_server_without_card_needs_card_argument(served, tmp_path):
    from judgetrain.client import fetch_card
    from judgetrain.serve import start_server

    out, _ = served
    server, _ = start_server("tiny", "127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(ValueError, match="publishes no judge card"):
            fetch_card(url)
        from judgetrain import Judge

        judge = Judge.from_card(url, card=out)
        assert judge.format.name == FORMAT and judge.backend.base_url.endswith("/v1")
        judge.backend.close()
    finally:
        server.shutdown()
        server.server_close()
