"""The training data of a run: prepared dirs mixed by weight, a held-out split, tokenized rows or an
online-augmented dataset, packed or length-grouped, with the collator that batches them.

Which form the rows take:

- static (no online augmentation): token rows. A prepared dir's ``tokenized/`` copy is used when it
  was made with this run's tokenizer, template and ``max_seq_len`` (its manifest says so); otherwise
  the samples are tokenized now (:func:`judgetrain.data.tokenize.tokenize_samples`). With
  ``data.packing`` the rows are packed (:func:`judgetrain.data.packing.pack`) and batched by
  :class:`~judgetrain.data.packing.PackedCollator` (padding-free, position_ids restarting per
  sample); without it they are padded by ``DataCollatorForSeq2Seq`` and the Trainer groups them by length.
- online (``data.swap_probability > 0`` or ``data.p_include_reference < 1``): an
  :class:`~judgetrain.data.tokenize.OnlineJudgeDataset` that re-draws the augmentation each epoch
  (a callback calls its ``set_epoch``). Packing needs fixed rows, so it is refused here; materialise
  the augmentation at prep time (``judgetrain prep --swap-aug 0.5 --p-include-reference 0.5``) to pack.

Mixing weights multiply each dir's samples per epoch (1.0 each once, 0.5 a seeded half, 2.0 twice).
The held-out split is decided per sample id (a seeded hash), so it does not depend on the order of
the files and a sample is never both trained on and evaluated.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judgetrain.train.config import DataConfig
from judgetrain.types import JudgeSample

logger = logging.getLogger(__name__)

MODEL_COLUMNS = ("input_ids", "labels")


@dataclass
class TrainData:
    """Everything the Trainer needs about data, plus what is recorded beside the checkpoints."""

    train_dataset: Any
    """datasets.Dataset of token rows (packed or not), or an OnlineJudgeDataset."""
    data_collator: Any
    """Batches rows: PackedCollator (packing) or DataCollatorForSeq2Seq (padding with label -100)."""
    eval_dataset: Any = None
    """Held-out token rows for the evaluation loss, in the same layout as the training rows; or None."""
    packed: bool = False
    online: bool = False
    format_name: str | None = None
    held_out_samples: list[JudgeSample] = field(default_factory=list)
    manifest_hashes: dict[str, str] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)


class EpochSeededLengthGroupedSampler:
    """transformers' length-grouped order, shuffled from (seed, epoch) instead of the global RNG.

    ``LengthGroupedSampler`` draws its shuffle from torch's global generator when its iterator is made.
    A run resumed in epoch e > 0 makes that iterator before the Trainer restores the checkpoint's RNG
    state, so it would train the rest of epoch e in another order than the uninterrupted run. Here
    the order depends only on the seed and the epoch, which the Trainer passes on through
    ``set_epoch`` (accelerate's data loader calls it on the sampler it wraps), so a resumed run skips
    exactly the batches it trained and then sees the same ones, on every process alike.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        import torch
        from transformers.trainer_pt_utils import get_length_grouped_indices

        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


def is_held_out(sample_id: str, fraction: float, seed: int) -> bool:
    """Whether ``sample_id`` belongs to the held-out split (a seeded hash of the id, uniform in [0, 1))."""
    if fraction <= 0:
        return False
    digest = hashlib.sha256(f"{seed}:held-out:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def mixed_indices(num_samples: int, weight: float, seed: int) -> list[int]:
    """The indices of a dir's samples for one epoch under mixing ``weight``: each index ``floor(weight)``
    times, plus a seeded random ``frac(weight)`` share of them once more."""
    whole, fraction = int(math.floor(weight)), weight - math.floor(weight)
    indices = list(range(num_samples)) * whole
    extra = round(fraction * num_samples)
    if extra:
        indices += sorted(random.Random(seed).sample(range(num_samples), extra))
    return indices


def _manifest_format(manifests: dict[str, dict[str, Any]]) -> str | None:
    named = {path: (m.get("settings") or {}).get("format") for path, m in manifests.items()}
    distinct = {name for name in named.values() if name}
    if len(distinct) > 1:
        listing = ", ".join(f"{path}: {name}" for path, name in named.items())
        raise ValueError(f"the prepared dirs were prepared for different templates ({listing}); set data.format")
    return distinct.pop() if distinct else None


def _matching_tokenized(prepared_dir: Path, manifest: dict[str, Any], *, tokenizer_name: str, format_name: str | None,
                        max_seq_len: int):
    """The dir's tokenized/ copy when it was made with this tokenizer, template and max_seq_len; else None."""
    import datasets

    section = manifest.get("tokenized")
    settings = manifest.get("settings") or {}
    if not section:
        return None
    same = (settings.get("tokenizer") == tokenizer_name and section.get("max_seq_len", settings.get("max_seq_len")) == max_seq_len
            and (format_name is None or settings.get("format") == format_name))
    if not same:
        logger.warning("%s/tokenized was made with tokenizer %r, max_seq_len %r, template %r; re-tokenizing for %r, %d, %r",
                       prepared_dir, settings.get("tokenizer"), section.get("max_seq_len"), settings.get("format"),
                       tokenizer_name, max_seq_len, format_name)
        return None
    rows = datasets.load_from_disk(str(prepared_dir / section.get("path", "tokenized")))
    if "id" not in rows.column_names:
        raise ValueError(f"{prepared_dir}/tokenized has no id column, so its rows cannot be matched to samples; re-run `judgetrain prep`")
    return rows


def _rows_for(samples: list[JudgeSample], tokenized, format_name: str | None, tokenizer, max_seq_len: int, num_proc: int,
              where: str) -> tuple[Any, dict[str, int]]:
    """Token rows (columns id, input_ids, labels) for ``samples``, in their order (repeats allowed),
    from ``tokenized`` when given; samples with no row (too long to fit) are counted and left out."""
    import datasets

    if tokenized is None:
        if format_name is None:
            raise ValueError(f"{where}: the template to render the samples with is unknown; set data.format")
        from judgetrain.data.tokenize import tokenize_samples

        unique = list({s.id: s for s in samples}.values())
        tokenized, stats = tokenize_samples(unique, format_name, tokenizer, max_seq_len=max_seq_len, num_proc=num_proc)
        logger.warning("%s: tokenized %d samples (%d skipped, %d truncated)", where, stats["num_tokenized"], stats["num_skipped"],
                       stats["num_truncated"])
    position = {sample_id: i for i, sample_id in enumerate(tokenized["id"])}
    indices = [position[s.id] for s in samples if s.id in position]
    counts = {"num_rows": len(indices), "num_without_row": len(samples) - len(indices)}
    rows = tokenized.select(indices) if indices else datasets.Dataset.from_dict({c: [] for c in ("id", *MODEL_COLUMNS)})
    return rows.select_columns(["id", *MODEL_COLUMNS]), counts


def build_train_data(config: DataConfig, tokenizer, *, tokenizer_name: str, seed: int) -> TrainData:
    """Read, mix, split and tokenize the prepared dirs of ``config`` into :class:`TrainData`."""
    import datasets

    from judgetrain.data.io import read_manifest, read_samples

    if not config.datasets:
        raise ValueError("data.datasets is empty; name at least one prepared dir (judgetrain prep --out DIR)")
    online = config.swap_probability > 0 or config.p_include_reference < 1
    if online and config.packing:
        raise ValueError(
            "data.packing needs fixed token rows, but data.swap_probability / data.p_include_reference re-draw the "
            "augmentation every epoch; materialise it at prep time (judgetrain prep --swap-aug P --p-include-reference P) "
            "and set data.swap_probability=0 data.p_include_reference=1, or set data.packing=false"
        )
    manifests = {spec.path: read_manifest(spec.path) for spec in config.datasets}
    format_name = config.format or _manifest_format(manifests)
    train_samples: list[JudgeSample] = []
    held_out: list[JudgeSample] = []
    train_parts, eval_parts = [], []
    stats: dict[str, Any] = {"datasets": {}}
    for index, spec in enumerate(config.datasets):
        samples = read_samples(spec.path)
        if not samples:
            raise ValueError(f"{spec.path}: the prepared dir holds no samples")
        kept = [s for s in samples if not is_held_out(s.id, config.held_out_fraction, seed)]
        out = [s for s in samples if is_held_out(s.id, config.held_out_fraction, seed)]
        chosen = [kept[i] for i in mixed_indices(len(kept), spec.weight, seed + index)]
        entry = {"num_samples": len(samples), "num_held_out": len(out), "weight": spec.weight, "num_train_per_epoch": len(chosen),
                 "manifest_hash": manifests[spec.path].get("manifest_hash")}
        held_out.extend(out)
        if online:
            train_samples.extend(chosen)
        else:
            tokenized = _matching_tokenized(Path(spec.path), manifests[spec.path], tokenizer_name=tokenizer_name,
                                            format_name=format_name, max_seq_len=config.max_seq_len)
            rows, counts = _rows_for(chosen, tokenized, format_name, tokenizer, config.max_seq_len, config.num_proc, spec.path)
            train_parts.append(rows)
            entry.update(counts)
            if out:
                eval_rows, _ = _rows_for(out, tokenized, format_name, tokenizer, config.max_seq_len, config.num_proc, spec.path)
                eval_parts.append(eval_rows)
        stats["datasets"][spec.path] = entry
    manifest_hashes = {path: m.get("manifest_hash") for path, m in manifests.items()}

    if online:
        from judgetrain.data.tokenize import OnlineJudgeDataset

        if format_name is None:
            raise ValueError("online augmentation renders samples each epoch, so it needs data.format (the judge template)")
        train_dataset = OnlineJudgeDataset(
            train_samples, format_name, tokenizer, max_seq_len=config.max_seq_len, swap_probability=config.swap_probability,
            p_include_reference=config.p_include_reference, seed=seed,
        )
        stats["num_skipped_online"] = len(train_dataset.skipped)
        eval_rows = None
        if held_out:
            eval_rows, _ = _rows_for(held_out, None, format_name, tokenizer, config.max_seq_len, config.num_proc, "held-out")
        data = rows_to_train_data(None, tokenizer, packing=False, max_seq_len=config.max_seq_len, eval_rows=eval_rows)
        data.train_dataset, data.online = train_dataset, True
    else:
        train_rows = datasets.concatenate_datasets(train_parts)
        if len(train_rows) == 0:
            raise ValueError(f"no training rows are left (every sample was held out or does not fit data.max_seq_len="
                             f"{config.max_seq_len}); lower data.held_out_fraction or raise data.max_seq_len")
        eval_rows = datasets.concatenate_datasets(eval_parts) if eval_parts else None
        data = rows_to_train_data(train_rows, tokenizer, packing=config.packing, max_seq_len=config.max_seq_len, eval_rows=eval_rows)
    if len(data.train_dataset) == 0:
        raise ValueError(f"no training rows are left (every sample was held out or does not fit data.max_seq_len="
                         f"{config.max_seq_len}); lower data.held_out_fraction or raise data.max_seq_len")
    data.format_name = format_name
    data.held_out_samples = held_out
    data.manifest_hashes = manifest_hashes
    data.stats = {**stats, **data.stats}
    return data


def rows_to_train_data(train_rows, tokenizer, *, packing: bool, max_seq_len: int, eval_rows=None) -> TrainData:
    """:class:`TrainData` from token rows (``input_ids`` + ``labels`` with -100 on unsupervised tokens):
    packed with :class:`PackedCollator`, or padded by ``DataCollatorForSeq2Seq`` for length-grouped batches."""
    from transformers import DataCollatorForSeq2Seq

    from judgetrain.data.packing import PackedCollator, pack, packing_efficiency

    stats: dict[str, Any] = {}
    if train_rows is not None:
        stats["num_train_samples"] = len(train_rows)
        stats["num_train_tokens"] = int(sum(len(ids) for ids in train_rows["input_ids"]))
    if packing:
        train_dataset = pack(train_rows, max_seq_len=max_seq_len)
        eval_dataset = pack(eval_rows, max_seq_len=max_seq_len) if eval_rows is not None and len(eval_rows) else None
        stats["num_packed_rows"] = len(train_dataset)
        stats["packing_efficiency"] = packing_efficiency(train_dataset, max_seq_len)
        # position_ids restart per sample and the batch carries the sample boundaries, so attention stays inside samples.
        collator = PackedCollator()
    else:
        train_dataset, eval_dataset = train_rows, eval_rows if eval_rows is not None and len(eval_rows) else None
        collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, padding=True)
    return TrainData(train_dataset=train_dataset, data_collator=collator, eval_dataset=eval_dataset, packed=packing, stats=stats)


__all__ = ["TrainData", "build_train_data", "rows_to_train_data", "is_held_out", "mixed_indices"]
