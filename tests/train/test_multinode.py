"""Two "nodes" of one gloo process each on 127.0.0.1, launched as a multi-node job is: one torchrun per
node (``--nnodes 2 --node_rank 0/1 --nproc_per_node 1``) meeting at a c10d rendezvous on the first node.
The run trains the tiny Llama with a global batch of 4 packed rows (2 per process) and must follow the
one-process run with the same global batch, as the 2-process runs of test_distributed do: the loss divides
by the supervised-token count of the whole global batch, whichever machines its processes run on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch

from test_distributed import LOSS_RTOL, NUM_STEPS, REPO, WEIGHT_ATOL, free_port, history_of, overrides, reference  # noqa: F401
from train_helpers import load_state_dict, logged_losses

pytestmark = pytest.mark.slow

NUM_NODES = 2


def node_command(node_rank: int, port: int, run_id: str) -> list[str]:
    """The torchrun line of one node (as on a cluster, with 127.0.0.1 for the first node's address)."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", str(NUM_NODES), "--node_rank", str(node_rank),
        "--nproc_per_node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", run_id,
        # On one machine both agents take 127.0.0.1 for their own address and would race to host the
        # rendezvous store; node 0 hosts it, as the first node of a cluster does.
        "--rdzv-conf", f"is_host={int(node_rank == 0)}",
        "-m", "judgetrain.train",
    ]


@pytest.fixture(scope="module")
def two_nodes(prepared_dir, tiny_model_dir, tmp_path_factory):
    """The output dir of the 2-node run and each node's stderr. Both nodes write to one output dir, as
    on a cluster's shared filesystem (only global rank 0 writes)."""
    out = tmp_path_factory.mktemp("two-nodes") / "run"
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR", "JUDGETRAIN_CACHE") if key in os.environ}
    env |= {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    port, run_id = free_port(), f"judgetrain-test-{uuid.uuid4().hex[:8]}"
    logs = [tmp_path_factory.mktemp(f"node{rank}") for rank in range(NUM_NODES)]
    nodes = []
    for rank in range(NUM_NODES):
        command = node_command(rank, port, run_id) + overrides(prepared_dir, tiny_model_dir, out, per_device_batch_size=2)
        with open(logs[rank] / "stdout", "w") as stdout, open(logs[rank] / "stderr", "w") as stderr:
            nodes.append(subprocess.Popen(command, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr))
    try:
        codes = [node.wait(timeout=300) for node in nodes]
    except subprocess.TimeoutExpired:
        for node in nodes:
            node.kill()
            node.wait()
        codes = None
    stderrs = [(log / "stderr").read_text() for log in logs]
    report = "\n".join(f"--- node {rank} ---\n{(logs[rank] / 'stdout').read_text()[-2000:]}\n{stderrs[rank][-4000:]}"
                       for rank in range(NUM_NODES))
    assert codes is not None, f"the 2-node run timed out:\n{report}"
    assert codes == [0] * NUM_NODES, f"the 2-node run failed (exit codes {codes}):\n{report}"
    return out, stderrs


def test_two_nodes_follow_the_one_process_run(two_nodes, reference):  # noqa: F811 (the imported fixture)
    out, stderrs = two_nodes
    # Each node's single process sees a world of 2: the two torchruns formed one job.
    for rank, stderr in enumerate(stderrs):
        assert "distributed type: MULTI_CPU, 2 process(es)" in stderr, f"node {rank}:\n{stderr[-3000:]}"
    losses = logged_losses(history_of(out))
    expected = logged_losses(reference.log_history)
    assert len(losses) == len(expected) == NUM_STEPS
    assert losses[-1] < losses[0]
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(expected), rtol=LOSS_RTOL["ddp"], atol=0)
    trained = load_state_dict(out / "final")
    reference_weights = load_state_dict(reference.final_dir)
    assert trained.keys() == reference_weights.keys()
    for name, tensor in reference_weights.items():
        torch.testing.assert_close(trained[name], tensor, atol=WEIGHT_ATOL["ddp"], rtol=0, msg=f"two nodes: {name}")
