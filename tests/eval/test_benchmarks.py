"""Each benchmark's loader on the real data in ../shared/data: item count, label distribution, groups."""

import dataclasses
import json
from collections import Counter

import pytest

from judgetrain import plugins
from judgetrain_eval.runner import get_benchmark

BENCHMARKS = plugins.names(plugins.BENCHMARKS)

# name -> (items, gold label distribution, items per group). Counts are those PROVENANCE.md gives
# for each file (PandaLM's majority reproduces its README's 105 / 422 / 472).
EXPECTED = {
    "pandalm-test": (999, {"A": 422, "B": 472, "tie": 105}, {}),
    "autoj-pairwise": (1392, {"A": 520, "B": 499, "tie": 373}, None),
    "llmbar-natural": (100, None, {}),
    "llmbar-adversarial": (319, None, {"Neighbor": 134, "GPTInst": 92, "GPTOut": 47, "Manual": 46}),
    "llmbar-mtbench": (200, None, {}),
    "judgebench-gpt4o": (350, None, {"Knowledge": 154, "Reasoning": 98, "Math": 56, "Coding": 42}),
    "judgebench-claude": (270, None, None),
    "prometheus-mtbench": (320, None, None),
    "prometheus-vicuna": (320, None, None),
    "hhh-alignment": (221, {"A": 221}, {"honest": 61, "helpful": 59, "harmless": 58, "other": 43}),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_loader_counts_labels_and_groups(name, shared_data):
    bench = get_benchmark(name)
    samples = bench.load(data_dir=shared_data)
    num_items, labels, groups = EXPECTED[name]
    assert len(samples) == num_items
    assert len({s.id for s in samples}) == num_items
    gold = [s.labels[bench.label_key] for s in samples]
    if bench.kind == "grading":
        scores = [g.scores[0] for g in gold]
        assert all(1 <= x <= 5 for x in scores)
        # The gold grade is the mean of GPT-4's three grades (prometheus-eval correlates with it).
        first = samples[0]
        assert scores[0] == pytest.approx(sum(first.labels[f"gpt4_{i}"].scores[0] for i in (1, 2, 3)) / 3)
    else:
        distribution = Counter(g.winner for g in gold)
        if labels is not None:
            assert distribution == labels
        if name.startswith(("llmbar", "judgebench")):
            assert set(distribution) == {"A", "B"}  # objective labels: no ties
    if groups == {}:
        assert all(bench.group(s) is None for s in samples)  # a benchmark without groups
    elif groups is not None:
        assert Counter(bench.group(s) for s in samples) == groups


def test_autoj_scenario_groups(shared_data, tmp_path):
    bench = get_benchmark("autoj-pairwise")
    samples = bench.load(data_dir=shared_data)
    per_group = Counter(bench.group(s) for s in samples)
    table = json.loads((shared_data / "auto-j" / "scenario_group.json").read_text())
    assert len(table) == 8 and sum(len(v) for v in table.values()) == 58
    # 24 items per scenario, so each group has 24 x its number of scenarios.
    assert per_group == {group: 24 * len(scenarios) for group, scenarios in table.items()}
    assert set(per_group) == set(bench.group_names)
    # The file given explicitly wins; a copy of the data without it is an error that says what to pass.
    lone = tmp_path / "testdata_pairwise.jsonl"
    lone.write_text((shared_data / "auto-j" / "test" / "testdata_pairwise.jsonl").read_text())
    with pytest.raises(ValueError, match="--scenario-groups"):
        bench.load(data=str(lone), data_dir=tmp_path)
    explicit = bench.load(data=str(lone), limit=5, options={"scenario_groups": str(shared_data / "auto-j")})
    assert len(explicit) == 5 and all(bench.group(s) for s in explicit)


def test_judgebench_claude_groups(shared_data):
    bench = get_benchmark("judgebench-claude")
    groups = Counter(bench.group(s) for s in bench.load(data_dir=shared_data))
    assert sum(groups.values()) == 270 and None not in groups
    assert groups["Knowledge"] == 154


def test_registry_is_complete_and_formats_exist():
    from judgetrain import formats

    assert set(BENCHMARKS) == {
        "pandalm-test", "autoj-pairwise", "llmbar-natural", "llmbar-adversarial", "llmbar-mtbench", "judgebench-gpt4o",
        "judgebench-claude", "prometheus-mtbench", "prometheus-vicuna", "hhh-alignment", "judgelm-val", "mtbench-human",
        "arena-bench-heldout"}
    for name in BENCHMARKS:
        bench = get_benchmark(name)
        assert bench.name == name
        assert isinstance(bench.version, int) and bench.version >= 1, name
        fmt = formats.get(bench.default_format)
        expected_protocol = "pairwise" if bench.kind == "pairwise" else "single"
        assert fmt.protocol == expected_protocol, (name, fmt.name)
    with pytest.raises(ValueError, match="unknown benchmark"):
        get_benchmark("pandalm")
    with pytest.raises(AssertionError, match="version must be an integer >= 1"):
        dataclasses.replace(get_benchmark("pandalm-test"), version=0)


def test_missing_data_is_an_actionable_error(tmp_path):
    with pytest.raises(ValueError, match="--data PATH"):
        get_benchmark("pandalm-test").load(data_dir=tmp_path)
