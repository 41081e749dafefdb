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
TINY_JUDGE_TEMPLATE = "mtbench-pair-v2"
"""The template of the tiny generative judges the tests train: FastChat's pair-v2 prompt, verdicts [[A]] / [[B]] / [[C]]
(its target is the verdict alone, so a winner-only label trains it)."""
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


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tiny models on one thread: their matrices are too small for a second thread to
    help, and on a busy machine each op would wait for the other thread's core. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def labelled_pair(index: int):
    """A pair whose better answer is plainly better, the winner alternating between A and B."""
    from judgetrain.types import Answer, JudgeSample, Label

    good, bad = f"Topic {index} is common and useful every day.", "I do not know."
    answers = (Answer(good), Answer(bad)) if index % 2 else (Answer(bad), Answer(good))
    return JudgeSample(id=f"r{index:03d}", source="test", question=f"Tell me about topic {index}.", answers=answers,
                       labels={"gpt4": Label(winner="A" if index % 2 else "B")})


@pytest.fixture(scope="session")
def tiny_reward_checkpoint(tmp_path_factory) -> Path:
    """The final checkpoint of a tiny reward judge trained two steps on 16 labelled pairs, shared by
    the session: a test exports it (or copies its run dir) where it needs, and never writes into it."""
    import torch

    from judgetrain.data.prepare import prepare_dataset
    from judgetrain.train.config import load_config
    from judgetrain.train.trainer import train

    root = tmp_path_factory.mktemp("tiny-reward")
    prepare_dataset([labelled_pair(i) for i in range(16)], root / "pairs", source="test")
    config_file = root / "reward.yaml"
    config_file.write_text("kind: reward\nmodel: {path: tiny}\n", encoding="utf-8")
    config = load_config(config_file, [f"data.datasets={root / 'pairs'}", "data.max_seq_len=128", "optim.max_steps=2",
                                       "optim.per_device_batch_size=4", "logging.stdout=false", "checkpoint.every_steps=0",
                                       f"output_dir={root / 'run'}"])
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(config).final_dir
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_generative_export(tmp_path_factory) -> Path:
    """A tiny LoRA judge trained one step with the train API on two shipped LLMBar pairs in the
    :data:`TINY_JUDGE_TEMPLATE` and exported (fp32, 8 new tokens). Its card records the
    absolute path of its training data, under the export's parent dir. Shared by the session: no test
    writes into it."""
    from judgetrain.data.prepare import prepare_dataset
    from judgetrain.export import export
    from judgetrain.quickstart import read_shipped
    from judgetrain.train.config import load_config
    from judgetrain.train.trainer import train

    FORMAT = TINY_JUDGE_TEMPLATE
    tmp = tmp_path_factory.mktemp("tiny-generative-export")
    prepare_dataset(read_shipped("train_llmbar.jsonl")[:2], tmp / "data", format_name=FORMAT, source="test", seed=0)
    (tmp / "train.yaml").write_text(
        "model: {path: tiny}\n"
        f"data: {{datasets: [{{path: '{tmp / 'data'}'}}], format: {FORMAT}, max_seq_len: 2048}}\n"
        "method: {name: lora, lora: {r: 4, alpha: 8, dropout: 0.0}}\n"
        "optim: {lr: 1.0e-3, max_steps: 1, per_device_batch_size: 2, warmup_ratio: 0.0, schedule: constant}\n"
        "logging: {stdout: false, every_steps: 100}\n"
        "checkpoint: {every_steps: 0, resume: never}\n"
        f"output_dir: '{tmp / 'run'}'\n",
        encoding="utf-8",
    )
    return export(train(load_config(tmp / "train.yaml")).final_dir, tmp / "judge", dtype="fp32", max_new_tokens=8)
