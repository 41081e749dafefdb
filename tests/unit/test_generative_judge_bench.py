"""The generative judge's verdicts read from token probabilities, and the bench that trains and judges it.

- Grades whose first tokens coincide ("1" and "10" under SmolLM2's tokenizer, which splits digits) are
  told apart by one more step read from the generation cache.
- JudgeLM's pairwise verdict starts with a grade, not a winner: both orders' expected first grades decide
  the pair, exactly antisymmetrically, so the debiased verdict does not move when the answers swap.
- bench/judge_quality.py's generative path and its --ablation run end to end on the tiny model.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from judgetrain.data.augment import swap
from judgetrain.judging.backends.base import Decoding, Request
from judgetrain.judging.judge import Judge, choose_tie_margin
from judgetrain.types import Answer, JudgeSample, Label, flip_winner

GRADES = {str(grade): str(grade) for grade in range(1, 11)}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """The tiny model's matrices are too small for a second thread to help on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    from judgetrain.models import load_tokenizer

    return load_tokenizer("embedded:smollm2-135m")


def tiny_model_for(tokenizer):
    """A seeded 2-layer random Llama over ``tokenizer``'s vocabulary (SmolLM2's: it splits digits)."""
    from transformers import AutoModelForCausalLM

    from judgetrain.models import tiny_config

    config = tiny_config(len(tokenizer), pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=None)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config)


def score_line_model(tokenizer):
    """The tiny Llama made into a judge that writes a JudgeLM score line "d d" whatever it reads: each
    next token follows mostly from the current one (a digit after the prompt's last newline and after a
    space, a space after a digit), while the layers' small share of the residual stream still makes the
    digits' probabilities depend on the prompt."""
    model = tiny_model_for(tokenizer)
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in ("\n", " 7", *map(str, range(1, 10)))]
    newline, space, digits = ids[0][0], ids[1][0], [i[0] for i in ids[2:]]
    generator = torch.Generator().manual_seed(1)
    hidden = model.config.hidden_size
    with torch.no_grad():
        embeddings = model.model.embed_tokens.weight
        shared = torch.randn(hidden, generator=generator)
        for digit in digits:
            embeddings[digit] = shared + 0.3 * torch.randn(hidden, generator=generator)
        for layer in model.model.layers:
            layer.mlp.down_proj.weight.mul_(0.3)
        head = model.lm_head.weight
        head.zero_()
        head[space] = 12 * shared / shared.norm()
        after = (embeddings[newline] / embeddings[newline].norm() + embeddings[space] / embeddings[space].norm()) / 2
        for digit in digits:
            head[digit] = 12 * after + 3 * torch.randn(hidden, generator=generator)
    return model


def pair(sample_id: str, first: str, second: str, winner: str | None = None) -> JudgeSample:
    labels = {"gpt4": Label(winner=winner)} if winner else {}
    return JudgeSample(id=sample_id, source="test", question=f"{sample_id}: name a colour.",
                       answers=(Answer(first), Answer(second)), labels=labels)


SAMPLES = [pair(f"s{i}", "red " * (i + 1), "blue and green " * (3 - i % 3), winner=("A", "B", "tie")[i % 3])
           for i in range(6)]


def test_grades_sharing_a_first_token_are_told_apart_by_the_next_step(smollm2_tokenizer):
    from judgetrain.judging.backends.transformers_backend import TransformersBackend

    tokenizer = smollm2_tokenizer
    assert tokenizer.tokenize("10") == ["1", "0"], "SmolLM2 splits digits: 1 and 10 share their first token"
    model = tiny_model_for(tokenizer)
    backend = TransformersBackend(model, tokenizer, batch_size=3)
    questions = ["Grade this answer.", "Hi", "A longer question, so that the rows of the batch are padded differently"]
    requests = [Request(messages=({"role": "user", "content": q},), decoding=Decoding(max_new_tokens=3), verdict_options=GRADES)
                for q in questions]
    one, zero = (tokenizer(t, add_special_tokens=False)["input_ids"][0] for t in ("1", "0"))
    for completion in backend.generate(requests):
        assert sorted(completion.verdict_logprobs) == sorted(GRADES)
        ids = tokenizer(completion.prompt_text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            first = torch.log_softmax(model(ids).logits[0, -1].float(), -1)
            after_one = torch.log_softmax(model(torch.cat([ids, torch.tensor([[one]])], 1)).logits[0, -1].float(), -1)
        p_ten = math.exp(first[one] + after_one[zero])
        p_one = math.exp(first[one]) - p_ten
        assert math.exp(completion.verdict_logprobs["10"]) == pytest.approx(p_ten, rel=1e-4)
        assert math.exp(completion.verdict_logprobs["1"]) == pytest.approx(p_one, rel=1e-4)
        # The other grades are single tokens: read at the first step as before.
        assert completion.verdict_logprobs["7"] == pytest.approx(float(first[tokenizer.convert_tokens_to_ids("7")]), abs=1e-4)


@pytest.fixture(scope="module")
def score_line_judge(smollm2_tokenizer):
    from judgetrain.judging.backends.transformers_backend import TransformersBackend

    # One prompt per forward pass: batch padding would change the logits in their last bits.
    backend = TransformersBackend(score_line_model(smollm2_tokenizer), smollm2_tokenizer, batch_size=1)
    return Judge("judgelm-v1", backend, Decoding(max_new_tokens=3), both_orders=True, aggregation="probabilities")


def test_the_debiased_judgelm_verdict_is_exactly_invariant_under_swapping_the_answers(score_line_judge):
    judgments = score_line_judge.judge(SAMPLES)
    mirrored = score_line_judge.judge([swap(s) for s in SAMPLES])
    for judgment, mirror in zip(judgments, mirrored):
        record = judgment.both_orders
        assert judgment.parse_failure is None and record.aggregated_by == "probabilities" and record.fallback is None
        # Each order's first token grades the answer shown first: A in the original order, B in the swapped one.
        assert (record.original.meta["scored_answer"], record.swapped.meta["scored_answer"]) == (0, 1)
        expected = (record.original.meta["expected_score"] - record.swapped.meta["expected_score"]) / 9
        assert record.p_a_minus_p_b == expected
        # Bit for bit: the difference is antisymmetric in floating point.
        assert mirror.both_orders.p_a_minus_p_b == -record.p_a_minus_p_b
        assert mirror.winner == flip_winner(judgment.winner)
    assert {j.winner for j in judgments} == {"A", "B"}, "the samples are not all decided one way"
    # The raw score lines are positional (the model writes the same line whatever the order).
    assert all(j.both_orders.original.raw_text == j.both_orders.swapped.raw_text for j in judgments)


def test_the_generative_tie_margin_is_chosen_with_the_reward_judges_chooser(score_line_judge):
    from judgetrain.reward.margin import choose_probability_tie_margin

    record = choose_probability_tie_margin(score_line_judge, SAMPLES, source="test pairs")
    differences = [j.both_orders.p_a_minus_p_b for j in score_line_judge.judge(SAMPLES)]
    margin, accuracy = choose_tie_margin(differences, [s.labels["gpt4"].winner for s in SAMPLES])
    assert record == {"tie_margin": margin, "accuracy": accuracy, "num_pairs": 6, "num_ties": 2, "source": "test pairs"}


# --- bench/judge_quality.py ------------------------------------------------------------------------------


def tiny_recipe(tmp_path: Path, shared_data: Path) -> Path:
    """A generative recipe on the tiny model whose prep lines read small shared-data sources into tmp_path."""
    data = tmp_path / "data"
    text = f"""# A tiny generative judge for the bench's plumbing:
#   judgetrain prep --source pairs-from-grades --input ../shared/data/prometheus-eval/vicuna_eval.json --format judgelm-v1 --pair-symmetric --reference-twins --out {data}/vicuna
#   judgetrain prep --source autoj --input ../shared/data/auto-j/training/single_traindata.jsonl --format judgelm-single-v1 --reference-twins --out {data}/autoj
kind: generative
model: {{path: tiny}}
data:
  format: judgelm-v1
  datasets:
    - {{path: {data}/vicuna, weight: 0.02}}
    - {{path: {data}/autoj, weight: 0.01}}
  max_seq_len: 1024
  packing: true
  pair_symmetric: true
  held_out_fraction: 0.1
method: {{name: full, trainable_layers: 1}}
optim: {{lr: 1.0e-3, max_steps: 4, per_device_batch_size: 2, gradient_accumulation_steps: 1, warmup_ratio: 0.0}}
logging: {{every_steps: 1, stdout: true}}
checkpoint: {{every_steps: 0, resume: never}}
output_dir: {tmp_path}/unused
"""
    path = tmp_path / "tiny-generative.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def run_bench(capsys, *args: str) -> list[str]:
    from tests.conftest import REPO_ROOT

    sys.path.insert(0, str(REPO_ROOT / "bench"))
    try:
        import judge_quality
    finally:
        sys.path.pop(0)
    assert judge_quality.main(list(args)) == 0
    return capsys.readouterr().out.splitlines()


def last_figures(lines: list[str], names: tuple[str, ...]) -> dict[str, float]:
    figures = {}
    for line in lines:
        name, _, rest = line.partition(": ")
        if name in names:
            figures[name] = float(rest)
    return figures


@pytest.mark.slow
def test_the_bench_trains_and_judges_a_generative_recipe_and_its_ablation(tmp_path, shared_data, capsys):
    from judgetrain.card import read_card
    from judgetrain.data.prepared import read_samples
    from judgetrain.reward.margin import read_tie_margin

    recipe = tiny_recipe(tmp_path, shared_data)
    out = tmp_path / "bench"
    common = ["--recipe", str(recipe), "--data-dir", str(shared_data), "--out", str(out), "--limit", "4",
              "--margin-pairs", "8", "--benchmarks", "pandalm-test,autoj-pairwise,arena-bench-heldout"]
    lines = run_bench(capsys, *common, "--before-benchmarks", "pandalm-test")
    names = ("generative_pandalm_accuracy", "generative_raw_consistency", "generative_autoj_agreement", "arena_grade_spearman")
    assert [line.partition(":")[0] for line in lines[-4:]] == list(names)
    figures = last_figures(lines, names)
    quality = json.loads((out / "quality.json").read_text())
    pandalm = quality["benchmarks"]["pandalm-test"]
    assert figures["generative_pandalm_accuracy"] == pytest.approx(pandalm["after"]["readings"]["debiased_accuracy"]["value"], abs=5e-4)
    assert figures["generative_raw_consistency"] == pytest.approx(pandalm["after"]["readings"]["raw_consistency"]["value"], abs=5e-4)
    for reading in ("raw_accuracy", "raw_accuracy_strict", "raw_accuracy_lenient", "one_order_probability_accuracy",
                    "debiased_accuracy", "raw_consistency", "prefer_first_rate"):
        assert pandalm["after"]["readings"][reading]["num_items"] == 4, reading
    assert pandalm["before"] is not None and quality["benchmarks"]["autoj-pairwise"]["before"] is None
    arena = quality["benchmarks"]["arena-bench-heldout"]["after"]
    assert (arena["with_reference"]["template"], arena["without_reference"]["template"]) == ("judgelm-single-ref-v1",
                                                                                             "judgelm-single-v1")
    assert set(arena["length_baseline"]) == {"pearson", "spearman", "kendall"}
    assert sorted(quality["curve"]) == ["0.00", "0.25", "0.50", "1.00"]
    # The margin chosen on the held-out pairs is the one written beside the run and into the card.
    card = read_card(out / "judge")
    margin = read_tie_margin(out / "run" / "final")
    assert card.tie_policy.aggregation == "probabilities" and card.tie_policy.tie_margin == margin["tie_margin"]
    # (The tiny model's score lines rarely parse, so its margin may rest on no pair: the record says so.)
    assert quality["tie_margin"] == margin["tie_margin"] and margin["source"]
    assert any(line.startswith("pandalm-test (4 items)") for line in lines)

    lines = run_bench(capsys, *common, "--ablation")
    table = lines[lines.index(next(line for line in lines if line.startswith("ablation of "))):]
    assert [row.split(")")[0].strip() for row in table[2:5]] == ["(a", "(b", "(c"]
    ablation = json.loads((out / "ablation.json").read_text())
    assert [ablation[name]["variant"] for name in "abc"] == ["no swap augmentation", "swap augmentation",
                                                             "swap augmentation + reference drop"]
    data = tmp_path / "data"
    ids = {name: {s.id for s in read_samples(data / f"vicuna{suffix}")} for name, suffix in
           (("a", "-ablation-a"), ("b", "-ablation-b"), ("c", ""))}
    assert not any("~" in i for i in ids["a"])
    assert any(i.endswith("~swapped") for i in ids["b"]) and not any("~noref" in i for i in ids["b"])
    assert any(i.endswith("~noref~swapped") for i in ids["c"])
    # The same rows of every source per epoch: the variants without twins draw twice the share.
    recipes = {name: (out / "ablation" / name / "recipe.yaml").read_text() for name in "abc"}
    assert "weight: 0.08" in recipes["a"] and "weight: 0.04" in recipes["b"] and "weight: 0.02" in recipes["c"]
    for name in "abc":
        assert read_card(out / "ablation" / name / "judge").tie_policy.aggregation == "probabilities"
