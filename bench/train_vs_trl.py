"""Training throughput against TRL: judgetrain's packed path vs TRL's SFTTrainer, SmolLM2-135M, real judge samples.

    python bench/train_vs_trl.py [--num-samples 48] [--steps 6] [--trl-modes padding-free,packing,padded] [--threads 1]

Samples: ``--num-samples`` PandaLM test pairs of varied length, spread evenly over the length order of the
first 200 (../shared/data/pandalm/testset-v1.json, read and labelled by bench/train_throughput.py's
``judge_samples``) and tokenized in the JudgeLM template (judgelm-v1) by judgetrain's tokenizer, so prompt
tokens carry label -100 and the judgment (the score line and ``<|im_end|>``) is supervised. Step s trains
the samples s, s + steps, s + 2·steps, ... of that length order, so every step mixes short and long pairs.
Every mode trains the same model (the embedded SmolLM2-135M converted once by judgetrain.models, fp32, sdpa
attention, full fine-tuning, AdamW at a constant lr of 1e-5) on the same token rows, step by step in the
same order (sequential sampler), for the same number of optimizer steps:

(a) judgetrain packed: each step's samples packed into rows of at most 2048 tokens (judgetrain.data.packing.pack),
    one device batch per step flattened by PackedCollator, attention run per sample (use_packed_sdpa), loss
    judgment_token_loss (the cross-entropy of the supervised rows only) through the transformers Trainer;
(b) TRL padding-free: SFTTrainer(padding_free=True), one device batch per step holding the step's samples,
    which TRL's collator concatenates into one sequence with position_ids restarting per sample;
(c) TRL packing: SFTTrainer(packing=True, packing_strategy="bfd"), each step's samples packed by TRL's
    pack_dataset into rows of 2048 tokens, one row per micro-batch, accumulated to the step (TRL packs with
    padding-free batches, so a 2048-token row is the longest sequence its attention sees);
(d) TRL padded: SFTTrainer with its default collator, the step's samples padded to the longest of them.

TRL runs with completion-only loss (``completion_only_loss=True``) on the pre-tokenized rows, given as
``input_ids`` + ``completion_mask`` (1 on the supervised tokens), which TRL turns into labels itself; for
(c) the packed rows go in with those labels (TRL packs ``input_ids``, ``labels`` and ``seq_lengths`` and the
dataset is not prepared again). TRL's defaults that differ from the Trainer's are set back so the runs do
the same work: ``gradient_checkpointing=False`` (TRL's default True recomputes the forward) and
``bf16=False``. On CPU neither side has flash-attention, so TRL's padding-free and packed batches run the
model's sdpa, which transformers gives a block-diagonal mask built from the position restarts: correct, but
attention over the whole sequence. TRL's loss is its fused LM head (the log-probability of the next token,
tiled, without the full logits; on CPU every position is scored) with its entropy and top-1 metrics.

Each mode's first optimizer step is a warm-up, untimed: it trains step 0's samples once more before the
timed steps, so one-off costs (allocator, kernel caches) land on no mode's figures. Same initial weights and
same samples make the warm-up step's loss the same computation in every mode; it is printed as the
first-step loss, with the supervised-token count of every step (the count each loss divides by, taken where
the Trainer takes it), and both must agree across modes.

Figures: real (non-padding) tokens per second over the timed steps; FLOP/s under the 6·N·tokens convention
(N = parameter count, tokens = the real tokens; forward + backward ≈ 6 FLOPs per parameter per token,
attention not counted, so padding and masked attention are work no mode gets credit for) against the fp32
matmul FLOP/s peak measured in the same run (bench/train_throughput.py's ``matmul_peak_flops``, before and
after the modes, the higher kept); the last line is ``vs_trl``: (a)'s tokens/s over the best TRL mode's.
Each mode also prints its process CPU time and the share of its threads' wall time it got: on a machine
shared with other jobs a share well below 1 means the mode waited for a core, and its wall figures with it.

Where the difference comes from (one forward + backward of one step here, 8 samples, 2,844 tokens, 1 thread):
judgetrain's path 36 s; the same with TRL's attention (sdpa over the whole flattened sequence under the
block-diagonal mask) 64-70 s; the same with TRL's fused LM head instead of judgment_token_loss 42-50 s.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import torch  # noqa: E402
from train_throughput import CANDIDATE_SAMPLES, MAX_SEQ_LEN, judge_samples, matmul_peak_flops  # noqa: E402

from judgetrain.data.tokenize import IGNORE_INDEX  # noqa: E402

TRL_MODES = ("padding-free", "packing", "padded")
LEARNING_RATE = 1e-5


class StepRecorder:
    """Trainer mixin: per optimizer step, the supervised-token count the loss divides by (``num_items_in_batch``,
    counted by the Trainer over ``labels[..., 1:]`` of every micro-batch), the real and padded token counts,
    the loss (the sum of the micro-batches' losses, each already divided by the step's count) and the time
    at which the step ended."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.supervised_tokens_per_step: list[int] = []
        self.real_tokens_per_step: list[int] = []
        self.token_slots_per_step: list[int] = []
        self.loss_per_step: list[float] = []

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batches, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        if batches:
            self.supervised_tokens_per_step.append(int(num_items_in_batch))
            # Padded batches mark their real tokens in attention_mask; padding-free ones have no padding.
            self.real_tokens_per_step.append(sum(int(b["attention_mask"].sum()) if "attention_mask" in b
                                                 else int(b["input_ids"].numel()) for b in batches))
            self.token_slots_per_step.append(sum(int(b["input_ids"].numel()) for b in batches))
            self.loss_per_step.append(0.0)
        return batches, num_items_in_batch

    def training_step(self, *args, **kwargs):
        loss = super().training_step(*args, **kwargs)
        self.loss_per_step[-1] += float(loss)
        return loss


def step_clock():
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        """The wall-clock (perf_counter) and process CPU (process_time) times at which each optimizer step
        ended (data loading and collation of the next step happen after it, so the gaps hold everything a
        step costs)."""

        def __init__(self):
            self.step_ends: list[float] = []
            self.step_end_cpu_times: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.step_ends.append(time.perf_counter())
            self.step_end_cpu_times.append(time.process_time())

    return StepClock()


def load_smollm2(model_dir: str):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")


def common_args(steps: int) -> dict:
    # steps + 1: the first optimizer step is the untimed warm-up.
    return dict(max_steps=steps + 1, learning_rate=LEARNING_RATE, lr_scheduler_type="constant", optim="adamw_torch",
                weight_decay=0.0, max_grad_norm=1.0, logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
                disable_tqdm=True, seed=0, dataloader_num_workers=0, average_tokens_across_devices=True,
                train_sampling_strategy="sequential")


def summarise(name: str, trainer, clock, steps: int) -> dict:
    ends = clock.step_ends
    assert len(ends) == steps + 1 and len(trainer.supervised_tokens_per_step) >= steps + 1, (name, len(ends))
    timed_seconds = ends[-1] - ends[0]
    cpu_seconds = clock.step_end_cpu_times[-1] - clock.step_end_cpu_times[0]
    real_tokens = sum(trainer.real_tokens_per_step[1:steps + 1])
    num_parameters = sum(p.numel() for p in trainer.model.parameters())
    return {
        "mode": name, "seconds": timed_seconds, "step_seconds": [b - a for a, b in zip(ends, ends[1:])],
        "supervised_tokens_per_step": trainer.supervised_tokens_per_step[:steps + 1],
        "real_tokens": real_tokens, "token_slots": sum(trainer.token_slots_per_step[1:steps + 1]),
        "tokens_per_second": real_tokens / timed_seconds, "cpu_seconds": cpu_seconds,
        "tokens_per_cpu_second": real_tokens / cpu_seconds,
        "flops_per_second": 6 * num_parameters * real_tokens / timed_seconds, "num_parameters": num_parameters,
        "first_step_loss": trainer.loss_per_step[0], "losses": trainer.loss_per_step[:steps + 1],
    }


def run_judgetrain_packed(model_dir: str, packed_rows, rows_per_step: int, steps: int, scratch: Path) -> dict:
    from transformers import Trainer, TrainingArguments

    from judgetrain.data.packing import PackedCollator, use_packed_sdpa
    from judgetrain.train.loss import judgment_token_loss

    class RecordedTrainer(StepRecorder, Trainer):
        pass

    model = load_smollm2(model_dir)
    if not use_packed_sdpa(model):
        raise SystemExit(f"the model runs {model.config._attn_implementation} attention, not sdpa")
    clock = step_clock()
    args = TrainingArguments(output_dir=str(scratch / "judgetrain"), per_device_train_batch_size=rows_per_step,
                             **common_args(steps))
    trainer = RecordedTrainer(model=model, args=args, train_dataset=packed_rows, data_collator=PackedCollator(),
                              compute_loss_func=judgment_token_loss, callbacks=[clock])
    trainer.train()
    return summarise("judgetrain packed", trainer, clock, steps)


def run_trl(mode: str, model_dir: str, tokenizer, train_dataset, expected_labels, *, per_device_batch_size: int,
            gradient_accumulation_steps: int, steps: int, scratch: Path) -> dict:
    from trl import SFTConfig, SFTTrainer

    class RecordedSFTTrainer(StepRecorder, SFTTrainer):
        pass

    settings = {
        "padding-free": dict(padding_free=True, packing=False, max_length=None),
        "packing": dict(packing=True, packing_strategy="bfd", max_length=MAX_SEQ_LEN,
                        dataset_kwargs={"skip_prepare_dataset": True}),
        "padded": dict(padding_free=False, packing=False, max_length=MAX_SEQ_LEN),
    }[mode]
    clock = step_clock()
    args = SFTConfig(output_dir=str(scratch / f"trl-{mode}"), per_device_train_batch_size=per_device_batch_size,
                     gradient_accumulation_steps=gradient_accumulation_steps, completion_only_loss=True,
                     gradient_checkpointing=False, bf16=False, **settings, **common_args(steps))
    trainer = RecordedSFTTrainer(model=load_smollm2(model_dir), args=args, train_dataset=train_dataset,
                                 processing_class=tokenizer, callbacks=[clock])
    if expected_labels is not None:
        # TRL built the labels from completion_mask: they must be judgetrain's, token for token.
        assert trainer.train_dataset["labels"] == expected_labels, f"TRL {mode}: labels differ from judgetrain's"
    trainer.train()
    return summarise(f"TRL {mode}", trainer, clock, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-samples", type=int, default=48)
    parser.add_argument("--steps", type=int, default=6, help="timed optimizer steps per mode (plus one warm-up step)")
    parser.add_argument("--trl-modes", default=",".join(TRL_MODES), help=f"comma-separated subset of {', '.join(TRL_MODES)}")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's own choice); on a machine shared with other jobs, 1 "
                             "thread gives steadier figures (no thread waits on a core another job holds)")
    args = parser.parse_args()
    trl_modes = [m for m in args.trl_modes.split(",") if m]
    if not trl_modes or any(m not in TRL_MODES for m in trl_modes):
        raise SystemExit(f"--trl-modes takes a comma-separated subset of {', '.join(TRL_MODES)}")
    if args.num_samples % args.steps:
        raise SystemExit("--num-samples must be a multiple of --steps (the same number of samples in every step)")
    if args.threads:
        torch.set_num_threads(args.threads)

    import datasets
    import trl
    import transformers
    from trl import pack_dataset

    from judgetrain.data.packing import pack
    from judgetrain.data.tokenize import tokenize_samples
    from judgetrain.models import EMBEDDED_MODEL, embedded_model_dir, load_tokenizer

    model_dir = str(embedded_model_dir())
    tokenizer = load_tokenizer(EMBEDDED_MODEL)
    rows, _ = tokenize_samples(judge_samples(CANDIDATE_SAMPLES), "judgelm-v1", tokenizer, max_seq_len=MAX_SEQ_LEN)
    rows = rows.select_columns(["id", "input_ids", "labels"])
    by_length = sorted(range(len(rows)), key=lambda i: (len(rows[i]["input_ids"]), i))
    if args.num_samples > len(by_length):
        raise SystemExit(f"--num-samples {args.num_samples}: only {len(by_length)} candidate pairs")
    # Evenly spread over the length order: short, middling and long pairs alike.
    spread = [by_length[round(k * (len(by_length) - 1) / max(args.num_samples - 1, 1))] for k in range(args.num_samples)]
    steps, per_step = args.steps, args.num_samples // args.steps
    groups = [rows.select(spread[s::steps]).remove_columns(["id"]) for s in range(steps)]
    # Training order: step 0's samples twice (the warm-up step, then the first timed step), then the others.
    schedule = [groups[0]] + groups

    lengths = [len(ids) for group in groups for ids in group["input_ids"]]
    expected_supervised = [sum(sum(1 for label in labels[1:] if label != IGNORE_INDEX) for labels in group["labels"])
                           for group in schedule]
    print(f"samples: {args.num_samples} PandaLM pairs in judgelm-v1, tokens per sample min {min(lengths)} mean "
          f"{sum(lengths) / len(lengths):.0f} max {max(lengths)}, {sum(lengths)} tokens in all; {steps} timed optimizer "
          f"steps of {per_step} samples per mode after 1 untimed warm-up step; lr {LEARNING_RATE:g}; torch threads "
          f"{torch.get_num_threads()}; torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}")

    # (a): each step's samples packed on their own, all of a step's rows in one device batch.
    packed_groups = [pack(group, max_seq_len=MAX_SEQ_LEN) for group in schedule]
    rows_per_step = len(packed_groups[0])
    # (c): TRL's own packing, per step; one row per micro-batch.
    trl_packed_groups = [pack_dataset(group, MAX_SEQ_LEN, "bfd") for group in schedule]
    trl_rows_per_step = len(trl_packed_groups[0])
    if any(len(g) != rows_per_step for g in packed_groups) or any(len(g) != trl_rows_per_step for g in trl_packed_groups):
        raise SystemExit("the steps' samples pack into different row counts; pick --num-samples / --steps that pack evenly")
    print(f"packed: {per_step} samples per step into {rows_per_step} row(s) of at most {MAX_SEQ_LEN} tokens "
          f"(judgetrain), {trl_rows_per_step} row(s) (TRL bfd)")
    ordered = datasets.concatenate_datasets(schedule)
    expected_labels = ordered["labels"]
    completion_rows = ordered.map(lambda row: {"completion_mask": [int(label != IGNORE_INDEX) for label in row["labels"]]},
                                  remove_columns=["labels"])

    peak_before = matmul_peak_flops()
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        runs = [lambda: run_judgetrain_packed(model_dir, datasets.concatenate_datasets(packed_groups), rows_per_step, steps, scratch)]
        for mode in trl_modes:
            if mode == "packing":
                runs.append(lambda: run_trl("packing", model_dir, tokenizer, datasets.concatenate_datasets(trl_packed_groups),
                                            None, per_device_batch_size=1, gradient_accumulation_steps=trl_rows_per_step,
                                            steps=steps, scratch=scratch))
            else:
                runs.append(lambda mode=mode: run_trl(mode, model_dir, tokenizer, completion_rows, expected_labels,
                                                      per_device_batch_size=per_step, gradient_accumulation_steps=1,
                                                      steps=steps, scratch=scratch))
        for run in runs:
            results.append(run())
            r = results[-1]
            # Printed as each mode ends, so a run cut short still shows what it measured.
            print(f"done: {r['mode']}: {r['seconds']:.1f} s, {r['tokens_per_second']:.1f} "
                  f"real tokens/s, supervised tokens per step {r['supervised_tokens_per_step']}, first-step loss "
                  f"{r['first_step_loss']:.6f}", flush=True)
            gc.collect()
    peak = max(peak_before, matmul_peak_flops())

    print(f"matmul peak (fp32, 1024x1024, best of 20 before and 20 after the modes): {peak / 1e9:.1f} GFLOP/s")
    for r in results:
        padding = f", {r['token_slots'] - r['real_tokens']} padding" if r["token_slots"] != r["real_tokens"] else ""
        print(f"{r['mode']:<20} {r['seconds']:7.1f} s  {r['real_tokens']} real tokens{padding}  "
              f"{r['tokens_per_second']:7.1f} real tokens/s  {r['flops_per_second'] / 1e9:6.1f} GFLOP/s "
              f"({r['flops_per_second'] / peak:.2f} of peak; 6·N·real tokens, N={r['num_parameters'] / 1e6:.1f}M)  "
              f"steps {', '.join(f'{s:.1f}' for s in r['step_seconds'])} s; {r['cpu_seconds']:.1f} CPU s "
              f"({r['cpu_seconds'] / r['seconds'] / torch.get_num_threads():.2f} of {torch.get_num_threads()} thread(s)' "
              f"wall time), {r['tokens_per_cpu_second']:.1f} real tokens per CPU s")
    for r in results:
        print(f"{r['mode']:<20} supervised tokens per step (warm-up first) {r['supervised_tokens_per_step']}  "
              f"first-step loss {r['first_step_loss']:.6f}  losses {', '.join(f'{x:.4f}' for x in r['losses'])}")
    # The same tokens supervised, step by step, and the same loss on the same weights.
    for r in results:
        assert r["supervised_tokens_per_step"] == expected_supervised, (r["mode"], r["supervised_tokens_per_step"], expected_supervised)
    first_losses = [r["first_step_loss"] for r in results]
    spread_of_losses = max(first_losses) - min(first_losses)
    print(f"supervised tokens per step, every mode: {expected_supervised}; first-step losses within {spread_of_losses:.2e}")
    assert spread_of_losses < 1e-3 * max(first_losses), first_losses
    ours, trl_results = results[0], results[1:]
    for r in trl_results:
        print(f"judgetrain packed / {r['mode']}: {ours['tokens_per_second'] / r['tokens_per_second']:.2f}x "
              f"(per CPU second {ours['tokens_per_cpu_second'] / r['tokens_per_cpu_second']:.2f}x)")
    best = max(trl_results, key=lambda r: r["tokens_per_second"])
    print(f"best TRL mode: {best['mode']}")
    print(f"vs_trl: {ours['tokens_per_second'] / best['tokens_per_second']:.2f}x")


if __name__ == "__main__":
    main()
