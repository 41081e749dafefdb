"""``judgetrain eval``: score a judge, or a file of verdicts, on a benchmark; compare runs.

    judgetrain eval --benchmark NAME --judge CHECKPOINT_DIR|EXPORT_DIR|URL|openai:MODEL|tiny [--format NAME] [--limit N]
                    [--data FILE] [--on-bad-row error|skip] [--cache FILE | --no-cache] --out DIR
    judgetrain eval --benchmark NAME --predictions FILE [--predictions-swapped FILE] [--label-map SPEC] --out DIR
    judgetrain eval compare RUN_DIR [RUN_DIR ...]
    judgetrain eval --list

A judge's calls go through the result cache (default OUT/judge-cache.sqlite), each stored as it
finishes: a killed run started again with the same --out pays for no call twice, and a repeated run
costs nothing. Use --no-cache after retraining a checkpoint in place (its path, which the cache keys
on, has not changed).

An export dir or a served judge's URL (``judgetrain serve``) is judged as its judge card says, either
kind; ``--format`` may only name the card's template. ``--data`` may be the benchmark's raw file or a
file of canonical samples (such as ``judgetrain/resources/quickstart/eval_pandalm.jsonl``, or a
prepared dir), which is read as such. A bad row stops the run naming its line, or with
``--on-bad-row skip`` is skipped and counted (``data_read`` in results.json, and report.md).
"""

from __future__ import annotations

HELP = "evaluate a judge or a predictions file on a benchmark"

import argparse
import json
import sys
from pathlib import Path

from judgetrain.data.rows import ON_BAD_ROW_CHOICES
from judgetrain.judging.cache import CACHE_FILE_NAME, run_cache_path
from judgetrain.metrics import DEFAULT_BOOTSTRAP_RESAMPLES, PARSE_FAILURE_POLICIES


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__
    parser.add_argument("words", nargs="*", metavar="compare RUN_DIR", help="`compare RUN_DIR...` prints runs side by side")
    parser.add_argument("--benchmark", help="benchmark name (see --list)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--judge", help="checkpoint dir, export dir or a served judge's http:// URL (judged as its judge card "
                                        "says, exactly as Judge.from_card(dir)), openai:MODEL, or tiny")
    parser.add_argument("--format", dest="format_name",
                        help="judge template (default: the benchmark's; an export dir's judge card fixes its own)")
    parser.add_argument("--predictions", help="JSONL of verdicts, one row per item (id-aligned when rows have ids)")
    parser.add_argument("--predictions-swapped", help="JSONL of verdicts on the swapped order (mapped back here)")
    parser.add_argument("--label-map", help='translate verdict values, e.g. "0=A,1=B,2=tie" or "A>B=A,B>A=B,A=B=tie"')
    parser.add_argument("--data", help="benchmark file / dir or hub id, or a file of canonical samples (default: the shared "
                                       "layout under --data-dir)")
    parser.add_argument("--on-bad-row", choices=ON_BAD_ROW_CHOICES, default="error",
                        help="stop at the first bad data row (default), or skip bad rows and count them in the report")
    parser.add_argument("--data-dir", help="root of the local benchmark files (default: $JUDGETRAIN_DATA_DIR or ./data)")
    parser.add_argument("--scenario-groups", help="autoj-pairwise: Auto-J's scenario_group.json (or the Auto-J data dir)")
    parser.add_argument("--limit", type=int, help="score only the first N items")
    parser.add_argument("--parse-failures", choices=PARSE_FAILURE_POLICIES, default="wrong",
                        help="count a parse failure as wrong (default) or exclude the item")
    parser.add_argument("--bootstrap-resamples", type=int, default=DEFAULT_BOOTSTRAP_RESAMPLES,
                        help="bootstrap resamples for the 95%% intervals (0: no intervals)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--max-new-tokens", type=int,
                        help="judge generation budget (default: the judge card's, else the judging default)")
    parser.add_argument("--base-url", help="openai:MODEL judges: the API root up to /v1 (a vLLM or judgetrain serve server)")
    parser.add_argument("--api-key-env", help="openai:MODEL judges and served judges' URLs: the environment variable holding the API key")
    parser.add_argument("--cache", help=f"--judge: result cache file (default OUT/{CACHE_FILE_NAME}; finished calls are never repeated)")
    parser.add_argument("--no-cache", action="store_true", help="--judge: do not use a result cache")
    parser.add_argument("--out", help="run directory to write results.json, judgments.jsonl, report.md and plots into")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--print-json", action="store_true", help="print the headline metrics as one JSON object")


def _backend_options(args: argparse.Namespace) -> dict | None:
    """The backend settings of ``--judge``: the API root and key of openai:MODEL, the key of a served judge."""
    if not args.judge:
        return None
    if args.judge.startswith("openai:"):
        return {"base_url": args.base_url, "api_key_env": args.api_key_env}
    from judgetrain.judging.card_target import is_served

    if args.base_url:
        raise ValueError(f"--base-url goes with --judge openai:MODEL; a served judge is given by its URL: --judge {args.base_url}")
    if args.api_key_env and not is_served(args.judge):
        raise ValueError(f"--api-key-env goes with --judge openai:MODEL or a served judge's URL, not with {args.judge}")
    return {"api_key_env": args.api_key_env} if args.api_key_env else None


def run(args: argparse.Namespace) -> int:
    from judgetrain import plugins

    if args.words:
        if args.words[0] != "compare":
            raise ValueError(f"unknown eval action {args.words[0]!r}; the only one is `compare RUN_DIR...`")
        if len(args.words) < 2:
            raise ValueError("`judgetrain eval compare` needs at least one RUN_DIR")
        from judgetrain_eval.report import compare_runs

        sys.stdout.write(compare_runs(args.words[1:]))
        return 0
    if args.list:
        from judgetrain_eval.runner import get_benchmark

        for name in plugins.names(plugins.BENCHMARKS):
            bench = get_benchmark(name)
            print(f"{name:20s} {bench.kind:10s} {bench.description}")
        return 0
    if not args.benchmark:
        raise ValueError("--benchmark NAME is required (see `judgetrain eval --list`)")
    if not args.out:
        raise ValueError("--out DIR is required: the run's results, judgments and report are written there")
    from judgetrain_eval.report import write_run
    from judgetrain_eval.runner import run_benchmark

    if args.predictions and (args.cache or args.no_cache):
        raise ValueError("--cache and --no-cache go with --judge: a predictions file makes no calls")
    cache = run_cache_path(args.cache, no_cache=args.no_cache, default=Path(args.out) / CACHE_FILE_NAME) if args.judge else None
    options = {"scenario_groups": args.scenario_groups} if args.scenario_groups else None
    result = run_benchmark(
        args.benchmark, judge=args.judge, predictions=args.predictions, predictions_swapped=args.predictions_swapped,
        label_map=args.label_map, data=args.data, data_dir=args.data_dir, limit=args.limit,
        format_name=args.format_name, policy=args.parse_failures, num_resamples=args.bootstrap_resamples,
        seed=args.seed, max_new_tokens=args.max_new_tokens, options=options,
        backend_options=_backend_options(args), cache=cache, on_bad_row=args.on_bad_row,
    )
    out = write_run(result, args.out, plots=not args.no_plots)
    skipped = result.config["data_read"]["rows_skipped"]
    if args.print_json:
        print(json.dumps(result.headline(), sort_keys=False))
    else:
        metrics = result.results["metrics"]
        shown = ", ".join(f"{k}={v['value']:.3f}" for k, v in metrics.items() if k != "num_items" and v["value"] is not None)
        print(f"{args.benchmark}: {int(metrics['num_items']['value'])} items; {shown}")
        if skipped:
            reasons = ", ".join(f"{reason}: {entry['count']}" for reason, entry in result.config["data_read"]["skipped"].items())
            print(f"bad rows skipped (--on-bad-row skip): {skipped} ({reasons})")
        print(f"wrote {out}/results.json, judgments.jsonl, report.md")
        if args.judge:
            calls = [call for row in result.rows for call in row.judgments]
            num_cached = sum(1 for call in calls if (call.get("meta") or {}).get("cached"))
            used_cache = result.config.get("result_cache")
            print(f"calls: {len(calls)} " + (f"({num_cached} from the result cache {used_cache})" if used_cache else "(no result cache)"))
    return 0
