"""data.target_label: which label a training target is built from, a config key with a documented
default, passed to the format when the training rows are built; a prepared tokenized copy made for
another label is not reused."""

from __future__ import annotations

from collections import Counter

import pytest

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


@pytest.fixture(scope="module")
def two_label_dir(tmp_path_factory, tiny_tokenizer):
    """Samples labelled by gpt4 and, the other way round, by human; tokenized/ made without a target label."""
    samples = []
    for index in range(NUM_SAMPLES):
        sample = judge_sample(index)
        samples.append(sample.replace(labels={**sample.labels, "human": Label(winner=flip_winner(sample.labels["gpt4"].winner))}))
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
