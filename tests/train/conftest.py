"""Fixtures of the training tests (the helpers they use live in ``train_helpers``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from train_helpers import judge_sample, write_prepared_dir


@pytest.fixture(scope="session")
def prepared_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """64 samples, tokenized with the tiny tokenizer."""
    return write_prepared_dir(tmp_path_factory.mktemp("prepared") / "judge64", [judge_sample(i) for i in range(64)], tiny_tokenizer)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The seeded tiny Llama saved as an HF dir (safetensors), so every run (and every process of a
    distributed one, ZeRO-3 included) loads the same initial weights through from_pretrained."""
    from judgetrain.models import build_tiny_model

    out = tmp_path_factory.mktemp("tiny-model") / "tiny-llama"
    build_tiny_model(seed=0).save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Train the tiny model on one thread: its matrices are too small for a second thread to help,
    and on a busy machine each step would wait for the other thread's core (10x slower measured).
    torchrun gives each process one thread too (OMP_NUM_THREADS=1)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
