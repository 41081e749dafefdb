"""Tiny judges for the TRL tests: a reward export trained two steps, two generative exports whose
output head can only write their template's verdict tokens (or one token no parser reads), and the
tiny random policy saved as a model dir."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from judgetrain.types import Answer, JudgeSample

REWARD_HEAD_SCALE = 50.0
"""The two-step reward model's head is scaled by this so rewards of different completions lie apart
by tenths rather than thousandths: a comparison that mixes up completions cannot pass."""

UNREADABLE_TEXT = "x"
"""The one token the generative judges may write that no template parses: their parse failures."""




@pytest.fixture(scope="session")
def reward_export(tiny_reward_checkpoint, tmp_path_factory) -> Path:
    """The tiny reward judge exported (fp32) with ``judgetrain export``; its head is then scaled by
    :data:`REWARD_HEAD_SCALE` (the card is the export's own)."""
    from safetensors.torch import load_file, save_file

    from judgetrain.export import export

    out = export(tiny_reward_checkpoint, tmp_path_factory.mktemp("reward-export") / "judge", dtype="fp32")
    weights = load_file(out / "model.safetensors")
    weights["score.weight"] = weights["score.weight"] * REWARD_HEAD_SCALE
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    return out


def _pair(question: str, first: str, second: str) -> JudgeSample:
    return JudgeSample(id="probe", source="test", question=question, answers=(Answer(first), Answer(second)))


def constrained_judge_model(template: str, verdict_texts: list[str], seed: int):
    """The seeded tiny Llama whose output head gives every token a logit of 0 except the first tokens
    of ``verdict_texts`` and of :data:`UNREADABLE_TEXT`, whose logits are h·d for a random direction d
    each: the first token it writes is one of those, picked by the prompt. The final hidden state h
    of a random model points nearly the same way for every prompt, so each d is taken orthogonal to
    a probe prompt's h: the logits then follow what differs between prompts."""
    from judgetrain import formats
    from judgetrain.judging.backends.transformers_backend import option_first_tokens, prompt_text_of
    from judgetrain.models import build_tiny_model, load_tokenizer

    fmt = formats.get(template)
    tokenizer = load_tokenizer("tiny")
    model = build_tiny_model(seed=0)
    probe = _pair("a", "b", "c") if fmt.protocol == "pairwise" else JudgeSample(id="probe", source="test", question="a",
                                                                               answers=(Answer("b"),))
    prompt = prompt_text_of(tokenizer, fmt.render(probe, include_target=False))
    tokens = option_first_tokens(tokenizer, prompt, {text: text for text in [*verdict_texts, UNREADABLE_TEXT]})
    assert len(tokens) == len(verdict_texts) + 1, f"the verdict texts share first tokens: {tokens}"
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        probe_ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        common = model(**probe_ids, output_hidden_states=True).hidden_states[-1][0, -1]
        common = common / common.norm()
        model.lm_head.weight.zero_()
        for token in tokens.values():
            direction = torch.randn(model.config.hidden_size, generator=generator)
            model.lm_head.weight[token] = 40 * (direction - (direction @ common) * common)
    return model, tokenizer


def write_generative_export(directory: Path, template: str, verdict_texts: list[str], *, seed: int, max_new_tokens: int) -> Path:
    """An export dir (weights, tokenizer, judge card) of :func:`constrained_judge_model`."""
    from judgetrain import formats
    from judgetrain.card import write_card
    from judgetrain.export import build_card
    from judgetrain.judging.backends.base import Decoding

    model, tokenizer = constrained_judge_model(template, verdict_texts, seed)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    fmt = formats.get(template)
    card = build_card(name=directory.name, fmt=fmt, decoding=Decoding(max_new_tokens=max_new_tokens), record={}, base_model="tiny",
                      method="full", lora_merged=False, dtype="float32", evaluation=[], strict=True)
    write_card(directory, card)
    return directory


@pytest.fixture(scope="session")
def grader_export(tmp_path_factory) -> Path:
    """A single-grading generative export (``judgelm-single-v1``) that writes one token: a grade 1-9
    or the unreadable token."""
    return write_generative_export(tmp_path_factory.mktemp("grader") / "grader", "judgelm-single-v1",
                                   [str(grade) for grade in range(1, 10)], seed=7, max_new_tokens=1)


@pytest.fixture(scope="session")
def pairwise_export(tmp_path_factory) -> Path:
    """A pairwise generative export (``pandalm-v1``, both orders, disagreement a tie) that writes one
    token: "1", "2", "Tie" or the unreadable token."""
    return write_generative_export(tmp_path_factory.mktemp("pairwise") / "pairwise", "pandalm-v1", ["1", "2", "Tie"],
                                   seed=1, max_new_tokens=1)


@pytest.fixture(scope="session")
def policy_dir(tmp_path_factory) -> Path:
    """The seeded tiny random Llama and the tiny tokenizer, saved as the model dir a TRL trainer loads."""
    from judgetrain.models import build_tiny_model, load_tokenizer

    out = tmp_path_factory.mktemp("policy") / "tiny-policy"
    build_tiny_model(seed=0).save_pretrained(out, safe_serialization=True)
    load_tokenizer("tiny").save_pretrained(out)
    return out
