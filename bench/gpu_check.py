"""A check of judgetrain on one GPU, offline: train, judge, score and compare with the CPU, step by step.

    python bench/gpu_check.py STEP [STEP ...] --out DIR [--device cuda|cpu] [--small]

``bench/gpu_check.sh`` installs judgetrain from wheels kept beside the checkout, runs the steps below in
this order (the train steps under torchrun) and prints the table. Every step writes
``DIR/results/STEP.json``; a step that cannot run ends the check with a non-zero exit and a message that
names it: nothing is skipped.

- ``preflight``: CUDA with bf16 (``--device cuda``) and the modules the steps import;
- ``build``: the models, seeded and saved once, and the training data. The judge model is a random Llama
  of 0.49B parameters (24 layers of width 1280) over the shipped tiny tokenizer (the embedded SmolLM2 GGUF
  is not on the GPU machine; random weights do not matter for speed); the tiny random model (the tests')
  and a tiny reward model are built for the CPU comparison. Training data: the shipped LLMBar and HHH pairs
  (the quickstart's) in ``mtbench-pair-v2``, tokenized with the tiny tokenizer;
- ``peak-before`` / ``peak-after``: the device's matmul peak as ``bench/train_throughput.py`` measures a
  CPU's (2·n³ FLOPs per n×n product, best of several), bf16 on a GPU (fp32 on a CPU); the higher is kept;
- ``train-fsdp`` / ``train-ddp``: 30 packed steps through :func:`judgetrain.train.trainer.train` with
  ``recipes/judgelm-7b-full-fsdp.yaml`` (bf16, FSDP2 full shard with the recipe's activation checkpointing;
  ``ddp``: the same with FSDP off), one process under torchrun. The steps after the warm-up ones are timed
  and their tokens counted (``bench/train_throughput.py``'s CountingCollator); MFU is 6·N·tokens/s over
  the peak (N = parameters; attention and recomputation not counted);
- ``judge``: the first 200 PandaLM items of ``judgetrain/resources/quickstart/eval_pandalm.jsonl`` in
  ``judgelm-v1`` with the transformers backend as shipped (dtype auto, stop after the verdict line,
  verdict probabilities), batched and batch 1, through ``bench/judge_throughput.py``'s ``run_judge``;
- ``reward``: the same items scored by a reward judge: the judge model with a seeded random one-output
  head (``judgetrain.reward``);
- ``verdicts``: the tiny model and the tiny reward model, loaded from their saved dirs in fp32 (TF32 off),
  judge the same items greedily on the CPU and on the device: every verdict and generated text must be
  equal, and the verdict probabilities and rewards within a tolerance;
- ``table``: one table of every figure (``DIR/results/table.txt``, and ``DIR/results/summary.json``).

``--device cpu --small`` runs the same steps with the tiny model, a few steps and a few items (what the
tests run); FSDP needs GPUs, so on a CPU there is no ``train-fsdp``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Set before transformers / datasets are imported, so that nothing reaches for the network.
for variable, value in (("HF_HUB_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1"), ("WANDB_MODE", "offline"),
                        ("TOKENIZERS_PARALLELISM", "false")):
    os.environ.setdefault(variable, value)

import torch  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
for path in (REPO_ROOT, BENCH_DIR):  # the plugin packages and the sibling benchmarks
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

RECIPE = REPO_ROOT / "recipes" / "judgelm-7b-full-fsdp.yaml"
QUICKSTART_DIR = REPO_ROOT / "judgetrain" / "resources" / "quickstart"
ITEMS_FILE = QUICKSTART_DIR / "eval_pandalm.jsonl"
TRAIN_FILES = ("train_llmbar.jsonl", "train_hhh.jsonl")
TRAIN_FORMAT = "mtbench-pair-v2"
"""The shipped training pairs carry winners without grades: this template's target is the verdict itself."""
JUDGE_FORMAT = "judgelm-v1"
"""bench/judge_throughput.py's template: verdict first ("s1 s2"), so judging stops after one line."""
MAX_SEQ_LEN_TOKENS = 2048
SEED = 0
PARALLEL_CHOICES = ("fsdp", "ddp")
STEPS = ("preflight", "build", "peak-before", "train-fsdp", "train-ddp", "peak-after", "judge", "reward", "verdicts", "table")
"""In the order bench/gpu_check.sh runs them (train-* under torchrun; train-fsdp on GPUs only)."""
PROBABILITY_TOLERANCE = 1e-4
"""Largest |CPU − device| verdict probability or reward allowed in fp32; TF32 matmuls would exceed it."""

# A Llama of 492.9M parameters over the 2048-token tiny tokenizer (Qwen2.5-0.5B's depth, a wider layer
# since the small vocabulary leaves the embeddings almost nothing).
JUDGE_MODEL_SHAPE = dict(hidden_size=1280, intermediate_size=3584, num_hidden_layers=24, num_attention_heads=20,
                         num_key_value_heads=20, max_position_embeddings=4096)


@dataclass(frozen=True)
class Scale:
    """How much each step does."""

    num_train_samples: int | None
    """Training samples prepared (None: all shipped LLMBar + HHH pairs)."""
    train_steps: int
    warmup_steps: int
    """Optimizer steps left out of the timing (the first step pays for allocator and kernel set-up)."""
    rows_per_step: int
    """Packed rows of ``MAX_SEQ_LEN_TOKENS`` per optimizer step (one process, no accumulation)."""
    num_items: int
    judge_batch_size: int
    matmul_size: int
    matmul_repeats: int


FULL = Scale(num_train_samples=None, train_steps=30, warmup_steps=5, rows_per_step=2, num_items=200, judge_batch_size=16,
             matmul_size=8192, matmul_repeats=10)
SMALL = Scale(num_train_samples=24, train_steps=3, warmup_steps=1, rows_per_step=1, num_items=4, judge_batch_size=4,
              matmul_size=512, matmul_repeats=10)


class StepFailed(Exception):
    """A step cannot run or its result is wrong; the message says what to do."""


# --- where things go -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    out: Path

    @property
    def judge_model(self) -> Path:
        return self.out / "models" / "judge-model"

    @property
    def tiny_model(self) -> Path:
        return self.out / "models" / "tiny"

    @property
    def tiny_reward_model(self) -> Path:
        return self.out / "models" / "tiny-reward"

    @property
    def train_data(self) -> Path:
        return self.out / "data" / "train"

    def run_dir(self, parallel: str) -> Path:
        return self.out / "runs" / f"train-{parallel}"

    def result(self, name: str) -> Path:
        return self.out / "results" / f"{name}.json"


def write_result(layout: Layout, name: str, payload: dict[str, Any]) -> None:
    path = layout.result(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"{name}: {json.dumps(payload)}")


def read_result(layout: Layout, name: str) -> dict[str, Any]:
    path = layout.result(name)
    if not path.is_file():
        raise StepFailed(f"no result of step {name!r} in {path.parent}; run the steps in order (bench/gpu_check.sh does)")
    return json.loads(path.read_text(encoding="utf-8"))


# --- devices -------------------------------------------------------------------------------------


def require_device(device: str) -> torch.device:
    """The torch device to check; ``cuda`` without a usable CUDA GPU (or without bf16) is a StepFailed."""
    if device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise StepFailed(f"--device cuda but torch.cuda.is_available() is False (torch {torch.__version__}, built for CUDA "
                         f"{torch.version.cuda}); run on a machine with a CUDA GPU and a CUDA build of torch, or check the "
                         "logic on a CPU with --device cpu --small")
    if not torch.cuda.is_bf16_supported():
        raise StepFailed(f"{torch.cuda.get_device_name(0)} has no bf16 (compute capability "
                         f"{'.'.join(map(str, torch.cuda.get_device_capability(0)))}); the training steps are bf16: use an "
                         "Ampere or newer GPU")
    return torch.device("cuda")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_flops(device: torch.device, dtype: torch.dtype, *, size: int, repeats: int) -> float:
    """Best matmul FLOP/s of ``device`` in ``dtype`` (2·n³ FLOPs per n×n product), as bench/train_throughput.py
    measures a CPU's: the best of ``repeats`` timings, here of 10 products each so that one launch and one
    synchronisation do not weigh on a GPU's millisecond."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    products_per_timing = 10
    for _ in range(3):  # warm-up: library handles, kernel selection, clocks
        a @ b
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(products_per_timing):
            a @ b
        synchronize(device)
        best = min(best, (time.perf_counter() - start) / products_per_timing)
    return 2 * size**3 / best


def compute_dtype_name(device: torch.device) -> str:
    """What the device trains and measures its peak in: bf16 on a GPU, fp32 on a CPU (emulated bf16 is slow)."""
    return "bf16" if device.type == "cuda" else "fp32"


# --- steps ---------------------------------------------------------------------------------------


def preflight(layout: Layout, device_name: str, scale: Scale) -> None:
    """The device is usable and every module the steps import is installed."""
    import importlib

    device = require_device(device_name)
    missing = []
    for module in ("datasets", "transformers", "accelerate", "safetensors", "yaml", "judgetrain.train.trainer",
                   "judgetrain.judging", "judgetrain.reward.judge", "judgetrain_data_prep.pandalm"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            missing.append(f"{module} (needs {err.name})")
    if missing:
        raise StepFailed(f"cannot import {', '.join(missing)}; install judgetrain and its wheels first "
                         "(bench/gpu_check.sh does, from bench/gpu_wheels)")
    import accelerate
    import transformers

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    write_result(layout, "preflight", {"device": device.type, "device_name": name, "torch": torch.__version__,
                                       "cuda": torch.version.cuda, "transformers": transformers.__version__,
                                       "accelerate": accelerate.__version__})


def build(layout: Layout, device_name: str, scale: Scale) -> None:
    """The judge model, the tiny model and the tiny reward model (seeded, saved once) and the training data."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    from judgetrain.data.prepare import prepare_dataset
    from judgetrain.data.prepared import read_sample_file
    from judgetrain.models import TINY_MODEL, build_tiny_model, load_tokenizer
    from judgetrain.reward.train import build_reward_model
    from judgetrain.train.config import TrainConfig

    require_device(device_name)
    tokenizer = load_tokenizer(TINY_MODEL)
    if scale is SMALL:
        judge_model = build_tiny_model(seed=SEED)
    else:
        config = LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                             bos_token_id=None, tie_word_embeddings=False, **JUDGE_MODEL_SHAPE)
        torch.manual_seed(SEED)
        # Built in bf16, the dtype the recipe trains in and the GPU judges in.
        judge_model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        judge_model.generation_config.pad_token_id = tokenizer.pad_token_id
        judge_model.generation_config.eos_token_id = tokenizer.eos_token_id
    num_parameters = sum(p.numel() for p in judge_model.parameters())
    for model, directory in ((judge_model, layout.judge_model), (build_tiny_model(seed=SEED), layout.tiny_model)):
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
    reward_config = TrainConfig()
    reward_config.kind, reward_config.model.path, reward_config.optim.seed = "reward", TINY_MODEL, SEED
    build_reward_model(reward_config).save_pretrained(layout.tiny_reward_model)
    tokenizer.save_pretrained(layout.tiny_reward_model)

    samples = [s for name in TRAIN_FILES for s in read_sample_file(QUICKSTART_DIR / name)][: scale.num_train_samples]
    manifest = prepare_dataset(samples, layout.train_data, source="gpu-check", format_name=TRAIN_FORMAT, tokenizer=TINY_MODEL,
                               max_seq_len=MAX_SEQ_LEN_TOKENS)
    write_result(layout, "build", {"num_parameters": num_parameters, "num_layers": judge_model.config.num_hidden_layers,
                                   "hidden_size": judge_model.config.hidden_size, "vocab_size": len(tokenizer),
                                   "num_train_samples": manifest.samples.num_samples})


def peak(layout: Layout, device_name: str, scale: Scale, tag: str) -> None:
    """The device's matmul FLOP/s peak in its compute dtype."""
    from judgetrain.models import torch_dtype

    device = require_device(device_name)
    dtype = compute_dtype_name(device)
    flops = matmul_peak_flops(device, torch_dtype(dtype), size=scale.matmul_size, repeats=scale.matmul_repeats)
    write_result(layout, f"peak-{tag}", {"flops_per_second": flops, "dtype": dtype, "size": scale.matmul_size})


class PerBatchTokenCounter:
    """bench/train_throughput.py's CountingCollator, keeping each batch's real tokens in the order drawn."""

    def __init__(self, collator):
        from train_throughput import CountingCollator

        self.counting = CountingCollator(collator)
        self.real_tokens_per_batch: list[int] = []

    def __call__(self, features):
        before = self.counting.real_tokens
        batch = self.counting(features)
        self.real_tokens_per_batch.append(self.counting.real_tokens - before)
        return batch


class ThroughputMeter(TrainerCallback):
    """Times the optimizer steps after ``warmup_steps`` and counts the tokens they trained on.

    ``attach`` (called by judgetrain's build_trainer) wraps the run's collator in a
    :class:`PerBatchTokenCounter`. The Trainer draws batches in step order (accelerate reads one batch
    ahead, which only adds batches at the end), so without gradient accumulation step k trained on batch k.
    """

    def __init__(self, warmup_steps: int, device: torch.device):
        self.warmup_steps = warmup_steps
        self.device = device
        self.started: float | None = None
        self.finished: float | None = None
        self.last_step = 0
        self.wrapped_as = ""
        self.parameter_dtype = ""
        self.sharded_by_fsdp = False

    def attach(self, trainer) -> None:
        self.trainer = trainer
        self.counter = PerBatchTokenCounter(trainer.data_collator)
        trainer.data_collator = self.counter

    def on_step_end(self, args, state, control, **kwargs):
        from torch.distributed.fsdp import FSDPModule

        if state.global_step == 1:
            wrapped = self.trainer.model_wrapped
            self.wrapped_as = type(wrapped).__name__
            # What the optimizer updates: accelerate keeps fp32 master weights under FSDP with bf16 mixed precision.
            self.parameter_dtype = str(next(wrapped.parameters()).dtype).removeprefix("torch.")
            self.sharded_by_fsdp = isinstance(wrapped, FSDPModule)
        if state.global_step in (self.warmup_steps, state.max_steps):
            synchronize(self.device)  # the GPU's queue is done, not only the launches
            if state.global_step == self.warmup_steps:
                self.started = time.perf_counter()
            else:
                self.finished, self.last_step = time.perf_counter(), state.global_step
        return control

    def timed_tokens(self) -> int:
        return sum(self.counter.real_tokens_per_batch[self.warmup_steps:self.last_step])


def train_overrides(layout: Layout, parallel: str, device: torch.device, scale: Scale) -> list[str]:
    """The recipe's settings changed for this check: the model, the data, the scale's packed steps, one process."""
    bf16 = device.type == "cuda"
    return [
        f"model.path={layout.judge_model}", "model.tokenizer=tiny", "model.attention=sdpa",
        f"model.dtype={'bf16' if bf16 else 'fp32'}", f"optim.bf16={str(bf16).lower()}",
        f"data.datasets={layout.train_data}", f"data.format={TRAIN_FORMAT}", f"data.max_seq_len={MAX_SEQ_LEN_TOKENS}",
        "data.packing=true", "data.swap_probability=0", "data.p_include_reference=1",
        f"optim.max_steps={scale.train_steps}", f"optim.per_device_batch_size={scale.rows_per_step}",
        "optim.global_batch_size=null", "optim.gradient_accumulation_steps=1", "optim.warmup_ratio=0",
        "logging.every_steps=10", "logging.wandb.enabled=false", "checkpoint.every_steps=0", "checkpoint.resume=never",
        f"output_dir={layout.run_dir(parallel)}", "parallel.expected_world_size=1",
        f"parallel.fsdp.enabled={str(parallel == 'fsdp').lower()}",
    ]


def train(layout: Layout, device_name: str, scale: Scale, parallel: str) -> None:
    """Packed training steps through judgetrain.train (run under torchrun), timed after the warm-up steps."""
    from accelerate import PartialState

    from judgetrain.train.config import load_config
    from judgetrain.train.trainer import train as run_training

    device = require_device(device_name)
    config = load_config(str(RECIPE), train_overrides(layout, parallel, device, scale))
    meter = ThroughputMeter(scale.warmup_steps, device)
    result = run_training(config, callbacks=[meter])
    if not PartialState().is_main_process:
        return
    if result.global_step != scale.train_steps or meter.started is None or meter.finished is None:
        raise StepFailed(f"trained {result.global_step} of {scale.train_steps} steps; see the training log above")
    if parallel == "fsdp" and not meter.sharded_by_fsdp:
        raise StepFailed(f"FSDP was asked for but the trained model is a {meter.wrapped_as}, not an FSDP2 module")
    seconds = meter.finished - meter.started
    tokens = meter.timed_tokens()
    write_result(layout, f"train-{parallel}", {
        "parallel": parallel, "distributed_type": result.distributed_type, "wrapped_as": meter.wrapped_as,
        "parameter_dtype": meter.parameter_dtype, "mixed_precision_bf16": config.optim.bf16,
        "activation_checkpointing": parallel == "fsdp" and config.parallel.fsdp.activation_checkpointing,
        "steps": result.global_step, "timed_steps": meter.last_step - meter.warmup_steps, "timed_seconds": seconds,
        "timed_tokens": tokens, "tokens_per_second": tokens / seconds, "train_loss": result.train_loss,
    })


def judge_items(scale: Scale):
    """The first ``scale.num_items`` PandaLM items of the shipped quickstart evaluation set."""
    from judgetrain.data.prepared import read_sample_file

    return read_sample_file(ITEMS_FILE)[: scale.num_items]


def judge(layout: Layout, device_name: str, scale: Scale) -> None:
    """Judging speed with the transformers backend, batched against batch 1 (bench/judge_throughput.py's run_judge)."""
    from judge_throughput import judge_format, run_judge

    from judgetrain.judging.backends.transformers_backend import TransformersBackend
    from judgetrain.judging.judge import VERDICT_LINE_MAX_NEW_TOKENS

    device = require_device(device_name)
    items = judge_items(scale)
    fmt = judge_format(JUDGE_FORMAT)
    batched = TransformersBackend(str(layout.judge_model), batch_size=scale.judge_batch_size, dtype="auto", device=device.type)
    one_at_a_time = TransformersBackend(batched.model, batched.tokenizer, batch_size=1)
    figures = {}
    for label, backend in (("batched", batched), ("batch_1", one_at_a_time)):
        seconds, judgments = run_judge(backend, fmt, items, stop_at_verdict=True, probabilities=True,
                                       max_new_tokens=VERDICT_LINE_MAX_NEW_TOKENS)
        errors = [j.error for j in judgments if j.error is not None]
        if errors:
            raise StepFailed(f"{len(errors)} of {len(items)} judgments ({label}) failed, the first: {errors[0]}")
        figures[label] = {"seconds": seconds, "samples_per_second": len(items) / seconds,
                          "tokens_out": sum(j.tokens_out or 0 for j in judgments),
                          "parsed": sum(1 for j in judgments if j.verdict is not None)}
    write_result(layout, "judge", {"num_items": len(items), "format": fmt.name, "dtype": batched.dtype,
                                   "batch_size": scale.judge_batch_size, **figures,
                                   "speedup": figures["batched"]["samples_per_second"] / figures["batch_1"]["samples_per_second"]})


def reward(layout: Layout, device_name: str, scale: Scale) -> None:
    """The items scored by a reward judge: the judge model with a seeded random one-output head."""
    from collections import Counter

    from judgetrain.models import load_tokenizer
    from judgetrain.reward.judge import LocalRewardScorer, RewardJudge
    from judgetrain.reward.train import build_reward_model
    from judgetrain.train.config import TrainConfig

    device = require_device(device_name)
    items = judge_items(scale)
    config = TrainConfig()
    config.kind, config.model.path, config.optim.seed = "reward", str(layout.judge_model), SEED
    model = build_reward_model(config)  # fp32 weights; the scorer runs bf16 autocast where that is fast
    scorer = LocalRewardScorer(model, load_tokenizer(str(layout.judge_model)), batch_size=scale.judge_batch_size,
                               max_seq_len=MAX_SEQ_LEN_TOKENS, dtype="auto", device=device.type)
    judge = RewardJudge(scorer)
    judge.judge(items[:1])  # warm-up, as run_judge does
    synchronize(device)
    started = time.perf_counter()
    judgments = judge.judge(items)
    seconds = time.perf_counter() - started
    failed = [j for j in judgments if j.verdict is None or j.verdict.winner is None]
    if failed:
        raise StepFailed(f"{len(failed)} of {len(items)} items got no reward verdict, the first ({failed[0].sample_id}): "
                         f"{failed[0].error}")
    winners = Counter(j.verdict.winner for j in judgments)
    write_result(layout, "reward", {"num_items": len(items), "seconds": seconds, "samples_per_second": len(items) / seconds,
                                    "autocast_bf16": scorer.autocast, "winners": dict(sorted(winners.items()))})


def tiny_verdicts(layout: Layout, device: torch.device, scale: Scale) -> dict[str, Any]:
    """The tiny models' verdicts on the items on ``device``, loaded from their saved dirs in fp32."""
    from judgetrain.judging import Judge
    from judgetrain.judging.backends.transformers_backend import TransformersBackend
    from judgetrain.judging.judge import outcome_of
    from judgetrain.reward.judge import LocalRewardScorer, RewardJudge

    items = judge_items(scale)
    backend = TransformersBackend(str(layout.tiny_model), batch_size=scale.judge_batch_size, dtype="fp32", device=device.type)
    generative = Judge(JUDGE_FORMAT, backend).judge(items)
    scorer = LocalRewardScorer(str(layout.tiny_reward_model), batch_size=scale.judge_batch_size,
                               max_seq_len=MAX_SEQ_LEN_TOKENS, dtype="fp32", device=device.type)
    rewarded = RewardJudge(scorer).judge(items)
    return {
        "outcomes": [outcome_of(j) for j in generative], "texts": [j.raw_text for j in generative],
        "probabilities": [j.verdict_probabilities or {} for j in generative],
        "reward_winners": [outcome_of(j) for j in rewarded], "rewards": [j.meta.get("rewards") for j in rewarded],
    }


def compare_verdicts(on_cpu: dict[str, list], on_device: dict[str, list], device_type: str) -> dict[str, Any]:
    """The agreement figures of two :func:`tiny_verdicts` results; StepFailed when an item's verdict,
    text or reward winner differs, or a probability or reward differs by more than the tolerance."""
    num_items = len(on_cpu["outcomes"])

    def same(key: str) -> list[bool]:
        return [a == b for a, b in zip(on_cpu[key], on_device[key], strict=True)]

    def largest_difference(key: str) -> float:
        gaps = [0.0]
        for cpu_values, device_values in zip(on_cpu[key], on_device[key], strict=True):
            if isinstance(cpu_values, dict):
                if cpu_values.keys() != device_values.keys():
                    return math.inf
                cpu_values, device_values = list(cpu_values.values()), list(device_values.values())
            if cpu_values is None or device_values is None or len(cpu_values) != len(device_values):
                return math.inf
            gaps.extend(abs(a - b) for a, b in zip(cpu_values, device_values))
        return max(gaps)

    def counts(values: list[str]) -> dict[str, int]:
        return {value: values.count(value) for value in sorted(set(values))}

    figures = {"num_items": num_items, "same_outcome": sum(same("outcomes")), "same_text": sum(same("texts")),
               "max_probability_difference": largest_difference("probabilities"),
               "same_reward_winner": sum(same("reward_winners")), "max_reward_difference": largest_difference("rewards"),
               "outcomes": counts(on_cpu["outcomes"]), "reward_winners": counts(on_cpu["reward_winners"])}
    differing = [i for i, equal in enumerate(zip(same("outcomes"), same("texts"), same("reward_winners"))) if not all(equal)]
    if differing:
        first = differing[0]
        raise StepFailed(f"{len(differing)} of {num_items} items differ between the CPU and {device_type}; item {first}: CPU "
                         f"{on_cpu['outcomes'][first]} {on_cpu['texts'][first]!r} reward {on_cpu['reward_winners'][first]}, "
                         f"{device_type} {on_device['outcomes'][first]} {on_device['texts'][first]!r} reward "
                         f"{on_device['reward_winners'][first]}")
    for key in ("max_probability_difference", "max_reward_difference"):
        if not figures[key] <= PROBABILITY_TOLERANCE:
            raise StepFailed(f"{key} between the CPU and {device_type} is {figures[key]:.3g}, over {PROBABILITY_TOLERANCE:g} "
                             "with fp32 on both")
    return figures


def verdicts(layout: Layout, device_name: str, scale: Scale) -> None:
    """The tiny models judge alike on the CPU and on the device (fp32, greedy, the same batches)."""
    device = require_device(device_name)
    # fp32 means IEEE fp32: no TF32 matmuls or convolutions on the GPU.
    torch.backends.fp32_precision = "ieee"
    on_cpu = tiny_verdicts(layout, torch.device("cpu"), scale)
    on_device = tiny_verdicts(layout, device, scale)
    write_result(layout, "verdicts", {"device": device.type, **compare_verdicts(on_cpu, on_device, device.type)})


def table_rows(layout: Layout, device_name: str) -> tuple[list[str], list[dict[str, Any]]]:
    """(header lines, one row per figure: step, figure, value, notes) from every step's result."""
    environment = read_result(layout, "preflight")
    model = read_result(layout, "build")
    peaks = [read_result(layout, "peak-before"), read_result(layout, "peak-after")]
    best_peak = max(peaks, key=lambda p: p["flops_per_second"])
    each_peak = " / ".join(f"{p['flops_per_second'] / 1e12:.3g}" for p in peaks)
    header = [
        f"device: {environment['device_name']}; torch {environment['torch']} (CUDA {environment['cuda']}), "
        f"transformers {environment['transformers']}, accelerate {environment['accelerate']}",
        f"judge model: random Llama, {model['num_layers']} layers of {model['hidden_size']}, "
        f"{model['num_parameters'] / 1e6:.1f}M parameters, tiny tokenizer ({model['vocab_size']} tokens)",
        f"peak: {best_peak['dtype']} {best_peak['size']}x{best_peak['size']} matmul, "
        f"{best_peak['flops_per_second'] / 1e12:.3g} TFLOP/s (the higher of before / after training: {each_peak})",
    ]
    rows = []
    parallels = PARALLEL_CHOICES if device_name == "cuda" else ("ddp",)
    for parallel in parallels:
        run = read_result(layout, f"train-{parallel}")
        mfu = 6 * model["num_parameters"] * run["tokens_per_second"] / best_peak["flops_per_second"]
        # accelerate wraps a model in DistributedDataParallel on GPUs only when there are 2+ processes.
        unwrapped = parallel == "ddp" and run["wrapped_as"] != "DistributedDataParallel"
        notes = (f"{run['distributed_type']}, model {run['wrapped_as']}{' (1 process: not DDP-wrapped)' if unwrapped else ''}, "
                 f"{run['parameter_dtype']} weights{' + bf16 autocast' if run['mixed_precision_bf16'] else ''}"
                 f"{', activation checkpointing' if run['activation_checkpointing'] else ''}; {run['timed_steps']} of "
                 f"{run['steps']} steps timed, {run['timed_tokens']} tokens, loss {run['train_loss']:.3f}")
        rows.append({"step": f"train {parallel}", "figure": "tokens/s", "value": run["tokens_per_second"], "notes": notes})
        rows.append({"step": f"train {parallel}", "figure": "MFU", "value": mfu, "notes": "6·N·tokens/s over the peak"})
    judged = read_result(layout, "judge")
    for label in ("batched", "batch_1"):
        figures = judged[label]
        size = judged["batch_size"] if label == "batched" else 1
        rows.append({"step": f"judge batch {size}", "figure": "samples/s", "value": figures["samples_per_second"],
                     "notes": f"{judged['num_items']} PandaLM items, {judged['format']}, {judged['dtype']}, "
                              f"{figures['tokens_out']} tokens out, {figures['parsed']} parsed (random weights)"})
    rows.append({"step": "judge", "figure": "speedup", "value": judged["speedup"], "notes": "batched over batch 1"})
    rewarded = read_result(layout, "reward")
    rows.append({"step": "reward judge", "figure": "samples/s", "value": rewarded["samples_per_second"],
                 "notes": f"{rewarded['num_items']} items, bf16 autocast {rewarded['autocast_bf16']}, winners {rewarded['winners']}"})
    compared = read_result(layout, "verdicts")
    rows.append({"step": f"cpu = {compared['device']}", "figure": "same verdicts",
                 "value": compared["same_outcome"] + compared["same_reward_winner"],
                 "notes": f"of {2 * compared['num_items']} (generative {compared['outcomes']}, reward "
                          f"{compared['reward_winners']}); same texts {compared['same_text']}/{compared['num_items']}; "
                          f"max |dp| {compared['max_probability_difference']:.1e}, max |dr| {compared['max_reward_difference']:.1e}"})
    return header, rows


def table(layout: Layout, device_name: str, scale: Scale) -> None:
    """Every step's figures as one table, printed and written to results/table.txt and results/summary.json."""
    header, rows = table_rows(layout, device_name)
    lines = [*header, f"{'step':<16} {'figure':<14} {'value':>12}  notes"]
    for row in rows:
        value = row["value"]
        shown = f"{value:12.3f}" if isinstance(value, float) and value < 100 else f"{value:12.0f}"
        lines.append(f"{row['step']:<16} {row['figure']:<14} {shown}  {row['notes']}")
    print("\n".join(lines))
    layout.result("table").with_suffix(".txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = {"header": header, "rows": rows, "scale": asdict(scale)}
    layout.result("summary").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def run_step(step: str, layout: Layout, device_name: str, scale: Scale) -> None:
    if step.startswith("peak-"):
        peak(layout, device_name, scale, step.removeprefix("peak-"))
    elif step.startswith("train-"):
        if "LOCAL_RANK" not in os.environ:
            raise StepFailed(f"{step} runs under torchrun, as judgetrain's recipes launch: torchrun --nproc_per_node 1 "
                             f"bench/gpu_check.py {step} --out DIR")
        train(layout, device_name, scale, step.removeprefix("train-"))
    else:
        {"preflight": preflight, "build": build, "judge": judge, "reward": reward, "verdicts": verdicts,
         "table": table}[step](layout, device_name, scale)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("steps", nargs="+", choices=STEPS, metavar="STEP", help=f"one or more of {', '.join(STEPS)}, run in the order given")
    parser.add_argument("--out", type=Path, required=True, help="where models, data, runs and results go")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--small", action="store_true", help="the tiny model, a few steps and items (a CPU check of the logic)")
    args = parser.parse_args(argv)
    layout, scale = Layout(args.out.resolve()), SMALL if args.small else FULL
    for step in args.steps:
        started = time.perf_counter()
        try:
            run_step(step, layout, args.device, scale)
        except StepFailed as failure:
            print(f"gpu_check: step {step} failed: {failure}", file=sys.stderr)
            return 1
        except Exception:  # noqa: BLE001 - any error ends the check, named by its step
            traceback.print_exc()
            print(f"gpu_check: step {step} failed with the error above", file=sys.stderr)
            return 1
        print(f"gpu_check: step {step} done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
