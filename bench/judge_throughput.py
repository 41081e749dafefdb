"""Judge throughput: the shipped transformers backend against one-at-a-time HF generate.

    python bench/judge_throughput.py [--num-pairs 24] [--batch-size 8] [--baseline-max-new-tokens 128]

Data: the first ``--num-pairs`` pairs of the PandaLM human-annotated test set
(../shared/data/pandalm/testset-v1.json, read by ``judgetrain_data_prep/pandalm.py``), shortest first so the
run fits in minutes. Model: the embedded SmolLM2-135M-Instruct. Template: ``judgelm-v1`` (the verdict,
"s1 s2", is the first line).

- **baseline**, as JudgeLM's inference runs: one sample at a time, HF ``generate``, fp32, batch 1,
  the whole judgment generated (up to ``--baseline-max-new-tokens`` so it terminates).
- **ours**: ``Judge(judgelm-v1, TransformersBackend(..., dtype="auto"))`` as shipped: batched,
  length-sorted, stopping after the verdict line, bf16 where the CPU runs it fast (checked by timing a
  matmul: without native bf16 units torch emulates it and it is far slower, so fp32 is kept), and the
  verdict-token probabilities read from the first generation step (one forward pass over the prompt).

Ablation rows add one step at a time. Every row judges the same pairs with the same prompts; the
first lines (the verdict line) of every row are compared with the baseline's (greedy decoding: they
should match, so no speed-up changes a verdict). The last line is ``speedup: N.NNx`` (ours / baseline).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # the plugin packages sit at the top of the checkout

import torch  # noqa: E402

from judgetrain_data_prep import pandalm  # noqa: E402
from judgetrain.data.rows import ReadReport  # noqa: E402
from judgetrain.judging import Judge  # noqa: E402
from judgetrain.judging.backends.base import Decoding  # noqa: E402
from judgetrain.judging.backends.transformers_backend import TransformersBackend, bf16_is_fast, prompt_text_of  # noqa: E402
from judgetrain.models import EMBEDDED_MODEL, load_model, load_tokenizer  # noqa: E402
from judgetrain.types import JudgeSample  # noqa: E402

TARGET_SPEEDUP = 5.0
FORMAT_NAME = "judgelm-v1"
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "pandalm" / "testset-v1.json"


def judge_format(name: str):
    from judgetrain import formats

    try:
        return formats.get(name)
    except ModuleNotFoundError:  # a family module of the registry is missing from this checkout
        from judgetrain.formats import judgelm

        return next(f for f in judgelm.FORMATS if f.name == name)


def shortest_pairs(path: Path, num_pairs: int) -> list[JudgeSample]:
    report = ReadReport()
    samples = list(pandalm.read(str(path), report=report))
    samples.sort(key=lambda s: (sum(len(a.text) for a in s.answers) + len(str(s.question)), s.id))
    return samples[:num_pairs]


def first_line(text: str) -> str:
    """The verdict line of a judgelm judgment: what every configuration must agree on."""
    return text.split("\n", 1)[0].strip()


def run_baseline(model, tokenizer, fmt, samples: list[JudgeSample], max_new_tokens: int) -> tuple[float, list[str], int]:
    """One sample at a time, plain HF generate, whole judgment: (seconds, texts, generated tokens)."""
    texts, generated_tokens = [], 0
    started = time.perf_counter()
    for sample in samples:
        prompt = prompt_text_of(tokenizer, fmt.render(sample, include_target=False))
        inputs = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
        with torch.inference_mode():
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                                    top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id)
        new_tokens = output[0, inputs["input_ids"].shape[1]:]
        generated_tokens += int(new_tokens.numel())
        texts.append(tokenizer.decode(new_tokens, skip_special_tokens=True))
    return time.perf_counter() - started, texts, generated_tokens


def run_judge(backend: TransformersBackend, fmt, samples: list[JudgeSample], *, stop_at_verdict: bool,
              probabilities: bool, max_new_tokens: int) -> tuple[float, list]:
    decoding = None if stop_at_verdict else Decoding(max_new_tokens=max_new_tokens)
    judge = Judge(fmt, backend, decoding, stop_at_verdict=stop_at_verdict, verdict_probabilities=probabilities)
    judge.judge(samples[:1])  # warm-up: first-call allocations are not judging speed
    started = time.perf_counter()
    judgments = judge.judge(samples)
    return time.perf_counter() - started, judgments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-pairs", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--baseline-max-new-tokens", type=int, default=128)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    if not args.data.is_file():
        raise SystemExit(f"{args.data} not found: point --data at PandaLM's testset-v1.json")

    fmt = judge_format(FORMAT_NAME)
    samples = shortest_pairs(args.data, args.num_pairs)
    tokenizer = load_tokenizer(EMBEDDED_MODEL)
    prompt_tokens = [len(tokenizer(prompt_text_of(tokenizer, fmt.render(s, include_target=False)), add_special_tokens=False)["input_ids"])
                     for s in samples]
    bf16_fast = bf16_is_fast("cpu")
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"cpu capability {torch.backends.cpu.get_cpu_capability()}, bf16 faster than fp32: {bf16_fast}")
    print(f"data: {len(samples)} PandaLM test pairs (shortest first), prompts {min(prompt_tokens)}-{max(prompt_tokens)} "
          f"tokens (mean {sum(prompt_tokens) / len(prompt_tokens):.0f}); model: SmolLM2-135M-Instruct; template: {fmt.name}")

    model = load_model(EMBEDDED_MODEL, dtype="fp32").eval()
    warm = prompt_text_of(tokenizer, fmt.render(samples[0], include_target=False))
    with torch.inference_mode():
        model.generate(**tokenizer(warm, add_special_tokens=False, return_tensors="pt"), max_new_tokens=2,
                       do_sample=False, temperature=None, top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id)
    base_seconds, base_texts, base_tokens = run_baseline(model, tokenizer, fmt, samples, args.baseline_max_new_tokens)
    base_lines = [first_line(t) for t in base_texts]
    rows = [("baseline: HF generate, batch 1, fp32, whole judgment", base_seconds, base_lines,
             f"{base_tokens / len(samples):.1f} new tokens/sample")]

    def row(label: str, backend: TransformersBackend, *, stop: bool, probabilities: bool) -> list:
        seconds, judgments = run_judge(backend, fmt, samples, stop_at_verdict=stop, probabilities=probabilities,
                                       max_new_tokens=args.baseline_max_new_tokens)
        lines = [first_line(j.raw_text) for j in judgments]
        tokens_out = sum(j.tokens_out or 0 for j in judgments)
        with_probabilities = sum(1 for j in judgments if j.verdict_probabilities)
        note = f"{tokens_out / len(samples):.1f} new tokens/sample"
        if probabilities:
            note += f", verdict probabilities on {with_probabilities}/{len(samples)}"
        rows.append((label, seconds, lines, note))
        return judgments

    fp32_b1 = TransformersBackend(model, tokenizer, batch_size=1)
    row("+ stop after the verdict line (batch 1)", fp32_b1, stop=True, probabilities=False)
    unsorted = TransformersBackend(model, tokenizer, batch_size=args.batch_size, sort_by_length=False)
    row(f"+ batches of {args.batch_size} (request order)", unsorted, stop=True, probabilities=False)
    fp32_sorted = TransformersBackend(model, tokenizer, batch_size=args.batch_size)
    row("+ length-sorted batches", fp32_sorted, stop=True, probabilities=False)
    if bf16_fast:
        ours_backend = TransformersBackend(EMBEDDED_MODEL, batch_size=args.batch_size, dtype="auto", device="cpu")
        row("+ bf16", ours_backend, stop=True, probabilities=False)
        ours_label = "ours: as shipped (+ verdict probabilities from the first step)"
    else:
        # dtype="auto" resolves to fp32 on this CPU; loading it again would only cost time.
        ours_backend = fp32_sorted
        ours_label = "ours: as shipped (bf16 skipped: slower here; + verdict probabilities)"
    judgments = row(ours_label, ours_backend, stop=True, probabilities=True)

    print()
    print(f"{'configuration':<66} {'seconds':>8} {'samples/s':>10} {'x baseline':>10} {'same verdict line':>17}  notes")
    for label, seconds, lines, note in rows:
        same = sum(1 for a, b in zip(lines, base_lines) if a == b)
        print(f"{label:<66} {seconds:8.2f} {len(samples) / seconds:10.3f} {base_seconds / seconds:9.2f}x "
              f"{same:>10}/{len(samples):<6}  {note}")
    parsed = sum(1 for j in judgments if j.verdict is not None)
    print(f"\nours: {parsed}/{len(samples)} verdicts parsed (SmolLM2-135M is not a trained judge; speed, not accuracy, is measured)")
    base_rate = len(samples) / base_seconds
    ours_rate = len(samples) / rows[-1][1]
    print(f"baseline {base_rate:.3f} samples/s, ours {ours_rate:.3f} samples/s (target >= {TARGET_SPEEDUP:.0f}x)")
    print(f"speedup: {ours_rate / base_rate:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
