"""The prepared-dir format: the contract between preparing data and training on it.

A prepared dir is::

    OUT/manifest.json              the typed :class:`Manifest`: inputs and their sha256, rows read / written /
                                   skipped, settings, seed, the shards, and its own ``manifest_hash``
    OUT/samples/shard-00000.jsonl  canonical JudgeSample rows (JudgeSample.to_dict), one per line
    OUT/tokenized/                 optional: datasets.save_to_disk of input_ids + labels

:func:`judgetrain.data.prepare.prepare_dataset` writes whole prepared dirs; this module holds the pieces
(shard writing and reading, the manifest and its hash). Manifests written before the typed manifest
(``manifest_version`` 1: the shapes ``judgetrain prep``, ``judgetrain label`` and the quickstart wrote)
are read into the same :class:`Manifest`; their keys outside the common shape land in ``details``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from judgetrain.atomic import make_staging_dir, replace_dir, write_text_atomic
from judgetrain.data.rows import file_sha256, read_jsonl
from judgetrain.types import JudgeSample

MANIFEST_FILE = "manifest.json"
SAMPLES_DIR = "samples"
TOKENIZED_DIR = "tokenized"
DEFAULT_SAMPLES_PER_SHARD = 50_000
MANIFEST_VERSION = 2
"""1: the untyped manifests (no ``manifest_version`` key); 2: :class:`Manifest`."""


# --- the manifest ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shard:
    """One samples shard: its path inside the prepared dir, its sample count and its sha256."""

    file: str
    num_samples: int
    sha256: str


@dataclass(frozen=True)
class SamplesSection:
    """The samples of a prepared dir: how many, how many per shard at most, and each shard."""

    num_samples: int
    samples_per_shard: int
    shards: tuple[Shard, ...]


@dataclass(frozen=True)
class Augmentation:
    """The build-time augmentation and what it did to the written samples."""

    swap_probability: float = 0.0
    """Probability that a pairwise sample's answers were swapped (``--swap-aug``)."""
    p_include_reference: float | None = None
    """Probability that a sample with a reference kept it; None: every reference kept."""
    pair_symmetric: bool = False
    """Every pairwise sample written in both orders (``--pair-symmetric``)."""
    reference_twins: bool = False
    """Every sample with a reference written with and without it (``--reference-twins``: twin ``ID~noref``)."""
    num_swapped: int = 0
    num_reference_dropped: int = 0
    num_pairs: int | None = None
    """Pair-symmetric: the pairs written in both orders; None otherwise."""


@dataclass(frozen=True)
class Settings:
    """The settings the samples were prepared with."""

    format: str | None = None
    """The judge template every sample was checked against (and tokenized with); None: not checked."""
    on_bad_row: str = "error"
    reader_options: dict[str, Any] = field(default_factory=dict)
    augmentation: Augmentation = field(default_factory=Augmentation)
    tokenizer: str | None = None
    """The tokenizer name ``tokenized/`` was made with; None: not tokenized."""
    max_seq_len: int | None = None
    """The token budget of ``tokenized/``; None: not tokenized."""
    num_proc: int = 1


@dataclass(frozen=True)
class Manifest:
    """``OUT/manifest.json`` of a prepared dir: one shape whoever wrote it (``judgetrain prep``,
    ``judgetrain label``, the quickstart)."""

    source: str
    """The reader name (``judgelm``, ``pandalm`` …), or the producer of samples built elsewhere (``label``, ``quickstart``)."""
    samples: SamplesSection
    settings: Settings = field(default_factory=Settings)
    seed: int = 0
    input: str | None = None
    """What was read: a path or hub id (None when the samples were handed over directly)."""
    split: str | None = None
    input_files: tuple[dict[str, Any], ...] = ()
    """sha256 and size of every local file read, the fingerprint of every hub split read."""
    rows_read: int = 0
    samples_built: int = 0
    rows_written: int = 0
    skipped: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Skipped rows by reason: ``{"count": n, "examples": ["file:line: message", …]}``."""
    schemas: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)
    tokenized: dict[str, Any] | None = None
    """The stats of ``tokenized/`` (:func:`judgetrain.data.tokenize.tokenize_samples`) plus its ``path``; None: not tokenized."""
    details: dict[str, Any] = field(default_factory=dict)
    """What the producer records beyond the common fields (``judgetrain label``: the teacher and its summary)."""
    judgetrain_version: str = ""
    created_utc: str = ""
    manifest_version: int = MANIFEST_VERSION
    manifest_hash: str | None = None
    """sha256 of the content (:func:`manifest_hash`); set by :meth:`write` and checked by :meth:`read`."""

    @property
    def rows_skipped(self) -> int:
        return sum(int(info.get("count", 0)) for info in self.skipped.values())

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to ``manifest.json`` (with ``rows_skipped`` spelled out for readers)."""
        out = dataclasses.asdict(self)
        out["rows_skipped"] = self.rows_skipped
        if out["manifest_hash"] is None:
            del out["manifest_hash"]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "manifest") -> Manifest:
        """A manifest from its JSON object; an older (version 1) shape is mapped onto this one.
        A field of the wrong type is a ValueError naming ``where`` and the field."""
        data = dict(data)
        version = data.pop("manifest_version", 1)
        if version not in (1, MANIFEST_VERSION):
            raise ValueError(f"{where}: manifest_version {version!r} is not one this judgetrain reads (1 or {MANIFEST_VERSION}); upgrade judgetrain")
        data.pop("rows_skipped", None)  # derived from skipped
        known = {f.name for f in dataclasses.fields(cls)}
        details = dict(_typed(data.pop("details", {}), dict, where, "details"))
        settings_data = dict(_typed(data.pop("settings", None) or {}, dict, where, "settings"))
        setting_names = {f.name for f in dataclasses.fields(Settings)}
        # Version 1 manifests kept their producer's own settings (label's teacher, the quickstart's files)
        # among the common ones, and label kept its summary at the top level.
        details.update({k: settings_data.pop(k) for k in list(settings_data) if k not in setting_names})
        details.update({k: data.pop(k) for k in list(data) if k not in known})
        augmentation_data = dict(_typed(settings_data.pop("augmentation", None) or {}, dict, where, "settings.augmentation"))
        augmentation_names = {f.name for f in dataclasses.fields(Augmentation)}
        unknown = sorted(set(augmentation_data) - augmentation_names)
        if unknown:
            raise ValueError(f"{where}: settings.augmentation has unknown fields {unknown}")
        samples_data = _typed(data.pop("samples", None), dict, where, "samples")
        try:
            shards = tuple(Shard(file=s["file"], num_samples=int(s["num_samples"]), sha256=s["sha256"])
                           for s in _typed(samples_data.get("shards"), list, where, "samples.shards"))
            samples = SamplesSection(num_samples=int(samples_data["num_samples"]),
                                     samples_per_shard=int(samples_data.get("samples_per_shard", DEFAULT_SAMPLES_PER_SHARD)),
                                     shards=shards)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{where}: samples: a shard or count is missing or not a number ({err!r})") from None
        if "source" not in data:
            raise ValueError(f"{where}: missing required field 'source'")
        data["input_files"] = tuple(_typed(data.get("input_files", []), list, where, "input_files"))
        for name in ("skipped", "schemas", "notes"):
            _typed(data.get(name, {}), dict, where, name)
        return cls(samples=samples, settings=Settings(**settings_data, augmentation=Augmentation(**augmentation_data)),
                   details=details, manifest_version=MANIFEST_VERSION, **data)

    def write(self, out_dir: str | os.PathLike) -> Manifest:
        """Write ``out_dir/manifest.json`` atomically with its hash; returns the manifest as written."""
        written = dataclasses.replace(self, manifest_hash=None)
        written = dataclasses.replace(written, manifest_hash=manifest_hash(written.to_dict()))
        write_text_atomic(Path(out_dir) / MANIFEST_FILE, json.dumps(written.to_dict(), indent=2, ensure_ascii=False) + "\n")
        return written

    @classmethod
    def read(cls, prepared_dir: str | os.PathLike) -> Manifest:
        """The manifest of a prepared dir; a manifest whose content does not match its hash is an error."""
        path = Path(prepared_dir) / MANIFEST_FILE
        if not path.is_file():
            raise ValueError(f"{path}: missing; {prepared_dir} is not a prepared dir (run `judgetrain prep`)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
        if data.get("manifest_hash") != manifest_hash(data):
            raise ValueError(f"{path}: manifest_hash does not match its content (edited by hand?); re-run `judgetrain prep`")
        return cls.from_dict(data, where=str(path))


def _typed(value: Any, expected: type, where: str, name: str) -> Any:
    if not isinstance(value, expected):
        raise ValueError(f"{where}: {name}: expected a {expected.__name__}, got {type(value).__name__} {value!r:.80}")
    return value


def manifest_hash(manifest: Mapping[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON, leaving out the hash itself and the creation time, so
    the same data prepared with the same settings has the same hash."""
    content = {k: v for k, v in manifest.items() if k not in ("manifest_hash", "created_utc")}
    return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()


# --- sample shards -----------------------------------------------------------------------------


def write_samples(
    samples: Iterable[JudgeSample],
    out_dir: str | os.PathLike,
    *,
    samples_per_shard: int = DEFAULT_SAMPLES_PER_SHARD,
) -> SamplesSection:
    """Write samples as JSONL shards ``out_dir/samples/shard-00000.jsonl`` …; returns the manifest's
    ``samples`` section.

    The shards are written into a temporary directory that then replaces ``out_dir/samples``, so an
    older run's shards never mix with these. Sample ids must be unique. The manifest is not written:
    :func:`judgetrain.data.prepare.prepare_dataset` writes both (or :meth:`Manifest.write`).
    """
    if samples_per_shard < 1:
        raise ValueError(f"samples_per_shard must be at least 1, got {samples_per_shard}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    staging = make_staging_dir(out, f".{SAMPLES_DIR}.tmp-")
    shards: list[Shard] = []
    seen_ids: set[str] = set()
    handle = None
    shard_name = ""
    count_in_shard = 0
    try:

        def close_shard() -> None:
            nonlocal handle
            if handle is not None:
                handle.close()
                shards.append(Shard(f"{SAMPLES_DIR}/{shard_name}", count_in_shard, file_sha256(staging / shard_name)))
                handle = None

        for sample in samples:
            if sample.id in seen_ids:
                raise ValueError(f"sample id {sample.id!r} appears twice; ids must be unique within a prepared dir")
            seen_ids.add(sample.id)
            if handle is None or count_in_shard >= samples_per_shard:
                close_shard()
                shard_name = f"shard-{len(shards):05d}.jsonl"
                handle = (staging / shard_name).open("w", encoding="utf-8")
                count_in_shard = 0
            handle.write(json.dumps(sample.to_dict(), ensure_ascii=False) + "\n")
            count_in_shard += 1
        close_shard()
        replace_dir(staging, out / SAMPLES_DIR)
    except BaseException:
        if handle is not None:
            handle.close()
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return SamplesSection(num_samples=len(seen_ids), samples_per_shard=samples_per_shard, shards=tuple(shards))


def read_sample_file(path: str | os.PathLike) -> list[JudgeSample]:
    """The canonical samples of one JSONL file; a bad line names the file, the line and the field."""
    samples: list[JudgeSample] = []
    for line_number, row in read_jsonl(path):
        try:
            samples.append(JudgeSample.from_dict(row))
        except ValueError as err:
            raise ValueError(f"{path}:{line_number}: {err}") from None
    return samples


def load_samples(path: str | os.PathLike) -> list[JudgeSample]:
    """Canonical samples from a prepared dir (``judgetrain prep`` output) or a JSONL file of samples."""
    root = Path(path)
    if root.is_dir():
        return read_samples(root)
    if root.is_file():
        return read_sample_file(root)
    raise ValueError(f"{root}: no such file or directory; give a prepared dir or a samples .jsonl file")


def read_samples(prepared_dir: str | os.PathLike) -> list[JudgeSample]:
    """The samples of a prepared dir, in shard order. When there is a manifest, each shard's sample
    count is checked against it."""
    root = Path(prepared_dir)
    shard_dir = root / SAMPLES_DIR
    if not shard_dir.is_dir():
        raise ValueError(f"{root}: not a prepared dir (no {SAMPLES_DIR}/); run `judgetrain prep` first")
    expected: dict[str, int] = {}
    if (root / MANIFEST_FILE).is_file():
        expected = {shard.file: shard.num_samples for shard in Manifest.read(root).samples.shards}
    shard_files = sorted(shard_dir.glob("shard-*.jsonl"))
    samples: list[JudgeSample] = []
    for shard in shard_files:
        shard_samples = read_sample_file(shard)
        samples.extend(shard_samples)
        count = len(shard_samples)
        key = f"{SAMPLES_DIR}/{shard.name}"
        if expected and expected.get(key) != count:
            raise ValueError(f"{shard}: holds {count} samples, the manifest says {expected.get(key)}; re-run `judgetrain prep`")
    if expected and len(expected) != len(shard_files):
        raise ValueError(f"{shard_dir}: shard files do not match the manifest's list; re-run `judgetrain prep`")
    return samples


__all__ = [
    "DEFAULT_SAMPLES_PER_SHARD",
    "MANIFEST_FILE",
    "MANIFEST_VERSION",
    "SAMPLES_DIR",
    "TOKENIZED_DIR",
    "Augmentation",
    "Manifest",
    "SamplesSection",
    "Settings",
    "Shard",
    "load_samples",
    "manifest_hash",
    "read_sample_file",
    "read_samples",
    "write_samples",
]
