"""Serve latency under a burst: 200 requests at once, the official ``openai`` client, a tiny export.

    python bench/serve_latency.py [--num-requests 200] [--max-concurrency 64] [--max-queue 1024]
                                  [--batch-size 8] [--max-tokens 8]

The judge: the tiny random-initialised model (``judgetrain.models``: ``tiny``), LoRA-trained one step on
two shipped LLMBar pairs and exported with ``judgetrain.export`` into a temporary dir. Each row starts
``judgetrain serve --model <export>`` on 127.0.0.1 in its own process (so the client and the server
do not share an interpreter), then sends every request at once with ``openai.AsyncOpenAI`` on its
default settings (2 retries with backoff that honours Retry-After, its own timeout and connection pool).
A request's latency runs from the call to its answer, retries included.

- **baseline**: ``--max-queue 0``: no requests wait; one that finds the ``--max-concurrency`` places
  taken gets 503 at once (the server's behaviour before it had a queue).
- **queue**: ``--max-queue`` as given (the default, 1024): requests past ``--max-concurrency`` wait
  their turn; only a full queue answers 503.

Per row: successes out of the requests sent, then p50 / p99 latency of the successful ones and the
wall time of the burst, in seconds. The last line is ``queue: <successes>/<requests> succeeded``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

def build_tiny_export(workdir: Path) -> Path:
    """The tiny judge, trained one step and exported under ``workdir``; returns the export dir."""
    from judgetrain.data.prepare import prepare_dataset
    from judgetrain.export import export
    from judgetrain.quickstart import FORMAT, read_shipped
    from judgetrain.train.config import load_config
    from judgetrain.train.trainer import train

    prepare_dataset(read_shipped("train_llmbar.jsonl")[:2], workdir / "data", format_name=FORMAT, source="bench", seed=0)
    (workdir / "train.yaml").write_text(
        "model: {path: tiny}\n"
        f"data: {{datasets: [{{path: '{workdir / 'data'}'}}], format: {FORMAT}, max_seq_len: 2048}}\n"
        "method: {name: lora, lora: {r: 4, alpha: 8, dropout: 0.0}}\n"
        "optim: {lr: 1.0e-3, max_steps: 1, per_device_batch_size: 2, warmup_ratio: 0.0, schedule: constant}\n"
        "logging: {stdout: false, every_steps: 100}\n"
        "checkpoint: {every_steps: 0, resume: never}\n"
        f"output_dir: '{workdir / 'run'}'\n",
        encoding="utf-8",
    )
    return export(train(load_config(workdir / "train.yaml")).final_dir, workdir / "judge", dtype="fp32", max_new_tokens=8)


def start_serving(export_dir: Path, *, max_concurrency: int, max_queue: int, batch_size: int) -> tuple[subprocess.Popen, str]:
    """``judgetrain serve`` of the export on 127.0.0.1 in a process of its own; returns it and its API root."""
    process = subprocess.Popen(
        [sys.executable, "-m", "judgetrain", "serve", "--model", str(export_dir), "--port", "0",
         "--max-concurrency", str(max_concurrency), "--max-queue", str(max_queue), "--batch-size", str(batch_size)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = process.stdout.readline()  # its first line once it listens; "" when it exited instead
    if " on http://" not in line:
        process.kill()
        raise RuntimeError(f"judgetrain serve did not start: {line!r}")
    return process, line.split(" on ", 1)[1].split()[0]


async def burst(api_root: str, num_requests: int, max_tokens: int) -> tuple[list[float], list[str], float]:
    """Every request at once on the client's defaults: (latencies of the successes, failures, wall seconds)."""
    import openai

    async def one(client: openai.AsyncOpenAI, index: int) -> float:
        started = time.perf_counter()
        await client.chat.completions.create(model="judge", max_tokens=max_tokens, temperature=0, messages=[
            {"role": "user", "content": f"Question {index}: which answer is better, A or B?"}])
        return time.perf_counter() - started

    started = time.perf_counter()
    async with openai.AsyncOpenAI(base_url=api_root, api_key="unused") as client:
        results = await asyncio.gather(*(one(client, i) for i in range(num_requests)), return_exceptions=True)
    wall_seconds = time.perf_counter() - started
    latencies = [r for r in results if isinstance(r, float)]
    failures = [f"{type(r).__name__}: {str(r)[:80]}" for r in results if isinstance(r, BaseException)]
    return latencies, failures, wall_seconds


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank above: p99 of 200 is the 198th smallest)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def run_row(name: str, export_dir: Path, args: argparse.Namespace, max_queue: int) -> int:
    process, api_root = start_serving(export_dir, max_concurrency=args.max_concurrency, max_queue=max_queue,
                                      batch_size=args.batch_size)
    try:
        latencies, failures, wall_seconds = asyncio.run(burst(api_root, args.num_requests, args.max_tokens))
    finally:
        process.terminate()
        process.wait(timeout=30)
        process.stdout.close()
    p50 = f"{percentile(latencies, 0.50):.2f}" if latencies else "-"
    p99 = f"{percentile(latencies, 0.99):.2f}" if latencies else "-"
    print(f"{name:<9} --max-concurrency {args.max_concurrency:<4} --max-queue {max_queue:<5} "
          f"{len(latencies):>4}/{args.num_requests} succeeded   p50 {p50:>6} s   p99 {p99:>6} s   wall {wall_seconds:6.2f} s",
          flush=True)
    if failures:
        print(f"          {len(failures)} failed, e.g. {statistics.mode(failures)}", flush=True)
    return len(latencies)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--num-requests", type=int, default=200)
    parser.add_argument("--max-concurrency", type=int, default=64, help="judgetrain serve's default")
    parser.add_argument("--max-queue", type=int, default=1024, help="judgetrain serve's default")
    parser.add_argument("--batch-size", type=int, default=8, help="judgetrain serve's default")
    parser.add_argument("--max-tokens", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="judgetrain-serve-latency-") as workdir:
        export_dir = build_tiny_export(Path(workdir))
        print(f"tiny export served on 127.0.0.1; {args.num_requests} requests at once, openai "
              f"{__import__('openai').__version__} AsyncOpenAI defaults, --batch-size {args.batch_size}, "
              f"max_tokens {args.max_tokens}", flush=True)
        run_row("baseline", export_dir, args, max_queue=0)
        succeeded = run_row("queue", export_dir, args, max_queue=args.max_queue)
    print(f"queue: {succeeded}/{args.num_requests} succeeded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
