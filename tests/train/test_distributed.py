"""Two CPU processes (gloo) through the real launchers: DDP (accelerate launch with
accelerate_configs/ddp.yaml), DeepSpeed ZeRO-2 and ZeRO-3 (torchrun with the shipped JSON). Each
trains the tiny Llama 6 steps with a global batch of 4 packed rows (2 per process) and must follow the
one-process run with the same global batch (4 rows on one process): the loss divides the summed
token losses by the supervised-token count of the whole global batch, so the split over processes
does not change it. After ZeRO-3 the consolidated safetensors in final/ load into a plain model.

Each launcher is started once (module-scoped cache); the first DeepSpeed use may JIT-compile an op.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from judgetrain.train.config import load_config
from judgetrain.train.trainer import train

from train_helpers import base_overrides, load_state_dict, logged_losses

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NUM_STEPS = 6
# The same samples in the same order and the same initial weights (all processes load one saved
# dir): DDP and ZeRO-2 reduce the same fp32 gradients, ZeRO-3 also partitions and re-gathers the
# parameters; only the order of fp32 sums differs, so losses agree to 1e-4 relative and weights to
# 1e-4 absolute after 6 Adam steps at lr 3e-3.
LOSS_RTOL = {"ddp": 1e-4, "zero2": 1e-4, "zero3": 1e-4}
WEIGHT_ATOL = {"ddp": 1e-4, "zero2": 1e-4, "zero3": 1e-4}


def overrides(prepared: Path, model_dir: Path, output_dir: Path, per_device_batch_size: int) -> list[str]:
    return base_overrides(prepared, output_dir, model__path=model_dir, model__tokenizer="tiny", data__packing="true",
                          optim__per_device_batch_size=per_device_batch_size, optim__max_steps=NUM_STEPS,
                          checkpoint__every_steps=NUM_STEPS, logging__stdout="true")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(engine: str) -> list[str]:
    port = str(free_port())
    if engine == "ddp":
        return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(REPO / "accelerate_configs" / "ddp.yaml"),
                "--num_processes", "2", "--main_process_port", port, "-m", "judgetrain.train"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                "--master_port", port, "-m", "judgetrain.train"]
    return torchrun + [f"parallel.deepspeed={REPO / 'accelerate_configs' / f'deepspeed_{engine}.json'}"]


@pytest.fixture(scope="module")
def reference(prepared_dir, tiny_model_dir, tmp_path_factory):
    """One process, 4 packed rows per step."""
    out = tmp_path_factory.mktemp("one-process") / "run"
    return train(load_config(None, overrides(prepared_dir, tiny_model_dir, out, per_device_batch_size=4)))


_runs: dict[str, Path] = {}


@pytest.fixture(scope="module")
def launched(prepared_dir, tiny_model_dir, tmp_path_factory):
    """``launched(engine)``: the output dir of a 2-process run with ``engine``, started once per module."""

    def run(engine: str) -> Path:
        if engine not in _runs:
            out = tmp_path_factory.mktemp(f"two-process-{engine}") / "run"
            # A fresh environment: the test process's own settings (pytest's, accelerate's) stay out of the launch.
            env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR", "JUDGETRAIN_CACHE") if key in os.environ}
            env |= {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline",
                   "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
                   "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
            command = launch_command(engine) + overrides(prepared_dir, tiny_model_dir, out, per_device_batch_size=2)
            try:
                done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                                      stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired as err:
                raise AssertionError(f"{engine} run timed out:\n{(err.stdout or b'')[-3000:]}\n{(err.stderr or b'')[-5000:]}") from None
            assert done.returncode == 0, f"{engine} run failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
            assert f"distributed type: {'MULTI_CPU' if engine == 'ddp' else 'DEEPSPEED'}, 2 process(es)" in done.stderr
            _runs[engine] = out
        return _runs[engine]

    return run


def history_of(output_dir: Path) -> list[dict]:
    import json

    return json.loads((output_dir / f"checkpoint-{NUM_STEPS}" / "trainer_state.json").read_text())["log_history"]


@pytest.mark.parametrize("engine", ["ddp", "zero2", "zero3"])
def test_two_processes_follow_the_one_process_run(engine, reference, launched):
    out = launched(engine)
    losses = logged_losses(history_of(out))
    expected = logged_losses(reference.log_history)
    assert len(losses) == len(expected) == NUM_STEPS
    assert losses[-1] < losses[0]
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(expected), rtol=LOSS_RTOL[engine], atol=0)
    trained = load_state_dict(out / "final")
    reference_weights = load_state_dict(reference.final_dir)
    assert trained.keys() == reference_weights.keys()
    for name, tensor in reference_weights.items():
        torch.testing.assert_close(trained[name], tensor, atol=WEIGHT_ATOL[engine], rtol=0, msg=f"{engine}: {name}")


def test_zero3_consolidated_checkpoint_loads_into_a_plain_model(launched, tiny_model_dir, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    out = launched("zero3")
    model = AutoModelForCausalLM.from_pretrained(out / "final", dtype=torch.float32)
    initial = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    # Whole tensors (not a process's flat partition) with the model's shapes, and trained.
    for (name, tensor), (_, start) in zip(model.state_dict().items(), initial.state_dict().items()):
        assert tensor.shape == start.shape, name
    assert any(not torch.equal(a, b) for a, b in zip(model.parameters(), initial.parameters()))
    ids = tiny_tokenizer("Assistant 1 explains rain better.", return_tensors="pt").input_ids
    with torch.no_grad():
        loss = model(ids, labels=ids).loss
    assert torch.isfinite(loss)
    # The ZeRO-3 checkpoint-N also holds the sharded optimizer state for resuming.
    assert (out / f"checkpoint-{NUM_STEPS}" / f"global_step{NUM_STEPS}").is_dir()
