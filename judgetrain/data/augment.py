"""Swap and reference augmentation: pure functions over frozen samples, seeded per (seed, sample, epoch).

Nothing here mutates a sample it is given. JudgeLM swaps its records in place, so by the second
epoch about a quarter of its labels point at the wrong answer; here every function returns a new
:class:`~judgetrain.types.JudgeSample` (``sample.replace(...)``) with fresh ``labels`` and ``meta``
dicts, and the online variant (:func:`apply`) is a function of the stored sample, the seed and the
epoch only, so epoch 3 sees the stored sample swapped or not, never swapped three times.

Two augmentations:

- **swap** (:func:`swap`): the two answers change places; every label's winner flips and its scores
  reverse; the answer names inside the judgment texts are exchanged by the template the judgment was
  written in (``meta["judgment_format"]``); ``swapped`` toggles. ``swap(swap(x)) == x``.
- **reference support / drop** (:func:`choose_reference`): with probability ``p_include_reference``
  a sample that has a reference keeps it, otherwise the reference is removed and
  ``reference_dropped=True`` is recorded. The target always matches the prompt variant: a sample
  that keeps its reference is rendered with the with-reference template (:func:`format_for`), whose
  target is ``judgment_with_reference``; a sample without one is rendered with the template without
  reference, whose target is ``judgment``.

Both run at build time (:func:`materialise`, JudgeLM's 0.5 / 0.5 on the stored shards) or online at
load time (:func:`apply` with the current epoch, used by ``tokenize.OnlineJudgeDataset``).

Reference drop has a second, non-random mode (:func:`with_reference_twins`, ``judgetrain prep
--reference-twins``): every sample with a reference is kept as it is and followed by its
reference-dropped twin ``f"{id}~noref"``, so the judge learns both prompt variants of every such
sample. The twin differs only by the missing reference (``reference_dropped=True``) and by its target:
the template without reference trains on ``judgment``, so a sample whose critique was written with the
reference shown (``judgment_with_reference`` only, e.g. GPT-4's reference-guided arena-bench grades)
trains its twin on the verdict built from its label alone, never on a critique that cites a reference
the prompt no longer shows.

Pair-symmetric data (:func:`both_orders`) is not a random draw: every pairwise sample is followed by its
swapped twin, so each pair is seen in both answer orders equally often and a judge that prefers a
position cannot lower its loss by it. Both twins carry ``meta["pair_id"]`` (the original id), which
keeps them on one side of the held-out split and lets packing and batching keep them together.
"""

from __future__ import annotations

import copy
import hashlib
import random
from typing import Iterable

from judgetrain.formats.base import JudgeFormat
from judgetrain.types import JudgeSample, Label, flip_winner


def _format(name_or_format: str | JudgeFormat) -> JudgeFormat:
    if isinstance(name_or_format, JudgeFormat):
        return name_or_format
    from judgetrain import formats

    return formats.get(name_or_format)


def format_for(sample: JudgeSample, base_format: str | JudgeFormat) -> JudgeFormat:
    """The template variant to render ``sample`` with: first the one of the sample's protocol (the
    format's ``protocol_twin``, :meth:`JudgeFormat.for_protocol`: ``judgelm-v1`` renders a single-answer
    sample with ``judgelm-single-v1``), then the with-reference twin when the sample has a reference,
    the twin without reference when it has none (``reference_twin``, :meth:`JudgeFormat.for_reference`).

    ``base_format`` may name any variant. A template without a twin is returned unchanged.
    """
    return _format(base_format).for_protocol(sample.protocol).for_reference(sample.reference is not None)


def sample_rng(seed: int, sample_id: str, epoch: int) -> random.Random:
    """A random stream that depends only on (seed, sample id, epoch).

    Python's ``hash()`` of a string is salted per process, so it would give each DataLoader worker
    and each run a different stream; a blake2b digest is the same everywhere.
    """
    digest = hashlib.blake2b(f"{seed}\x1f{sample_id}\x1f{epoch}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _detached(sample: JudgeSample, **changes) -> JudgeSample:
    """A new sample with ``changes`` and its own ``labels`` and ``meta`` containers, so nothing done to
    the result can reach the sample it came from."""
    changes.setdefault("labels", dict(sample.labels))
    changes.setdefault("meta", copy.deepcopy(sample.meta))
    return sample.replace(**changes)


def _check_probability(value: float, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")


def _swapped_label(label: Label) -> Label:
    scores = tuple(reversed(label.scores)) if label.scores is not None else None
    return Label(winner=flip_winner(label.winner), scores=scores, scale=label.scale)


def swap(sample: JudgeSample) -> JudgeSample:
    """The sample with its two answers exchanged, labels flipped and judgment texts rewritten.

    The judgment texts are rewritten by ``formats.get(sample.meta["judgment_format"]).swap_judgment``
    (the with-reference text by that template's with-reference twin, its ``reference_twin``):
    "Assistant 1" ↔ "Assistant 2", "Response 1" ↔ "Response 2", "[[A]]" ↔ "[[B]]", score order… as
    the family defines. ``swapped`` toggles, so ``swap(swap(x)) == x``.
    """
    if sample.protocol != "pairwise":
        raise ValueError(f"sample {sample.id!r} has {len(sample.answers)} answer; swap needs a pairwise sample (two answers)")
    changes: dict = {
        "answers": (sample.answers[1], sample.answers[0]),
        "labels": {who: _swapped_label(label) for who, label in sample.labels.items()},
        "swapped": not sample.swapped,
    }
    if sample.judgment is not None or sample.judgment_with_reference is not None:
        template = sample.meta.get("judgment_format")
        if not template:
            raise ValueError(
                f"sample {sample.id!r} has judgment text but no meta['judgment_format']: set it to the template the "
                "judgment was written in (e.g. judgelm-v1) so swap can exchange the answer names inside it"
            )
        if sample.judgment is not None:
            changes["judgment"] = _format(template).swap_judgment(sample.judgment)
        if sample.judgment_with_reference is not None:
            changes["judgment_with_reference"] = _format(template).for_reference(True).swap_judgment(sample.judgment_with_reference)
    return _detached(sample, **changes)


def drop_reference(sample: JudgeSample) -> JudgeSample:
    """The sample without its reference, recorded as ``reference_dropped=True``; unchanged when it has none.

    It is then rendered with the template without reference, whose target is ``judgment``.
    """
    if sample.reference is None:
        return sample
    return _detached(sample, reference=None, reference_dropped=True)


def choose_reference(sample: JudgeSample, *, p_include_reference: float, rng: random.Random) -> JudgeSample:
    """Keep the reference with probability ``p_include_reference``, else drop it (:func:`drop_reference`).

    One draw is taken from ``rng`` whatever the outcome, so the streams of later draws do not depend on
    the sample. A variant whose target text is missing is never chosen: a sample with a judgment
    written only without the reference (``judgment`` set, ``judgment_with_reference`` None) always
    drops it, and one with only ``judgment_with_reference`` always keeps it. A sample with neither
    text trains on a target built from its labels, which fits both variants.
    """
    _check_probability(p_include_reference, "p_include_reference")
    keep = rng.random() < p_include_reference
    if sample.reference is None:
        return sample
    has_plain, has_with_reference = sample.judgment is not None, sample.judgment_with_reference is not None
    if has_plain and not has_with_reference:
        keep = False
    elif has_with_reference and not has_plain:
        keep = True
    return sample if keep else drop_reference(sample)


def apply(sample: JudgeSample, *, swap_probability: float, p_include_reference: float, seed: int, epoch: int) -> JudgeSample:
    """The sample as seen in ``epoch``: swapped with probability ``swap_probability`` (pairwise samples
    only), reference kept with probability ``p_include_reference``.

    A function of (stored sample, seed, epoch) only: calling it twice gives equal samples, and
    epochs never compound (epoch 2 is the stored sample swapped or not, not swapped twice).
    """
    _check_probability(swap_probability, "swap_probability")
    rng = sample_rng(seed, sample.id, epoch)
    # Draw for the swap even on single-answer samples, so the reference draw is always the second one.
    do_swap = rng.random() < swap_probability
    out = swap(sample) if do_swap and sample.protocol == "pairwise" else sample
    out = choose_reference(out, p_include_reference=p_include_reference, rng=rng)
    # Even an unaugmented sample comes back as a copy: a consumer editing its labels or meta in place
    # must not reach the stored sample (the way JudgeLM's in-place swap corrupts later epochs).
    return _detached(out) if out is sample else out


def materialise(
    samples: Iterable[JudgeSample], *, swap_probability: float, p_include_reference: float, seed: int
) -> list[JudgeSample]:
    """Build-time augmentation: each sample replaced by its augmented version for epoch 0
    (JudgeLM trains on swap 0.5 / reference 0.5 materialised this way). The inputs are untouched."""
    return [
        apply(s, swap_probability=swap_probability, p_include_reference=p_include_reference, seed=seed, epoch=0)
        for s in samples
    ]


PAIR_ID_KEY = "pair_id"
"""``meta`` key holding the id of the pair a sample is one order of (set by :func:`both_orders`)."""

SWAPPED_TWIN_SUFFIX = "~swapped"
"""Appended to a sample's id to name its swapped twin in :func:`both_orders`."""


def both_orders(samples: Iterable[JudgeSample]) -> list[JudgeSample]:
    """Every pairwise sample followed by its swapped twin (:func:`swap`); single-answer samples once.

    The twin's id is ``f"{id}~swapped"``; both carry ``meta["pair_id"] = id``. Whatever the original
    holds (reference kept or dropped, ``meta["split_group"]``) the twin holds too, so the two orders
    differ only in the answer order. The inputs are untouched. A sample that already carries
    ``meta["pair_id"]`` is one order of a pair built before: doubling it again would train on four
    copies, so it is a ValueError.
    """
    out: list[JudgeSample] = []
    for sample in samples:
        if sample.protocol != "pairwise":
            out.append(sample)
            continue
        if PAIR_ID_KEY in sample.meta:
            raise ValueError(
                f"sample {sample.id!r} already has meta['pair_id']={sample.meta[PAIR_ID_KEY]!r}: it is one order of a pair "
                "built by both_orders (e.g. `judgetrain prep --pair-symmetric`); it already has its twin"
            )
        original = _detached(sample, meta={**copy.deepcopy(sample.meta), PAIR_ID_KEY: sample.id})
        out.append(original)
        # swap() returns a detached sample already; only its id changes.
        out.append(swap(original).replace(id=f"{sample.id}{SWAPPED_TWIN_SUFFIX}"))
    return out


NO_REFERENCE_TWIN_SUFFIX = "~noref"
"""Appended to a sample's id to name its reference-dropped twin in :func:`with_reference_twins`."""

REFERENCE_TWIN_OF_KEY = "reference_twin_of"
"""``meta`` key of a reference-dropped twin holding the id of the sample it was made from."""

SPLIT_GROUP_KEY = "split_group"
"""``meta`` key the held-out split is decided on first (``judgetrain.train.data.split_key``)."""


def with_reference_twins(samples: Iterable[JudgeSample]) -> list[JudgeSample]:
    """Every sample, each one with a reference followed by its reference-dropped twin (reference
    drop, both mode): id ``f"{id}~noref"``, ``reference=None``, ``reference_dropped=True``,
    ``meta["reference_twin_of"] = id``. Samples without a reference come once. The inputs are untouched.

    The twin keeps the source's ``meta["split_group"]``, or gets the source's id as its split group
    when it has none, so a held-out split never puts a sample and its twin on different sides. A
    sample that is itself a twin (``meta["reference_twin_of"]``) or already dropped its reference
    has none left to drop: it comes once.
    """
    out: list[JudgeSample] = []
    for sample in samples:
        out.append(sample)
        if sample.reference is None or REFERENCE_TWIN_OF_KEY in sample.meta:
            continue
        if PAIR_ID_KEY in sample.meta:
            raise ValueError(
                f"sample {sample.id!r} is one order of a pair (meta['pair_id']={sample.meta[PAIR_ID_KEY]!r}); make the "
                "reference twins first and then both orders of each, so every twin is trained in both orders"
            )
        meta = {**copy.deepcopy(sample.meta), REFERENCE_TWIN_OF_KEY: sample.id}
        meta.setdefault(SPLIT_GROUP_KEY, sample.id)
        out.append(_detached(sample, id=f"{sample.id}{NO_REFERENCE_TWIN_SUFFIX}", reference=None, reference_dropped=True,
                             meta=meta))
    return out


__all__ = [
    "NO_REFERENCE_TWIN_SUFFIX",
    "PAIR_ID_KEY",
    "REFERENCE_TWIN_OF_KEY",
    "SWAPPED_TWIN_SUFFIX",
    "apply",
    "both_orders",
    "choose_reference",
    "drop_reference",
    "format_for",
    "materialise",
    "sample_rng",
    "swap",
    "with_reference_twins",
]
