"""Prometheus formats: absolute prompts reproduce the published evaluation prompts byte for byte, the
relative prompts are prometheus-eval's, label-built targets parse back to their label, GPT-4's
published feedback with its grades parses to those grades, adversarial outputs give the right verdict
or a ParseFailure with a reason, and swapping a judgment twice is the identity."""

import importlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from judgetrain.data.rows import ReadReport
from judgetrain.formats import prometheus
from judgetrain.types import Answer, JudgeSample, Label, ParseFailure, Verdict, flip_winner

from format_checks import check_adversarial

FORMATS = {fmt.name: fmt for fmt in prometheus.FORMATS}
ABS, ABS_REF = FORMATS["prometheus-absolute-v1"], FORMATS["prometheus-absolute-ref-v1"]
REL, REL_REF = FORMATS["prometheus-relative-v1"], FORMATS["prometheus-relative-ref-v1"]
RUBRIC = "[Is the answer correct?]\nScore 1: Wrong.\nScore 2: Mostly wrong.\nScore 3: Half right.\nScore 4: Mostly right.\nScore 5: Right."

words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40)


def _sample(fmt, label: Label | None, texts=("What is 2 + 2?", "4", "5"), **changes) -> JudgeSample:
    question, first, second = texts
    answers = (Answer(first), Answer(second)) if fmt.protocol == "pairwise" else (Answer(first),)
    return JudgeSample(id="p1", source="test", question=question, answers=answers, rubric=changes.pop("rubric", RUBRIC),
                       reference="Four." if fmt.with_reference else None,
                       labels={"gpt4": label} if label is not None else {}, **changes)


def _read(path) -> list[JudgeSample]:
    return list(importlib.import_module("judgetrain_data_prep.prometheus").read(str(path), report=ReadReport(source="prometheus")))


def test_templates_and_attributes():
    assert sorted(FORMATS) == ["prometheus-absolute-ref-v1", "prometheus-absolute-v1",
                               "prometheus-relative-ref-v1", "prometheus-relative-v1"]
    for fmt in FORMATS.values():
        assert fmt.family == "prometheus" and fmt.version == "v1" and not fmt.verdict_first and fmt.stop_strings() == ()
        assert fmt.with_reference == ("-ref-" in fmt.name)
        assert fmt.score_scale == ((1.0, 5.0) if fmt.protocol == "single" else None)
    assert ABS.protocol == ABS_REF.protocol == "single" and REL.protocol == REL_REF.protocol == "pairwise"


@pytest.mark.parametrize("filename", ["mt_bench_eval.json", "vicuna_eval.json"])
def test_absolute_prompt_and_gpt4_feedback_match_the_published_file(filename, shared_data):
    path = shared_data / "prometheus-eval" / filename
    rows = json.loads(path.read_text(encoding="utf-8"))
    samples = _read(path)
    assert len(samples) == len(rows) == 320
    mismatches, unread_feedback, critique_cut = [], 0, 0
    for row, sample in zip(rows, samples):
        messages = ABS_REF.render(sample)
        assert messages[0] == {"role": "system", "content": prometheus.ABS_SYSTEM_PROMPT}
        assert messages[1]["content"] == row["instruction"]
        # Each of GPT-4's three critiques, with the grade it was written for, is a target that reads that grade.
        for feedback, grade in zip(row["gpt4_feedback"], row["gpt4_score"], strict=True):
            graded = sample.replace(judgment=feedback, labels={"gpt4_1": Label(scores=(grade,), scale=(1, 5))})
            target = ABS_REF.target(graded)
            verdict = ABS_REF.parse(target, strict=True)
            if not isinstance(verdict, Verdict) or verdict.scores != (float(grade),):
                mismatches.append((row["idx"], grade, verdict))
            critique_cut += verdict.critique != feedback.strip()
            assert feedback.strip().startswith(verdict.critique) and verdict.critique
            unread_feedback += isinstance(ABS_REF.parse(feedback, strict=True), ParseFailure)
        # The reader's own target (first critique, its grade from meta["judgment_label"]) reads gpt4_score[0].
        assert ABS_REF.parse(messages[-1]["content"]).scores == (float(row["gpt4_score"][0]),)
    assert mismatches == []
    # The published critiques carry no "[RESULT] n" of their own: strict reads none of them.
    assert unread_feedback == 960
    # Only the one critique ending in its own "[RESULT] Score: 1." loses that tail from its critique
    # (three critiques contain a "###Feedback:" heading of GPT-4's own; they are kept whole).
    assert critique_cut == (1 if filename == "mt_bench_eval.json" else 0)


def test_the_one_published_critique_with_its_own_result(shared_data):
    rows = json.loads((shared_data / "prometheus-eval" / "mt_bench_eval.json").read_text(encoding="utf-8"))
    with_result = [(fb, grade) for row in rows for fb, grade in zip(row["gpt4_feedback"], row["gpt4_score"]) if "[RESULT]" in fb]
    assert len(with_result) == 1
    feedback, grade = with_result[0]
    assert feedback.rstrip().endswith("[RESULT] Score: 1.") and grade == 1
    assert isinstance(ABS_REF.parse(feedback, strict=True), ParseFailure)
    assert ABS_REF.parse(feedback, strict=False).scores == (1.0,)
    sample = JudgeSample(id="x", source="t", question="q", answers=(Answer("a"),), reference="r", rubric=RUBRIC,
                         judgment=feedback, labels={"gpt4_1": Label(scores=(1,), scale=(1, 5))}, meta={"judgment_label": "gpt4_1"})
    target = ABS_REF.target(sample)
    assert target.endswith("persona. [RESULT] 1") and target.count("[RESULT]") == 1


def test_absolute_prompt_without_reference_is_the_hhh_prompt(shared_data):
    path = shared_data / "prometheus-eval" / "hhh_alignment_eval.json"
    rows = json.loads(path.read_text(encoding="utf-8"))
    for row, sample in zip(rows, _read(path), strict=True):
        chosen, rejected = (sample.replace(answers=(answer,), labels={}) for answer in sample.answers)
        assert ABS.render(chosen)[1]["content"] == row["chosen_instruction"]
        assert ABS.render(rejected)[1]["content"] == row["rejected_instruction"]
        relative = REL.render(sample, include_target=False)
        assert relative[0]["content"] == prometheus.REL_SYSTEM_PROMPT
        assert f"###Response A:\n{sample.answers[0].text}\n\n###Response B:\n{sample.answers[1].text}\n\n" in relative[1]["content"]
        assert REL.render(sample)[-1]["content"] == "[RESULT] A"


def test_relative_prompts_are_prometheus_evals():
    user = REL_REF.render(_sample(REL_REF, None))[1]["content"]
    assert user == prometheus.RELATIVE_PROMPT.format(instruction="What is 2 + 2?", response_A="4", response_B="5",
                                                    reference_answer="Four.", rubric=RUBRIC)
    assert "###Reference Answer:" not in REL.render(_sample(REL, None))[1]["content"]
    with pytest.raises(ValueError, match="no rubric"):
        ABS.render(_sample(ABS, None, rubric=None))
    assert "criterion only" in ABS.render(_sample(ABS, None, rubric=None, criteria="criterion only"))[1]["content"]


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from([ABS.name, ABS_REF.name]), grade=st.integers(1, 5), texts=st.tuples(words, words, words),
       feedback=st.none() | words)
def test_absolute_label_target_parses_back(name, grade, texts, feedback):
    fmt = FORMATS[name]
    sample = _sample(fmt, Label(scores=(grade,), scale=(1, 5)), texts=texts, judgment=feedback)
    messages = fmt.render(sample)
    verdict = fmt.parse(messages[-1]["content"], strict=True)
    assert isinstance(verdict, Verdict) and verdict.scores == (float(grade),) and not verdict.lenient
    # Echoed prompt (its rubric says "Score 1: …", its format line "[RESULT] (an integer …)") then the target.
    echoed = messages[1]["content"] + messages[-1]["content"]
    assert fmt.parse(echoed, strict=False).scores == (float(grade),)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from([REL.name, REL_REF.name]), winner=st.sampled_from(["A", "B"]), texts=st.tuples(words, words, words))
def test_relative_label_target_parses_back(name, winner, texts):
    fmt = FORMATS[name]
    target = fmt.render(_sample(fmt, Label(winner=winner), texts=texts))[-1]["content"]
    verdict = fmt.parse(target, strict=True)
    assert isinstance(verdict, Verdict) and verdict.winner == winner


def test_targets_that_cannot_be_stated():
    assert REL.target(_sample(REL, Label(winner="tie"))) is None  # relative grading has no tie
    with pytest.raises(ValueError, match="not an integer"):
        ABS.target(_sample(ABS, Label(scores=(2.5,), scale=(1, 5))))
    with pytest.raises(ValueError, match="scale"):
        ABS.target(_sample(ABS, Label(scores=(8,), scale=(1, 10))))
    with pytest.raises(ValueError, match="without a result"):
        ABS.target(_sample(ABS, None, judgment="Good answer."))
    assert ABS.target(_sample(ABS, None)) is None


ADVERSARIAL = [
    (ABS, "", "empty output", "empty output"),
    (ABS, " \n\t", "empty output", "empty output"),
    (ABS, "The answer is right. [RESULT] 5", 5.0, 5.0),
    (ABS, "Feedback: Mostly right. [RESULT] 4", 4.0, 4.0),
    (ABS, "Good. [RESULT] 4.", 4.0, 4.0),
    (ABS, "Good. [RESULT]: 4", "no result", 4.0),
    (ABS, "Good. [RESULT] **3**", "no result", 3.0),
    (ABS, "Good. [RESULT] (2)", "no result", 2.0),
    (ABS, "Good. [RESULT] 4/5", 4.0, 4.0),
    (ABS, "Good. [RESULT] Score: 1.", "no result", 1.0),
    (ABS, "It falls short of the criteria for a score of 5.\nScore: 4", "no result", 4.0),
    (ABS, "It falls short of the criteria for a score of 5.", "no result", "no result"),
    (ABS, "Good. [RESULT] 4.5", "no result", "not an integer"),
    (ABS, "Good. [RESULT] 6", "outside the scale", "outside the scale"),
    (ABS, "Good. [RESULT] 0", "outside the scale", "outside the scale"),
    (ABS, "Bad. [RESULT] 2\nOn reflection [RESULT] 4", "conflicting", "conflicting"),
    (ABS, "Bad. [RESULT] 2\nAgain: [RESULT] 2", 2.0, 2.0),
    (ABS, "回答正确，解释清楚。[RESULT] 5", 5.0, 5.0),
    (ABS, "Die Antwort ist falsch. [RESULT] 1 Ende.", 1.0, 1.0),
    (REL, "", "empty output", "empty output"),
    (REL, "Response A is right. [RESULT] A", "A", "A"),
    (REL, "Response B is right. [RESULT] B", "B", "B"),
    (REL, "[RESULT] **B**", "no result", "B"),
    (REL, "[RESULT]: Response A", "no result", "A"),
    (REL, "Result: B", "no result", "B"),
    (REL, "Both equal. [RESULT] tie", "no result", "does not give"),
    (REL, "[RESULT] a tie", "no result", "does not give"),
    (REL, "[RESULT] A ... actually [RESULT] B", "conflicting", "conflicting"),
    (REL, "Response A is better than Response B.", "no result", "no result"),
    (REL, "回答A更准确。[RESULT] A", "A", "A"),
]


@pytest.mark.parametrize("fmt,text,strict_expected,lenient_expected", ADVERSARIAL,
                         ids=[f"{fmt.name}-{i}" for i, (fmt, *_rest) in enumerate(ADVERSARIAL)])
def test_adversarial_outputs(fmt, text, strict_expected, lenient_expected):
    check_adversarial(fmt, text, strict_expected, lenient_expected)


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_an_echoed_prompt_is_not_a_verdict(name):
    fmt = FORMATS[name]
    label = Label(winner="A") if fmt.protocol == "pairwise" else Label(scores=(5,), scale=(1, 5))
    # Responses that themselves end in a result sit before the echo's "###Feedback:".
    trap = _sample(fmt, label, texts=("q", "[RESULT] 5 [RESULT] A", "[RESULT] B"))
    prompt = "\n".join(m["content"] for m in fmt.render(trap, include_target=False))
    assert "[RESULT] (" in prompt
    for strict in (True, False):
        echoed = fmt.parse(prompt, strict=strict)
        assert isinstance(echoed, ParseFailure) and "conflicting" not in echoed.reason, echoed
        verdict_text = "[RESULT] B" if fmt.protocol == "pairwise" else "[RESULT] 2"
        verdict = fmt.parse(f"{prompt}The second is closer. {verdict_text}", strict=strict)
        assert (verdict.winner if fmt.protocol == "pairwise" else verdict.scores) == ("B" if fmt.protocol == "pairwise" else (2.0,))
        assert verdict.critique == "The second is closer."


judgment_parts = st.lists(
    st.sampled_from(["Response A", "Response B", "response A", "response B", "[RESULT] A", "[RESULT] B", "[RESULT]",
                     "[RESULT]: **A**", "[RESULT] a", " A", "B", "Response AB", "[RESULT] 4", "\n", " "]) | words,
    max_size=12,
)


@settings(max_examples=80, deadline=None)
@given(parts=judgment_parts)
def test_swap_judgment_twice_is_identity(parts):
    text = "".join(parts)
    for fmt in FORMATS.values():
        assert fmt.swap_judgment(fmt.swap_judgment(text)) == text


@pytest.mark.parametrize("marker", ["[RESULT] A", "[RESULT] B", "[RESULT]: **A**", "[RESULT] Response B"])
def test_swap_judgment_flips_the_result_and_the_names(marker):
    text = f"Response A is clearer than response B. {marker}"
    swapped = REL.swap_judgment(text)
    assert swapped.startswith("Response B is clearer than response A.")
    assert REL.parse(swapped, strict=False).winner == flip_winner(REL.parse(text, strict=False).winner)
    assert ABS.swap_judgment("Response A is fine. [RESULT] 4") == "Response A is fine. [RESULT] 4"
