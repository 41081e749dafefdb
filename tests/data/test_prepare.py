"""prepare_dataset, the one writer of prepared dirs: the typed manifest it writes (the same shape from
`judgetrain prep` and the quickstart), old manifests read into that shape, and a killed or failed write
that leaves the old dir or the new one."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from judgetrain.cli import main
from judgetrain.data.prepare import prepare_dataset
from judgetrain.data.prepared import MANIFEST_VERSION, Augmentation, Manifest, read_samples
from judgetrain.types import Answer, JudgeSample, Label

FIXTURES = Path(__file__).resolve().parents[1] / "assets" / "fixtures"
REPO_ROOT = Path(__file__).resolve().parents[2]


def pair(index: int, reference: str | None = None) -> JudgeSample:
    return JudgeSample(id=f"p{index}", source="test", question=f"Question {index}?", answers=(Answer(f"first {index}"), Answer(f"second {index}")),
                       reference=reference, labels={"gpt4": Label(winner="A")})


FREE_FORM = ("details", "skipped", "schemas", "notes", "reader_options", "tokenized")
"""Manifest fields whose keys are data (skip reasons, schema names, the producer's own details)."""


def shape(value, name: str = ""):
    """The nested key structure of a manifest's JSON (values, and the keys of free-form maps, left out)."""
    if isinstance(value, dict) and name not in FREE_FORM:
        return {key: shape(item, key) for key, item in value.items()}
    if isinstance(value, list):
        return "list"
    return type(value).__name__ if name in FREE_FORM else None


def test_samples_are_written_with_a_typed_manifest_that_reads_back(tmp_path):
    out = tmp_path / "prepared"
    manifest = prepare_dataset([pair(i) for i in range(6)], out, source="test", input="six pairs", swap_aug=1.0, seed=5,
                               samples_per_shard=4, details={"why": "a test"})
    assert Manifest.read(out) == manifest and manifest.manifest_version == MANIFEST_VERSION
    assert (manifest.source, manifest.input, manifest.seed, manifest.details) == ("test", "six pairs", 5, {"why": "a test"})
    assert (manifest.rows_read, manifest.samples_built, manifest.rows_written, manifest.rows_skipped) == (6, 6, 6, 0)
    assert manifest.settings.augmentation == Augmentation(swap_probability=1.0, num_swapped=6)
    assert [shard.num_samples for shard in manifest.samples.shards] == [4, 2]
    shard = manifest.samples.shards[0]
    assert shard.sha256 == hashlib.sha256((out / shard.file).read_bytes()).hexdigest()
    assert [s.answers[0].text for s in read_samples(out)] == [f"second {i}" for i in range(6)]
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["rows_skipped"] == 0 and on_disk["settings"]["augmentation"]["num_swapped"] == 6


def test_the_reference_draw_and_format_check_and_bad_arguments(tmp_path):
    samples = [pair(i, reference="the reference") for i in range(20)]
    manifest = prepare_dataset(samples, tmp_path / "ref", p_include_reference=0.5, seed=1)
    dropped = sum(s.reference_dropped for s in read_samples(tmp_path / "ref"))
    assert manifest.settings.augmentation.num_reference_dropped == dropped and 0 < dropped < 20
    with pytest.raises(ValueError, match="pair_symmetric already writes every pair in both orders"):
        prepare_dataset(samples, tmp_path / "x", pair_symmetric=True, swap_aug=0.5)
    with pytest.raises(ValueError, match=r"swap_aug \(--swap-aug\) must be a probability"):
        prepare_dataset(samples, tmp_path / "x", swap_aug=1.5)
    with pytest.raises(ValueError, match="split and reader_options are for a reader"):
        prepare_dataset(samples, tmp_path / "x", split="train")
    with pytest.raises(ValueError, match="needs an input"):
        prepare_dataset("judgelm", tmp_path / "x")
    single = JudgeSample(id="g", source="test", question="Q?", answers=(Answer("a"),), labels={"gpt4": Label(scores=(3.0,), scale=(1, 5))})
    with pytest.raises(ValueError, match="cannot be shown with --format mtbench-pair-v2"):
        prepare_dataset([single], tmp_path / "x", format_name="mtbench-pair-v2")
    with pytest.warns(UserWarning, match="on_bad_row='skip' has no effect"):
        prepare_dataset(samples[:1], tmp_path / "warned", on_bad_row="skip")
    assert not (tmp_path / "x").exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not a prepared dir"):
        prepare_dataset(samples, busy)
    assert (busy / "notes.txt").read_text() == "mine"


def test_prep_and_the_quickstart_write_the_same_manifest_shape(tmp_path):
    from judgetrain.quickstart import TINY, build_data

    prep_out = tmp_path / "prep"
    assert main(["prep", "--source", "judgelm", "--input", str(FIXTURES / "judgelm_100k_sample.jsonl"), "--out", str(prep_out)]) == 0
    train_dir, train_samples, _ = build_data(tmp_path / "quickstart", TINY, tokenizer=None, seed=0)
    from_prep, from_quickstart = (json.loads((d / "manifest.json").read_text()) for d in (prep_out, train_dir))
    assert shape(from_prep) == shape(from_quickstart)
    quickstart = Manifest.read(train_dir)
    assert quickstart.source == "quickstart" and quickstart.rows_written == len(train_samples) == TINY.num_train
    assert quickstart.details["files"] and quickstart.details["max_seq_len_tokens"] == TINY.max_seq_len_tokens
    assert [Path(f["path"]).name for f in quickstart.input_files] == quickstart.details["files"]
    assert read_samples(train_dir) == train_samples


def _old_manifest(out: Path, manifest: dict) -> None:
    """A version-1 manifest as the untyped writers wrote it (the hash over the dict as it stands)."""
    from judgetrain.data.prepared import manifest_hash

    (out / "samples").mkdir(parents=True)
    (out / "samples" / "shard-00000.jsonl").write_text(json.dumps(pair(0).to_dict()) + "\n")
    manifest = {**manifest, "samples": {"num_samples": 1, "samples_per_shard": 50000,
                                        "shards": [{"file": "samples/shard-00000.jsonl", "num_samples": 1, "sha256": "0" * 64}]}}
    manifest["manifest_hash"] = manifest_hash(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))


def test_manifests_of_the_three_old_shapes_read_into_the_typed_one(tmp_path):
    common = {"judgetrain_version": "0.1.0", "created_utc": "2026-01-01T00:00:00+00:00"}
    _old_manifest(tmp_path / "prep", {**common, "source": "judgelm", "input": "x.jsonl", "split": None, "input_files": [],
                                      "rows_read": 2, "samples_built": 1, "rows_written": 1, "rows_skipped": 1,
                                      "skipped": {"invalid JSON": {"count": 1, "examples": ["x.jsonl:2: bad"]}},
                                      "schemas": {"judgelm": 1}, "notes": {},
                                      "settings": {"format": "judgelm-v1", "on_bad_row": "skip", "reader_options": {},
                                                   "augmentation": {"swap_probability": 0.5, "p_include_reference": None,
                                                                    "pair_symmetric": False, "num_swapped": 1, "num_reference_dropped": 0},
                                                   "tokenizer": None, "max_seq_len": None, "num_proc": 1},
                                      "seed": 3})
    _old_manifest(tmp_path / "quickstart", {**common, "source": "quickstart", "seed": 0,
                                            "settings": {"format": "mtbench-pair-v2", "augmentation": {"num_swapped": 1},
                                                         "files": ["train_llmbar.jsonl"], "max_seq_len_tokens": 360}})
    _old_manifest(tmp_path / "label", {**common, "source": "label", "input": "in.jsonl", "rows_read": 3, "rows_written": 1,
                                       "settings": {"format": "judgelm-v1", "teacher": "teacher:t", "both_orders": False},
                                       "label_summary": {"num_labelled": 1}})
    prep, quickstart, label = (Manifest.read(tmp_path / name) for name in ("prep", "quickstart", "label"))
    assert prep.rows_skipped == 1 and prep.settings.on_bad_row == "skip" and prep.settings.augmentation.swap_probability == 0.5
    assert prep.details == {} and prep.seed == 3 and prep.samples.shards[0].num_samples == 1
    assert quickstart.settings.format == "mtbench-pair-v2" and quickstart.settings.augmentation.num_swapped == 1
    assert quickstart.details == {"files": ["train_llmbar.jsonl"], "max_seq_len_tokens": 360}
    assert label.settings.format == "judgelm-v1" and label.rows_read == 3
    assert label.details == {"teacher": "teacher:t", "both_orders": False, "label_summary": {"num_labelled": 1}}
    # The hash read is the one recorded (checkpoints name the data by it), not one recomputed in the new shape.
    assert label.manifest_hash == json.loads((tmp_path / "label" / "manifest.json").read_text())["manifest_hash"]
    assert len(read_samples(tmp_path / "label")) == 1


def test_a_bad_manifest_field_names_the_file_and_field(tmp_path):
    from judgetrain.data.prepared import manifest_hash

    out = tmp_path / "p"
    out.mkdir()
    bad = {"source": "x", "samples": {"num_samples": 0, "shards": []}, "settings": ["not", "an", "object"]}
    bad["manifest_hash"] = manifest_hash(bad)
    (out / "manifest.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"manifest\.json: settings: expected a dict, got list"):
        Manifest.read(out)
    newer = {"source": "x", "samples": {"num_samples": 0, "shards": []}, "manifest_version": 99}
    newer["manifest_hash"] = manifest_hash(newer)
    (out / "manifest.json").write_text(json.dumps(newer))
    with pytest.raises(ValueError, match="manifest_version 99 is not one this judgetrain reads"):
        Manifest.read(out)


def test_a_failed_write_leaves_the_old_dir_whole(tmp_path):
    out = tmp_path / "prepared"
    before = prepare_dataset([pair(i) for i in range(3)], out, source="old")

    def fail(staging: Path) -> None:
        assert (staging / "samples" / "shard-00000.jsonl").is_file()  # the new shards are written by now
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        prepare_dataset([pair(i) for i in range(10)], out, source="new", add_files=fail)
    assert Manifest.read(out) == before and len(read_samples(out)) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]  # no staging dir left behind


KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from judgetrain.data.prepare import prepare_dataset
    from judgetrain.types import Answer, JudgeSample, Label

    def die(staging):
        os.kill(os.getpid(), signal.SIGKILL)  # shards written, manifest not yet: the worst moment

    samples = [JudgeSample(id=f"n{i}", source="test", question="Q?", answers=(Answer("a"), Answer("b")),
                           labels={"gpt4": Label(winner="B")}) for i in range(50)]
    prepare_dataset(samples, Path(sys.argv[1]), source="new", add_files=die if sys.argv[2] == "die" else None,
                    keep_files=["cache.sqlite"])
""")


def test_a_killed_write_leaves_the_old_dir_or_the_new_one(tmp_path):
    out = tmp_path / "prepared"
    before = prepare_dataset([pair(i) for i in range(3)], out, source="old")
    (out / "cache.sqlite").write_bytes(b"kept across rewrites")
    script = tmp_path / "writer.py"
    script.write_text(KILLED_WRITER)
    killed = subprocess.run([sys.executable, str(script), str(out), "die"], cwd=REPO_ROOT, capture_output=True)
    assert killed.returncode == -9, killed.stderr.decode()
    assert Manifest.read(out) == before and [s.id for s in read_samples(out)] == ["p0", "p1", "p2"]
    assert (out / "cache.sqlite").read_bytes() == b"kept across rewrites"
    finished = subprocess.run([sys.executable, str(script), str(out), "live"], cwd=REPO_ROOT, capture_output=True)
    assert finished.returncode == 0, finished.stderr.decode()
    after = Manifest.read(out)
    assert after.source == "new" and len(read_samples(out)) == 50
    assert (out / "cache.sqlite").read_bytes() == b"kept across rewrites"  # carried into the new dir
