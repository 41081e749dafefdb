"""Pack tokenized samples into rows of at most ``max_seq_len`` tokens, padding-free.

A packed row is the concatenation of whole samples with ``position_ids`` restarting at 0 at each
sample, the layout transformers' ``DataCollatorWithFlattening`` produces. :class:`PackedCollator` also
hands the model the sample boundaries as ``cu_seq_lens_q`` / ``cu_seq_lens_k`` (the flattening
collator's ``return_flash_attn_kwargs``), and transformers passes them down to every attention call:

- flash-attention runs its variable-length kernel over them;
- :data:`PACKED_SDPA` (what training switches an sdpa model to when it packs, see
  :func:`use_packed_sdpa`) runs torch's SDPA once per sample, causal inside the sample. Plain sdpa
  would instead attend over the whole row under a block-diagonal mask, built by transformers
  (``masking_utils.find_packed_sequence_indices``) from the position restarts: the same result, but
  work that grows with the square of the row instead of the samples
  (``python bench/train_throughput.py --packed-attention mask`` measures the difference);
- eager attention uses that block-diagonal mask.

So no token attends to another sample. The mask detection is skipped when a KV cache is passed, so
training must run with ``use_cache=False`` (Trainer sets ``model.config.use_cache = args.use_cache``,
False by default; :class:`PackedCollator` also passes ``use_cache=False`` in every batch).

Labels across a boundary: the loss shifts labels inside the model (position t predicts label t+1),
so the last token of one sample predicts the first label of the next. That first label is always a
prompt token (-100) after tokenization, and :func:`pack` forces it to -100 anyway (as
``DataCollatorWithFlattening``'s ``separator_id`` does), so no sample is ever trained to follow another.

Bin assignment is best-fit decreasing: samples are taken longest first and each goes into the open
row with the least room that still holds it (a new row when none does). It packs tighter than
greedy-in-order; row order is then arbitrary, and the Trainer shuffles rows anyway.

The unpacked alternative is length-grouped batching: transformers'
``TrainingArguments(train_sampling_strategy="group_by_length")`` over the tokenized rows (it reads
their ``length`` column).
"""

from __future__ import annotations

import bisect
from typing import Any

import torch
from transformers import DataCollatorWithFlattening

from judgetrain.data.tokenize import IGNORE_INDEX

PACKED_SDPA = "judgetrain_packed_sdpa"
"""The attention implementation name of :func:`packed_sdpa_attention` in transformers' registries."""


def _best_fit_decreasing(lengths: list[int], max_seq_len: int) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    # Open rows sorted by free room; bisect finds the tightest row that still holds the sample.
    free_rooms: list[tuple[int, int]] = []
    for index in order:
        need = lengths[index]
        at = bisect.bisect_left(free_rooms, (need, -1))
        if at == len(free_rooms):
            bins.append([index])
            room, bin_index = max_seq_len - need, len(bins) - 1
        else:
            room, bin_index = free_rooms.pop(at)
            bins[bin_index].append(index)
            room -= need
        if room > 0:
            bisect.insort(free_rooms, (room, bin_index))
    return bins


def pack(dataset: "datasets.Dataset", *, max_seq_len: int, pair_column: str | None = None) -> "datasets.Dataset":  # noqa: F821
    """Pack the rows of a tokenized dataset (``input_ids``, ``labels``; ``id`` kept when present) into
    rows of at most ``max_seq_len`` tokens with ``input_ids``, ``labels``, ``position_ids`` (restarting
    at 0 at each sample), ``length`` (tokens) and ``sample_ids`` (the packed samples, in row order).

    Every token and label of every sample is kept, in order within its sample; only the first label of
    each sample is set to -100 (see the module docstring). A row longer than ``max_seq_len`` is an error:
    tokenize with the same ``max_seq_len`` first. Tokens move as Arrow / numpy arrays, never as Python
    lists, so packing 100K samples costs seconds and a few bytes per token.

    ``pair_column``: rows that share a value of this column (the two answer orders of one pair, see
    :func:`judgetrain.data.augment.both_orders`) are packed as one unit, adjacent in one packed row, so
    they always land in the same optimizer step. A pair may hold up to ``2 × max_seq_len`` tokens, so
    the row capacity grows to the longest pair when that is longer than ``max_seq_len``: every packed
    row then holds at most ``max(max_seq_len, longest pair)`` tokens (at most twice ``max_seq_len``).
    """
    import datasets
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from datasets.table import InMemoryTable

    if max_seq_len < 1:
        raise ValueError(f"max_seq_len must be a positive number of tokens, got {max_seq_len}")
    for column in ("input_ids", "labels"):
        if column not in dataset.column_names:
            raise ValueError(f"pack needs a tokenized dataset with a {column!r} column; got columns {dataset.column_names}")
    if len(dataset) == 0:
        raise ValueError("pack got an empty dataset: nothing to pack")
    # The arrow view follows the dataset's logical row order (after filter / select / shuffle).
    table = dataset.with_format("arrow")[:]
    input_ids = table.column("input_ids").combine_chunks()
    labels = table.column("labels").combine_chunks()
    sample_ids = table.column("id").combine_chunks() if "id" in table.column_names else pa.array([str(i) for i in range(len(table))])
    lengths = pc.list_value_length(input_ids).to_numpy(zero_copy_only=False).astype(np.int64)
    label_lengths = pc.list_value_length(labels).to_numpy(zero_copy_only=False).astype(np.int64)
    for i in np.flatnonzero((lengths > max_seq_len) | (lengths == 0) | (label_lengths != lengths))[:1]:
        raise ValueError(
            f"row {i} (sample {sample_ids[i].as_py()!r}) has {lengths[i]} tokens and {label_lengths[i]} labels: "
            f"each row needs 1..max_seq_len={max_seq_len} tokens and one label per token; tokenize with the same "
            "max_seq_len before packing"
        )

    if pair_column is None:
        bins = _best_fit_decreasing(lengths.tolist(), max_seq_len)
    else:
        if pair_column not in table.column_names:
            raise ValueError(f"pack: no {pair_column!r} column to keep pairs together; got columns {dataset.column_names}")
        units: dict[Any, list[int]] = {}
        for index, key in enumerate(table.column(pair_column).to_pylist()):
            units.setdefault(key, []).append(index)
        members_of_unit = list(units.values())
        unit_lengths = [int(lengths[members].sum()) for members in members_of_unit]
        # The bins are filled with whole units; members keep their dataset order inside a row.
        unit_bins = _best_fit_decreasing(unit_lengths, max(max_seq_len, max(unit_lengths)))
        bins = [[i for unit in unit_bin for i in members_of_unit[unit]] for unit_bin in unit_bins]
    order = np.fromiter((i for members in bins for i in members), dtype=np.int64, count=len(lengths))
    ordered_lengths = lengths[order]
    sample_starts = np.cumsum(ordered_lengths) - ordered_lengths
    flat_ids = input_ids.take(pa.array(order)).flatten()
    flat_labels = labels.take(pa.array(order)).flatten().to_numpy(zero_copy_only=False).copy()
    # Each sample's first label would be predicted by the previous sample's last token: never train on it.
    flat_labels[sample_starts] = IGNORE_INDEX
    positions = np.arange(int(ordered_lengths.sum()), dtype=np.int64) - np.repeat(sample_starts, ordered_lengths)

    samples_per_row = np.fromiter((len(members) for members in bins), dtype=np.int64, count=len(bins))
    row_sample_offsets = np.concatenate([[0], np.cumsum(samples_per_row)])
    row_lengths = np.add.reduceat(ordered_lengths, row_sample_offsets[:-1])
    row_token_offsets = np.concatenate([[0], np.cumsum(row_lengths)])
    if row_token_offsets[-1] >= 2**31:
        raise ValueError(f"{row_token_offsets[-1]} tokens are too many to pack at once; pack the dataset in shards")

    def rows_of(values, offsets) -> pa.ListArray:
        return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), values)

    packed = pa.table({
        "input_ids": rows_of(flat_ids, row_token_offsets),
        "labels": rows_of(pa.array(flat_labels), row_token_offsets),
        "position_ids": rows_of(pa.array(positions), row_token_offsets),
        "length": pa.array(row_lengths),
        "sample_ids": rows_of(sample_ids.take(pa.array(order)), row_sample_offsets),
    })
    return datasets.Dataset(InMemoryTable(packed))


def packing_efficiency(dataset: "datasets.Dataset", max_seq_len: int) -> float:  # noqa: F821
    """Real tokens over token slots (rows × ``max_seq_len``) of a packed dataset; 1.0 is perfectly full."""
    if len(dataset) == 0:
        return 0.0
    lengths = dataset["length"] if "length" in dataset.column_names else [len(ids) for ids in dataset["input_ids"]]
    return float(sum(lengths)) / (len(dataset) * max_seq_len)


def split_packed_row(row: dict[str, Any]) -> list[dict[str, list[int]]]:
    """The samples of one packed row, cut where ``position_ids`` restart at 0."""
    positions = list(row["position_ids"])
    starts = [i for i, p in enumerate(positions) if p == 0] + [len(positions)]
    if not starts or starts[0] != 0:
        raise ValueError("a packed row must start a sample at position 0")
    return [
        {"input_ids": list(row["input_ids"][a:b]), "labels": list(row["labels"][a:b])}
        for a, b in zip(starts[:-1], starts[1:])
    ]


class PackedCollator(DataCollatorWithFlattening):
    """Batches packed rows with transformers' ``DataCollatorWithFlattening``.

    Each packed row is split back into its samples (:func:`split_packed_row`) and the flattening
    collator concatenates them into one ``[1, total_tokens]`` sequence with ``position_ids`` restarting
    per sample, -100 as the first label of each, and the boundaries as ``cu_seq_lens_q`` /
    ``cu_seq_lens_k`` (with ``max_length_q`` / ``max_length_k``) for the attention. With one packed
    row per device batch, that is exactly the row. ``use_cache=False`` rides along in the batch because
    transformers only reads packed boundaries from ``position_ids`` when no KV cache is built.
    """

    def __init__(self, *args, return_flash_attn_kwargs: bool = True, **kwargs):
        super().__init__(*args, return_flash_attn_kwargs=return_flash_attn_kwargs, **kwargs)

    def __call__(self, features, return_tensors=None, separator_id=None):
        samples = [sample for row in features for sample in split_packed_row(row)]
        batch = super().__call__(samples, return_tensors=return_tensors, separator_id=separator_id)
        batch["use_cache"] = False
        return batch


def packed_sdpa_attention(module, query, key, value, attention_mask, *, cu_seq_lens_q=None, cu_seq_lens_k=None, **kwargs):
    """transformers' sdpa attention, run once per packed sample when the batch carries its boundaries.

    With ``cu_seq_lens_q`` (from :class:`PackedCollator`) each sample's queries attend causally to its
    own keys only, through transformers' own ``sdpa_attention_forward``, and the mask built for the
    whole row is not needed. Any other call (padded batches, generation with a KV cache) is plain sdpa
    with its mask, so a model switched to this implementation behaves as sdpa everywhere else.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    self_attention = query.shape[0] == 1 and query.shape[2] == key.shape[2]
    if cu_seq_lens_q is None or not self_attention:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    bounds = cu_seq_lens_q.tolist()
    if bounds[0] != 0 or bounds[-1] != query.shape[2] or (cu_seq_lens_k is not None and cu_seq_lens_k.tolist() != bounds):
        raise ValueError(
            f"cu_seq_lens_q {bounds} does not cover the {query.shape[2]} tokens of the packed row (or differs from "
            "cu_seq_lens_k); build packed batches with judgetrain.data.packing.PackedCollator"
        )
    lengths = [end - start for start, end in zip(bounds[:-1], bounds[1:])]
    # split (not slicing): its backward is one concatenation, not a zero-filled full-size gradient per sample.
    outputs = [
        sdpa_attention_forward(module, sample_query, sample_key, sample_value, None, **kwargs)[0]
        for sample_query, sample_key, sample_value in zip(query.split(lengths, dim=2), key.split(lengths, dim=2),
                                                          value.split(lengths, dim=2))
    ]
    # sdpa_attention_forward returns [batch, tokens, heads, head_dim]: samples follow each other on dim 1.
    return torch.cat(outputs, dim=1), None


def use_packed_sdpa(model) -> bool:
    """Switch a model that uses sdpa to :data:`PACKED_SDPA` (registered on first use); True if switched.

    Other implementations are left as they are: flash-attention already reads the packed boundaries,
    and eager attention honours the block-diagonal mask. The choice lives in the loaded model only, not
    in its saved ``config.json``, so a trained checkpoint loads back with plain sdpa.
    """
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    if model.config._attn_implementation != "sdpa":
        return False
    AttentionInterface.register(PACKED_SDPA, packed_sdpa_attention)
    # Masks exactly as sdpa builds them, for the calls that fall back to sdpa.
    AttentionMaskInterface.register(PACKED_SDPA, sdpa_mask)
    model.set_attn_implementation(PACKED_SDPA)
    return True


__all__ = ["PACKED_SDPA", "PackedCollator", "pack", "packed_sdpa_attention", "packing_efficiency", "split_packed_row", "use_packed_sdpa"]
