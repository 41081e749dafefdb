"""Training throughput on SmolLM2-135M with real judge samples: packed vs length-grouped vs pad-to-2048.

    python bench/train_throughput.py [--num-samples 12] [--steps 2]

Samples: the shortest PandaLM test pairs among the first 200 (../shared/data/pandalm/testset-v1.json,
read by judgetrain_data_prep.pandalm), so that each step's samples pack into the same rows, rendered in the JudgeLM
template (judgelm-v1). PandaLM gives a human-majority winner but no scores, so the JudgeLM
score line of the target is written from the winner (8 3 / 3 8 / 5 5); the prompt, the two answers
and the target length are the real ones. The same samples and the same number of optimizer steps run
in each mode, one after the other, full fine-tuning through the transformers Trainer on CPU:

(a) judgetrain packed: samples packed into rows of max_seq_len=2048 (padding-free, position_ids restart),
    batched as judgetrain training batches them (PackedCollator: one sequence per device batch with the
    sample boundaries) and attended per sample (use_packed_sdpa); ``--packed-attention mask`` measures
    plain sdpa instead, which attends over the whole row under a block-diagonal mask;
(b) judgetrain length-grouped: samples of similar length batched and padded to the longest of the batch;
(c) baseline: every sample padded to 2048 tokens, as JudgeLM / FastChat training does
    (``padding="max_length"``, ``model_max_length=2048``), with the model's own causal-LM loss.

(a) and (b) train with judgetrain's loss (judgment_token_loss: the cross-entropy of the supervised rows
only); all three compute the logits of every token, so the 6·N count below holds for each.

Figures: supervised (label != -100) tokens per second of each mode, the ratios, and the achieved
FLOP/s of (a) under the 6·N·tokens convention (N = parameter count, tokens = the real, non-padding
tokens processed; forward + backward ≈ 6 FLOPs per parameter per token, attention not counted) against
the fp32 matmul FLOP/s peak measured on this CPU in the same run (2·n³ per n×n matmul, best of several).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from judgetrain_data_prep import pandalm  # noqa: E402
from judgetrain.data.rows import ReadReport  # noqa: E402
from judgetrain.types import Label  # noqa: E402

MAX_SEQ_LEN = 2048
CANDIDATE_SAMPLES = 200
PANDALM = REPO.parent / "shared" / "data" / "pandalm" / "testset-v1.json"
SCORES_OF_WINNER = {"A": (8.0, 3.0), "B": (3.0, 8.0), "tie": (5.0, 5.0)}


def judge_samples(num_samples: int):
    samples = []
    for sample in pandalm.read(str(PANDALM), report=ReadReport()):
        winner = sample.labels["human_majority"].winner
        label = Label(winner=winner, scores=SCORES_OF_WINNER[winner], scale=(1, 10))
        samples.append(dataclasses.replace(sample, labels={"human_majority": label}))
        if len(samples) == num_samples:
            break
    return samples


def matmul_peak_flops(size: int = 1024, repeats: int = 20) -> float:
    """Best fp32 matmul FLOP/s of this CPU with torch's threads (2·n³ FLOPs per n×n product)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


class CountingCollator:
    """Wraps a collator and counts the supervised and the real (non-padding) tokens it hands out."""

    def __init__(self, collator):
        self.collator = collator
        self.supervised_tokens = 0
        self.real_tokens = 0

    def __call__(self, features):
        batch = self.collator(features)
        labels = batch["labels"]
        # The loss predicts labels[1:] of each row; the Trainer counts the same.
        self.supervised_tokens += int(labels[..., 1:].ne(-100).sum())
        mask = batch.get("attention_mask")
        self.real_tokens += int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
        return batch


def run_mode(name: str, model_dir: str, train_dataset, collator, *, per_device_batch_size: int, steps: int,
             group_by_length: bool, output_dir: Path, gradient_accumulation_steps: int = 1,
             packed_sdpa: bool = False, judgetrain_loss: bool = True) -> dict:
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    from judgetrain.data.packing import use_packed_sdpa
    from judgetrain.train.loss import judgment_token_loss

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    if packed_sdpa and not use_packed_sdpa(model):
        raise SystemExit(f"the model runs {model.config._attn_implementation} attention, not sdpa")
    counting = CountingCollator(collator)
    args = TrainingArguments(
        output_dir=str(output_dir / name), per_device_train_batch_size=per_device_batch_size, max_steps=steps,
        gradient_accumulation_steps=gradient_accumulation_steps,
        learning_rate=1e-5, lr_scheduler_type="constant", optim="adamw_torch", logging_steps=steps, save_strategy="no",
        report_to=[], use_cpu=True, disable_tqdm=True, seed=0, dataloader_num_workers=0,
        average_tokens_across_devices=True,
        train_sampling_strategy="group_by_length" if group_by_length else "random",
    )
    trainer = Trainer(model=model, args=args, train_dataset=train_dataset, data_collator=counting,
                      compute_loss_func=judgment_token_loss if judgetrain_loss else None)
    output = trainer.train()
    seconds = output.metrics["train_runtime"]
    num_parameters = sum(p.numel() for p in model.parameters())
    return {
        "mode": name, "seconds": seconds, "supervised_tokens": counting.supervised_tokens, "real_tokens": counting.real_tokens,
        "supervised_tokens_per_second": counting.supervised_tokens / seconds,
        "flops_per_second": 6 * num_parameters * counting.real_tokens / seconds, "num_parameters": num_parameters,
        "loss": output.training_loss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-samples", type=int, default=12)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--packed-attention", choices=["per-sample", "mask"], default="per-sample",
                        help="(a)'s attention: per-sample sdpa (what judgetrain trains with) or sdpa under the "
                             "block-diagonal mask of the whole row")
    args = parser.parse_args()
    if args.num_samples % args.steps:
        raise SystemExit("--num-samples must be a multiple of --steps (the same samples in each mode's steps)")

    import tempfile

    from transformers import DataCollatorForSeq2Seq

    from judgetrain.data.packing import PackedCollator, pack
    from judgetrain.data.tokenize import tokenize_samples
    from judgetrain.models import EMBEDDED_MODEL, embedded_model_dir, load_tokenizer

    model_dir = str(embedded_model_dir())
    tokenizer = load_tokenizer(EMBEDDED_MODEL)
    # The shortest of the first 200 pairs, so that each step's samples pack into the same number of rows.
    rows, stats = tokenize_samples(judge_samples(CANDIDATE_SAMPLES), "judgelm-v1", tokenizer, max_seq_len=MAX_SEQ_LEN)
    rows = rows.select_columns(["id", "input_ids", "labels"])
    by_length = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))
    rows = rows.select(by_length[:args.num_samples])
    lengths = [len(ids) for ids in rows["input_ids"]]
    print(f"samples: {len(rows)} PandaLM pairs in judgelm-v1, tokens per sample min {min(lengths)} mean "
          f"{sum(lengths) / len(lengths):.0f} max {max(lengths)}; {args.steps} optimizer steps per mode; "
          f"torch threads {torch.get_num_threads()}; packed attention {args.packed_attention}")
    per_step = args.num_samples // args.steps
    # Each step's samples are packed on their own, so every mode trains on the same samples once in the
    # same number of steps (one epoch), and only the batching differs.
    from datasets import concatenate_datasets

    packed_groups = [pack(rows.select(range(step * per_step, (step + 1) * per_step)), max_seq_len=MAX_SEQ_LEN)
                     for step in range(args.steps)]
    packed_per_step = len(packed_groups[0])
    if any(len(group) != packed_per_step for group in packed_groups):
        raise SystemExit("the steps' samples pack into different row counts; pick --num-samples / --steps that pack evenly")
    packed_rows = concatenate_datasets(packed_groups)
    print(f"packed: {per_step} samples per step into {packed_per_step} row(s) of at most {MAX_SEQ_LEN} tokens")
    peak_before = matmul_peak_flops()

    results = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        model_rows = rows.remove_columns(["id"])
        # Untimed: the process's first training step of each kind pays one-off costs (allocator, kernel
        # caches for its shapes) that would otherwise land on whichever mode runs first.
        run_mode("warm-up packed", model_dir, packed_rows, PackedCollator(), per_device_batch_size=packed_per_step,
                 steps=1, group_by_length=False, output_dir=scratch, packed_sdpa=args.packed_attention == "per-sample")
        run_mode("warm-up length-grouped", model_dir, model_rows,
                 DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, padding=True),
                 per_device_batch_size=per_step, steps=1, group_by_length=True, output_dir=scratch)
        results.append(run_mode("packed", model_dir, packed_rows, PackedCollator(), per_device_batch_size=packed_per_step,
                                steps=args.steps, group_by_length=False, output_dir=scratch,
                                packed_sdpa=args.packed_attention == "per-sample"))
        results.append(run_mode("length-grouped", model_dir, model_rows,
                                DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, padding=True),
                                per_device_batch_size=per_step, steps=args.steps, group_by_length=True, output_dir=scratch))
        results.append(run_mode("pad-to-2048 (JudgeLM/FastChat)", model_dir, model_rows,
                                DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, padding="max_length",
                                                       max_length=MAX_SEQ_LEN),
                                # One 2048-token row per micro-batch, accumulated to the same step size: a step
                                # of several padded rows at once does not fit in memory here.
                                per_device_batch_size=1, gradient_accumulation_steps=per_step, steps=args.steps,
                                group_by_length=False, output_dir=scratch, judgetrain_loss=False))
    # Measured before and after the modes, the higher one kept: a momentarily slowed CPU must not
    # lower the peak and so inflate the utilisation.
    peak = max(peak_before, matmul_peak_flops())
    print(f"matmul peak (fp32, 1024x1024, best of 20 before and 20 after the modes): {peak / 1e9:.1f} GFLOP/s")
    for r in results:
        print(f"{r['mode']:<32} {r['seconds']:8.1f} s  {r['supervised_tokens']:6d} supervised tokens  "
              f"{r['supervised_tokens_per_second']:8.1f} supervised tokens/s  "
              f"{r['flops_per_second'] / 1e9:6.1f} GFLOP/s (6·N·real tokens, N={r['num_parameters'] / 1e6:.1f}M)")
    packed, grouped, padded = results
    # Same samples, one epoch each: every mode must have supervised exactly the same tokens.
    assert packed["supervised_tokens"] == grouped["supervised_tokens"] == padded["supervised_tokens"], \
        [r["supervised_tokens"] for r in results]
    print(f"packed / length-grouped: {packed['supervised_tokens_per_second'] / grouped['supervised_tokens_per_second']:.2f}x")
    print(f"length-grouped / pad-to-2048: {grouped['supervised_tokens_per_second'] / padded['supervised_tokens_per_second']:.2f}x")
    print(f"length-grouped FLOP/s / matmul peak: {grouped['flops_per_second'] / peak:.2f}")
    print(f"speedup: {packed['supervised_tokens_per_second'] / padded['supervised_tokens_per_second']:.2f}x")
    print(f"mfu: {packed['flops_per_second'] / peak:.2f}")


if __name__ == "__main__":
    main()
