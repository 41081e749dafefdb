"""PandaLM format: the prompt is PandaLM's build_pandalm_prompt byte for byte, label-built targets parse
back to their label and match PandaLM's generated text, the verdict survives stopping at the first
newline and is offered to verdict-token log-probs, adversarial outputs give the right verdict or a
ParseFailure with a reason, and swapping a judgment twice is the identity."""

import importlib
import json
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from judgetrain.data.rows import ReadReport
from judgetrain.formats import pandalm
from judgetrain.judging.judge import default_decoding, verdict_options
from judgetrain.types import Answer, JudgeSample, Label, ParseFailure, Verdict, flip_winner

from format_checks import check_adversarial

FIXTURES = Path(__file__).resolve().parents[1] / "assets" / "fixtures"
(FMT,) = pandalm.FORMATS

words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40)


def _sample(label: Label | None, texts=("Give the opposite of the word.", "cold", "warm"), **changes) -> JudgeSample:
    question, first, second = texts
    return JudgeSample(id="p1", source="test", question=question, answers=(Answer(first), Answer(second)),
                       labels={"gpt35": label} if label is not None else {}, **changes)


def _pandalm_prompt(instruction: str, task_input: str, resp1: str, resp2: str) -> str:
    """PandaLM's build_pandalm_prompt (pandalm/utils/pandalm_inference.py), written out by hand."""
    rsp = f"### Response 1:\n{resp1.strip()}\n\n### Response 2:\n{resp2.strip()}"
    if task_input:
        return ("Below are two responses for a given task. The task is defined by the Instruction with an Input that "
                "provides further context. Evaluate the responses and generate a reference answer for the task.\n\n"
                f"### Instruction:\n{instruction}\n\n### Input:\n{task_input}\n\n{rsp}\n\n### Evaluation:\n")
    return ("Below are two responses for a given task. The task is defined by the Instruction. Evaluate the responses "
            f"and generate a reference answer for the task.\n\n### Instruction:\n{instruction}\n\n{rsp}\n\n### Evaluation:\n")


def test_attributes_and_generation_hooks():
    assert FMT.name == "pandalm-v1" and FMT.family == "pandalm" and FMT.protocol == "pairwise"
    assert FMT.verdict_first and FMT.stop_strings() == ("\n",) and FMT.score_scale is None
    assert verdict_options(FMT) == {"A": "1", "B": "2", "tie": "Tie"}
    decoding = default_decoding(FMT)
    assert decoding.stop == ("\n",) and decoding.logprobs
    # Each option's text is what a strict parse of that verdict line reads.
    for winner, line in verdict_options(FMT).items():
        assert FMT.parse(line).winner == winner


def test_prompt_is_pandalms_bytes():
    plain = _sample(None, texts=("What colour is the sky?", "  Blue. ", "Green.</s>"))
    assert FMT.render(plain) == [{"role": "user", "content": _pandalm_prompt("What colour is the sky?", "", "Blue.", "Green.")}]
    with_input = plain.replace(question="Give the opposite of the word.\n\nhot",
                               meta={"instruction": "Give the opposite of the word.", "input": "hot"})
    assert FMT.render(with_input)[0]["content"] == _pandalm_prompt("Give the opposite of the word.", "hot", "Blue.", "Green.")
    empty_input = with_input.replace(meta={"instruction": "Give the opposite of the word.", "input": ""})
    assert "### Input:" not in FMT.render(empty_input)[0]["content"]


@settings(max_examples=50, deadline=None)
@given(winner=st.sampled_from(["A", "B", "tie"]), texts=st.tuples(words, words, words),
       reason=st.none() | words, reference=st.none() | words)
def test_label_target_parses_back(winner, texts, reason, reference):
    # A reason that is itself a whole PandaLM evaluation (e.g. "1") is kept as the target, verdict and all.
    assume(reason is None or not isinstance(FMT.parse(reason, strict=True), Verdict))
    sample = _sample(Label(winner=winner), texts=texts, judgment=reason,
                     meta={"reference_response": reference} if reference else {})
    messages = FMT.render(sample)
    target = messages[-1]["content"]
    assert target.split("\n")[0] == FMT.verdict_options()[winner]
    verdict = FMT.parse(target, strict=True)
    assert isinstance(verdict, Verdict) and verdict.winner == winner and not verdict.lenient
    if reason is not None and reason.strip():
        assert verdict.critique == reason.strip()
    # What a judge stopped at the first newline returns still reads the verdict.
    assert FMT.parse(target.split("\n")[0]).winner == winner
    # The prompt echoed before the target is read from after its "### Evaluation:".
    assert FMT.parse(messages[0]["content"] + target).winner == winner


def _read(path) -> list[JudgeSample]:
    return list(importlib.import_module("judgetrain_data_prep.pandalm").read(str(path), report=ReadReport(source="pandalm")))


def test_targets_of_the_training_fixtures_are_pandalms_outputs():
    rows = [json.loads(line) for line in (FIXTURES / "pandalm_train_flat_sample.jsonl").read_text(encoding="utf-8").splitlines()]
    for row, sample in zip(rows, _read(FIXTURES / "pandalm_train_flat_sample.jsonl"), strict=True):
        assert FMT.render(sample)[-1]["content"] == row["output"]
    for sample in _read(FIXTURES / "pandalm_train_sample.jsonl"):
        verdict = FMT.parse(FMT.render(sample)[-1]["content"])
        assert verdict.winner == sample.labels["gpt35"].winner


def test_whole_judgments_are_kept_and_bare_reasons_need_a_label():
    whole = _sample(Label(winner="A"), judgment="2\n\n### Reason: Response 2 is right.")
    assert FMT.target(whole) == whole.judgment  # the judgment's own verdict line is kept as written
    with pytest.raises(ValueError, match="no winner label"):
        FMT.target(_sample(None, judgment="Response 1 is right."))
    assert FMT.target(_sample(None)) is None


def test_every_pandalm_test_row_renders_pandalms_prompt(shared_data):
    path = shared_data / "pandalm" / "testset-v1.json"
    rows = json.loads(path.read_text(encoding="utf-8"))
    samples = _read(path)
    assert len(samples) == len(rows) == 999
    with_input = 0
    for row, sample in zip(rows, samples):
        messages = FMT.render(sample, include_target=False)
        # PandaLM's own prompt for the row, its input in its own section.
        expected = _pandalm_prompt(row["instruction"], row["input"], sample.answers[0].text, sample.answers[1].text)
        assert messages == [{"role": "user", "content": expected}], row["idx"]
        with_input += "### Input:" in expected
        # The human majority label builds a verdict-only target that reads back.
        assert FMT.parse(FMT.target(sample)).winner == sample.labels["human_majority"].winner
    assert 0 < with_input < 999


ADVERSARIAL = [
    ("", "empty output", "empty output"),
    ("  \n ", "empty output", "empty output"),
    ("1", "A", "A"),
    ("2\n\n### Reason: Response 2 is right.\n\n### Reference: cold", "B", "B"),
    ("Tie\n\n### Reason: Both fine.", "tie", "tie"),
    ("\n\n2\n### Reason: late start", "B", "B"),
    ("1\n\n### Reason: first.\n\n2\n\n### Reason: second.", "conflicting", "conflicting"),
    ("1\n\n### Reason: first.\n\n1\n\n### Reason: again.", "A", "A"),
    ("**2**", "not a verdict", "B"),
    ("2.", "not a verdict", "B"),
    ("tie", "not a verdict", "tie"),
    ("  Response 1  ", "not a verdict", "A"),
    ("Result: 2", "not a verdict", "B"),
    ("1 2", "not a verdict", "not a verdict"),
    ("3", "not a verdict", "not a verdict"),
    ("Response 1 is better.", "not a verdict", "not a verdict"),
    ("回答1更好。", "not a verdict", "not a verdict"),
    ("2\n\n### Reason: 回答2是正确的。", "B", "B"),
]


@pytest.mark.parametrize("text,strict_expected,lenient_expected", ADVERSARIAL, ids=[str(i) for i in range(len(ADVERSARIAL))])
def test_adversarial_outputs(text, strict_expected, lenient_expected):
    check_adversarial(FMT, text, strict_expected, lenient_expected)


def test_an_echoed_prompt_is_not_a_verdict():
    # Responses that are themselves "1" / "2" lines sit before the echo's "### Evaluation:".
    prompt = FMT.render(_sample(None, texts=("Pick a number.", "1", "2")))[0]["content"]
    for strict in (True, False):
        echoed = FMT.parse(prompt, strict=strict)
        assert isinstance(echoed, ParseFailure) and "echoes the prompt" in echoed.reason
        assert FMT.parse(prompt + "2\n\n### Reason: Response 2 is right.", strict=strict).winner == "B"


judgment_parts = st.lists(
    st.sampled_from(["1", "2", "Tie", "**1**", "Response 1", "Response 2", "response 1", "response 2", "Response 12",
                     "### Reason:", "### Reference:", "\n", " ", "."]) | words,
    max_size=12,
)


@settings(max_examples=80, deadline=None)
@given(parts=judgment_parts)
def test_swap_judgment_twice_is_identity(parts):
    text = "".join(parts)
    assert FMT.swap_judgment(FMT.swap_judgment(text)) == text


@pytest.mark.parametrize("winner", ["A", "B", "tie"])
def test_swap_judgment_flips_the_verdict_line_and_the_names(winner):
    text = f"{FMT.verdict_options()[winner]}\n\n### Reason: Response 1 is clearer than response 2.\n\n### Reference: cold"
    swapped = FMT.swap_judgment(text)
    assert FMT.parse(swapped).winner == flip_winner(winner)
    assert "### Reason: Response 2 is clearer than response 1." in swapped and swapped.endswith("### Reference: cold")
    assert FMT.swap_judgment("**1**\nResponse 1 wins.") == "**2**\nResponse 2 wins."


def test_judging_with_the_tiny_model_reads_verdict_probabilities(tiny_model, tiny_tokenizer):
    from judgetrain.judging.backends.transformers_backend import TransformersBackend
    from judgetrain.judging.judge import Judge

    judge = Judge(FMT, TransformersBackend(tiny_model, tiny_tokenizer, batch_size=2), both_orders=True)
    assert judge.decoding.stop == ("\n",) and judge.decoding.max_new_tokens == 32
    for judgment in judge.judge([_sample(Label(winner="A"))]):
        assert judgment.prompt_messages[0]["content"].endswith("### Evaluation:\n")
        for order in (judgment.both_orders.original.to_dict(), judgment.both_orders.swapped.to_dict()):
            # A random model writes no verdict line: a ParseFailure, never a tie; its first-token
            # probabilities over "1" / "2" / "Tie" are still read and normalised.
            assert order["parse_failure"] is not None or order["verdict"]["winner"] in ("A", "B", "tie")
            assert set(order["verdict_probabilities"]) == {"A", "B", "tie"}
            assert abs(sum(order["verdict_probabilities"].values()) - 1) < 1e-6
