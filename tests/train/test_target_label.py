"""data.target_label / judgetrain prep --target-label: which label a training target is built from, a
config key with a documented default, passed to the format when the rows are built; a prepared
tokenized copy is reused only for the label it was made for, and training takes that label by default."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from judgetrain.cli import main
from judgetrain.data.prepare import prepare_dataset
from judgetrain.data.tokenize import IGNORE_INDEX
from judgetrain.train.config import DatasetSpec, DataConfig, field_docs, load_config, valid_keys, validate
from judgetrain.train.data import build_train_data
from judgetrain.types import Label, flip_winner

from train_helpers import judge_sample, write_prepared_dir

NUM_SAMPLES = 8


def test_the_key_is_documented_defaults_to_the_templates_order_and_rejects_what_cannot_work():
    assert "data.target_label" in valid_keys()
    assert "gpt4, human_majority, human, gold" in field_docs(DataConfig)["target_label"]
    assert load_config().data.target_label is None
    assert load_config(None, ["data.target_label=human"]).data.target_label == "human"
    config = load_config()
    config.data.target_label = " "
    with pytest.raises(ValueError, match="data.target_label is empty"):
        validate(config)
    with pytest.raises(ValueError, match="kind=reward .* not data.target_label"):
        load_config(None, ["kind=reward", "data.target_label=human"])


def _two_label_samples():
    """Samples labelled by gpt4 and, the other way round, by human."""
    samples = []
    for index in range(NUM_SAMPLES):
        sample = judge_sample(index)
        samples.append(sample.replace(labels={**sample.labels, "human": Label(winner=flip_winner(sample.labels["gpt4"].winner))}))
    return samples


@pytest.fixture(scope="module")
def two_label_dir(tmp_path_factory, tiny_tokenizer):
    """The two-label samples with a tokenized/ copy made without a target label."""
    samples = _two_label_samples()
    return samples, write_prepared_dir(tmp_path_factory.mktemp("two-labels") / "prepared", samples, tiny_tokenizer)


def _verdict_lines(data, tokenizer) -> Counter:
    """The first line of every training row's supervised text."""
    lines = Counter()
    for row in data.train_dataset:
        target = tokenizer.decode([t for t, label in zip(row["input_ids"], row["labels"]) if label != IGNORE_INDEX],
                                  skip_special_tokens=True)
        lines[target.strip().split("\n")[0].strip()] += 1
    return lines


def _build(prepared, tokenizer, format_name="pandalm-v1", **data):
    config = DataConfig(datasets=[DatasetSpec(path=str(prepared))], format=format_name, max_seq_len=512, **data)
    return build_train_data(config, tokenizer, tokenizer_name="tiny", seed=0)


def test_training_rows_state_the_chosen_labels_verdict(two_label_dir, tiny_tokenizer):
    samples, prepared = two_label_dir
    line_of = {"A": "1", "B": "2", "tie": "Tie"}  # PandaLM's verdict line
    for target_label in ("human", "gpt4"):
        expected = Counter(line_of[s.labels[target_label].winner] for s in samples)
        assert _verdict_lines(_build(prepared, tiny_tokenizer, target_label=target_label), tiny_tokenizer) == expected


def test_a_tokenized_copy_is_reused_only_for_the_label_it_was_made_for(two_label_dir, tiny_tokenizer, caplog):
    _samples, prepared = two_label_dir
    # The copy's prompts are the test helper's own wording, not the template's: they tell the two apart.
    helper_wording = "Score both assistants from 1 to 10."

    def prompts(data) -> list[str]:
        return [tiny_tokenizer.decode(row["input_ids"]) for row in data.train_dataset]

    assert all(helper_wording in text for text in prompts(_build(prepared, tiny_tokenizer, "judgelm-v1")))
    with caplog.at_level("WARNING", logger="judgetrain.train.data"):
        retokenized = prompts(_build(prepared, tiny_tokenizer, "judgelm-v1", target_label="gpt4"))
    assert len(retokenized) == NUM_SAMPLES and not any(helper_wording in text for text in retokenized)
    assert "built its targets from label None; re-tokenizing for data.target_label='gpt4'" in caplog.text


def test_a_sample_without_the_chosen_label_stops_training_data_with_its_id(two_label_dir, tiny_tokenizer):
    _samples, prepared = two_label_dir
    with pytest.raises(ValueError, match=r"sample 's0000' has no label 'gold'.*its labels: gpt4, human"):
        _build(prepared, tiny_tokenizer, target_label="gold")


def test_prep_builds_the_tokenized_targets_from_its_target_label_and_training_takes_it(tmp_path, tiny_tokenizer, caplog):
    samples = _two_label_samples()
    manifest = prepare_dataset(samples, tmp_path / "human", format_name="pandalm-v1", target_label="human",
                               tokenizer="tiny", max_seq_len=512)
    assert manifest.tokenized["target_label"] == "human"
    expected = Counter({"A": "1", "B": "2"}[s.labels["human"].winner] for s in samples)
    with caplog.at_level("WARNING", logger="judgetrain.train.data"):
        data = _build(tmp_path / "human", tiny_tokenizer)  # data.target_label unset: the dir's label
    assert "re-tokenizing" not in caplog.text and "tokenized 8 samples" not in caplog.text
    assert data.stats["target_label"] == "human"
    assert _verdict_lines(data, tiny_tokenizer) == expected
    # Dirs tokenized for different labels need the run to choose.
    prepare_dataset(samples, tmp_path / "gpt4", format_name="pandalm-v1", target_label="gpt4", tokenizer="tiny", max_seq_len=512)
    config = DataConfig(datasets=[DatasetSpec(path=str(tmp_path / "human")), DatasetSpec(path=str(tmp_path / "gpt4"))],
                        format="pandalm-v1", max_seq_len=512)
    with pytest.raises(ValueError, match="tokenized for different target labels.*set data.target_label"):
        build_train_data(config, tiny_tokenizer, tokenizer_name="tiny", seed=0)


def test_prep_target_label_is_checked_before_anything_is_written(tmp_path, caplog):
    samples = _two_label_samples()
    with pytest.raises(ValueError, match=r"target label 'gold' \(--target-label\): 8 of 8 samples lack it; the first, "
                                         r"sample 's0000', has the labels: gpt4, human"):
        prepare_dataset(samples, tmp_path / "gold", format_name="pandalm-v1", target_label="gold", tokenizer="tiny")
    assert not (tmp_path / "gold").exists()
    with caplog.at_level("WARNING", logger="judgetrain.data.prepare"):
        prepare_dataset(samples, tmp_path / "untokenized", target_label="human")
    assert "has no effect without a tokenizer" in caplog.text


def test_the_prep_command_takes_target_label(tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(
        f'{{"prompt": "Say {word}.", "a": "{word}", "b": "no", "winner": "{winner}"}}\n'
        for word, winner in (("yes", "A"), ("maybe", "B"))), encoding="utf-8")
    args = ["prep", "--source", "jsonl", "--input", str(rows), "--out", str(tmp_path / "out"), "--format", "pandalm-v1",
            "--map", "question=prompt", "--map", "answers=a,b", "--map", "winner=winner",
            "--tokenizer", "tiny", "--max-seq-len", "512"]
    assert main(args + ["--target-label", "nobody"]) == 1
    assert "target label 'nobody' (--target-label): 2 of 2 samples lack it" in capsys.readouterr().err
    assert main(args + ["--target-label", "user"]) == 0  # the jsonl reader's label key
    tokenized = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))["tokenized"]
    assert tokenized["target_label"] == "user"
