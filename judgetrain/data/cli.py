"""``judgetrain prep``: read a judge dataset into canonical samples, augment and tokenize it.

    judgetrain prep --source NAME --input PATH_OR_HUB_ID [--split S] --out DIR [--format NAME]
                    [--swap-aug P | --pair-symmetric] [--p-include-reference P] [--seed N] [--on-bad-row error|skip]
                    [--tokenizer PATH --max-seq-len N] [--num-proc N]
    judgetrain prep stats DIR

The reader of ``--source`` is found by name in the ``judgetrain.readers`` registry (:mod:`judgetrain.plugins`);
the library never imports a reader package itself. Everything is written into a staging directory that
replaces ``--out`` only once the manifest is written, so ``--out`` is always a complete prepared dir
(``manifest.json``, ``samples/shard-*.jsonl`` and, with ``--tokenizer``, ``tokenized/``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from judgetrain import plugins
from judgetrain.data.io import (
    MANIFEST_FILE,
    ON_BAD_ROW_CHOICES,
    TOKENIZED_DIR,
    ReadReport,
    input_fingerprints,
    make_staging_dir,
    read_manifest,
    read_samples,
    replace_dir,
    write_manifest,
    write_samples,
)
from judgetrain.types import JudgeSample

logger = logging.getLogger(__name__)

MAX_SKIPPED_IDS_IN_MANIFEST = 20


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=["stats"], help="`stats DIR`: describe a prepared dir instead of preparing one")
    parser.add_argument("prepared_dir", nargs="?", help="the prepared dir `stats` describes")
    parser.add_argument("--source", help="the dataset's reader (a judgetrain.readers entry point): judgelm, autoj, pandalm, prometheus, llmbar, judgebench, mtbench, jsonl, pairs-from-grades")
    parser.add_argument("--input", help="a JSONL / JSON / parquet file, a directory of them, or a Hugging Face dataset id")
    parser.add_argument("--split", help="the hub split to read (or, for a local directory, the files named after it)")
    parser.add_argument("--out", help="the prepared dir to write (replaced if it exists)")
    parser.add_argument("--format", dest="format_name", help="the judge template the data will be rendered with (checked now; needed with --tokenizer unless every sample names one)")
    parser.add_argument("--swap-aug", type=float, default=0.0, help="probability of swapping the two answers of each pairwise sample, materialised at build time (JudgeLM: 0.5)")
    parser.add_argument("--pair-symmetric", action="store_true",
                        help="write every pairwise sample in both answer orders (each followed by its swapped twin, id ID~swapped, "
                             "both with meta pair_id=ID), so a position prior cannot lower the training loss; excludes --swap-aug")
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


def load_reader(source: str):
    """The reader module of ``source``, found in the ``judgetrain.readers`` registry (:mod:`judgetrain.plugins`)."""
    return plugins.reader(source)


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


def _check_probability(value: float | None, flag: str) -> None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise ValueError(f"{flag} must be a probability in [0, 1], got {value}")


def _resolve_format(samples: list[JudgeSample], format_name: str | None, need_one: bool):
    """The judge format to check and tokenize with: --format, or the one every sample's judgment names."""
    from judgetrain import formats

    if format_name is None:
        if not need_one:
            return None
        named = {s.meta.get("judgment_format") for s in samples}
        if len(named) != 1 or None in named:
            raise ValueError(
                "--tokenizer needs --format NAME: the samples do not all name the template their judgment was written in "
                f"(found {sorted(str(n) for n in named)}); run `judgetrain formats` to list templates"
            )
        format_name = named.pop()
    fmt = formats.get(format_name)
    from judgetrain.data.augment import format_for

    unfit: list[str] = []
    for sample in samples:
        try:
            format_for(sample, fmt).check_sample(sample)
        except ValueError as err:
            unfit.append(str(err))
    if unfit:
        raise ValueError(f"{len(unfit)} of {len(samples)} samples cannot be shown with --format {fmt.name}; the first: {unfit[0]}")
    return fmt


def _progress(iterable, desc: str):
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, unit=" samples", file=sys.stderr, disable=None)


def prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Read, augment, write and (optionally) tokenize; returns the manifest written."""
    for flag in ("source", "input", "out"):
        if getattr(args, flag) is None:
            raise ValueError(f"--{flag} is required (or use `judgetrain prep stats DIR`)")
    _check_probability(args.swap_aug, "--swap-aug")
    pair_symmetric = bool(getattr(args, "pair_symmetric", False))
    if pair_symmetric and args.swap_aug > 0:
        raise ValueError(
            f"--pair-symmetric already writes every pair in both orders, so --swap-aug {args.swap_aug} would swap some of "
            "them again and break the symmetry; drop --swap-aug (or --pair-symmetric)"
        )
    _check_probability(args.p_include_reference, "--p-include-reference")
    if args.max_seq_len < 1 or args.num_proc < 1:
        raise ValueError("--max-seq-len and --num-proc must be at least 1")
    reader = load_reader(args.source)
    options = reader_options(args)
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST_FILE).is_file())):
        raise ValueError(f"--out {out} exists and is not a prepared dir; choose a new or empty directory")

    report = ReadReport(source=args.source)
    samples = list(_progress(reader.read(args.input, split=args.split, report=report, on_bad_row=args.on_bad_row, **options), f"reading {args.source}"))
    if not samples:
        raise ValueError(f"no samples were read from {args.input} ({report.rows_read} rows read, {report.rows_skipped} skipped: {report.skipped or 'none'})")
    fmt = _resolve_format(samples, args.format_name, need_one=args.tokenizer is not None)

    augmentation: dict[str, Any] = {"swap_probability": args.swap_aug, "p_include_reference": args.p_include_reference,
                                    "pair_symmetric": pair_symmetric}
    if args.swap_aug > 0 or args.p_include_reference is not None:
        from judgetrain.data.augment import materialise

        samples = materialise(
            samples,
            swap_probability=args.swap_aug,
            p_include_reference=1.0 if args.p_include_reference is None else args.p_include_reference,
            seed=args.seed,
        )
    if pair_symmetric:
        from judgetrain.data.augment import both_orders

        # After the reference draw, so both twins of a pair show the reference or both do not.
        samples = both_orders(samples)
        augmentation["num_pairs"] = sum(1 for s in samples if s.meta.get("pair_id") == s.id)
        if not augmentation["num_pairs"]:
            logger.warning("--pair-symmetric has no effect: none of the %d samples is pairwise", len(samples))
    augmentation["num_swapped"] = sum(s.swapped for s in samples)
    augmentation["num_reference_dropped"] = sum(s.reference_dropped for s in samples)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = make_staging_dir(out.parent, f".{out.name}.tmp-")
    try:
        samples_section = write_samples(samples, staging)
        report.rows_written = samples_section["num_samples"]
        manifest: dict[str, Any] = {
            "judgetrain_version": _version(),
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source": args.source,
            "input": args.input,
            "split": args.split,
            "input_files": input_fingerprints(report),
            **{k: v for k, v in report.to_dict().items() if k != "source"},
            "settings": {
                "format": fmt.name if fmt is not None else None,
                "on_bad_row": args.on_bad_row,
                "reader_options": _json_safe(options),
                "augmentation": augmentation,
                "tokenizer": args.tokenizer,
                "max_seq_len": args.max_seq_len if args.tokenizer else None,
                "num_proc": args.num_proc,
            },
            "seed": args.seed,
            "samples": samples_section,
        }
        if args.tokenizer:
            manifest["tokenized"] = _tokenize(samples, fmt, args, staging)
        written = write_manifest(staging, manifest)
        replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return written


def _tokenize(samples: list[JudgeSample], fmt, args: argparse.Namespace, staging: Path) -> dict[str, Any]:
    from judgetrain.data.tokenize import tokenize_samples
    from judgetrain.models import load_tokenizer

    tokenizer = load_tokenizer(args.tokenizer)
    dataset, stats = tokenize_samples(samples, fmt, tokenizer, max_seq_len=args.max_seq_len, num_proc=args.num_proc)
    if len(dataset) == 0:
        raise ValueError(f"no sample fits --max-seq-len {args.max_seq_len} ({stats.get('num_skipped', 0)} skipped); raise it")
    dataset.save_to_disk(str(staging / TOKENIZED_DIR))
    section = {k: v for k, v in stats.items() if k != "skipped"}
    section["path"] = TOKENIZED_DIR
    section["skipped_examples"] = list(stats.get("skipped", []))[:MAX_SKIPPED_IDS_IN_MANIFEST]
    return _json_safe(section)


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _version() -> str:
    import judgetrain

    return judgetrain.__version__


# --- stats -------------------------------------------------------------------------------------


def describe(prepared_dir: str | os.PathLike) -> dict[str, Any]:
    """Counts, label distribution, token-length percentiles, truncated and skipped counts of a prepared dir."""
    root = Path(prepared_dir)
    manifest = read_manifest(root)
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
        "source": manifest.get("source"),
        "manifest_hash": manifest.get("manifest_hash"),
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
        "rows_read": manifest.get("rows_read"),
        "rows_written": manifest.get("rows_written"),
        "rows_skipped": manifest.get("rows_skipped"),
        "skipped": {reason: info["count"] for reason, info in manifest.get("skipped", {}).items()},
        "schemas": manifest.get("schemas", {}),
    }
    tokenized = manifest.get("tokenized")
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
    skipped = ", ".join(f"{reason} {info['count']}" for reason, info in manifest["skipped"].items()) or "none"
    print(
        f"wrote {manifest['rows_written']} samples to {args.out} ({manifest['rows_read']} rows read, skipped: {skipped}; "
        f"schemas {manifest['schemas']})"
    )
    if "tokenized" in manifest:
        t = manifest["tokenized"]
        print(f"tokenized {t.get('num_tokenized')} samples into {Path(args.out) / TOKENIZED_DIR} (truncated {t.get('num_truncated')}, skipped {t.get('num_skipped')})")
    return 0
