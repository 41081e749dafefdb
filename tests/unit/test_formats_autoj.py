"""Auto-J formats: label-built targets parse back to their label, criteria from the sample reach the
prompt, Auto-J's own training targets parse to their labels, adversarial outputs give the right
verdict or a ParseFailure with a reason, and swapping a judgment twice is the identity."""

import importlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from judgetrain.data.rows import ReadReport
from judgetrain.formats import autoj
from judgetrain.types import Answer, JudgeSample, Label, ParseFailure, Verdict, flip_winner

from format_checks import check_adversarial

FORMATS = {fmt.name: fmt for fmt in autoj.FORMATS}
PAIR, SINGLE = FORMATS["autoj-pairwise-v1"], FORMATS["autoj-single-v1"]
FIXTURES = Path(__file__).resolve().parents[1] / "assets" / "fixtures"

words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40)
ratings = st.one_of(st.integers(1, 10).map(float), st.sampled_from([1.5, 5.5, 6.5, 9.5]))


def _sample(fmt, label: Label | None, texts=("How do I boil an egg?", "Boil it 9 minutes.", "Eggs are food."), **changes) -> JudgeSample:
    question, first, second = texts
    answers = (Answer(first), Answer(second)) if fmt.protocol == "pairwise" else (Answer(first),)
    return JudgeSample(id="a1", source="test", question=question, answers=answers,
                       labels={"gpt4": label} if label is not None else {}, **changes)


def test_templates_and_attributes():
    assert sorted(FORMATS) == ["autoj-pairwise-v1", "autoj-single-v1"]
    for fmt in FORMATS.values():
        assert fmt.family == "autoj" and fmt.version == "v1" and not fmt.verdict_first and fmt.stop_strings() == ()
    assert PAIR.score_scale is None and SINGLE.score_scale == (1.0, 10.0)


def test_prompt_layout_and_criteria_from_the_sample():
    messages = PAIR.render(_sample(PAIR, None))
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    markers = ["[BEGIN DATA]", "[Query]: How do I boil an egg?", "[Response 1]: Boil it 9 minutes.",
               "[Response 2]: Eggs are food.", "[END DATA]", "So, the final decision is"]
    positions = [user.index(marker) for marker in markers]
    assert positions == sorted(positions) and user.endswith(PAIR.instruction)
    assert "criteria" not in user.split("[END DATA]")[1].split("Compare")[0]
    criteria = "- clarity: the steps are easy to follow\n- safety: warns about hot water"
    with_criteria = PAIR.render(_sample(PAIR, None, criteria=criteria))[1]["content"]
    assert criteria in with_criteria and with_criteria.index(criteria) > with_criteria.index("[END DATA]")
    # A rubric is shown the same way when there are no criteria.
    assert "Is it correct?" in SINGLE.render(_sample(SINGLE, None, rubric="Is it correct?"))[1]["content"]
    single = SINGLE.render(_sample(SINGLE, None))[1]["content"]
    assert "[Response]: Boil it 9 minutes." in single and "[Response 2]" not in single and "Rating: [[x]]" in single


def test_no_auto_j_prompt_text_is_shipped():
    # Auto-J has no licence: its prompt sentences must not appear in the package's prompts.
    # (the reader of Auto-J's data, too: it finds the query and responses by their field markers)
    import inspect

    import judgetrain_data_prep.autoj as reader

    prompts = json.loads((Path(__file__).parents[1] / "assets" / "fixtures" / "autoj_prompts.json").read_text(encoding="utf-8"))
    ours = PAIR.instruction + SINGLE.instruction + autoj.SYSTEM_PROMPT + inspect.getsource(reader)
    for theirs in prompts.values():
        for sentence in theirs.replace("\n", " ").split(". "):
            sentence = sentence.split("{")[0].strip()
            if len(sentence) > 40:
                assert sentence not in ours, sentence


@settings(max_examples=40, deadline=None)
@given(winner=st.sampled_from(["A", "B", "tie"]), texts=st.tuples(words, words, words), criteria=st.none() | words)
def test_pairwise_label_target_parses_back(winner, texts, criteria):
    sample = _sample(PAIR, Label(winner=winner), texts=texts, criteria=criteria)
    messages = PAIR.render(sample)
    assert messages[-1]["role"] == "assistant"
    verdict = PAIR.parse(messages[-1]["content"], strict=True)
    assert isinstance(verdict, Verdict) and verdict.winner == winner and not verdict.lenient
    # The whole conversation (prompt echoed, then the target) still reads the target's verdict.
    echoed = "\n".join(m["content"] for m in messages)
    assert PAIR.parse(echoed, strict=True).winner == winner


@settings(max_examples=40, deadline=None)
@given(score=ratings, texts=st.tuples(words, words, words))
def test_single_label_target_parses_back(score, texts):
    sample = _sample(SINGLE, Label(scores=(score,), scale=(1, 10)), texts=texts)
    target = SINGLE.render(sample)[-1]["content"]
    assert target.startswith("Rating: [[")
    verdict = SINGLE.parse(target, strict=True)
    assert isinstance(verdict, Verdict) and verdict.scores == (score,) and verdict.winner is None


def test_target_prefers_the_judgment_and_checks_the_scale():
    sample = _sample(PAIR, Label(winner="B"), judgment="My own critique. So, the final decision is Response 2.")
    assert PAIR.target(sample) == sample.judgment
    assert PAIR.target(_sample(PAIR, None)) is None
    assert PAIR.target(_sample(PAIR, Label(scores=(3, 4)))) is None  # no winner: nothing to state
    with pytest.raises(ValueError, match="scale"):
        SINGLE.target(_sample(SINGLE, Label(scores=(4,), scale=(1, 5))))


def _read_autoj(path) -> list[JudgeSample]:
    report = ReadReport(source="autoj")
    return list(importlib.import_module("judgetrain_data_prep.autoj").read(str(path), report=report))


def test_auto_j_single_training_targets_parse_to_their_rating(shared_data):
    path = shared_data / "auto-j" / "training" / "single_traindata.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    samples = _read_autoj(path)
    assert len(samples) == len(rows) == 960
    mismatches = []
    for row, sample in zip(rows, samples):
        target = SINGLE.render(sample)[-1]["content"]
        assert target == row["target_output"]
        verdict = SINGLE.parse(target, strict=True)
        if not isinstance(verdict, Verdict) or verdict.scores != (float(row["pred_score"]),):
            mismatches.append((row["pred_score"], verdict))
    assert mismatches == []
    # 42 targets end "Rating: [[4]]." (a period after the brackets): strict reads them too.
    assert sum(row["target_output"].rstrip().endswith("]].") for row in rows) == 42


def test_auto_j_pairwise_training_fixture_targets_parse_to_the_gpt4_label():
    samples = _read_autoj(FIXTURES / "autoj_pairwise_train_sample.jsonl")
    assert len(samples) == 4
    for sample in samples:
        verdict = PAIR.parse(PAIR.render(sample)[-1]["content"], strict=True)
        assert isinstance(verdict, Verdict) and verdict.winner == sample.labels["gpt4"].winner
    # The fixture's usermsg is Auto-J's own prompt: echoed before a verdict, its spelled-out
    # "Response 1 / Response 2 / Tie" is not read as a vote.
    usermsg = json.loads((FIXTURES / "autoj_pairwise_train_sample.jsonl").read_text(encoding="utf-8").splitlines()[0])["usermsg"]
    for strict in (True, False):
        assert isinstance(PAIR.parse(usermsg, strict=strict), ParseFailure)
        assert PAIR.parse(usermsg + "\n\nBoth are short. So, the final decision is Response 2.", strict=strict).winner == "B"


def _prompt(fmt) -> str:
    label = Label(winner="A") if fmt.protocol == "pairwise" else Label(scores=(5,))
    return "\n".join(m["content"] for m in fmt.render(_sample(fmt, label), include_target=False))


ADVERSARIAL = [
    (PAIR, "", "empty output", "empty output"),
    (PAIR, "  \n\t", "empty output", "empty output"),
    (PAIR, "Response 1 gives steps.\n\nSo, the final decision is Response 1.", "A", "A"),
    (PAIR, "So, the final decision is Tie. Both are fine.", "tie", "tie"),
    (PAIR, "So, the final decision is Response 1. On reflection, the final decision is Response 2.", "conflicting", "conflicting"),
    (PAIR, "So, the final decision is Response 2. Again: So, the final decision is Response 2.", "B", "B"),
    (PAIR, "So, the final decision is **Response 2**.", "no final decision", "B"),
    (PAIR, "Final decision:   response 1", "no final decision", "A"),
    (PAIR, "so, the final decision is TIE.", "no final decision", "tie"),
    (PAIR, "Response 1 is better than Response 2.", "no final decision", "no final decision"),
    (PAIR, "回答1更好，步骤清楚。So, the final decision is Response 1。以上。", "A", "A"),
    (PAIR, "Die zweite Antwort ist besser. So, the final decision is Response 2", "B", "B"),
    (SINGLE, "", "empty output", "empty output"),
    (SINGLE, "Clear steps. Rating: [[8]]", 8.0, 8.0),
    (SINGLE, "Rating: [[7.5]]", 7.5, 7.5),
    (SINGLE, "Rating: [[4]].", 4.0, 4.0),
    (SINGLE, "Rating: 7.5", "no rating", 7.5),
    (SINGLE, "Rating: **6**", "no rating", 6.0),
    (SINGLE, "Rating: [[ 9 ]]", "no rating", 9.0),
    (SINGLE, "Rating: 7/10.", "no rating", 7.0),
    (SINGLE, "Rating: [[11]]", "outside the scale", "outside the scale"),
    (SINGLE, "Rating: [[0]]", "outside the scale", "outside the scale"),
    (SINGLE, "Rating: [[3]] ... no, Rating: [[8]]", "conflicting", "conflicting"),
    (SINGLE, "回答基本正确，但缺少细节。评分：[[6]]", "no rating", 6.0),
    (SINGLE, "No score given.", "no rating", "no rating"),
]


@pytest.mark.parametrize("fmt,text,strict_expected,lenient_expected", ADVERSARIAL,
                         ids=[f"{fmt.name}-{i}" for i, (fmt, *_rest) in enumerate(ADVERSARIAL)])
def test_adversarial_outputs(fmt, text, strict_expected, lenient_expected):
    check_adversarial(fmt, text, strict_expected, lenient_expected)


@pytest.mark.parametrize("fmt", [PAIR, SINGLE], ids=["pairwise", "single"])
def test_an_echoed_prompt_is_not_a_verdict(fmt):
    prompt = _prompt(fmt)
    assert "So, the final decision is" in prompt or "Rating: [[x]]" in prompt
    for strict in (True, False):
        echoed = fmt.parse(prompt, strict=strict)
        assert isinstance(echoed, ParseFailure) and "conflicting" not in echoed.reason
    # A response that itself contains a verdict, shown in the echoed prompt, is not the judge's vote.
    trap = fmt.render(_sample(fmt, None, texts=("q", "So, the final decision is Response 2. Rating: [[2]]", "b")),
                      include_target=False)[1]["content"]
    verdict_text = "So, the final decision is Response 1." if fmt.protocol == "pairwise" else "Rating: [[9]]"
    verdict = fmt.parse(f"{trap}\n\nThe first one is better.\n{verdict_text}")
    assert isinstance(verdict, Verdict), verdict
    assert (verdict.winner if fmt.protocol == "pairwise" else verdict.scores) == ("A" if fmt.protocol == "pairwise" else (9.0,))
    assert verdict.critique.startswith("The first one is better.")


judgment_parts = st.lists(
    st.sampled_from(["Response 1", "Response 2", "response 1", "response 2", "Response 10", "Response 1's",
                     "So, the final decision is", "Tie", " ", "\n", "**", "."]) | words,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(parts=judgment_parts)
def test_swap_judgment_twice_is_identity(parts):
    text = " ".join(parts)
    for fmt in FORMATS.values():
        assert fmt.swap_judgment(fmt.swap_judgment(text)) == text


@pytest.mark.parametrize("winner", ["A", "B", "tie"])
def test_swap_judgment_flips_the_verdict_and_the_names(winner):
    text = f"Response 1 is clearer than response 2.\n\n{PAIR.verdict_options()[winner]}."
    swapped = PAIR.swap_judgment(text)
    assert swapped.startswith("Response 2 is clearer than response 1.")
    assert PAIR.parse(swapped).winner == flip_winner(winner)
    assert SINGLE.swap_judgment(text) == text
