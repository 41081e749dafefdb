"""``judgetrain prep``: read a judge dataset into canonical samples, augment and tokenize it.

    judgetrain prep --source NAME --input PATH_OR_HUB_ID [--split S] --out DIR [--format NAME] [--target-label LABEL]
                    [--swap-aug P | --pair-symmetric] [--p-include-reference P | --reference-twins] [--seed N]
                    [--on-bad-row error|skip]
                    [--tokenizer PATH --max-seq-len N] [--num-proc N]
    judgetrain prep stats DIR

The reader of ``--source`` is found by name in the ``judgetrain.readers`` registry (:mod:`judgetrain.plugins`);
the library never imports a reader package itself. The work is :func:`judgetrain.data.prepare.prepare_dataset`:
everything is written into a staging directory that replaces ``--out`` only once the manifest is written,
so ``--out`` is always a complete prepared dir (``manifest.json``, ``samples/shard-*.jsonl`` and, with
``--tokenizer``, ``tokenized/``).
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from judgetrain.data.prepare import prepare_dataset
from judgetrain.data.prepared import TOKENIZED_DIR, Manifest, read_samples
from judgetrain.data.rows import ON_BAD_ROW_CHOICES


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=["stats"], help="`stats DIR`: describe a prepared dir instead of preparing one")
    parser.add_argument("prepared_dir", nargs="?", help="the prepared dir `stats` describes")
    parser.add_argument("--source", help="the dataset's reader (a judgetrain.readers entry point): judgelm, autoj, pandalm, prometheus, llmbar, judgebench, mtbench, jsonl, pairs-from-grades")
    parser.add_argument("--input", help="a JSONL / JSON / parquet file, a directory of them, or a Hugging Face dataset id")
    parser.add_argument("--split", help="the hub split to read (or, for a local directory, the files named after it)")
    parser.add_argument("--out", help="the prepared dir to write (replaced if it exists)")
    parser.add_argument("--format", dest="format_name", help="the judge template the data will be rendered with (checked now; needed with --tokenizer unless every sample names one)")
    parser.add_argument("--target-label", help="the label the tokenized targets are built from (gpt4, human, …; every sample must have it); "
                                                   "default: the template's own teacher's label where it has one, then gpt4, human_majority, human, gold")
    parser.add_argument("--swap-aug", type=float, default=0.0, help="probability of swapping the two answers of each pairwise sample, materialised at build time (JudgeLM: 0.5)")
    parser.add_argument("--pair-symmetric", action="store_true",
                        help="write every pairwise sample in both answer orders (each followed by its swapped twin, id ID~swapped, "
                             "both with meta pair_id=ID), so a position prior cannot lower the training loss; excludes --swap-aug")
    parser.add_argument("--reference-twins", action="store_true",
                        help="reference drop, both mode: follow every sample with a reference by its twin without it (id ID~noref, "
                             "reference_dropped=True; with --pair-symmetric both orders of each); excludes --p-include-reference")
    parser.add_argument("--p-include-reference", type=float, default=None, help="probability that a sample with a reference keeps it (else it is dropped and the matching judgment is the target); default: keep every reference")
    parser.add_argument("--seed", type=int, default=0, help="seed of the build-time augmentation")
    parser.add_argument("--on-bad-row", choices=ON_BAD_ROW_CHOICES, default="error", help="stop at the first bad row (default), or skip bad rows and count them in the manifest")
    parser.add_argument("--tokenizer", help="tokenize with this model's tokenizer (an HF dir or hub id, `tiny`, or embedded:smollm2-135m) into OUT/tokenized")
    parser.add_argument("--max-seq-len", type=int, default=2048, help="token budget per sample; answers are shortened to fit (default 2048)")
    parser.add_argument("--num-proc", type=int, default=1, help="processes for tokenization (datasets.map num_proc)")
    parser.add_argument("--map", action="append", default=[], metavar="KEY=VALUE", help="jsonl source: a field mapping entry, e.g. question=prompt or answers=resp_a,resp_b (repeatable)")
    parser.add_argument("--map-file", help="jsonl source: a YAML file holding the field mapping")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="a reader option, e.g. grades_from=prometheus, tie_threshold=1, models=gpt-4,claude-v1 (repeatable)")
    parser.add_argument("--json", action="store_true", help="stats: print JSON instead of text")


def _key_values(entries: list[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} {entry!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def reader_options(args: argparse.Namespace) -> dict[str, Any]:
    """The reader options given on the command line."""
    options: dict[str, Any] = _key_values(args.option, "--option")
    if args.map and args.map_file:
        raise ValueError("give the field mapping with --map entries or with --map-file, not both")
    if args.map or args.map_file:
        if args.source != "jsonl":
            raise ValueError(f"--map / --map-file are for --source jsonl; --source {args.source} reads its own fields")
        options["fields"] = args.map_file if args.map_file else _key_values(args.map, "--map")
    return options


def prepare(args: argparse.Namespace) -> Manifest:
    """Read, augment, write and (optionally) tokenize with :func:`prepare_dataset`; returns the manifest written."""
    for flag in ("source", "input", "out"):
        if getattr(args, flag) is None:
            raise ValueError(f"--{flag} is required (or use `judgetrain prep stats DIR`)")
    return prepare_dataset(
        args.source,
        args.out,
        input=args.input,
        split=args.split,
        reader_options=reader_options(args),
        format_name=args.format_name,
        target_label=args.target_label,
        swap_aug=args.swap_aug,
        pair_symmetric=bool(getattr(args, "pair_symmetric", False)),
        reference_twins=bool(getattr(args, "reference_twins", False)),
        p_include_reference=args.p_include_reference,
        seed=args.seed,
        tokenizer=args.tokenizer,
        max_seq_len=args.max_seq_len,
        num_proc=args.num_proc,
        on_bad_row=args.on_bad_row,
    )


# --- stats -------------------------------------------------------------------------------------


def describe(prepared_dir: str | os.PathLike) -> dict[str, Any]:
    """Counts, label distribution, token-length percentiles, truncated and skipped counts of a prepared dir."""
    root = Path(prepared_dir)
    manifest = Manifest.read(root)
    samples = read_samples(root)
    labels: dict[str, dict[str, Any]] = {}
    for sample in samples:
        for who, label in sample.labels.items():
            entry = labels.setdefault(who, {"count": 0, "winner": Counter(), "scores": Counter()})
            entry["count"] += 1
            if label.winner is not None:
                entry["winner"][label.winner] += 1
            for score in label.scores or ():
                if score is not None:
                    entry["scores"][f"{score:g}"] += 1
    stats: dict[str, Any] = {
        "prepared_dir": str(root),
        "source": manifest.source,
        "manifest_hash": manifest.manifest_hash,
        "num_samples": len(samples),
        "protocol": dict(Counter(s.protocol for s in samples)),
        "multi_turn": sum(s.is_multi_turn for s in samples),
        "with_reference": sum(s.reference is not None for s in samples),
        "with_judgment": sum(s.judgment is not None or s.judgment_with_reference is not None for s in samples),
        "swapped": sum(s.swapped for s in samples),
        "reference_dropped": sum(s.reference_dropped for s in samples),
        "labels": {
            who: {
                "count": e["count"],
                "winner": dict(sorted(e["winner"].items())),
                "scores": dict(sorted(e["scores"].items(), key=lambda kv: float(kv[0]))),
            }
            for who, e in sorted(labels.items())
        },
        "rows_read": manifest.rows_read,
        "rows_written": manifest.rows_written,
        "rows_skipped": manifest.rows_skipped,
        "skipped": {reason: info["count"] for reason, info in manifest.skipped.items()},
        "schemas": manifest.schemas,
    }
    tokenized = manifest.tokenized
    if tokenized:
        import datasets
        import numpy as np

        dataset = datasets.load_from_disk(str(root / tokenized.get("path", TOKENIZED_DIR)))
        lengths = np.asarray([len(ids) for ids in dataset["input_ids"]])
        stats["tokenized"] = {
            "num_rows": len(dataset),
            "max_seq_len": tokenized.get("max_seq_len"),
            "num_truncated": tokenized.get("num_truncated"),
            "num_skipped_target_too_long": tokenized.get("num_skipped_target_too_long"),
            "num_skipped": tokenized.get("num_skipped"),
            "length_tokens": {f"p{q}": float(np.percentile(lengths, q)) for q in (50, 90, 95, 99)} | {"max": int(lengths.max())},
        }
    return stats


def _print_stats(stats: dict[str, Any]) -> None:
    print(f"{stats['prepared_dir']}  (source {stats['source']}, manifest {str(stats['manifest_hash'])[:12]})")
    print(f"  samples: {stats['num_samples']}  {stats['protocol']}  multi-turn {stats['multi_turn']}  with reference {stats['with_reference']}  with judgment {stats['with_judgment']}")
    print(f"  augmentation: swapped {stats['swapped']}  reference dropped {stats['reference_dropped']}")
    print(f"  rows read {stats['rows_read']}  written {stats['rows_written']}  skipped {stats['rows_skipped']}  {stats['skipped'] or ''}")
    print(f"  schemas: {stats['schemas']}")
    for who, entry in stats["labels"].items():
        parts = [f"{entry['count']} labels"]
        if entry["winner"]:
            parts.append("winner " + " ".join(f"{k}={v}" for k, v in entry["winner"].items()))
        if entry["scores"]:
            parts.append("scores " + " ".join(f"{k}:{v}" for k, v in entry["scores"].items()))
        print(f"  label {who}: " + ", ".join(parts))
    if "tokenized" in stats:
        t = stats["tokenized"]
        lengths = " ".join(f"{k}={v:g}" for k, v in t["length_tokens"].items())
        print(f"  tokenized: {t['num_rows']} rows (max_seq_len {t['max_seq_len']}), truncated {t['num_truncated']}, skipped {t['num_skipped']} (target too long {t['num_skipped_target_too_long']})")
        print(f"  token lengths: {lengths}")


def run(args: argparse.Namespace) -> int:
    if args.action == "stats":
        if args.prepared_dir is None:
            raise ValueError("usage: judgetrain prep stats DIR")
        stats = describe(args.prepared_dir)
        if args.json:
            print(json.dumps(stats, indent=2))
        else:
            _print_stats(stats)
        return 0
    if args.prepared_dir is not None:
        raise ValueError(f"unexpected argument {args.prepared_dir!r}; did you mean `judgetrain prep stats {args.prepared_dir}`?")
    manifest = prepare(args)
    skipped = ", ".join(f"{reason} {info['count']}" for reason, info in manifest.skipped.items()) or "none"
    print(
        f"wrote {manifest.rows_written} samples to {args.out} ({manifest.rows_read} rows read, skipped: {skipped}; "
        f"schemas {manifest.schemas})"
    )
    if manifest.tokenized is not None:
        t = manifest.tokenized
        print(f"tokenized {t.get('num_tokenized')} samples into {Path(args.out) / TOKENIZED_DIR} (truncated {t.get('num_truncated')}, skipped {t.get('num_skipped')})")
    return 0
