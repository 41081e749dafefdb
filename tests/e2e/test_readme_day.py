"""The README's day, end to end, on what the package ships: prepare → train → evaluate → export →
serve → client, with the real commands (``judgetrain.cli.main``; ``judgetrain serve`` in its own
process on 127.0.0.1), the shipped LLMBar pairs and PandaLM eval file of ``judgetrain/resources``, the
CPU LoRA recipe on the tiny model, and no data from outside the package."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from judgetrain.cli import main

REPO = Path(__file__).resolve().parents[2]
RESOURCES = REPO / "judgetrain" / "resources" / "quickstart"
RECIPE = REPO / "recipes" / "smollm2-135m-lora-cpu.yaml"
FORMAT = "pandalm-v1"
"""The recipe's template."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture()
def serve_process():
    """Starts ``judgetrain serve --model DIR`` in its own process; stops it at the end."""
    started = []

    def start(model_dir: Path) -> str:
        port = _free_port()
        process = subprocess.Popen([sys.executable, "-m", "judgetrain.cli", "serve", "--model", str(model_dir), "--port",
                                    str(port), "--batch-size", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   env={**os.environ, "OMP_NUM_THREADS": "1"})
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"judgetrain serve exited: {process.stdout.read().decode()}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    return url
            except httpx.HTTPError:
                time.sleep(0.3)
        raise AssertionError("judgetrain serve did not answer /health in 120 s")

    yield start
    for process in started:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_readme_day_on_what_the_package_ships(tmp_path, serve_process, capsys):
    import judgetrain
    from judgetrain.data.prepared import read_sample_file

    data, run, judge_dir = tmp_path / "data" / "llmbar", tmp_path / "run", tmp_path / "judges" / "my-judge"

    # 1. Prepare: the shipped LLMBar pairs (canonical samples) with the recipe's template, swap augmented.
    assert main(["prep", "--source", "jsonl", "--input", str(RESOURCES / "train_llmbar.jsonl"), "--out", str(data),
                 "--format", FORMAT, "--swap-aug", "0.5"]) == 0
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["samples"]["num_samples"] > 100

    # 2. Train: the CPU LoRA recipe, on the tiny model for two steps.
    assert main(["train", "--config", str(RECIPE), "model.path=tiny", f"data.datasets={data}", "data.max_seq_len=512",
                 "optim.max_steps=2", "optim.gradient_accumulation_steps=1", "eval.every_steps=0", "eval.judge.num_samples=0",
                 "checkpoint.every_steps=0",
                 "logging.stdout=false", f"output_dir={run}"]) == 0
    checkpoint = run / "final"
    assert (checkpoint / "adapter_config.json").is_file()

    # 3. Evaluate the checkpoint on the shipped PandaLM eval file, read as the canonical samples it holds.
    eval_dir = run / "eval" / "pandalm"
    assert main(["eval", "--benchmark", "pandalm-test", "--judge", str(checkpoint), "--data", str(RESOURCES / "eval_pandalm.jsonl"),
                 "--limit", "3", "--max-new-tokens", "4", "--bootstrap-resamples", "0", "--no-plots", "--out", str(eval_dir)]) == 0
    results = json.loads((eval_dir / "results.json").read_text())
    assert results["metrics"]["num_items"]["value"] == 3 and results["config"]["data_read"]["schemas"] == {"judgesample": 3}

    # 4. Export: the template comes from the checkpoint's record; the evaluation travels with the export.
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(judge_dir), "--dtype", "fp32", "--max-new-tokens", "4"]) == 0
    card = json.loads((judge_dir / "judge_card.json").read_text())
    assert card["kind"] == "generative" and card["format"]["template"] == FORMAT
    assert [e["path"] for e in card["evaluation"]] == ["eval/pandalm/results.json"]
    assert json.loads((judge_dir / "eval" / "pandalm" / "results.json").read_text())["metrics"] == results["metrics"]

    # 5. Serve it, and 6. judge through the client: the served judge says what the export says locally.
    url = serve_process(judge_dir)
    remote, local = judgetrain.Judge.from_card(url), judgetrain.Judge.from_card(judge_dir)
    assert remote.card.template == FORMAT and remote.format.name == FORMAT
    served, here = remote.compare("What is 2+2?", "4", "5"), local.compare("What is 2+2?", "4", "5")
    assert served.both_orders is not None and served.prompt_messages == here.prompt_messages
    assert [j.raw_text for j in (served.both_orders.original, served.both_orders.swapped)] == \
           [j.raw_text for j in (here.both_orders.original, here.both_orders.swapped)]
    local.close()
    remote.close()

    # The commands take the served URL too, built from the card the server publishes.
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join((RESOURCES / "eval_pandalm.jsonl").read_text().splitlines(keepends=True)[:2]), encoding="utf-8")
    judgments = tmp_path / "judgments.jsonl"
    assert main(["judge", "--model", url, "--input", str(pairs), "--out", str(judgments), "--no-progress", "--no-cache"]) == 0
    rows = [json.loads(line) for line in judgments.read_text().splitlines()]
    assert [r["template"] for r in rows] == [FORMAT, FORMAT] and [r["sample_id"] for r in rows] == [s.id for s in read_sample_file(pairs)]
    assert main(["eval", "--benchmark", "pandalm-test", "--judge", url, "--data", str(pairs), "--bootstrap-resamples", "0",
                 "--no-plots", "--out", str(tmp_path / "eval-served")]) == 0
    served_results = json.loads((tmp_path / "eval-served" / "results.json").read_text())
    assert served_results["config"]["judge_card"]["path"] == f"{url}/v1/judge_card"
    assert served_results["metrics"]["num_items"]["value"] == 2
