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
The held-out split is decided per split key (a seeded hash of :func:`split_key`: the sample's
``meta["split_group"]``, else its ``meta["pair_id"]``, else its id), so it does not depend on the order
of the files, a sample is never both trained on and evaluated, and the two orders of a pair (or every
row of one instruction, when a reader records its group) land on the same side.

Pair-symmetric data (``data.pair_symmetric``): every pairwise training sample is used in both answer
orders (:func:`judgetrain.data.augment.both_orders`; a prepared dir made with ``judgetrain prep
--pair-symmetric`` already holds both), as static rows, so a position prior cannot lower the loss.
Mixing weights count pairs, and a pair that loses one order (too long for ``max_seq_len``) is dropped
whole. The two orders of a pair always share an optimizer step: packed, they share a packed row
(:func:`judgetrain.data.packing.pack` with ``pair_column``); unpacked, the rows are laid out in
couples (rows 2k and 2k+1: the two orders of a pair, or two single-answer samples) and
:class:`EpochSeededPairGroupedSampler` keeps each couple adjacent at an even position, with
per_device_batch_size × gradient_accumulation_steps even (checked by the config).

Length balance (``data.length_balance``, :mod:`judgetrain.data.length_balance`): once the token rows
of every dir are known (so a sample left out for not fitting ``max_seq_len`` cannot unbalance the
pool again), the pairs whose target's winner is the longer answer and those whose winner is the
shorter are balanced over the whole training pool: ``resample`` subsamples the larger side, keeping
both orders of a pair together. The counts go into the data summary (``stats["length_balance"]``).
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from judgetrain.data.augment import PAIR_ID_KEY, SWAPPED_TWIN_SUFFIX, both_orders, swap
from judgetrain.data.length_balance import balance_by_length
from judgetrain.data.prepared import TOKENIZED_DIR, Manifest
from judgetrain.train.config import DataConfig
from judgetrain.types import JudgeSample

logger = logging.getLogger(__name__)

MODEL_COLUMNS = ("input_ids", "labels")
SPLIT_GROUP_KEY = "split_group"
"""``meta`` key a reader may set so that every row of one group (e.g. AlpacaEval's instruction id)
lands on the same side of the held-out split."""
PAIR_UNIT_COLUMN = "pair_unit"
"""Column of the pair-symmetric token rows: the same integer for the rows of one pair (used once)."""


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
    pair_symmetric: bool = False
    """Both orders of every pair are in the rows: in one packed row (packed), or as the couple of rows
    2k, 2k+1 (unpacked; :class:`EpochSeededPairGroupedSampler` keeps couples together)."""
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


class EpochSeededPairGroupedSampler(EpochSeededLengthGroupedSampler):
    """:class:`EpochSeededLengthGroupedSampler` over couples of rows: rows 2k and 2k+1 (the two answer
    orders of one pair) are one unit, shuffled and length-grouped by the longer of the two, and always
    yielded one after the other starting at an even position.

    An optimizer step takes per_device_batch_size × gradient_accumulation_steps × world size
    consecutive indices of this order (accelerate deals consecutive batches to the processes), so
    when per_device_batch_size × gradient_accumulation_steps is even every step holds whole couples.
    ``batch_size`` is that per-process step size in rows (as for transformers' LengthGroupedSampler).
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int):
        if batch_size % 2:
            raise ValueError(
                f"pair-symmetric batches need an even number of rows per optimizer step and process, got {batch_size} "
                "(per_device_batch_size × gradient_accumulation_steps); make one of them even"
            )
        super().__init__(lengths, batch_size, seed)

    def __iter__(self):
        import torch
        from transformers.trainer_pt_utils import get_length_grouped_indices

        num_rows = len(self.lengths)
        couple_lengths = [max(self.lengths[i:i + 2]) for i in range(0, num_rows, 2)]
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        couples = get_length_grouped_indices(couple_lengths, self.batch_size // 2, generator=generator)
        if num_rows % 2:
            # The odd last row (a single-answer sample left without a partner) goes last, so no couple
            # after it is shifted to an odd position.
            couples = [c for c in couples if 2 * c + 1 < num_rows] + [num_rows // 2]
        return iter([row for c in couples for row in range(2 * c, min(2 * c + 2, num_rows))])


def split_key(sample: JudgeSample) -> str:
    """What the held-out split of ``sample`` is decided on: ``meta["split_group"]`` (a reader's group,
    e.g. the instruction every row of which must land on one side), else ``meta["pair_id"]`` (the two
    orders of a pair), else the sample id."""
    for key in (SPLIT_GROUP_KEY, PAIR_ID_KEY):
        value = sample.meta.get(key)
        if isinstance(value, str) and value:
            return value
    return sample.id


def is_held_out(sample: JudgeSample | str, fraction: float, seed: int) -> bool:
    """Whether ``sample`` belongs to the held-out split: a seeded hash, uniform in [0, 1), of its
    :func:`split_key` (of the string itself when given an id)."""
    if fraction <= 0:
        return False
    key = sample if isinstance(sample, str) else split_key(sample)
    digest = hashlib.sha256(f"{seed}:held-out:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def pair_units(samples: list[JudgeSample]) -> list[list[JudgeSample]]:
    """``samples`` as units of training: the two orders of each pairwise sample (original first), or a
    single-answer sample alone, in the order the samples come.

    Orders already built (samples with ``meta["pair_id"]``, from ``judgetrain prep --pair-symmetric``)
    are grouped by their pair id; a pairwise sample without one gets its swapped twin now
    (:func:`judgetrain.data.augment.both_orders`). A pair of which only one order is present gets the
    other one rebuilt by :func:`~judgetrain.data.augment.swap`."""
    units: list[list[JudgeSample]] = []
    by_pair: dict[str, list[JudgeSample]] = {}
    for sample in samples:
        pair_id = sample.meta.get(PAIR_ID_KEY)
        if sample.protocol != "pairwise":
            units.append([sample])
        elif pair_id is None:
            units.append(both_orders([sample]))
        elif pair_id in by_pair:
            by_pair[pair_id].append(sample)
        else:
            by_pair[pair_id] = [sample]
            units.append(by_pair[pair_id])
    for unit in units:
        if len(unit) == 1 and unit[0].protocol == "pairwise":
            only = unit[0]
            pair_id = only.meta[PAIR_ID_KEY]
            other = swap(only).replace(id=pair_id if only.id != pair_id else f"{pair_id}{SWAPPED_TWIN_SUFFIX}")
            logger.warning("pair %s has one order only (%s); its other order %s is rebuilt by swapping it", pair_id, only.id, other.id)
            unit.append(other)
        # The original order first, whatever order the dir stored them in.
        unit.sort(key=lambda s: s.id != s.meta.get(PAIR_ID_KEY, s.id))
        if len(unit) > 2:
            raise ValueError(f"pair {unit[0].meta.get(PAIR_ID_KEY)!r} has {len(unit)} samples ({', '.join(s.id for s in unit)}); "
                             "a pair has two orders: remove the duplicates from the prepared dir")
    return units


def mixed_indices(num_samples: int, weight: float, seed: int) -> list[int]:
    """The indices of a dir's samples for one epoch under mixing ``weight``: each index ``floor(weight)``
    times, plus a seeded random ``frac(weight)`` share of them once more."""
    whole, fraction = int(math.floor(weight)), weight - math.floor(weight)
    indices = list(range(num_samples)) * whole
    extra = round(fraction * num_samples)
    if extra:
        indices += sorted(random.Random(seed).sample(range(num_samples), extra))
    return indices


def _manifest_format(manifests: dict[str, Manifest]) -> str | None:
    named = {path: m.settings.format for path, m in manifests.items()}
    distinct = {name for name in named.values() if name}
    if len(distinct) > 1:
        listing = ", ".join(f"{path}: {name}" for path, name in named.items())
        raise ValueError(f"the prepared dirs were prepared for different templates ({listing}); set data.format")
    return distinct.pop() if distinct else None


def _manifest_target_label(manifests: dict[str, Manifest]) -> str | None:
    """The label the prepared dirs' tokenized copies built their targets from (``judgetrain prep
    --target-label``), when they name one; ValueError when they name different ones."""
    named = {path: (m.tokenized or {}).get("target_label") for path, m in manifests.items()}
    distinct = {label for label in named.values() if label}
    if len(distinct) > 1:
        listing = ", ".join(f"{path}: {label}" for path, label in named.items())
        raise ValueError(f"the prepared dirs were tokenized for different target labels ({listing}); set data.target_label")
    return distinct.pop() if distinct else None


def _matching_tokenized(prepared_dir: Path, manifest: Manifest, *, tokenizer_name: str, format_name: str | None,
                        max_seq_len: int, target_label: str | None = None):
    """The dir's tokenized/ copy when it was made with this tokenizer, template, max_seq_len and target
    label; else None."""
    import datasets

    section = manifest.tokenized
    settings = manifest.settings
    if not section:
        return None
    if section.get("target_label") != target_label:
        logger.warning("%s/tokenized built its targets from label %r; re-tokenizing for data.target_label=%r",
                       prepared_dir, section.get("target_label"), target_label)
        return None
    same = (settings.tokenizer == tokenizer_name and section.get("max_seq_len", settings.max_seq_len) == max_seq_len
            and (format_name is None or settings.format == format_name))
    if not same:
        logger.warning("%s/tokenized was made with tokenizer %r, max_seq_len %r, template %r; re-tokenizing for %r, %d, %r",
                       prepared_dir, settings.tokenizer, section.get("max_seq_len"), settings.format,
                       tokenizer_name, max_seq_len, format_name)
        return None
    rows = datasets.load_from_disk(str(prepared_dir / section.get("path", TOKENIZED_DIR)))
    if "id" not in rows.column_names:
        raise ValueError(f"{prepared_dir}/tokenized has no id column, so its rows cannot be matched to samples; re-run `judgetrain prep`")
    return rows


def _token_source(samples: list[JudgeSample], tokenized, format_name: str | None, tokenizer, max_seq_len: int, num_proc: int,
                  where: str, tokenize_missing: bool = False, target_label: str | None = None):
    """Token rows (columns id, input_ids, labels, one per sample id) covering ``samples``: ``tokenized``
    when given, else the samples tokenized now (targets built from ``target_label``, data.target_label).
    ``tokenize_missing``: samples absent from ``tokenized`` (the swapped twins built at load time) are
    tokenized now and added."""
    import datasets

    wanted = list({s.id: s for s in samples}.values())
    if tokenized is not None:
        tokenized = tokenized.select_columns(["id", *MODEL_COLUMNS])
        if not tokenize_missing:
            return tokenized
        have = set(tokenized["id"])
        wanted = [s for s in wanted if s.id not in have]
        if not wanted:
            return tokenized
    if format_name is None:
        raise ValueError(f"{where}: the template to render the samples with is unknown; set data.format")
    from judgetrain.data.tokenize import tokenize_samples

    new, stats = tokenize_samples(wanted, format_name, tokenizer, max_seq_len=max_seq_len, num_proc=num_proc,
                                  target_label=target_label)
    logger.warning("%s: tokenized %d samples (%d skipped, %d truncated)", where, stats["num_tokenized"], stats["num_skipped"],
                   stats["num_truncated"])
    new = new.select_columns(["id", *MODEL_COLUMNS])
    if tokenized is None:
        return new
    return datasets.concatenate_datasets([tokenized, new.cast(tokenized.features)]) if len(new) else tokenized


def _rows_for(samples: list[JudgeSample], tokenized, format_name: str | None, tokenizer, max_seq_len: int, num_proc: int,
              where: str, target_label: str | None = None) -> tuple[Any, dict[str, int]]:
    """Token rows (columns id, input_ids, labels) for ``samples``, in their order (repeats allowed),
    from ``tokenized`` when given; samples with no row (too long to fit) are counted and left out."""
    source = _token_source(samples, tokenized, format_name, tokenizer, max_seq_len, num_proc, where, target_label=target_label)
    return _select_rows(source, [s.id for s in samples])


def _select_rows(source, sample_ids: list[str]) -> tuple[Any, dict[str, int]]:
    import datasets

    position = {sample_id: i for i, sample_id in enumerate(source["id"])}
    indices = [position[i] for i in sample_ids if i in position]
    counts = {"num_rows": len(indices), "num_without_row": len(sample_ids) - len(indices)}
    rows = source.select(indices) if indices else datasets.Dataset.from_dict({c: [] for c in ("id", *MODEL_COLUMNS)})
    return rows.select_columns(["id", *MODEL_COLUMNS]), counts


def _pair_rows(units: list[list[JudgeSample]], tokenized, format_name: str | None, tokenizer, max_seq_len: int,
               num_proc: int, where: str, target_label: str | None = None) -> tuple[Any, list[int], dict[str, int]]:
    """Token rows for ``units`` (each unit's rows adjacent, in unit order) and the size of each unit
    kept. A unit with a sample that has no row (too long to fit) is dropped whole, so no pair is
    trained in one order only."""
    flat = [s for unit in units for s in unit]
    source = _token_source(flat, tokenized, format_name, tokenizer, max_seq_len, num_proc, where, tokenize_missing=True,
                           target_label=target_label)
    have = set(source["id"])
    complete = [unit for unit in units if all(s.id in have for s in unit)]
    rows, _ = _select_rows(source, [s.id for unit in complete for s in unit])
    counts = {"num_rows": len(rows), "num_pairs": sum(1 for u in complete if len(u) == 2),
              "num_without_row": sum(1 for u in units for s in u if s.id not in have),
              "num_pairs_dropped_incomplete": sum(1 for u in units if len(u) == 2 and any(s.id not in have for s in u))}
    return rows, [len(unit) for unit in complete], counts


def _couple_order(unit_sizes: list[int]) -> tuple[list[int], list[int]]:
    """The row order that lays rows out in couples (rows 2k, 2k+1): each two-row unit as it is, the
    single-row units two by two (an odd last one at the end); and the unit number of every row in
    that order."""
    order: list[int] = []
    units: list[int] = []
    waiting: tuple[int, int] | None = None  # (row, unit) of a single waiting for its partner
    start = 0
    for unit, size in enumerate(unit_sizes):
        if size == 2:
            order += [start, start + 1]
            units += [unit, unit]
        elif waiting is None:
            waiting = (start, unit)
        else:
            order += [waiting[0], start]
            units += [waiting[1], unit]
            waiting = None
        start += size
    if waiting is not None:
        order.append(waiting[0])
        units.append(waiting[1])
    return order, units


def target_winner(format_name: str | None, target_label: str | None) -> Callable[[JudgeSample], str | None]:
    """The winner (``A``, ``B``, ``tie`` or None) a sample's training target states: that of the label
    its target is built from (:meth:`judgetrain.formats.base.JudgeFormat.target_label_of` under
    ``format_name``; without a template, ``labels[target_label]``, else the default label order)."""
    from judgetrain.formats import DEFAULT_TARGET_LABELS, get

    template = get(format_name) if format_name else None

    def winner_of(sample: JudgeSample) -> str | None:
        if template is not None:
            label = template.target_label_of(sample, target_label)
        elif target_label is not None:
            label = sample.labels.get(target_label)
        else:
            label = sample.label(*DEFAULT_TARGET_LABELS) or sample.label()
        return label.winner if label is not None else None

    return winner_of


def build_train_data(config: DataConfig, tokenizer, *, tokenizer_name: str, seed: int) -> TrainData:
    """Read, mix, split and tokenize the prepared dirs of ``config`` into :class:`TrainData`."""
    import datasets

    from judgetrain.data.prepared import read_samples

    if not config.datasets:
        raise ValueError("data.datasets is empty; name at least one prepared dir (judgetrain prep --out DIR)")
    online = config.swap_probability > 0 or config.p_include_reference < 1
    if online and config.packing:
        raise ValueError(
            "data.packing needs fixed token rows, but data.swap_probability / data.p_include_reference re-draw the "
            "augmentation every epoch; materialise it at prep time (judgetrain prep --swap-aug P --p-include-reference P) "
            "and set data.swap_probability=0 data.p_include_reference=1, or set data.packing=false"
        )
    if online and config.pair_symmetric:
        raise ValueError(
            "data.pair_symmetric trains on both orders of every pair as fixed rows, but data.swap_probability / "
            "data.p_include_reference re-draw the augmentation every epoch; set data.swap_probability=0 and "
            "data.p_include_reference=1 (drop references at prep time: judgetrain prep --pair-symmetric --p-include-reference P)"
        )
    if config.length_balance == "weight":
        raise ValueError("data.length_balance=weight applies to kind=reward (a per-pair loss); use data.length_balance=resample")
    manifests = {spec.path: Manifest.read(spec.path) for spec in config.datasets}
    format_name = config.format or _manifest_format(manifests)
    target_label = config.target_label or _manifest_target_label(manifests)
    train_samples: list[JudgeSample] = []
    held_out: list[JudgeSample] = []
    train_parts, eval_parts = [], []
    stats: dict[str, Any] = {"datasets": {}, "target_label": target_label}
    pair_symmetric = config.pair_symmetric
    unit_sizes: list[int] = []  # pair-symmetric: the rows of each training unit, in row order over all dirs
    eval_unit_sizes: list[int] = []
    pool_samples: list[JudgeSample] = []  # the sample of every training row, in row order over all dirs
    for index, spec in enumerate(config.datasets):
        samples = read_samples(spec.path)
        if not samples:
            raise ValueError(f"{spec.path}: the prepared dir holds no samples")
        kept = [s for s in samples if not is_held_out(s, config.held_out_fraction, seed)]
        out = [s for s in samples if is_held_out(s, config.held_out_fraction, seed)]
        if pair_symmetric:
            # Mixing weights count pairs, so a pair is always used in both orders or not at all.
            units = pair_units(kept)
            chosen_units = [units[i] for i in mixed_indices(len(units), spec.weight, seed + index)]
            chosen = [s for unit in chosen_units for s in unit]
        else:
            chosen = [kept[i] for i in mixed_indices(len(kept), spec.weight, seed + index)]
        entry = {"num_samples": len(samples), "num_held_out": len(out), "weight": spec.weight, "num_train_per_epoch": len(chosen),
                 "manifest_hash": manifests[spec.path].manifest_hash}
        if pair_symmetric:
            # The judge evaluation judges both orders itself: it gets each held-out pair once.
            held_out.extend(s for s in out if s.meta.get(PAIR_ID_KEY, s.id) == s.id)
        else:
            held_out.extend(out)
        if online:
            train_samples.extend(chosen)
        else:
            tokenized = _matching_tokenized(Path(spec.path), manifests[spec.path], tokenizer_name=tokenizer_name,
                                            format_name=format_name, max_seq_len=config.max_seq_len,
                                            target_label=target_label)
            if pair_symmetric:
                rows, sizes, counts = _pair_rows(chosen_units, tokenized, format_name, tokenizer, config.max_seq_len,
                                                 config.num_proc, spec.path, target_label=target_label)
                unit_sizes += sizes
            else:
                rows, counts = _rows_for(chosen, tokenized, format_name, tokenizer, config.max_seq_len, config.num_proc, spec.path,
                                         target_label=target_label)
            train_parts.append(rows)
            by_id = {s.id: s for s in chosen}
            pool_samples.extend(by_id[sample_id] for sample_id in rows["id"])
            entry.update(counts)
            if out and pair_symmetric:
                eval_rows, sizes, _ = _pair_rows(pair_units(out), tokenized, format_name, tokenizer, config.max_seq_len,
                                                 config.num_proc, spec.path, target_label=target_label)
                eval_parts.append(eval_rows)
                eval_unit_sizes += sizes
            elif out:
                eval_rows, _ = _rows_for(out, tokenized, format_name, tokenizer, config.max_seq_len, config.num_proc, spec.path,
                                         target_label=target_label)
                eval_parts.append(eval_rows)
        stats["datasets"][spec.path] = entry
    manifest_hashes = {path: m.manifest_hash for path, m in manifests.items()}

    if online:
        from judgetrain.data.tokenize import OnlineJudgeDataset

        if format_name is None:
            raise ValueError("online augmentation renders samples each epoch, so it needs data.format (the judge template)")
        train_dataset = OnlineJudgeDataset(
            train_samples, format_name, tokenizer, max_seq_len=config.max_seq_len, swap_probability=config.swap_probability,
            p_include_reference=config.p_include_reference, seed=seed, target_label=target_label,
        )
        stats["num_skipped_online"] = len(train_dataset.skipped)
        # Balanced on the samples that fit: the online swap never changes a pair's side.
        balance = balance_by_length(train_dataset.samples, target_winner(format_name, target_label),
                                    mode=config.length_balance, seed=seed)
        train_dataset.samples = [train_dataset.samples[i] for i in balance.row_indices]
        stats["length_balance"] = balance.stats
        eval_rows = None
        if held_out:
            eval_rows, _ = _rows_for(held_out, None, format_name, tokenizer, config.max_seq_len, config.num_proc, "held-out",
                                     target_label=target_label)
        data = rows_to_train_data(None, tokenizer, packing=False, max_seq_len=config.max_seq_len, eval_rows=eval_rows)
        data.train_dataset, data.online = train_dataset, True
    else:
        train_rows = datasets.concatenate_datasets(train_parts)
        balance = balance_by_length(pool_samples, target_winner(format_name, target_label), mode=config.length_balance,
                                    seed=seed, unit_sizes=unit_sizes if pair_symmetric else None)
        train_rows = balance.apply_to_rows(train_rows)
        stats["length_balance"] = balance.stats
        if pair_symmetric:
            unit_sizes = balance.unit_sizes
        if len(train_rows) == 0:
            raise ValueError(f"no training rows are left (every sample was held out or does not fit data.max_seq_len="
                             f"{config.max_seq_len}); lower data.held_out_fraction or raise data.max_seq_len")
        eval_rows = datasets.concatenate_datasets(eval_parts) if eval_parts else None
        if pair_symmetric:
            train_rows = _with_pair_units(train_rows, unit_sizes)
            eval_rows = _with_pair_units(eval_rows, eval_unit_sizes) if eval_rows is not None else None
        data = rows_to_train_data(train_rows, tokenizer, packing=config.packing, max_seq_len=config.max_seq_len, eval_rows=eval_rows,
                                  pair_symmetric=pair_symmetric)
    if len(data.train_dataset) == 0:
        raise ValueError(f"no training rows are left (every sample was held out or does not fit data.max_seq_len="
                         f"{config.max_seq_len}); lower data.held_out_fraction or raise data.max_seq_len")
    data.format_name = format_name
    data.held_out_samples = held_out
    data.manifest_hashes = manifest_hashes
    data.stats = {**stats, **data.stats}
    return data


def _with_pair_units(rows, unit_sizes: list[int]):
    """``rows`` (each unit's rows adjacent, ``unit_sizes`` giving their counts) laid out in couples
    (:func:`_couple_order`), with the :data:`PAIR_UNIT_COLUMN` that packing keeps together."""
    assert sum(unit_sizes) == len(rows), f"{sum(unit_sizes)} rows in units but {len(rows)} token rows"
    order, units = _couple_order(unit_sizes)
    return rows.select(order).add_column(PAIR_UNIT_COLUMN, units)


def rows_to_train_data(train_rows, tokenizer, *, packing: bool, max_seq_len: int, eval_rows=None,
                       pair_symmetric: bool = False) -> TrainData:
    """:class:`TrainData` from token rows (``input_ids`` + ``labels`` with -100 on unsupervised tokens):
    packed with :class:`PackedCollator`, or padded by ``DataCollatorForSeq2Seq`` for length-grouped batches.

    ``pair_symmetric``: the rows carry :data:`PAIR_UNIT_COLUMN` and are laid out in couples; packing
    keeps each pair in one packed row (whose capacity then grows to the longest pair), and unpacked
    rows keep their couple order for :class:`EpochSeededPairGroupedSampler`."""
    from transformers import DataCollatorForSeq2Seq

    from judgetrain.data.packing import PackedCollator, pack, packing_efficiency

    stats: dict[str, Any] = {}
    if train_rows is not None:
        stats["num_train_samples"] = len(train_rows)
        stats["num_train_tokens"] = int(sum(len(ids) for ids in train_rows["input_ids"]))
    pair_column = PAIR_UNIT_COLUMN if pair_symmetric else None

    def without_units(rows):
        return rows.remove_columns(PAIR_UNIT_COLUMN) if rows is not None and PAIR_UNIT_COLUMN in rows.column_names else rows

    if packing:
        train_dataset = pack(train_rows, max_seq_len=max_seq_len, pair_column=pair_column)
        eval_dataset = (pack(eval_rows, max_seq_len=max_seq_len, pair_column=pair_column)
                        if eval_rows is not None and len(eval_rows) else None)
        stats["num_packed_rows"] = len(train_dataset)
        # A pair longer than max_seq_len gets a longer row; efficiency is measured against the real capacity.
        capacity = max(max_seq_len, max(train_dataset["length"]))
        stats["packing_efficiency"] = packing_efficiency(train_dataset, capacity)
        if capacity > max_seq_len:
            stats["packed_row_capacity_tokens"] = capacity
        # position_ids restart per sample and the batch carries the sample boundaries, so attention stays inside samples.
        collator = PackedCollator()
    else:
        train_dataset = without_units(train_rows)
        eval_dataset = without_units(eval_rows) if eval_rows is not None and len(eval_rows) else None
        collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, padding=True)
    if pair_symmetric:
        stats["pair_symmetric"] = True
    return TrainData(train_dataset=train_dataset, data_collator=collator, eval_dataset=eval_dataset, packed=packing,
                     pair_symmetric=pair_symmetric, stats=stats)


__all__ = ["EpochSeededLengthGroupedSampler", "EpochSeededPairGroupedSampler", "TrainData", "build_train_data",
           "rows_to_train_data", "is_held_out", "mixed_indices", "pair_units", "split_key", "target_winner"]
