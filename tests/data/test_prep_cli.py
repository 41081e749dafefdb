"""`judgetrain prep` end to end: real files in, a complete prepared dir out (manifest, shards, tokenized)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

from judgetrain.cli import main
from judgetrain.data.prepared import Manifest, read_samples
from judgetrain.models import TINY_TOKENIZER_DIR

FIXTURES = Path(__file__).resolve().parents[1] / "assets" / "fixtures"


def prep(*args: str) -> int:
    return main(["prep", *map(str, args)])


def test_prep_pandalm_writes_manifest_shards_and_stats(shared_data, tmp_path, capsys):
    source = shared_data / "pandalm" / "testset-v1.json"
    out = tmp_path / "pandalm"
    assert prep("--source", "pandalm", "--input", source, "--out", out, "--seed", 7) == 0
    manifest = Manifest.read(out)
    assert list(manifest.input_files) == [
        {"path": str(source.resolve()), "sha256": hashlib.sha256(source.read_bytes()).hexdigest(), "num_bytes": source.stat().st_size}
    ]
    assert (manifest.rows_read, manifest.rows_written, manifest.rows_skipped) == (999, 999, 0)
    assert manifest.schemas == {"pandalm-test": 999} and manifest.seed == 7
    assert manifest.settings.on_bad_row == "error" and manifest.judgetrain_version and manifest.source == "pandalm"
    samples = read_samples(out)
    assert len(samples) == 999 and len({s.id for s in samples}) == 999
    capsys.readouterr()
    assert main(["prep", "stats", str(out), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["num_samples"] == 999
    assert stats["labels"]["human_majority"]["winner"] == {"A": 422, "B": 472, "tie": 105}
    assert stats["manifest_hash"] == manifest.manifest_hash
    assert main(["prep", "stats", str(out)]) == 0
    assert "label human_majority: 999 labels, winner A=422 B=472 tie=105" in capsys.readouterr().out


def _bad_pandalm_file(tmp_path: Path) -> Path:
    good = {"idx": 0, "instruction": "Say hi.", "input": "", "response1": "hi", "response2": "hello", "annotator1": 1, "annotator2": 1, "annotator3": 2}
    lines = [
        json.dumps(good),
        '{"idx": 1, "instruction": "broken',
        json.dumps(good | {"idx": 2, "annotator3": 7}),
        json.dumps(good | {"idx": 3}),
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_rows_fail_with_file_and_line_or_are_skipped_and_counted(tmp_path, capsys):
    bad = _bad_pandalm_file(tmp_path)
    assert prep("--source", "pandalm", "--input", bad, "--out", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert f"{bad}:2: invalid JSON (Invalid control character" in err and "--on-bad-row skip" in err
    assert not (tmp_path / "out").exists()
    assert prep("--source", "pandalm", "--input", bad, "--out", tmp_path / "out", "--on-bad-row", "skip") == 0
    manifest = Manifest.read(tmp_path / "out")
    assert (manifest.rows_read, manifest.rows_written, manifest.rows_skipped) == (4, 2, 2)
    assert {reason: info["count"] for reason, info in manifest.skipped.items()} == {"invalid JSON": 1, "label out of range": 1}
    assert manifest.skipped["label out of range"]["examples"] == [
        f"{bad}:3: annotator3: expected one of 0, 1, 2 (0 = tie, 1 = response 1 better, 2 = response 2 better), got 7"
    ]
    assert [s.meta["idx"] for s in read_samples(tmp_path / "out")] == [0, 3]


def test_a_failed_run_leaves_the_previous_prepared_dir_whole(shared_data, tmp_path):
    out = tmp_path / "prepared"
    assert prep("--source", "llmbar", "--input", shared_data / "llmbar" / "Dataset" / "LLMBar" / "Natural", "--out", out) == 0
    before = (out / "manifest.json").read_bytes()
    assert prep("--source", "pandalm", "--input", _bad_pandalm_file(tmp_path), "--out", out) == 1
    assert (out / "manifest.json").read_bytes() == before and len(read_samples(out)) == 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "prepared"]  # no staging dir left behind
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("user file")
    assert prep("--source", "llmbar", "--input", shared_data / "llmbar" / "Dataset" / "LLMBar" / "Natural", "--out", tmp_path / "other") == 1
    assert (tmp_path / "other" / "keep.txt").read_text() == "user file"


def test_reader_options_and_field_mapping_from_the_command_line(shared_data, tmp_path):
    out = tmp_path / "pairs"
    assert prep("--source", "pairs-from-grades", "--input", shared_data / "prometheus-eval" / "vicuna_eval.json",
                "--out", out, "--option", "tie_threshold=1") == 0
    pairs = read_samples(out)
    assert len(pairs) == 480
    assert all((p.labels["gpt4"].winner == "tie") == (abs(p.labels["gpt4"].scores[0] - p.labels["gpt4"].scores[1]) <= 1) for p in pairs)
    assert Manifest.read(out).settings.reader_options == {"tie_threshold": "1"}
    mine = tmp_path / "mine.jsonl"
    mine.write_text(json.dumps({"q": "2+2?", "x": "4", "y": "5", "w": "x"}) + "\n")
    assert prep("--source", "jsonl", "--input", mine, "--out", tmp_path / "mine", "--map", "question=q", "--map", "answers=x,y",
                "--map", "winner=w", "--map", "winner_values=x:A,y:B") == 0
    (sample,) = read_samples(tmp_path / "mine")
    assert sample.labels["user"].winner == "A" and sample.answers[1].text == "5"
    assert prep("--source", "llmbar", "--input", mine, "--out", tmp_path / "m2", "--map", "question=q") == 1


def test_swap_augmentation_is_materialised_and_recorded(tmp_path):
    from judgetrain_data_prep.judgelm import read as read_judgelm
    from judgetrain.data.rows import ReadReport

    originals = list(read_judgelm(str(FIXTURES / "judgelm_100k_sample.jsonl"), report=ReadReport()))
    out = tmp_path / "swapped"
    assert prep("--source", "judgelm", "--input", FIXTURES / "judgelm_100k_sample.jsonl", "--out", out, "--swap-aug", 1.0, "--seed", 3) == 0
    swapped = read_samples(out)
    assert [s.id for s in swapped] == [s.id for s in originals] and all(s.swapped for s in swapped)
    flip = {"A": "B", "B": "A", "tie": "tie"}
    for new, old in zip(swapped, originals):
        assert new.answers == old.answers[::-1]
        assert new.labels["gpt4"].winner == flip[old.labels["gpt4"].winner]
        assert new.labels["gpt4"].scores == old.labels["gpt4"].scores[::-1]
    assert "Assistant 2 named Sydney" in swapped[0].judgment
    manifest = Manifest.read(out)
    assert manifest.settings.augmentation.num_swapped == 4 and manifest.rows_skipped == 1
    assert manifest.settings.augmentation.swap_probability == 1.0 and manifest.seed == 3


def test_prep_with_tiny_tokenizer_writes_a_masked_token_dataset(shared_data, tmp_path, capsys):
    import datasets

    out = tmp_path / "tok"
    source = shared_data / "auto-j" / "test" / "testdata_pairwise.jsonl"
    small = tmp_path / "autoj_pairwise_first_40.jsonl"
    small.write_text("".join(source.read_text(encoding="utf-8").splitlines(keepends=True)[:40]), encoding="utf-8")
    assert prep("--source", "autoj", "--input", small, "--out", out, "--format", "mtbench-pair-v2",
                "--tokenizer", TINY_TOKENIZER_DIR, "--max-seq-len", 768, "--num-proc", 1) == 0
    manifest = Manifest.read(out)
    tokenized = manifest.tokenized
    assert manifest.settings.tokenizer == str(TINY_TOKENIZER_DIR) and manifest.settings.max_seq_len == 768
    dataset = datasets.load_from_disk(str(out / "tokenized"))
    assert {"input_ids", "labels"} <= set(dataset.column_names)
    assert len(dataset) == tokenized["num_tokenized"] == 40 - tokenized["num_skipped"]
    assert tokenized["num_truncated"] > 0  # Auto-J test answers are long: 768 tokens forces shortening
    for row in dataset:
        assert len(row["input_ids"]) == len(row["labels"]) <= 768
        first_supervised = next(i for i, label in enumerate(row["labels"]) if label != -100)
        assert first_supervised > 0 and -100 not in row["labels"][first_supervised:]
    capsys.readouterr()
    assert main(["prep", "stats", str(out), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    lengths = sorted(len(ids) for ids in dataset["input_ids"])
    assert stats["tokenized"]["length_tokens"]["max"] == lengths[-1]
    assert stats["tokenized"]["num_truncated"] == tokenized["num_truncated"]
    assert Counter(stats["labels"]["human"]["winner"]) == Counter(s.labels["human"].winner for s in read_samples(out))
