"""JudgeLM formats: score-line targets parse back to their label, the winner follows the scores and the
tie threshold, adversarial outputs give the right verdict or a ParseFailure with a reason, swapping a
judgment exchanges the scores and the names and is an involution, and the verdict survives stopping
generation at the first newline."""

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from judgetrain.formats import judgelm
from judgetrain.types import Answer, JudgeSample, Label, ParseFailure, Verdict, flip_winner

FORMATS = {fmt.name: fmt for fmt in judgelm.FORMATS}
PAIR, REF, SINGLE = FORMATS["judgelm-v1"], FORMATS["judgelm-ref-v1"], FORMATS["judgelm-single-v1"]

scores = st.one_of(st.integers(1, 10).map(float), st.sampled_from([1.5, 6.5, 7.25, 9.5]))
words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40)


def _winner(first: float, second: float, threshold: float = 0.0) -> str:
    """JudgeLM's translate_score_to_win_list, written out."""
    return "A" if first - second > threshold else "B" if second - first > threshold else "tie"


def _sample(fmt, label: Label | None, texts=("What is 2 + 2?", "4", "5"), **changes) -> JudgeSample:
    question, first, second = texts
    answers = (Answer(first, model="m1"), Answer(second, model="m2")) if fmt.protocol == "pairwise" else (Answer(first),)
    return JudgeSample(id="j1", source="test", question=question, answers=answers,
                       reference="Two plus two is four." if fmt.with_reference else None,
                       labels={"gpt4": label} if label is not None else {}, **changes)


def test_templates_and_attributes():
    assert sorted(FORMATS) == ["judgelm-ref-v1", "judgelm-single-ref-v1", "judgelm-single-v1", "judgelm-v1"]
    for fmt in FORMATS.values():
        assert fmt.family == "judgelm" and fmt.version == "v1" and fmt.score_scale == (1.0, 10.0)
        assert fmt.verdict_first and fmt.stop_strings() == ("\n",) and not fmt.multi_turn
    assert (PAIR.protocol, REF.protocol, SINGLE.protocol) == ("pairwise", "pairwise", "single")
    assert (PAIR.with_reference, REF.with_reference, SINGLE.with_reference) == (False, True, False)
    assert PAIR.tie_threshold == 0.0


def test_prompt_layout():
    user = REF.render(_sample(REF, None))[1]["content"]
    markers = ["[Question]\nWhat is 2 + 2?", "[Reference Answer]\nTwo plus two is four.",
               "[The Start of Assistant 1's Answer]\n4\n[The End of Assistant 1's Answer]",
               "[The Start of Assistant 2's Answer]\n5\n[The End of Assistant 2's Answer]", "[System]\n"]
    positions = [user.index(marker) for marker in markers]
    assert positions == sorted(positions)
    assert user.endswith(REF.instruction) and "1 to 10" in REF.instruction and "first line" in REF.instruction
    plain = PAIR.render(_sample(PAIR, None))
    assert [m["role"] for m in plain] == ["system", "user"] and "[Reference Answer]" not in plain[1]["content"]
    single = SINGLE.render(_sample(SINGLE, None))[1]["content"]
    assert "Assistant 2" not in single and "[The Start of the Assistant's Answer]\n4\n" in single


@settings(max_examples=60, deadline=None)
@given(first=scores, second=scores, texts=st.tuples(words, words, words), with_reference=st.booleans())
def test_pairwise_label_target_parses_back(first, second, texts, with_reference):
    fmt = REF if with_reference else PAIR
    label = Label(winner=_winner(first, second), scores=(first, second), scale=(1, 10))
    messages = fmt.render(_sample(fmt, label, texts))
    assert messages[-1]["role"] == "assistant" and "\n" not in messages[-1]["content"]
    verdict = fmt.parse(messages[-1]["content"], strict=True)
    assert isinstance(verdict, Verdict) and not verdict.lenient and verdict.template == fmt.name
    assert verdict.scores == (first, second) and verdict.winner == label.winner


@settings(max_examples=40, deadline=None)
@given(score=scores, texts=st.tuples(words, words, words))
def test_single_label_target_parses_back(score, texts):
    target = SINGLE.render(_sample(SINGLE, Label(scores=(score,), scale=(1, 10)), texts))[-1]["content"]
    verdict = SINGLE.parse(target)
    assert isinstance(verdict, Verdict) and verdict.scores == (score,) and verdict.winner is None


@settings(max_examples=80, deadline=None)
@given(first=scores, second=scores, threshold=st.sampled_from([0.0, 0.5, 1.0, 2.0]))
def test_winner_follows_the_scores_and_the_tie_threshold(first, second, threshold):
    fmt = dataclasses.replace(PAIR, tie_threshold=threshold)
    text = f"{judgelm.format_score(first)} {judgelm.format_score(second)}\nExplanation."
    verdict = fmt.parse(text)
    assert verdict.winner == _winner(first, second, threshold) and verdict.scores == (first, second)


def test_bad_tie_threshold_and_contradicting_label():
    for bad in (-0.5, float("nan"), "1"):
        with pytest.raises(ValueError, match="tie_threshold"):
            dataclasses.replace(PAIR, tie_threshold=bad)
    with pytest.raises(ValueError, match="winner 'B'"):
        PAIR.target(_sample(PAIR, Label(winner="B", scores=(9, 2))))
    # A label on another declared scale is mapped onto 1-10 linearly (1-5: 5 -> 10, 2 -> 3.25).
    assert PAIR.target(_sample(PAIR, Label(winner="A", scores=(5, 2), scale=(1, 5)))) == "10 3.25"


def test_target_sources():
    label = Label(winner="A", scores=(8, 3), scale=(1, 10))
    sample = _sample(REF, label).replace(labels={"gpt4": label, "gpt4_with_reference": Label(winner="B", scores=(2, 7))})
    assert PAIR.target(sample) == "8 3"
    assert REF.target(sample) == "2 7"  # the with-reference teacher's scores for the with-reference prompt
    judged = sample.replace(judgment="8 3\nAssistant 1 is right.", judgment_with_reference="9 1\nMatches the reference.")
    assert PAIR.target(judged) == "8 3\nAssistant 1 is right."
    assert REF.target(judged) == "9 1\nMatches the reference."
    # A winner alone gives no JudgeLM target: its verdict is scores, and none were given.
    winner_only = _sample(PAIR, Label(winner="A"))
    assert PAIR.target(winner_only) is None and [m["role"] for m in PAIR.render(winner_only)] == ["system", "user"]


def test_multi_turn_samples():
    conversation = dict(question=("Name a prime.", "Another one?"), turn=1,
                        answers=(Answer(("2", "3")), Answer(("4", "9"))))
    sample = _sample(PAIR, None).replace(**conversation)
    user = PAIR.render(sample)[1]["content"]
    assert "Name a prime." in user and "Another one?" not in user and "\n9\n" not in user
    with pytest.raises(ValueError, match="multi-turn template"):
        PAIR.render(sample.replace(turn=2))
    with pytest.raises(ValueError, match="needs one"):
        REF.render(_sample(PAIR, None))


PAIR_CASES = [
    ("", "empty output", "empty output"),
    ("  \n\t", "empty output", "empty output"),
    ("9 2\nAssistant 1 is correct.", (9.0, 2.0), (9.0, 2.0)),
    ("7,7\nBoth fine.", (7.0, 7.0), (7.0, 7.0)),
    ("7.5 8\nClose.", (7.5, 8.0), (7.5, 8.0)),
    ("8  6\nTwo spaces.", "is not two scores", (8.0, 6.0)),
    ("8, 6.\nComma and period.", "is not two scores", (8.0, 6.0)),
    ("**8 6**\nBold.", "is not two scores", (8.0, 6.0)),
    ("Scores: 3 9\nPrefixed.", "is not two scores", (3.0, 9.0)),
    ("Assistant 1: 8, Assistant 2: 6\nLabelled.", "is not two scores", (8.0, 6.0)),
    ("\n\n5 4\nLeading blank lines.", "is not two scores", (5.0, 4.0)),
    ("11 2\nOut of range.", "outside the scale", "outside the scale"),
    ("0 7\nOut of range.", "outside the scale", "outside the scale"),
    ("8 2 9\nThree numbers.", "holds 3 numbers", "holds 3 numbers"),
    ("8 2 2 8\nTwo conflicting score pairs.", "holds 4 numbers", "holds 4 numbers"),
    ("Assistant 1 is better.\n9 2", "is not two scores", "is not two scores"),
    ("助手1更好。\n9 2", "is not two scores", "is not two scores"),
    ("9 2\n助手1的回答正确，助手2的回答错误。", (9.0, 2.0), (9.0, 2.0)),
    ("8 3\nDie erste Antwort ist richtig.", (8.0, 3.0), (8.0, 3.0)),
    ("Rating: [[7.5]]", "is not two scores", "is not two scores"),
]
SINGLE_CASES = [
    ("", "empty output", "empty output"),
    ("8\nGood.", (8.0,), (8.0,)),
    ("7.5\nFine.", (7.5,), (7.5,)),
    ("Score: 7\nPrefixed.", "is not one score", (7.0,)),
    ("**6**.\nBold.", "is not one score", (6.0,)),
    ("8/10\nOut of ten.", "holds 2 numbers", (8.0,)),
    ("12\nToo high.", "outside the scale", "outside the scale"),
    ("8 9\nTwo scores.", "holds 2 numbers", "holds 2 numbers"),
    ("Rating: [[7.5]]", "is not one score", "is not one score"),
    ("很好\n8", "is not one score", "is not one score"),
]


@pytest.mark.parametrize("fmt,text,strict_expected,lenient_expected",
                         [(PAIR, *case) for case in PAIR_CASES] + [(SINGLE, *case) for case in SINGLE_CASES],
                         ids=[f"pair-{i}" for i in range(len(PAIR_CASES))] + [f"single-{i}" for i in range(len(SINGLE_CASES))])
def test_adversarial_outputs(fmt, text, strict_expected, lenient_expected):
    for strict, expected in ((True, strict_expected), (False, lenient_expected)):
        result = fmt.parse(text, strict=strict)
        if isinstance(expected, str):
            assert isinstance(result, ParseFailure), (strict, result)
            assert expected in result.reason and result.raw_text == text and result.template == fmt.name
        else:
            assert isinstance(result, Verdict), (strict, result)
            assert result.scores == expected
            assert result.lenient == (not strict and isinstance(strict_expected, str))
            if fmt.protocol == "pairwise":
                assert result.winner == _winner(*expected)


@pytest.mark.parametrize("fmt", [PAIR, REF, SINGLE], ids=lambda f: f.name)
def test_an_echoed_prompt_is_not_a_verdict(fmt):
    label = Label(scores=(9, 2) if fmt.protocol == "pairwise" else (9,))
    prompt = "\n".join(m["content"] for m in fmt.render(_sample(fmt, label), include_target=False))
    for strict in (True, False):
        assert isinstance(fmt.parse(prompt, strict=strict), ParseFailure)
    verdict_line = "3 8" if fmt.protocol == "pairwise" else "3"
    echoed = f"{prompt}\n{verdict_line}\nThe second answer is right."
    assert isinstance(fmt.parse(echoed, strict=True), ParseFailure)  # its first line is not a score line
    lenient = fmt.parse(echoed, strict=False)
    assert isinstance(lenient, Verdict) and lenient.lenient
    assert lenient.scores == ((3.0, 8.0) if fmt.protocol == "pairwise" else (3.0,))
    assert lenient.critique == "The second answer is right."


@settings(max_examples=60, deadline=None)
@given(first=scores, second=scores, explanation=words)
def test_stopping_at_the_first_newline_keeps_the_verdict(first, second, explanation):
    full = f"{judgelm.format_score(first)} {judgelm.format_score(second)}\n{explanation}"
    stop = PAIR.stop_strings()[0]
    stopped = full[: full.index(stop)]
    assert PAIR.parse(stopped).scores == PAIR.parse(full).scores == (first, second)
    assert PAIR.parse(stopped).winner == PAIR.parse(full).winner


judgment_parts = st.lists(
    st.sampled_from(["Assistant 1", "Assistant 2", "assistant 1", "assistant 2", "Assistant 10", "Assistant 1's",
                     "8", "3", "7.5", ",", " ", "\n", "**", "Scores:", "better than"]) | words,
    max_size=12,
)


@settings(max_examples=80, deadline=None)
@given(parts=judgment_parts)
def test_swap_judgment_twice_is_identity(parts):
    text = " ".join(parts)
    for fmt in FORMATS.values():
        assert fmt.swap_judgment(fmt.swap_judgment(text)) == text


@settings(max_examples=60, deadline=None)
@given(first=scores, second=scores, score_line=st.sampled_from(["{a} {b}", "{a},{b}", "**{a}, {b}**", "Assistant 1: {a}, Assistant 2: {b}"]))
def test_swap_judgment_exchanges_scores_and_names(first, second, score_line):
    a, b = judgelm.format_score(first), judgelm.format_score(second)
    text = score_line.format(a=a, b=b) + "\nAssistant 1 is more precise than Assistant 2; assistant 10 is absent."
    swapped = PAIR.swap_judgment(text)
    assert swapped.splitlines()[0] == score_line.format(a=b, b=a)
    assert swapped.splitlines()[1] == "Assistant 2 is more precise than Assistant 1; assistant 10 is absent."
    before, after = PAIR.parse(text, strict=False), PAIR.parse(swapped, strict=False)
    assert after.scores == tuple(reversed(before.scores)) and after.winner == flip_winner(before.winner)


def test_single_template_leaves_judgments_unchanged_on_swap():
    text = "8\nAssistant 1 did well."
    assert SINGLE.swap_judgment(text) == text
