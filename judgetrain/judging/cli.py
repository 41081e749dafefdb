"""``judgetrain judge``: judge samples with a model or an API and write one judgment per line.

Judgments are written as the run goes (chunk by chunk, each line flushed and fsynced), so a killed
run keeps its finished work; the result cache (``--cache``, default ``$JUDGETRAIN_RESULT_CACHE`` or
``~/.cache/judgetrain/judge-cache.sqlite``) makes the rerun free for every call already made. The
file is written under a temp name and renamed when the run completes. The run ends with a summary:
outcome counts, parse failures, both-orders consistency, tokens and cost.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from judgetrain.types import JudgeSample

CHUNK_SAMPLES = 64
"""Samples judged per Judge call: judgments are written after each chunk."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="samples: a canonical JSONL file or a prepared dir of *.jsonl shards")
    parser.add_argument("--format", required=True, help="judge template name (see `judgetrain formats`)")
    parser.add_argument("--backend", choices=("hf", "vllm", "openai"), default="hf", help="where the judge runs")
    parser.add_argument("--model", required=True, help="model dir / hub id / tiny / embedded:smollm2-135m (hf, vllm) or model id (openai)")
    parser.add_argument("--base-url", help="openai: the API root up to /v1")
    parser.add_argument("--api-key-env", help="openai: the environment variable holding the API key")
    parser.add_argument("--both-orders", action="store_true", help="judge pairwise samples in both orders and aggregate")
    parser.add_argument("--disagreement", choices=("tie", "inconsistent"), default="tie",
                        help="what a both-orders disagreement becomes (default: tie)")
    parser.add_argument("--batch-size", type=int, help="hf: prompts per batch (default 8)")
    parser.add_argument("--dtype", help="hf: fp32, bf16 or auto (bf16 where fast)")
    parser.add_argument("--max-new-tokens", type=int, help="generation budget (default: the format's)")
    parser.add_argument("--full-judgment", action="store_true",
                        help="verdict-first formats: generate the critique too instead of stopping at the verdict")
    parser.add_argument("--strict", action="store_true", help="parse with the strict parser only")
    parser.add_argument("--limit", type=int, help="judge only the first N samples")
    parser.add_argument("--cache", help="result cache file (finished calls are never repeated)")
    parser.add_argument("--no-cache", action="store_true", help="do not use a result cache")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--out", required=True, help="judgments JSONL to write")


def read_samples(path: str | os.PathLike[str], limit: int | None = None) -> list[JudgeSample]:
    """Canonical samples from a JSONL file or a prepared dir, the first ``limit`` of them when given.
    A bad line raises ValueError naming the file, the line and the field."""
    from judgetrain.data.prepared import load_samples

    samples = load_samples(path)
    return samples if limit is None else samples[:limit]


def default_cache_path() -> Path:
    from judgetrain.judging.cache import CACHE_ENV, CACHE_FILE_NAME
    from judgetrain.models import cache_dir

    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else cache_dir() / CACHE_FILE_NAME


def _backend_options(args: argparse.Namespace) -> dict:
    if args.backend == "openai":
        if args.batch_size is not None or args.dtype is not None:
            raise ValueError("--batch-size and --dtype apply to --backend hf; drop them for openai")
        return {"base_url": args.base_url, "api_key_env": args.api_key_env}
    if args.base_url or args.api_key_env:
        raise ValueError("--base-url and --api-key-env apply to --backend openai")
    if args.backend == "hf":
        return {"batch_size": args.batch_size, "dtype": args.dtype}
    return {"dtype": args.dtype}


def _print_summary(summary: dict, out: Path, file=sys.stdout) -> None:
    outcomes = ", ".join(f"{k}: {v}" for k, v in summary["outcomes"].items()) or "none"
    print(f"judged {summary['num_judgments']} samples -> {out}", file=file)
    print(f"  outcomes: {outcomes}", file=file)
    print(f"  parse failures: {summary['num_parse_failures']} (lenient-only reads: {summary['num_lenient']}), "
          f"errors: {summary['num_errors']}", file=file)
    if summary["both_orders_items"]:
        consistency = summary["consistency"]
        shown = f"{consistency:.3f}" if consistency is not None else "n/a (no item parsed in both orders)"
        print(f"  consistency (both orders, {summary['both_orders_items']} items): {shown}", file=file)
    print(f"  calls: {summary['num_calls']} ({summary['num_cached_calls']} from the cache), "
          f"tokens in/out: {summary['tokens_in']}/{summary['tokens_out']}", file=file)
    cost = summary["cost_usd"]
    print(f"  cost: {'$%.4f' % cost if cost is not None else 'n/a (not priced)'}", file=file)


def run(args: argparse.Namespace) -> int:
    from judgetrain import formats
    from judgetrain.judging.backends import make_backend
    from judgetrain.judging.backends.base import Decoding
    from judgetrain.judging.cache import run_cache_path
    from judgetrain.judging.judge import Judge, default_decoding, summarize

    for name in ("batch_size", "max_new_tokens", "limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    fmt = formats.get(args.format)
    samples = read_samples(args.input, args.limit)
    if not samples:
        raise ValueError(f"--input {args.input}: no samples")
    for sample in samples:
        fmt.check_sample(sample)  # a sample the template cannot show fails before any model loads
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cache = run_cache_path(args.cache, no_cache=args.no_cache, default=default_cache_path())
    spec = {"hf": f"hf:{args.model}", "vllm": f"vllm:{args.model}", "openai": f"openai:{args.model}"}[args.backend]
    backend = make_backend(spec, **_backend_options(args))
    decoding: Decoding = default_decoding(fmt, stop_at_verdict=not args.full_judgment, max_new_tokens=args.max_new_tokens)
    judge = Judge(fmt, backend, decoding, both_orders=args.both_orders, disagreement_policy=args.disagreement,
                  cache=cache, strict=args.strict, stop_at_verdict=not args.full_judgment, progress=not args.no_progress)
    tmp = out.with_name(f".{out.name}.partial")
    judgments = []
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            for start in range(0, len(samples), CHUNK_SAMPLES):
                chunk = judge.judge(samples[start:start + CHUNK_SAMPLES])
                for judgment in chunk:
                    handle.write(json.dumps(judgment.to_dict(), ensure_ascii=False) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
                judgments.extend(chunk)
        os.replace(tmp, out)
    finally:
        judge.backend.close()
    _print_summary(summarize(judgments), out)
    return 0
