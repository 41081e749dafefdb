"""MT-bench formats: FastChat's eight prompts render byte-identical to FastChat's own filling of
judge_prompts.jsonl; label-built targets parse back to their label; adversarial outputs give the
right verdict or a ParseFailure with a reason; swapping a judgment twice is the identity."""

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from judgetrain.formats import mtbench
from judgetrain.types import Answer, JudgeSample, Label, ParseFailure, Verdict, flip_winner

from format_checks import check_adversarial

FORMATS = {fmt.name: fmt for fmt in mtbench.FORMATS}
PAIRWISE = [name for name, fmt in FORMATS.items() if fmt.protocol == "pairwise"]
SINGLE = [name for name, fmt in FORMATS.items() if fmt.protocol == "single"]
NEED_REF_CATS = ("math", "reasoning", "coding")  # FastChat llm_judge/common.py
ANSWER_MODELS = ("gpt-4", "vicuna-13b-v1.3")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def mt_bench(shared_data):
    """FastChat's prompts, questions, GPT-4 references and two models' answers, from the shared data."""
    root = shared_data / "fastchat_mt_bench"
    answers = {
        model: {row["question_id"]: row for row in _jsonl(root / "model_answer" / f"{model}.jsonl")} for model in ANSWER_MODELS
    }
    return {
        "root": root,
        "prompts": {row["name"]: row for row in _jsonl(root / "judge_prompts.jsonl")},
        "questions": _jsonl(root / "question.jsonl"),
        "references": {row["question_id"]: row for row in _jsonl(root / "reference_answer" / "gpt-4.jsonl")},
        "answers": answers,
    }


def test_the_eight_fastchat_templates_are_registered():
    assert sorted(FORMATS) == sorted(f"mtbench-{name}" for name in (
        "pair-v2", "pair-v2-multi-turn", "pair-math-v1", "pair-math-v1-multi-turn",
        "single-v1", "single-math-v1", "single-v1-multi-turn", "single-math-v1-multi-turn"))
    for name, fmt in FORMATS.items():
        assert fmt.family == "mtbench" and fmt.version == "v" + name.split("-v")[1][0]
        assert fmt.with_reference == ("math" in name) and fmt.multi_turn == name.endswith("multi-turn")
        assert fmt.score_scale == ((1.0, 10.0) if fmt.protocol == "single" else None)
        assert not fmt.verdict_first and fmt.stop_strings() == ()


def test_shipped_files_are_fastchats_bytes(shared_data):
    shipped = Path(mtbench.__file__).resolve().parents[1] / "resources" / "mt_bench"
    for relative in ("judge_prompts.jsonl", "question.jsonl", "reference_answer/gpt-4.jsonl"):
        assert (shipped / relative).read_bytes() == (shared_data / "fastchat_mt_bench" / relative).read_bytes(), relative
    attribution = (shipped / "ATTRIBUTION.md").read_text(encoding="utf-8")
    assert "lm-sys/FastChat" in attribution and "0e6d3e4beaab66f4d3f93db72541a4abab8af28d" in attribution
    assert "Apache" in attribution


def _fastchat_messages(prompt: dict, question: dict, answer_turns: list[list[str]], reference: dict | None) -> list[dict]:
    """FastChat's run_judge_pair / run_judge_single filling, written out by hand with str.format."""
    kwargs = {}
    if reference is not None:
        kwargs["ref_answer_1"] = reference["choices"][0]["turns"][0]
        kwargs["ref_answer_2"] = reference["choices"][0]["turns"][1]
    multi_turn = prompt["name"].endswith("multi-turn")
    if prompt["type"] == "pairwise" and multi_turn:
        user = prompt["prompt_template"].format(
            question_1=question["turns"][0], question_2=question["turns"][1],
            answer_a_1=answer_turns[0][0], answer_b_1=answer_turns[1][0],
            answer_a_2=answer_turns[0][1], answer_b_2=answer_turns[1][1], **kwargs)
    elif prompt["type"] == "pairwise":
        user = prompt["prompt_template"].format(
            question=question["turns"][0], answer_a=answer_turns[0][0], answer_b=answer_turns[1][0], **kwargs)
    elif multi_turn:
        user = prompt["prompt_template"].format(
            question_1=question["turns"][0], question_2=question["turns"][1],
            answer_1=answer_turns[0][0], answer_2=answer_turns[0][1], **kwargs)
    else:
        user = prompt["prompt_template"].format(question=question["turns"][0], answer=answer_turns[0][0], **kwargs)
    return [{"role": "system", "content": prompt["system_prompt"]}, {"role": "user", "content": user}]


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_render_is_byte_identical_to_fastchat(name, mt_bench):
    fmt = FORMATS[name]
    prompt = mt_bench["prompts"][fmt.fastchat_name]
    models = ANSWER_MODELS if fmt.protocol == "pairwise" else ANSWER_MODELS[:1]
    checked = 0
    for question in mt_bench["questions"]:
        qid = question["question_id"]
        reference = mt_bench["references"].get(qid) if question["category"] in NEED_REF_CATS else None
        if fmt.with_reference != (reference is not None):
            continue
        answer_turns = [mt_bench["answers"][model][qid]["choices"][0]["turns"] for model in models]
        sample = JudgeSample(
            id=f"mt-bench:{qid}", source="mt-bench", question=tuple(question["turns"]),
            answers=tuple(Answer(tuple(turns), model=model) for turns, model in zip(answer_turns, models)),
            reference=tuple(reference["choices"][0]["turns"]) if reference is not None else None,
            category=question["category"], turn=2 if fmt.multi_turn else 1,
        )
        expected = _fastchat_messages(prompt, question, answer_turns, reference)
        assert fmt.render(sample) == expected, f"{name} question {qid}"
        if not fmt.multi_turn:
            # A single-turn sample holding turn 1 renders the same bytes.
            flat = sample.replace(question=question["turns"][0], turn=None,
                                  answers=tuple(Answer(turns[0]) for turns in answer_turns),
                                  reference=reference["choices"][0]["turns"][0] if reference is not None else None)
            assert fmt.render(flat) == expected
        checked += 1
    assert checked == (30 if fmt.with_reference else 50)


def _sample(fmt, label: Label, *, texts=("Why is the sky blue?", "Rayleigh scattering.", "Magic."), turn=None) -> JudgeSample:
    question, answer_a, answer_b = texts
    if fmt.multi_turn:
        question, answer_a, answer_b = (question, "And at sunset?"), (answer_a, "Longer path."), (answer_b, "More magic.")
        turn = 2 if turn is None else turn
    answers = (Answer(answer_a), Answer(answer_b)) if fmt.protocol == "pairwise" else (Answer(answer_a),)
    reference = None
    if fmt.with_reference:
        reference = ("Scattering of short wavelengths.", "Light crosses more air.") if fmt.multi_turn else "Scattering."
    return JudgeSample(id="s1", source="test", question=question, answers=answers, reference=reference,
                       turn=turn, labels={"gpt4": label})


ratings = st.one_of(st.integers(1, 10).map(float), st.sampled_from([1.5, 7.5, 9.25, 2.75]))
words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(PAIRWISE), winner=st.sampled_from(["A", "B", "tie"]), texts=st.tuples(words, words, words))
def test_pairwise_label_target_parses_back(name, winner, texts):
    fmt = FORMATS[name]
    sample = _sample(fmt, Label(winner=winner), texts=texts)
    messages = fmt.render(sample)
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    verdict = fmt.parse(messages[-1]["content"], strict=True)
    assert isinstance(verdict, Verdict) and verdict.winner == winner and verdict.scores is None
    assert verdict.template == name and not verdict.lenient


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(SINGLE), score=ratings, texts=st.tuples(words, words, words))
def test_single_label_target_parses_back(name, score, texts):
    fmt = FORMATS[name]
    sample = _sample(fmt, Label(scores=(score,), scale=(1, 10)), texts=texts)
    target = fmt.render(sample)[-1]["content"]
    assert target.startswith("Rating: [[")
    verdict = fmt.parse(target, strict=True)
    assert isinstance(verdict, Verdict) and verdict.scores == (score,) and verdict.winner is None


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_target_prefers_the_teachers_text_for_the_prompt_variant(name):
    fmt = FORMATS[name]
    label = Label(winner="B") if fmt.protocol == "pairwise" else Label(scores=(4,))
    sample = _sample(fmt, label).replace(judgment="Plain critique. [[A]] Rating: [[9]]",
                                         judgment_with_reference="With-reference critique.")
    expected = "With-reference critique." if fmt.with_reference else "Plain critique. [[A]] Rating: [[9]]"
    assert fmt.target(sample) == expected
    unlabelled = _sample(fmt, label).replace(labels={})
    assert fmt.target(unlabelled) is None
    assert [m["role"] for m in fmt.render(unlabelled)] == ["system", "user"]


def test_single_target_rejects_a_label_on_another_scale():
    fmt = FORMATS["mtbench-single-v1"]
    with pytest.raises(ValueError, match=r"scale"):
        fmt.target(_sample(fmt, Label(scores=(4,), scale=(1, 5))))


def test_turns_pick_the_template():
    plain, multi = FORMATS["mtbench-pair-v2"], FORMATS["mtbench-pair-v2-multi-turn"]
    turn2 = _sample(multi, Label(winner="A"))
    with pytest.raises(ValueError, match="mtbench-pair-v2-multi-turn"):
        plain.render(turn2)
    with pytest.raises(ValueError, match="turn 1 with 'mtbench-pair-v2'"):
        multi.render(turn2.replace(turn=1))
    assert multi.render(turn2.replace(turn=None)) == multi.render(turn2)
    # Turn 1 of a conversation shows only the turn-1 texts.
    user = plain.render(turn2.replace(turn=1))[1]["content"]
    assert "Rayleigh scattering." in user and "And at sunset?" not in user and "Longer path." not in user
    with pytest.raises(ValueError, match="single-turn"):
        multi.render(_sample(plain, Label(winner="A")))
    with pytest.raises(ValueError, match="needs one"):
        FORMATS["mtbench-pair-math-v1"].render(_sample(plain, Label(winner="A")))
    three_turns = turn2.replace(question=("a", "b", "c"), answers=(Answer(("1", "2", "3")), Answer(("1", "2", "3"))), turn=3)
    with pytest.raises(ValueError, match="exactly 2"):
        multi.render(three_turns)


PAIR = FORMATS["mtbench-pair-v2"]
GRADE = FORMATS["mtbench-single-v1"]


def _rendered_prompt(fmt) -> str:
    label = Label(winner="A") if fmt.protocol == "pairwise" else Label(scores=(5,))
    return "\n".join(m["content"] for m in fmt.render(_sample(fmt, label), include_target=False))


# (format, judge output, strict result, lenient result): a winner / score, or the failure reason's words.
ADVERSARIAL = [
    (PAIR, "", "empty output", "empty output"),
    (PAIR, " \n\t ", "empty output", "empty output"),
    (PAIR, "Both are fine, but A explains the physics.\n\n[[A]]", "A", "A"),
    (PAIR, "Assistant B is better. [[B]]", "B", "B"),
    (PAIR, "Equally good. [[C]]", "tie", "tie"),
    (PAIR, "Assistant A is better. [[A]]\n\nOn reflection: [[B]]", "conflicting", "conflicting"),
    (PAIR, "I cannot decide.", "no verdict", "no verdict"),
    (PAIR, "My final verdict is [[ a ]].", "no verdict", "A"),
    (PAIR, "Final verdict: **B**.", "no verdict", "B"),
    (PAIR, "Final verdict: [[Tie]]", "no verdict", "tie"),
    (PAIR, "My verdict is a tie.", "no verdict", "tie"),
    (PAIR, "Both answers are poor; neither is a clear winner.", "no verdict", "no verdict"),
    (PAIR, "助手A的回答更准确，解释了瑞利散射。[[A]] 以上。", "A", "A"),
    (PAIR, "Die Antwort von Assistent B ist besser.\n**[[B]]**", "B", "B"),
    (GRADE, "", "empty output", "empty output"),
    (GRADE, "Clear and correct. Rating: [[8]]", 8.0, 8.0),
    (GRADE, "Rating: [[7.5]]", 7.5, 7.5),
    (GRADE, "Rating: 7.5", "no rating", 7.5),
    (GRADE, "Rating: **6**", "no rating", 6.0),
    (GRADE, "Rating: [[ 9 ]].", "no rating", 9.0),
    (GRADE, "Rating: 7/10.", "no rating", 7.0),
    (GRADE, "Decent. [4]", "no rating", 4.0),
    (GRADE, "Rating: [[11]]", "outside the scale", "outside the scale"),
    (GRADE, "Rating: [[0]]", "outside the scale", "outside the scale"),
    (GRADE, "First [[3]], then on reflection [[8]].", "conflicting", "conflicting"),
    (GRADE, "Rating: [[8]] ... again Rating: [[8]]", 8.0, 8.0),
    (GRADE, "回答基本正确，但缺少细节。评分：[[6]]", 6.0, 6.0),
    (GRADE, "No score given.", "no rating", "no rating"),
]


@pytest.mark.parametrize("fmt,text,strict_expected,lenient_expected", ADVERSARIAL,
                         ids=[f"{fmt.name}-{i}" for i, (fmt, *_rest) in enumerate(ADVERSARIAL)])
def test_adversarial_outputs(fmt, text, strict_expected, lenient_expected):
    check_adversarial(fmt, text, strict_expected, lenient_expected)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_an_echoed_prompt_is_not_a_verdict(name):
    fmt = FORMATS[name]
    prompt = _rendered_prompt(fmt)
    # The prompt spells out the verdict tokens ("[[A]]" if assistant A …, "Rating: [[5]]").
    assert "[[A]]" in prompt or "[[5]]" in prompt
    for strict in (True, False):
        echoed = fmt.parse(prompt, strict=strict)
        assert isinstance(echoed, ParseFailure) and "conflicting" not in echoed.reason
    verdict_text = "[[B]]" if fmt.protocol == "pairwise" else "Rating: [[3]]"
    after_echo = fmt.parse(f"{prompt}\n\nThe second answer is more precise.\n{verdict_text}")
    assert isinstance(after_echo, Verdict)
    assert (after_echo.winner if fmt.protocol == "pairwise" else after_echo.scores) == ("B" if fmt.protocol == "pairwise" else (3.0,))
    assert after_echo.critique.endswith("The second answer is more precise.")
    assert "[[A]]" not in after_echo.critique and "[[5]]" not in after_echo.critique


def test_critique_is_the_explanation_before_the_verdict():
    verdict = PAIR.parse("Assistant A cites the physics; B does not.\n\n[[A]]")
    assert verdict.critique == "Assistant A cites the physics; B does not."
    assert PAIR.parse("[[B]]\nB is shorter and right.").critique == "B is shorter and right."


judgment_parts = st.lists(
    st.sampled_from(["Assistant A", "Assistant B", "assistant A", "assistant B", "[[A]]", "[[B]]", "[[C]]",
                     "Assistant AB", "Assistant A's", " ", "\n", "better than", "A", "B", "tie", "**"]) | words,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(parts=judgment_parts)
def test_swap_judgment_twice_is_identity(parts):
    text = " ".join(parts)
    for fmt in FORMATS.values():
        assert fmt.swap_judgment(fmt.swap_judgment(text)) == text


@pytest.mark.parametrize("name", PAIRWISE)
@pytest.mark.parametrize("winner", ["A", "B", "tie"])
def test_swap_judgment_flips_the_verdict_and_the_names(name, winner):
    fmt = FORMATS[name]
    text = f"Assistant A is clearer than assistant B.\n{PAIR.verdict_options()[winner]}"
    swapped = fmt.swap_judgment(text)
    assert swapped.startswith("Assistant B is clearer than assistant A.")
    assert fmt.parse(swapped).winner == flip_winner(winner)


def test_single_templates_leave_judgments_unchanged_on_swap():
    text = "Assistant A's answer is fine. Rating: [[7]]"
    assert all(FORMATS[name].swap_judgment(text) == text for name in SINGLE)
