"""``judgetrain label``: teacher labelling, as JudgeLM built its training set from GPT-4 judgments.

For every canonical sample without a judgment, a teacher model (GPT-4 or any OpenAI-compatible
endpoint) is asked for a judgment in the chosen format. Parsed judgments become training targets:
``sample.judgment`` holds the teacher's text, ``labels["teacher:<model>"]`` its verdict and
``meta["judgment_format"]`` the template. Judgments that do not parse (and requests that failed) are
set aside in ``failures.jsonl`` with their raw text, never turned into labels. The run stops at
``--max-cost-usd`` and says so. Every completion goes through the result cache, so a killed run
resumes without paying twice for a finished call.

Output (a prepared dir written by :func:`judgetrain.data.prepare.prepare_dataset`, as ``judgetrain prep``
writes it): ``OUT/samples/shard-*.jsonl`` + ``OUT/manifest.json``, plus ``OUT/failures.jsonl``,
``OUT/label_summary.json`` and the cache ``OUT/teacher-cache.sqlite``; all but the cache are replaced together.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from judgetrain.formats.base import JudgeFormat
from judgetrain.types import JudgeSample, Judgment, Label

TEACHER_PREFIX = "openai:"
CACHE_FILE = "teacher-cache.sqlite"
FAILURES_FILE = "failures.jsonl"
SUMMARY_FILE = "label_summary.json"
COST_CAP_MARKER = "cost cap"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="a prepared dir (judgetrain prep) or a samples .jsonl file")
    parser.add_argument("--format", required=True, dest="format_name", help="judge format the teacher answers in (judgetrain formats)")
    parser.add_argument("--teacher", required=True, help="openai:MODEL, e.g. openai:gpt-4o (any OpenAI-compatible server with --base-url)")
    parser.add_argument("--base-url", default="https://api.openai.com/v1", help="the API root, up to /v1")
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key (the key itself is never logged)")
    parser.add_argument("--out", required=True, help="output prepared dir")
    parser.add_argument("--max-cost-usd", type=float, default=None, help="stop sending requests once this much is spent")
    parser.add_argument("--price-per-1m-tokens", type=float, nargs=2, metavar=("INPUT_USD", "OUTPUT_USD"), default=None,
                        help="the teacher's price when it is not in the built-in table (needed with --max-cost-usd)")
    parser.add_argument("--both-orders", action="store_true", help="judge each pair in both orders; keep the label only when the orders agree")
    parser.add_argument("--max-new-tokens", type=int, default=1024, help="longest teacher judgment, in tokens")
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--max-concurrency", type=int, default=8, help="requests in flight at once")
    parser.add_argument("--timeout-seconds", type=float, default=60.0, help="per-request timeout")
    parser.add_argument("--max-retries", type=int, default=6, help="retries of a request on 429 / 5xx / timeouts")
    parser.add_argument("--cache", default=None, help=f"result cache file (default OUT/{CACHE_FILE}); keep it to resume")
    parser.add_argument("--chunk-size", type=int, default=32, help="samples judged between two checks of the cost cap")


def run(args: argparse.Namespace) -> int:
    summary = label(args)
    print(format_summary(summary))
    return 0


def read_input_samples(input_path: str | os.PathLike) -> list[JudgeSample]:
    """Samples from a prepared dir or a JSONL file of canonical samples (errors name file and line)."""
    from judgetrain.data.prepared import load_samples

    return load_samples(input_path)


def teacher_model(spec: str) -> str:
    """The model id of a ``--teacher openai:MODEL`` spec."""
    if not spec.startswith(TEACHER_PREFIX) or not spec[len(TEACHER_PREFIX):]:
        raise ValueError(f"--teacher {spec!r}: expected openai:MODEL (e.g. openai:gpt-4o); point --base-url at any OpenAI-compatible server")
    return spec[len(TEACHER_PREFIX):]


def labelled_sample(sample: JudgeSample, judgment: Judgment, fmt: JudgeFormat, teacher_key: str) -> JudgeSample:
    """``sample`` with the teacher's judgment text, its verdict as a Label under ``teacher_key``, and
    the template recorded in meta. Raises ValueError when the verdict cannot be a label of this sample."""
    verdict = judgment.verdict
    assert verdict is not None
    label = Label(winner=verdict.winner if sample.protocol == "pairwise" else None, scores=verdict.scores,
                  scale=fmt.score_scale if verdict.scores is not None else None)
    meta = {**sample.meta, "judgment_format": fmt.name, "teacher": teacher_key}
    return sample.replace(labels={**sample.labels, teacher_key: label}, meta=meta, **{fmt.judgment_field: judgment.raw_text})


def label(args: argparse.Namespace) -> dict[str, Any]:
    """Run the labelling; returns the summary written to ``OUT/label_summary.json``."""
    from judgetrain import formats
    from judgetrain.atomic import write_jsonl_atomic, write_text_atomic
    from judgetrain.data.prepare import prepare_dataset
    from judgetrain.data.rows import ReadReport
    from judgetrain.judging.backends.base import Decoding
    from judgetrain.judging.backends.openai_http import OpenAIHTTPBackend
    from judgetrain.judging.cache import ResultCache
    from judgetrain.judging.judge import Judge

    model = teacher_model(args.teacher)
    fmt = formats.get(args.format_name)
    if args.chunk_size < 1 or args.max_new_tokens < 1:
        raise ValueError("--chunk-size and --max-new-tokens must be at least 1")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a directory")
    if out.is_dir() and any(out.iterdir()) and not ((out / "manifest.json").is_file() or (out / CACHE_FILE).is_file()):
        raise ValueError(f"--out {out} exists and is not a labelled dir; choose a new or empty directory")
    samples = read_input_samples(args.input)
    text_field = fmt.judgment_field
    to_label: list[JudgeSample] = []
    failures: list[dict[str, Any]] = []
    num_already_judged = 0
    for sample in samples:
        if getattr(sample, text_field) is not None:
            num_already_judged += 1
            continue
        try:
            fmt.check_sample(sample)
        except ValueError as err:
            failures.append({"sample_id": sample.id, "kind": "not_renderable", "reason": str(err), "raw_text": None,
                             "sample": sample.to_dict()})
            continue
        to_label.append(sample)

    if "api.openai.com" in args.base_url and not os.environ.get(args.api_key_env or ""):
        raise ValueError(f"the OpenAI API needs a key: export {args.api_key_env or 'OPENAI_API_KEY'}=... (or pass --api-key-env VAR)")
    price_table = {model: tuple(args.price_per_1m_tokens)} if args.price_per_1m_tokens else None
    backend = OpenAIHTTPBackend(model, base_url=args.base_url, api_key_env=args.api_key_env,
                                max_concurrency=args.max_concurrency, timeout_seconds=args.timeout_seconds,
                                max_retries=args.max_retries, price_table=price_table, max_cost_usd=args.max_cost_usd)
    if args.max_cost_usd is not None and backend.prices_per_million is None:
        backend.close()
        raise ValueError(f"--max-cost-usd needs the price of {model!r}: pass --price-per-1m-tokens INPUT_USD OUTPUT_USD")
    out.mkdir(parents=True, exist_ok=True)
    cache_path = Path(args.cache) if args.cache else out / CACHE_FILE
    cache = ResultCache(cache_path)
    # The teacher writes its whole judgment: no verdict-first early stop here.
    decoding = Decoding(max_new_tokens=args.max_new_tokens, temperature=args.temperature)
    # Both orders: a disagreement is set aside below (not labelled), so the policy only names it.
    judge = Judge(fmt, backend, decoding, both_orders=args.both_orders, disagreement_policy="tie", cache=cache,
                  stop_at_verdict=False, verdict_probabilities=False)
    teacher_key = f"teacher:{model}"

    labelled: list[JudgeSample] = []
    num_parse_failures = num_errors = num_not_sent = num_inconsistent = 0
    stopped_at_cost_cap = False
    try:
        for start in range(0, len(to_label), args.chunk_size):
            if backend.budget_exhausted:
                stopped_at_cost_cap = True
                num_not_sent += len(to_label) - start
                break
            chunk = to_label[start:start + args.chunk_size]
            judgments = judge.judge(chunk)
            assert len(judgments) == len(chunk), "Judge.judge returns one judgment per sample"
            for sample, judgment in zip(chunk, judgments):
                if judgment.error is not None and COST_CAP_MARKER in judgment.error and backend.budget_exhausted:
                    stopped_at_cost_cap = True
                    num_not_sent += 1
                    continue
                both_orders = judgment.both_orders
                if judgment.verdict is not None and both_orders is not None and both_orders.consistent is False:
                    num_inconsistent += 1
                    failures.append({"sample_id": sample.id, "kind": "inconsistent",
                                     "reason": f"the orders disagree: {both_orders.original_winner} vs {both_orders.swapped_winner} (swapped, mapped back)",
                                     "raw_text": judgment.raw_text,
                                     "orders": [both_orders.original.to_dict(), both_orders.swapped.to_dict()],
                                     "sample": sample.to_dict()})
                    continue
                if judgment.verdict is not None:
                    try:
                        labelled.append(labelled_sample(sample, judgment, fmt, teacher_key))
                        continue
                    except ValueError as err:
                        failures.append({"sample_id": sample.id, "kind": "unusable_verdict", "reason": str(err),
                                         "raw_text": judgment.raw_text, "sample": sample.to_dict()})
                        num_parse_failures += 1
                        continue
                if judgment.parse_failure is not None:
                    num_parse_failures += 1
                    failures.append({"sample_id": sample.id, "kind": "parse_failure", "reason": judgment.parse_failure.reason,
                                     "raw_text": judgment.raw_text, "sample": sample.to_dict()})
                else:
                    num_errors += 1
                    failures.append({"sample_id": sample.id, "kind": "error", "reason": judgment.error,
                                     "raw_text": judgment.raw_text or None, "sample": sample.to_dict()})
    finally:
        usage = backend.usage()
        backend.close()
        cache.close()

    summary: dict[str, Any] = {
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "input": str(args.input),
        "format": fmt.name,
        "teacher": teacher_key,
        "base_url": backend.base_url,
        "both_orders": args.both_orders,
        "decoding": decoding.to_dict(),
        "num_input_samples": len(samples),
        "num_already_judged": num_already_judged,
        "num_asked": len(to_label),
        "num_labelled": len(labelled),
        "num_parse_failures": num_parse_failures,
        "num_errors": num_errors,
        "num_inconsistent": num_inconsistent,
        "num_not_renderable": sum(f["kind"] == "not_renderable" for f in failures),
        "num_not_sent_cost_cap": num_not_sent,
        "stopped_at_cost_cap": stopped_at_cost_cap,
        "max_cost_usd": args.max_cost_usd,
        "usage": usage,
    }
    details = {
        "teacher": teacher_key, "base_url": backend.base_url, "both_orders": args.both_orders, "decoding": decoding.to_dict(),
        "max_cost_usd": args.max_cost_usd,
        "label_summary": {k: summary[k] for k in ("num_asked", "num_labelled", "num_parse_failures", "num_errors",
                                                  "num_not_sent_cost_cap", "stopped_at_cost_cap")},
    }

    def add_label_files(staging: Path) -> None:
        write_jsonl_atomic(staging / FAILURES_FILE, failures)
        write_text_atomic(staging / SUMMARY_FILE, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")

    # The new dir replaces OUT whole, so a cache kept in OUT is carried into it (with SQLite's side files).
    in_out = cache_path.resolve().parent == out.resolve()
    keep_files = [cache_path.name + suffix for suffix in ("", "-wal", "-shm")] if in_out else []
    read_report = ReadReport(source="label", rows_read=len(samples), samples_built=len(labelled))
    prepare_dataset(labelled, out, source="label", input=str(args.input), report=read_report, format_name=fmt.name,
                    details=details, add_files=add_label_files, keep_files=keep_files)
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The human-readable end-of-run summary."""
    usage = summary["usage"]
    cost = "unknown (no price)" if usage["cost_usd"] is None else f"{usage['cost_usd']:.4f} USD"
    lines = [
        f"labelled {summary['num_labelled']} of {summary['num_asked']} samples with {summary['teacher']} ({summary['format']})",
        f"  parse failures {summary['num_parse_failures']}, request errors {summary['num_errors']}, "
        f"orders disagree {summary['num_inconsistent']}, "
        f"not renderable {summary['num_not_renderable']}, already judged (skipped) {summary['num_already_judged']}",
        f"  HTTP calls {usage['http_calls']} (retries {usage['retries']}), tokens in {usage['tokens_in']} / out {usage['tokens_out']}, cost {cost}",
    ]
    if summary["stopped_at_cost_cap"]:
        lines.append(f"  STOPPED at the cost cap of {summary['max_cost_usd']} USD: {summary['num_not_sent_cost_cap']} samples not sent; "
                     "re-run with a higher --max-cost-usd to continue (finished calls come from the cache)")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    from judgetrain.cli import main

    sys.exit(main(["label", *sys.argv[1:]]))
