"""``judgetrain judge``: judge samples with a model or an API and write one judgment per line.

Judgments are written as the run goes (chunk by chunk, each line flushed and fsynced), so a killed
run keeps its finished work; the result cache (``--cache``, default ``$JUDGETRAIN_RESULT_CACHE`` or
``~/.cache/judgetrain/judge-cache.sqlite``) makes the rerun free for every call already made. The
file is written under a temp name and renamed when the run completes. The run ends with a summary:
outcome counts, parse failures, both-orders consistency, tokens and cost.

``--model`` an export dir or the URL of a served judge: its judge card sets the judge up, of either
kind (:func:`judgetrain.judging.protocol.judge_from_card`), and ``--format`` is not needed; a flag
that contradicts the card (another template, a generative backend for a reward judge, a parser mode,
both-orders or disagreement setting other than the card's) is an error that says so. Any other
``--model`` (a model dir, a hub id, ``tiny``, an API model) is judged with ``--format``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from judgetrain.types import JudgeSample

CHUNK_SAMPLES = 64
"""Samples judged per Judge call: judgments are written after each chunk."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="samples: a canonical JSONL file or a prepared dir of *.jsonl shards")
    parser.add_argument("--format", help="judge template name (see `judgetrain formats`); an export dir's or served judge's "
                                         "judge card names its own (default: the card's)")
    parser.add_argument("--backend", choices=("hf", "vllm", "openai"),
                        help="where the judge runs (default: hf; an export dir's card: hf for a generative judge, a served URL: openai)")
    parser.add_argument("--model", required=True,
                        help="an export dir or a served judge's http:// URL (judged as its judge card says, either kind), or a "
                             "model dir / hub id / tiny / embedded:smollm2-135m (hf, vllm) or model id (openai) with --format")
    parser.add_argument("--card", help="the judge card (export dir or judge_card.json) of a server that publishes none (vllm serve)")
    parser.add_argument("--base-url", help="openai: the API root up to /v1")
    parser.add_argument("--api-key-env", help="openai: the environment variable holding the API key")
    parser.add_argument("--both-orders", action="store_true", help="judge pairwise samples in both orders and aggregate")
    parser.add_argument("--disagreement", choices=("tie", "inconsistent"),
                        help="what a both-orders disagreement becomes (default: tie; a judge card's own)")
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


def _check_flags_against_card(args: argparse.Namespace, card) -> None:
    """ValueError for a judging flag the card of ``--model`` fixes otherwise (the template, the
    backend and the generation budget are checked by the factory)."""
    where = f"the judge card of {args.model}"
    policy = card.tie_policy
    if args.base_url:
        raise ValueError(f"--base-url: {args.model} is judged as its judge card says; give a server's URL as --model instead")
    if args.both_orders and not policy.both_orders:
        raise ValueError(f"--both-orders: {where} judges each pair in one order; drop --both-orders")
    if args.disagreement is not None and args.disagreement != policy.disagreement:
        raise ValueError(f"--disagreement {args.disagreement}: {where} makes a both-orders disagreement {policy.disagreement!r}; "
                         "drop --disagreement")
    if args.strict and card.parser.mode != "strict":
        raise ValueError(f"--strict: {where} reads verdicts with the {card.parser.mode} parser; drop --strict")
    if args.full_judgment and (card.kind == "reward" or (card.decoding is not None and card.decoding.stop)):
        fixed = "a reward judge generates nothing" if card.kind == "reward" else f"it stops at the verdict ({list(card.decoding.stop)})"
        raise ValueError(f"--full-judgment: {where} fixes the decoding ({fixed}); drop --full-judgment")


def card_judge(args: argparse.Namespace, cache: Path | None) -> tuple[Any, list[JudgeSample]]:
    """(the judge, the samples of ``--input``): the judge the card of ``--model`` (an export dir or a
    served URL; ``--card`` for a server that publishes none) describes, every flag checked against the
    card before a sample is read or a model loaded; a generative judge's calls go behind ``cache``."""
    from judgetrain import formats
    from judgetrain.judging.card_target import card_where, check_against_card, load_card
    from judgetrain.judging.protocol import judge_from_card

    card = load_card(args.model, card=args.card, api_key_env=args.api_key_env)
    # Every contradiction is reported before a sample is read or a model loaded.
    check_against_card(card, args.model, where=card_where(args.model, args.card), format_name=args.format,
                       backend_name=args.backend, max_new_tokens=args.max_new_tokens)
    _check_flags_against_card(args, card)
    shown_with = formats.get(card.template) if card.kind == "generative" else None
    samples = read_samples(args.input, args.limit)
    if not samples:
        raise ValueError(f"--input {args.input}: no samples")
    for sample in samples:
        if shown_with is not None:
            shown_with.check_sample(sample)  # a sample the template cannot show fails before any model loads
    # A reward judge takes no result cache: its rewards are one forward pass per answer, not generations.
    judge = judge_from_card(args.model, card=card, format_name=args.format, backend_name=args.backend,
                            batch_size=args.batch_size or 8, dtype=args.dtype, max_new_tokens=args.max_new_tokens,
                            api_key_env=args.api_key_env, progress=not args.no_progress, cache=cache)
    return judge, samples


def _print_summary(summary: dict, out: Path, file=None) -> None:
    file = file or sys.stdout  # read at call time: a default bound at import would keep a stream replaced since
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


def has_card_target(args: argparse.Namespace) -> bool:
    """Whether ``--model`` is judged from a judge card: a served URL, an export dir, or ``--card`` given."""
    from judgetrain.card import has_card
    from judgetrain.judging.card_target import is_served

    return args.card is not None or is_served(args.model) or has_card(args.model)


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
    cache = run_cache_path(args.cache, no_cache=args.no_cache, default=default_cache_path())
    if has_card_target(args):
        judge, samples = card_judge(args, cache)
    else:
        if args.format is None:
            raise ValueError(f"--format NAME is required: --model {args.model} has no judge card to name its template "
                             "(see `judgetrain formats`; an export dir or a served judge's URL needs none)")
        fmt = formats.get(args.format)
        backend_name = args.backend or "hf"
        if backend_name != "openai":
            from judgetrain.judging.card_target import refuse_reward_model_dir

            refuse_reward_model_dir(args.model, fmt.name)
        samples = read_samples(args.input, args.limit)
        if not samples:
            raise ValueError(f"--input {args.input}: no samples")
        for sample in samples:
            fmt.check_sample(sample)  # a sample the template cannot show fails before any model loads
        args.backend = backend_name
        spec = {"hf": f"hf:{args.model}", "vllm": f"vllm:{args.model}", "openai": f"openai:{args.model}"}[backend_name]
        backend = make_backend(spec, **_backend_options(args))
        decoding: Decoding = default_decoding(fmt, stop_at_verdict=not args.full_judgment, max_new_tokens=args.max_new_tokens)
        judge = Judge(fmt, backend, decoding, both_orders=args.both_orders, disagreement_policy=args.disagreement or "tie",
                      cache=cache, strict=args.strict, stop_at_verdict=not args.full_judgment, progress=not args.no_progress)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
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
        judge.close()
    _print_summary(summarize(judgments), out)
    return 0
