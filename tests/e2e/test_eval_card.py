"""`judgetrain eval --judge EXPORT_DIR` judges exactly as `Judge.from_card(EXPORT_DIR)`.

A tiny checkpoint whose output head can only write PandaLM's "1" or "2" is exported twice (the
template read from the checkpoint's record), each card with settings the judging defaults do not
have: a one-token budget, verdict-probability aggregation and a tie margin (so verdicts parse and
the margin decides some pairs); and a strict parser with a three-token budget (so "111"-like outputs
fail the strict parser, and the failure says which parser read it). Eval's per-item verdicts, raw
texts and failure reasons must be the card judge's, item by item.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from judgetrain import formats
from judgetrain.card import read_card, write_card
from judgetrain.judging import Judge, default_decoding, per_order
from judgetrain.types import Answer, JudgeSample

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEMPLATE = "pandalm-v1"
LIMIT_ITEMS = 6
TIE_MARGIN = 0.02



def verdict_checkpoint(directory: Path) -> Path:
    """A complete judgetrain checkpoint of the seeded tiny Llama whose output head only scores PandaLM's
    "1" and "2" (±4·h·v, every other token 0): it writes one of them at every step."""
    from judgetrain.judging.backends.transformers_backend import option_first_tokens, prompt_text_of
    from judgetrain.models import build_tiny_model, load_tokenizer
    from judgetrain.train.checkpoint import write_record
    from judgetrain.train.config import TrainConfig

    pandalm = formats.get(TEMPLATE)
    tokenizer = load_tokenizer("tiny")
    model = build_tiny_model(seed=0)
    sample = JudgeSample(id="x", source="test", question="q", answers=(Answer("a"), Answer("b")))
    tokens = option_first_tokens(tokenizer, prompt_text_of(tokenizer, pandalm.render(sample, include_target=False)),
                                 pandalm.verdict_options())
    direction = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.weight[tokens["A"]] = 4 * direction
        model.lm_head.weight[tokens["B"]] = -4 * direction
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    config = TrainConfig()
    config.model.path, config.method.name, config.data.format = "tiny", "full", TEMPLATE
    write_record(directory, config, global_step=0, manifest_hashes={}, revision=None)
    return directory


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    from judgetrain.export import export

    tmp = tmp_path_factory.mktemp("eval-card")
    checkpoint = verdict_checkpoint(tmp / "checkpoint")
    # No --format: the template comes from the checkpoint's record.
    margin = export(checkpoint, tmp / "margin-judge", dtype="fp32", max_new_tokens=1, aggregation="probabilities",
                    tie_margin=TIE_MARGIN)
    strict = export(checkpoint, tmp / "strict-judge", dtype="fp32", max_new_tokens=3)
    card = read_card(strict)
    write_card(strict, dataclasses.replace(card, parser=dataclasses.replace(card.parser, mode="strict")))
    return {"margin": margin, "strict": strict}


def eval_and_card_judgments(export_dir: Path, shared_data: Path):
    from judgetrain_eval.runner import get_benchmark, run_benchmark

    run = run_benchmark("pandalm-test", judge=str(export_dir), data_dir=shared_data, limit=LIMIT_ITEMS, num_resamples=0)
    samples = get_benchmark("pandalm-test").load(None, shared_data, limit=LIMIT_ITEMS)
    card_judge = Judge.from_card(export_dir, batch_size=1)
    try:
        judgments = card_judge.judge(samples)
    finally:
        card_judge.backend.close()
    return run, samples, card_judge, judgments


def assert_same_per_item(run, judgments) -> None:
    assert len(run.rows) == len(judgments) == LIMIT_ITEMS
    for row, judgment in zip(run.rows, judgments):
        original, swapped = per_order(judgment)
        assert row.id == judgment.sample_id
        assert row.orders == ["original", "swapped"]
        assert (row.verdict, row.verdict_swapped) == (original.winner, swapped.winner)
        assert row.raw_texts == [original.raw_text, swapped.raw_text]
        assert row.parse_failures == [o.parse_failure.reason if o.parse_failure else None for o in (original, swapped)]
        assert [call["prompt_text"] for call in row.judgments] == [original.prompt_text, swapped.prompt_text]
        assert [call["decoding"] for call in row.judgments] == [original.decoding, swapped.decoding]


def test_the_export_takes_its_template_from_the_checkpoint(exports):
    assert read_card(exports["margin"]).template == TEMPLATE


def test_eval_of_an_export_says_what_the_card_judge_says_with_its_margin_and_decoding(exports, shared_data):
    from judgetrain_eval.runner import get_benchmark, judge_factory

    card = read_card(exports["margin"])
    assert card.decoding != default_decoding(formats.get(TEMPLATE)), "the card's decoding is not the judging default"
    run, samples, card_judge, judgments = eval_and_card_judgments(exports["margin"], shared_data)
    assert_same_per_item(run, judgments)
    # The one-token budget makes every order a verdict (the default 32 tokens would write "1111…").
    assert all(row.verdict is not None and row.verdict_swapped is not None for row in run.rows)
    assert all(call["decoding"]["max_new_tokens"] == 1 for row in run.rows for call in row.judgments)
    assert run.config["decoding"] == card.decoding.to_dict() == card_judge.decoding.to_dict()
    assert run.config["judge_card"]["tie_policy"] == {"both_orders": True, "disagreement": "tie",
                                                      "aggregation": "probabilities", "tie_margin": TIE_MARGIN}
    # Eval's judge is the card judge: the same settings, and the same aggregated verdicts.
    judge_for, backend = judge_factory(str(exports["margin"]), None, get_benchmark("pandalm-test"))
    try:
        eval_judge = judge_for(samples[0])
        settings = ("both_orders", "disagreement_policy", "aggregation", "tie_margin", "strict")
        assert {k: getattr(eval_judge, k) for k in settings} == {k: getattr(card_judge, k) for k in settings} == {
            "both_orders": True, "disagreement_policy": "tie", "aggregation": "probabilities", "tie_margin": TIE_MARGIN,
            "strict": False}
        assert eval_judge.decoding == card_judge.decoding and eval_judge.format.name == TEMPLATE
        aggregated = eval_judge.judge(samples)
    finally:
        backend.close()
    assert [j.winner for j in aggregated] == [j.winner for j in judgments]
    for judgment in aggregated:
        difference = judgment.verdict_probabilities["A"] - judgment.verdict_probabilities["B"]
        assert (judgment.winner == "tie") == (abs(difference) <= TIE_MARGIN)
    assert {j.winner for j in aggregated} - {"tie"}, "the margin does not make every pair a tie"


def test_eval_of_an_export_parses_with_the_cards_strict_parser(exports, shared_data):
    card = read_card(exports["strict"])
    assert card.parser.mode == "strict" and card.decoding.max_new_tokens == 3
    run, _, card_judge, judgments = eval_and_card_judgments(exports["strict"], shared_data)
    assert card_judge.strict is True
    assert_same_per_item(run, judgments)
    reasons = [reason for row in run.rows for reason in row.parse_failures]
    # Three tokens of "1" / "2" are no verdict line; the failure names the parser that read them.
    assert reasons and all(reason is not None and reason.endswith("(strict)") for reason in reasons)
    assert run.config["judge_card"]["parser"]["mode"] == "strict"


def test_eval_refuses_another_template_for_an_export(exports, shared_data):
    from judgetrain_eval.runner import run_benchmark

    with pytest.raises(ValueError, match=f"fixes the template {TEMPLATE}"):
        run_benchmark("pandalm-test", judge=str(exports["margin"]), format_name="judgelm-v1", data_dir=shared_data,
                      limit=1, num_resamples=0)
