"""bench/gpu_check.sh on a CPU: its steps end to end with the tiny model (``--device cpu --small``), its
refusals (GPU mode without CUDA, missing wheels) and the CPU / device verdict comparison."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "bench" / "gpu_check.sh"


def run_script(*args: str, out: Path, timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    # One torch thread per process: the tiny model's ops are too small to share, and on a busy shared CPU two
    # threads waiting for each other make each op ~10x slower.
    environment = {**os.environ, "GPU_CHECK_OUT": str(out), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=environment,
                          cwd=REPO_ROOT)


def test_the_shell_script_parses():
    checked = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_the_cpu_check_runs_every_step_and_prints_the_table(tmp_path):
    done = run_script("--skip-install", "--device", "cpu", "--small", out=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "gpu_check: all steps passed" in done.stdout
    assert "step             figure" in done.stdout  # the table's heading line

    summary = json.loads((tmp_path / "results" / "summary.json").read_text())
    values = {(row["step"], row["figure"]): row["value"] for row in summary["rows"]}
    assert set(values) == {("train ddp", "tokens/s"), ("train ddp", "MFU"), ("judge batch 4", "samples/s"),
                           ("judge batch 1", "samples/s"), ("judge", "speedup"), ("reward judge", "samples/s"),
                           ("cpu = cpu", "same verdicts")}
    for figure in ("tokens/s", "MFU"):
        assert values[("train ddp", figure)] > 0
    assert values[("train ddp", "MFU")] < 1
    assert values[("judge", "speedup")] == pytest.approx(values[("judge batch 4", "samples/s")] / values[("judge batch 1", "samples/s")])
    num_items = summary["scale"]["num_items"]
    assert values[("cpu = cpu", "same verdicts")] == 2 * num_items  # generative and reward verdicts

    results = tmp_path / "results"
    trained = json.loads((results / "train-ddp.json").read_text())
    # 3 steps of one packed row each, the first one untimed.
    assert (trained["steps"], trained["timed_steps"]) == (3, 2)
    assert 0 < trained["timed_tokens"] <= 2 * 2048
    assert trained["distributed_type"] == "MULTI_CPU"  # launched by torchrun, as the recipes are
    compared = json.loads((results / "verdicts.json").read_text())
    assert compared["same_text"] == compared["same_outcome"] == compared["same_reward_winner"] == num_items
    assert compared["max_probability_difference"] == compared["max_reward_difference"] == 0.0
    judged = json.loads((results / "judge.json").read_text())
    assert judged["num_items"] == num_items and judged["batched"]["tokens_out"] > 0


def test_the_gpu_mode_refuses_to_run_without_cuda(tmp_path):
    # CUDA_VISIBLE_DEVICES="" hides any GPU, so this holds on a GPU machine too.
    done = run_script("--skip-install", out=tmp_path, CUDA_VISIBLE_DEVICES="")
    assert done.returncode != 0
    assert "gpu_check: FAILED at step 'preflight'" in done.stderr
    assert "torch.cuda.is_available() is False" in done.stderr
    assert not (tmp_path / "results" / "preflight.json").exists()


def test_missing_wheels_are_named_before_anything_is_installed(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "datasets-5.2.0-py3-none-any.whl").write_bytes(b"")  # one present: only the others are named
    done = run_script(out=tmp_path / "out", GPU_CHECK_WHEELS=str(wheels), timeout=60)
    assert done.returncode != 0
    assert "gpu_check: FAILED at step 'install'" in done.stderr
    assert "pyarrow==24.0.0" in done.stderr and "datasets==5.2.0" not in done.stderr
    assert "--download-wheels" in done.stderr
    assert not (tmp_path / "out" / "logs" / "install-datasets.log").exists()  # pip never ran


@pytest.fixture(scope="module")
def gpu_check():
    sys.path.insert(0, str(REPO_ROOT / "bench"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(REPO_ROOT / "bench"))
    return gpu_check


def verdicts_of(texts: list[str], rewards: list[list[float]]) -> dict[str, list]:
    return {"outcomes": ["parse_failure"] * len(texts), "texts": texts,
            "probabilities": [{"1": 0.5, "2": 0.5} for _ in texts],
            "reward_winners": ["A" if a > b else "B" for a, b in rewards], "rewards": rewards}


def test_equal_verdicts_pass_the_comparison(gpu_check):
    cpu = verdicts_of(["3 7", "x"], [[0.2, 0.1], [0.0, 0.4]])
    figures = gpu_check.compare_verdicts(cpu, verdicts_of(["3 7", "x"], [[0.2, 0.1], [0.0, 0.4 + 1e-6]]), "cuda")
    assert (figures["same_text"], figures["same_reward_winner"]) == (2, 2)
    assert figures["max_reward_difference"] == pytest.approx(1e-6)


def test_a_differing_text_or_reward_fails_the_comparison(gpu_check):
    cpu = verdicts_of(["3 7", "x"], [[0.2, 0.1], [0.0, 0.4]])
    with pytest.raises(gpu_check.StepFailed, match="1 of 2 items differ between the CPU and cuda; item 1"):
        gpu_check.compare_verdicts(cpu, verdicts_of(["3 7", "y"], [[0.2, 0.1], [0.0, 0.4]]), "cuda")
    with pytest.raises(gpu_check.StepFailed, match="max_reward_difference"):
        gpu_check.compare_verdicts(cpu, verdicts_of(["3 7", "x"], [[0.2, 0.1], [0.0, 0.41]]), "cuda")
