"""Shared test setup: offline hubs, the shared data dir, and the tiny model + tokenizer."""

import os

# Set before anything imports transformers / datasets / wandb, so an accidental hub call fails fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("JUDGETRAIN_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public judge data (../shared/data); tests that need it skip loudly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}; set JUDGETRAIN_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from judgetrain.models import TINY_MODEL, load_tokenizer

    return load_tokenizer(TINY_MODEL)


@pytest.fixture()
def tiny_model():
    from judgetrain.models import build_tiny_model

    return build_tiny_model(seed=0)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session gets its own judgetrain cache, except the converted embedded model, which is
    kept across sessions (converting SmolLM2 from GGUF takes ~30 s)."""
    monkeypatch.setenv("JUDGETRAIN_RESULT_CACHE", str(tmp_path_factory.getbasetemp() / "result-cache"))
