"""Data preparation throughput: canonicalisation and tokenization rows per second.

    python bench/prep_throughput.py [--rows 100000] [--tokenize-rows 5000] [--num-proc 2] [--tokenizer tiny]

1. Canonicalisation: ``--rows`` synthetic rows in the JudgeLM-100K schema (both judgments, a
   reference) are written to a temporary JSONL file and read back with the ``judgelm`` reader into
   validated JudgeSamples, then written as prepared shards. Baseline printed beside it: ``json.loads``
   of the same lines alone, the floor any reader pays. Target: at least 100,000 rows per minute.
2. Tokenization: the first ``--tokenize-rows`` samples, rendered with ``judgelm-v1`` and tokenized
   with the tokenizer's chat template by ``judgetrain.data.tokenize.tokenize_samples`` with
   ``--num-proc`` processes, beside the same with one process.

Prints the machine's core count with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # the plugin packages sit at the top of the checkout

from judgetrain_data_prep import judgelm  # noqa: E402
from judgetrain.data.prepared import write_samples  # noqa: E402
from judgetrain.data.rows import ReadReport  # noqa: E402

TARGET_ROWS_PER_MINUTE = 100_000
WORDS = (
    "the answer explains water light energy river city history model data question careful accurate helpful "
    "because therefore however example detail step result clear relevant missing wrong correct reference"
).split()


def synthetic_row(rng: random.Random, question_id: int) -> dict:
    """One JudgeLM-100K-schema row with text lengths typical of the dataset (answers of ~120 words)."""

    def text(n_words: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n_words))

    s1, s2 = rng.randint(1, 10), rng.randint(1, 10)
    r1, r2 = rng.randint(1, 10), rng.randint(1, 10)
    return {
        "question_id": question_id,
        "question_body": text(25) + "?",
        "answer1_body": text(120),
        "answer2_body": text(120),
        "answer1_model_id": "model-a",
        "answer2_model_id": "model-b",
        "answer1_metadata": {"decoding_method": "top_p_sampling"},
        "answer2_metadata": {"decoding_method": "top_p_sampling"},
        "reference": {"decoding_method": "None", "model": "unknown", "text": text(60), "scores": {}},
        "score": [s1, s2],
        "text": f"{s1} {s2}\nAssistant 1 " + text(40) + ". Assistant 2 " + text(40) + ".",
        "score_w_reference": [r1, r2],
        "text_w_reference": f"{r1} {r2}\nAssistant 1 " + text(40) + ". Assistant 2 " + text(40) + ".",
        "review_id": f"r{question_id}",
        "metadata": {},
    }


def bench_canonicalisation(num_rows: int, workdir: Path) -> tuple[list, dict]:
    rng = random.Random(0)
    path = workdir / "judgelm_synthetic.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i in range(num_rows):
            f.write(json.dumps(synthetic_row(rng, i)) + "\n")
    size_mb = path.stat().st_size / 1e6

    start = time.perf_counter()
    with path.open("rb") as f:
        parsed = sum(1 for line in f if json.loads(line))
    json_seconds = time.perf_counter() - start
    assert parsed == num_rows

    report = ReadReport(source="judgelm")
    start = time.perf_counter()
    samples = list(judgelm.read(str(path), report=report))
    read_seconds = time.perf_counter() - start
    assert len(samples) == num_rows and report.rows_skipped == 0

    start = time.perf_counter()
    write_samples(samples, workdir / "prepared")
    write_seconds = time.perf_counter() - start
    figures = {
        "rows": num_rows,
        "file_mb": round(size_mb, 1),
        "json_loads_rows_per_second": num_rows / json_seconds,
        "canonicalise_rows_per_second": num_rows / read_seconds,
        "canonicalise_rows_per_minute": 60 * num_rows / read_seconds,
        "canonicalise_and_write_rows_per_second": num_rows / (read_seconds + write_seconds),
    }
    return samples, figures


def bench_tokenization(samples: list, tokenizer_name: str, num_proc: int) -> dict:
    from judgetrain.data.tokenize import tokenize_samples
    from judgetrain.models import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_name)
    figures: dict = {"rows": len(samples), "tokenizer": tokenizer_name}
    for procs in sorted({1, num_proc}):
        start = time.perf_counter()
        dataset, stats = tokenize_samples(samples, "judgelm-v1", tokenizer, max_seq_len=2048, num_proc=procs)
        seconds = time.perf_counter() - start
        assert stats["num_tokenized"] + stats["num_skipped"] == len(samples)
        figures[f"num_proc_{procs}_rows_per_second"] = len(samples) / seconds
        figures["mean_tokens_per_row"] = stats["length_tokens"].get("mean")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--tokenize-rows", type=int, default=5_000)
    parser.add_argument("--num-proc", type=int, default=2)
    parser.add_argument("--tokenizer", default="tiny", help="tiny (the shipped tokenizer) or embedded:smollm2-135m")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    print(f"machine: {os.cpu_count()} cores (os.cpu_count), python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        samples, canon = bench_canonicalisation(args.rows, Path(tmp))
        print(f"canonicalisation: {canon['rows']} synthetic JudgeLM rows ({canon['file_mb']} MB JSONL)")
        print(f"  json.loads alone (baseline):     {canon['json_loads_rows_per_second']:>10,.0f} rows/s")
        print(f"  judgelm reader → JudgeSample:    {canon['canonicalise_rows_per_second']:>10,.0f} rows/s "
              f"= {canon['canonicalise_rows_per_minute']:,.0f} rows/min "
              f"(target {TARGET_ROWS_PER_MINUTE:,} rows/min: {'met' if canon['canonicalise_rows_per_minute'] >= TARGET_ROWS_PER_MINUTE else 'NOT met'})")
        print(f"  reader + shard writing:          {canon['canonicalise_and_write_rows_per_second']:>10,.0f} rows/s")
        tok = bench_tokenization(samples[: args.tokenize_rows], args.tokenizer, args.num_proc)
        print(f"tokenization: {tok['rows']} samples, judgelm-v1 with the {tok['tokenizer']} tokenizer's chat template "
              f"(mean {tok['mean_tokens_per_row']:.0f} tokens/row)")
        for key, value in tok.items():
            if key.endswith("_rows_per_second"):
                procs = key.removeprefix("num_proc_").removesuffix("_rows_per_second")
                baseline = " (baseline)" if procs == "1" else ""
                print(f"  num_proc={procs}{baseline:<21} {value:>10,.0f} rows/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
