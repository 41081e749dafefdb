"""Preparing a dataset: samples (or a reader's raw rows) → augment → a prepared dir (+ ``tokenized/``).

:func:`prepare_dataset` is the one writer of prepared dirs: ``judgetrain prep``, ``judgetrain label``
and the quickstart all call it, so every prepared dir has the same :class:`~judgetrain.data.prepared.Manifest`.
Everything is written into a staging directory beside ``out_dir`` that replaces it only once the
manifest is written, so ``out_dir`` is always a complete prepared dir: the old one or the new one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from judgetrain.atomic import make_staging_dir, replace_dir
from judgetrain.data.prepared import MANIFEST_FILE, TOKENIZED_DIR, DEFAULT_SAMPLES_PER_SHARD, Augmentation, Manifest, Settings, write_samples
from judgetrain.data.rows import ReadReport, check_on_bad_row, input_fingerprints
from judgetrain.types import JudgeSample

logger = logging.getLogger(__name__)

MAX_SKIPPED_IDS_IN_MANIFEST = 20


def prepare_dataset(
    samples_or_reader: Iterable[JudgeSample] | str,
    out_dir: str | os.PathLike,
    *,
    input: str | None = None,
    split: str | None = None,
    reader_options: Mapping[str, Any] | None = None,
    source: str | None = None,
    report: ReadReport | None = None,
    format_name: str | None = None,
    target_label: str | None = None,
    swap_aug: float = 0.0,
    pair_symmetric: bool = False,
    reference_twins: bool = False,
    p_include_reference: float | None = None,
    seed: int = 0,
    tokenizer: str | os.PathLike | None = None,
    max_seq_len: int = 2048,
    num_proc: int = 1,
    on_bad_row: str = "error",
    samples_per_shard: int = DEFAULT_SAMPLES_PER_SHARD,
    details: Mapping[str, Any] | None = None,
    add_files: Callable[[Path], None] | None = None,
    keep_files: Sequence[str] = (),
) -> Manifest:
    """Write a prepared dir at ``out_dir`` and return its manifest.

    ``samples_or_reader``: canonical samples, or the name of a reader in the ``judgetrain.readers``
    registry, which reads ``input`` (a file, a directory or a hub id; ``split`` and ``reader_options``
    go to the reader, ``on_bad_row`` says whether a bad row stops the read or is skipped and counted).
    ``source`` names where samples handed over directly came from (default ``"samples"``), and
    ``report`` the read that built them (default: one row per sample); for a reader both come from the read.

    Augmentation, in this order: ``swap_aug`` (probability of swapping each pair's answers) and
    ``p_include_reference`` (probability a reference is kept; None keeps all), drawn with ``seed``;
    then ``reference_twins`` follows every sample with a reference by its reference-dropped twin
    (``ID~noref``, :func:`judgetrain.data.augment.with_reference_twins`; it excludes
    ``p_include_reference``); then ``pair_symmetric`` writes every pair in both orders (it excludes
    ``swap_aug``), the twins included. With
    ``format_name`` every sample is checked to render in that template. With ``tokenizer`` (a name
    :func:`judgetrain.models.load_tokenizer` loads) the samples are tokenized into ``tokenized/`` with
    ``max_seq_len`` tokens each over ``num_proc`` processes; the template is ``format_name`` or the one
    every sample's judgment names, and the targets are built from each sample's ``target_label`` label
    (None: the template's order, :attr:`~judgetrain.formats.base.JudgeFormat.target_labels`); a sample
    without that label is a ValueError naming it, raised before anything is written.

    ``details`` is recorded as the manifest's ``details``; ``add_files(staging_dir)`` writes the caller's
    own files into the new dir before it replaces the old one; ``keep_files`` names files of the old
    dir carried into the new one (hard-linked, so a kill at any point leaves them in one of the two).
    ``out_dir`` must not exist, be empty, or be a prepared dir (or hold only ``keep_files``).
    """
    _check_probability(swap_aug, "swap_aug")
    _check_probability(p_include_reference, "p_include_reference")
    check_on_bad_row(on_bad_row)
    if pair_symmetric and swap_aug > 0:
        raise ValueError(
            f"pair_symmetric already writes every pair in both orders, so swap_aug {swap_aug} would swap some of "
            "them again and break the symmetry; drop swap_aug (--swap-aug) or pair_symmetric (--pair-symmetric)"
        )
    if reference_twins and p_include_reference is not None:
        raise ValueError(
            f"reference_twins already writes every sample with a reference both with and without it, so p_include_reference "
            f"{p_include_reference} would drop some references at random on top; drop one of --reference-twins / --p-include-reference"
        )
    if max_seq_len < 1 or num_proc < 1:
        raise ValueError(f"max_seq_len (--max-seq-len) and num_proc (--num-proc) must be at least 1, got {max_seq_len} and {num_proc}")
    out = Path(out_dir)
    _check_out_dir(out, keep_files)
    tokenizer = None if tokenizer is None else os.fspath(tokenizer)  # recorded by name: training compares it

    options = dict(reader_options or {})
    if isinstance(samples_or_reader, str):
        if input is None:
            raise ValueError(f"reader {samples_or_reader!r} needs an input: a JSONL / JSON / parquet file, a directory of them, or a hub id")
        if report is not None:
            raise ValueError("report is for samples handed over directly; a reader's read makes its own")
        source = source or samples_or_reader
        report = ReadReport(source=source)
        from judgetrain import plugins

        reader = plugins.reader(samples_or_reader)
        samples = list(_progress(reader.read(input, split=split, report=report, on_bad_row=on_bad_row, **options), f"reading {source}"))
        if not samples:
            raise ValueError(f"no samples were read from {input} ({report.rows_read} rows read, {report.rows_skipped} skipped: {report.skipped or 'none'})")
    else:
        if split is not None or options:
            raise ValueError("split and reader_options are for a reader; these samples are already built")
        if on_bad_row != "error":
            warnings.warn(f"on_bad_row={on_bad_row!r} has no effect: these samples are already built", stacklevel=2)
        samples = list(samples_or_reader)
        source = source or "samples"
        if report is None:
            report = ReadReport(source=source, rows_read=len(samples), samples_built=len(samples))
    fmt = _resolve_format(samples, format_name, need_one=tokenizer is not None)
    _check_target_label(samples, target_label, tokenizing=tokenizer is not None)

    if swap_aug > 0 or p_include_reference is not None:
        from judgetrain.data.augment import materialise

        samples = materialise(samples, swap_probability=swap_aug,
                              p_include_reference=1.0 if p_include_reference is None else p_include_reference, seed=seed)
    if reference_twins:
        from judgetrain.data.augment import with_reference_twins

        samples = with_reference_twins(samples)
    num_pairs = None
    if pair_symmetric:
        from judgetrain.data.augment import both_orders

        # After the reference draw, so both twins of a pair show the reference or both do not.
        samples = both_orders(samples)
        num_pairs = sum(1 for s in samples if s.meta.get("pair_id") == s.id)
        if not num_pairs:
            logger.warning("pair_symmetric has no effect: none of the %d samples is pairwise", len(samples))
    augmentation = Augmentation(swap_probability=swap_aug, p_include_reference=p_include_reference, pair_symmetric=pair_symmetric,
                                reference_twins=reference_twins,
                                num_swapped=sum(s.swapped for s in samples),
                                num_reference_dropped=sum(s.reference_dropped for s in samples), num_pairs=num_pairs)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = make_staging_dir(out.parent, f".{out.name}.tmp-")
    try:
        samples_section = write_samples(samples, staging, samples_per_shard=samples_per_shard)
        report.rows_written = samples_section.num_samples
        counts = report.to_dict()
        tokenized = _tokenize(samples, fmt, tokenizer, max_seq_len, num_proc, staging, target_label) if tokenizer else None
        manifest = Manifest(
            judgetrain_version=_version(),
            created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            source=source,
            input=None if input is None else str(input),
            split=split,
            input_files=tuple(input_fingerprints(report)),
            rows_read=counts["rows_read"],
            samples_built=counts["samples_built"],
            rows_written=counts["rows_written"],
            skipped=counts["skipped"],
            schemas=counts["schemas"],
            notes=counts["notes"],
            settings=Settings(format=fmt.name if fmt is not None else None, on_bad_row=on_bad_row, reader_options=_json_safe(options),
                              augmentation=augmentation, tokenizer=tokenizer, max_seq_len=max_seq_len if tokenizer else None,
                              num_proc=num_proc),
            seed=seed,
            samples=samples_section,
            tokenized=tokenized,
            details=_json_safe(dict(details or {})),
        )
        if add_files is not None:
            add_files(staging)
        for name in keep_files:
            _carry_over(out / name, staging / name)
        written = manifest.write(staging)
        replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return written


def _check_out_dir(out: Path, keep_files: Sequence[str]) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise ValueError(f"{out} exists and is a file; give a new or empty directory, or a prepared dir to replace")
    entries = {p.name for p in out.iterdir()}
    if entries and MANIFEST_FILE not in entries and not entries <= set(keep_files):
        raise ValueError(f"{out} exists and is not a prepared dir (no {MANIFEST_FILE}); choose a new or empty directory")


def _carry_over(old: Path, new: Path) -> None:
    """Put ``old`` (a file of the dir being replaced) at ``new`` in the staging dir, leaving ``old`` in place."""
    if not old.is_file():
        return
    try:
        os.link(old, new)  # same filesystem (staging is beside the target): no copy, and the old dir keeps it
    except OSError:
        shutil.copy2(old, new)


def _check_probability(value: float | None, name: str) -> None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} (--{name.replace('_', '-')}) must be a probability in [0, 1], got {value}")


def _resolve_format(samples: list[JudgeSample], format_name: str | None, need_one: bool):
    """The judge format to check and tokenize with: ``format_name``, or the one every sample's judgment names."""
    from judgetrain import formats
    from judgetrain.data.augment import format_for

    if format_name is None:
        if not need_one:
            return None
        named = {s.meta.get("judgment_format") for s in samples}
        if len(named) != 1 or None in named:
            raise ValueError(
                "tokenizing needs a template (--format NAME): the samples do not all name the template their judgment was "
                f"written in (found {sorted(str(n) for n in named)}); run `judgetrain formats` to list templates"
            )
        format_name = named.pop()
    fmt = formats.get(format_name)
    unfit: list[str] = []
    for sample in samples:
        try:
            format_for(sample, fmt).check_sample(sample)
        except ValueError as err:
            unfit.append(str(err))
    if unfit:
        raise ValueError(f"{len(unfit)} of {len(samples)} samples cannot be shown with --format {fmt.name}; the first: {unfit[0]}")
    return fmt


def _check_target_label(samples: list[JudgeSample], target_label: str | None, tokenizing: bool) -> None:
    """Every sample has the ``target_label`` label; a warning when nothing is tokenized, since then no
    target is built here (training chooses its label with data.target_label)."""
    if target_label is None:
        return
    missing = [s for s in samples if target_label not in s.labels]
    if missing:
        first = missing[0]
        raise ValueError(
            f"target label {target_label!r} (--target-label): {len(missing)} of {len(samples)} samples lack it; the first, "
            f"sample {first.id!r}, has the labels: {', '.join(sorted(first.labels)) or 'none'}"
        )
    if not tokenizing:
        logger.warning("target label %r has no effect without a tokenizer: no target is built at prep time; "
                       "set data.target_label when training", target_label)


def _tokenize(samples: list[JudgeSample], fmt, tokenizer_name: str, max_seq_len: int, num_proc: int, staging: Path,
              target_label: str | None) -> dict[str, Any]:
    from judgetrain.data.tokenize import tokenize_samples
    from judgetrain.models import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_name)
    dataset, stats = tokenize_samples(samples, fmt, tokenizer, max_seq_len=max_seq_len, num_proc=num_proc, target_label=target_label)
    if len(dataset) == 0:
        raise ValueError(f"no sample fits --max-seq-len {max_seq_len} ({stats.get('num_skipped', 0)} skipped); raise it")
    dataset.save_to_disk(str(staging / TOKENIZED_DIR))
    section = {k: v for k, v in stats.items() if k != "skipped"}
    section["path"] = TOKENIZED_DIR
    section["skipped_examples"] = list(stats.get("skipped", []))[:MAX_SKIPPED_IDS_IN_MANIFEST]
    return _json_safe(section)


def _progress(iterable, desc: str):
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, unit=" samples", file=sys.stderr, disable=None)


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _version() -> str:
    import judgetrain

    return judgetrain.__version__


__all__ = ["prepare_dataset"]
