"""judgetrain judges inside TRL 1.16 on CPU: a few GRPO steps and online DPO steps of the tiny random
policy, rewarded by tiny exports (a reward export, given to TRL as it is and through JudgeReward; a
single-grading generative export; a pairwise generative export against a reference answer; both over
HTTP from a real `judgetrain serve`). Every reward TRL received is compared with what the judge says,
asked on its own, about the completion TRL generated."""

from __future__ import annotations

import math
import socket
from pathlib import Path

import pytest

from judgetrain.integrations.trl import JudgeReward, ReferenceReward, conversation_turns
from judgetrain.judging.judge import Judge, outcome_of
from judgetrain.reward.judge import LocalRewardScorer, RewardJudge, single_sample

pytestmark = pytest.mark.usefixtures("one_torch_thread")

trl = pytest.importorskip("trl")

TOPICS = ["salt", "rain", "bread", "maps"]
REWARD_TOLERANCE = dict(rel=1e-4, abs=1e-4)
"""fp32 rewards of the same conversation in differently padded batches agree to about 1e-6."""


def question_of(index: int) -> str:
    return f"Tell me about {TOPICS[index % len(TOPICS)]}."


def reference_of(index: int) -> str:
    return f"{TOPICS[index % len(TOPICS)].capitalize()} is common and useful every day."


def conversational_dataset(num_rows: int = 4, *, with_reference: bool = False):
    from datasets import Dataset

    columns = {"prompt": [[{"role": "user", "content": question_of(i)}] for i in range(num_rows)]}
    if with_reference:
        columns["reference"] = [reference_of(i) for i in range(num_rows)]
    return Dataset.from_dict(columns)


def grpo_args(output_dir: Path, **overrides):
    """Two GRPO steps, each of 2 prompts x 2 completions of 6 tokens, in fp32."""
    settings = dict(output_dir=str(output_dir), max_steps=2, per_device_train_batch_size=4, num_generations=2,
                    max_completion_length=6, logging_steps=1, report_to=[], use_cpu=True, bf16=False, save_strategy="no",
                    seed=0, disable_tqdm=True, dataloader_num_workers=0)
    settings.update(overrides)
    return trl.GRPOConfig(**settings)


class GenerationLog:
    """A TRL callback keeping, after each GRPO step, the prompts, completions and per-function rewards
    the trainer logged for that step's generation batch."""

    def __init__(self):
        from transformers import TrainerCallback

        log = self

        class _Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                logs = log.trainer._logs
                log.steps.append({"prompts": list(logs["prompt"]), "completions": list(logs["completion"]),
                                  "rewards": {name: list(values) for name, values in logs["rewards"].items()},
                                  "advantages": list(logs["advantages"])})

        self.callback = _Callback()
        self.trainer = None
        self.steps: list[dict] = []

    def rows(self):
        """(step, question, completion text, {reward function: reward}) of every completion."""
        for step, entry in enumerate(self.steps):
            for position, (prompt, completion) in enumerate(zip(entry["prompts"], entry["completions"])):
                yield step, prompt[-1]["content"], completion[-1]["content"], {
                    name: values[position] for name, values in entry["rewards"].items()}

    def advantages(self) -> list[float]:
        return [value for entry in self.steps for value in entry["advantages"]]


def run_grpo(policy_dir: Path, reward_funcs, output_dir: Path, dataset=None) -> tuple[GenerationLog, list[dict]]:
    log = GenerationLog()
    trainer = trl.GRPOTrainer(model=str(policy_dir), reward_funcs=reward_funcs, args=grpo_args(output_dir),
                              train_dataset=dataset or conversational_dataset(), callbacks=[log.callback])
    log.trainer = trainer
    trainer.train()
    assert len(log.steps) == 2 and all(len(entry["completions"]) == 4 for entry in log.steps)
    # The per-step entries (the last one is the run's summary).
    return log, [entry for entry in trainer.state.log_history if "reward" in entry]


def own_reward(judge, question: str, answer: str) -> float | None:
    """What the judge says, asked directly, about one answer: its grade or reward, None when it has none."""
    [judgment] = judge.judge([single_sample(question, answer)])
    return judgment.verdict.scores[0] if judgment.verdict is not None else None


def same(received: float, expected: float | None) -> bool:
    """TRL turns a None reward into NaN."""
    return math.isnan(received) if expected is None else received == pytest.approx(expected, **REWARD_TOLERANCE)


# --- GRPO ----------------------------------------------------------------------------------------


def test_grpo_takes_the_reward_export_as_is_and_judge_reward_gives_it_the_same_rewards(reward_export, policy_dir, tmp_path):
    ours = JudgeReward.from_card(reward_export, name="judgetrain_reward")
    log, step_logs = run_grpo(policy_dir, [str(reward_export), ours], tmp_path / "grpo")
    assert set(log.steps[0]["rewards"]) == {"judge", "judgetrain_reward"}  # TRL names the model after its dir
    fp32_judge = RewardJudge(LocalRewardScorer(reward_export, dtype="fp32", batch_size=1))
    card_judge = Judge.from_card(reward_export)
    rows = list(log.rows())
    expected = [own_reward(fp32_judge, question, completion) for _, question, completion, _ in rows]
    for (_, question, completion, rewards), reward in zip(rows, expected):
        assert rewards["judge"] == pytest.approx(reward, **REWARD_TOLERANCE), (question, completion)
        assert rewards["judgetrain_reward"] == pytest.approx(own_reward(card_judge, question, completion), **REWARD_TOLERANCE)
    assert max(expected) - min(expected) > 0.05, "the completions' rewards are too close to tell a mix-up"
    # The metric TRL logs each step is the mean of that step's rewards.
    for step, entry in enumerate(step_logs):
        step_rewards = [r for (s, *_), r in zip(rows, expected) if s == step]
        assert entry["rewards/judge/mean"] == pytest.approx(sum(step_rewards) / len(step_rewards), **REWARD_TOLERANCE)
    assert ours.counts.num_completions == ours.counts.num_scored == len(rows)


def test_grpo_receives_the_generative_graders_grades_and_none_for_its_parse_failures(grader_export, policy_dir, tmp_path):
    grader = JudgeReward.from_card(grader_export)
    log, step_logs = run_grpo(policy_dir, grader, tmp_path / "grpo")
    judge = Judge.from_card(grader_export)
    rows = list(log.rows())
    expected = [own_reward(judge, question, completion) for _, question, completion, _ in rows]
    for (_, question, completion, rewards), grade in zip(rows, expected):
        assert same(rewards["grader"], grade), (question, completion, rewards, grade)
    assert len({g for g in expected if g is not None}) >= 2, "the grades do not vary"
    num_failures = sum(g is None for g in expected)
    assert num_failures >= 1, "no parse failure reached TRL"
    # TRL leaves an unscored completion out of its group's baseline and gives it no advantage.
    assert all(advantage == 0 for advantage, grade in zip(log.advantages(), expected) if grade is None)
    assert grader.counts.num_parse_failures == num_failures
    assert grader.counts.num_scored == len(rows) - num_failures
    for step, entry in enumerate(step_logs):
        step_failures = [g is None for (s, *_), g in zip(rows, expected) if s == step]
        assert entry["grader/parse_failure_rate"] == pytest.approx(sum(step_failures) / len(step_failures))


def test_the_grader_reads_text_and_chat_rows_alike_and_counts_its_parse_failures(grader_export):
    grader = JudgeReward.from_card(grader_export)
    judge = Judge.from_card(grader_export)
    answers = ["ground sun wide", "if the game comes", "points of the sun", "made our hand", "words on a map", "cold rain"]
    questions = [question_of(i) for i in range(len(answers))]
    expected = [own_reward(judge, q, a) for q, a in zip(questions, answers)]
    assert None in expected and any(g is not None for g in expected), f"want grades and parse failures, got {expected}"
    as_text = grader(prompts=questions, completions=answers)
    as_chat = grader(prompts=[[{"role": "system", "content": "Be brief."}, {"role": "user", "content": q}] for q in questions],
                     completions=[[{"role": "assistant", "content": a}] for a in answers])
    assert as_text == as_chat == expected
    assert grader.counts.num_completions == 2 * len(answers)
    assert grader.counts.num_parse_failures == 2 * expected.count(None)


def test_conversation_turns_pairs_each_user_turn_with_its_answer():
    prompt = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Hello."},
              {"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Re"}]
    assert conversation_turns(prompt, [{"role": "assistant", "content": "d."}]) == (("Hi.", "Name a colour."), ("Hello.", "Red."))
    assert conversation_turns("Name a colour.", " Red.") == (("Name a colour.",), (" Red.",))
    parts = [{"role": "user", "content": [{"type": "text", "text": "Name "}, {"type": "text", "text": "one."}]}]
    assert conversation_turns(parts, [{"role": "assistant", "content": "Blue."}]) == (("Name one.",), ("Blue.",))
    with pytest.raises(ValueError, match="'tool' message"):
        conversation_turns([{"role": "user", "content": "Hi."}], [{"role": "tool", "content": "{}"}])
    with pytest.raises(ValueError, match="2 user turn"):
        conversation_turns([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], [{"role": "assistant", "content": "c"}])
    with pytest.raises(ValueError, match="both as text"):
        conversation_turns("Hi.", [{"role": "assistant", "content": "Hello."}])
    with pytest.raises(ValueError, match="image"):
        conversation_turns([{"role": "user", "content": [{"type": "image"}]}], [{"role": "assistant", "content": "A cat."}])


# --- online DPO ----------------------------------------------------------------------------------


class RecordingReward:
    """A reward function that passes TRL's call to ``inner`` and keeps what came in and went out."""

    def __init__(self, inner):
        self.inner = inner
        self.__name__ = inner.__name__
        self.calls: list[dict] = []

    def __call__(self, prompts, completions, **columns):
        values = self.inner(prompts, completions, **columns)
        self.calls.append({"prompts": prompts, "completions": completions, "references": list(columns["reference"]),
                           "values": values})
        return values


def test_online_dpo_is_rewarded_by_the_pairwise_judges_verdicts_against_the_reference(pairwise_export, reward_export,
                                                                                      policy_dir, tmp_path):
    from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

    generative = RecordingReward(ReferenceReward.from_card(pairwise_export))
    reward_model = RecordingReward(ReferenceReward.from_card(reward_export, name="reward_judge"))
    args = OnlineDPOConfig(output_dir=str(tmp_path / "odpo"), max_steps=2, per_device_train_batch_size=2, max_new_tokens=6,
                           logging_steps=1, report_to=[], use_cpu=True, bf16=False, save_strategy="no", seed=0, disable_tqdm=True)
    trainer = OnlineDPOTrainer(model=str(policy_dir), reward_funcs=[generative, reward_model], args=args,
                               train_dataset=conversational_dataset(with_reference=True), processing_class=_left_padded_tokenizer())
    trainer.train()
    step_logs = [entry for entry in trainer.state.log_history if "objective/scores" in entry]
    assert len(step_logs) == len(generative.calls) == len(reward_model.calls) == 2
    value_of = {"A": 1.0, "tie": 0.5, "B": 0.0}
    judges = {id(generative): Judge.from_card(pairwise_export), id(reward_model): Judge.from_card(reward_export)}
    seen: dict[int, list] = {id(generative): [], id(reward_model): []}
    for recorder in (generative, reward_model):
        for call in recorder.calls:
            for prompt, completion, reference, value in zip(call["prompts"], call["completions"], call["references"],
                                                            call["values"]):
                judgment = judges[id(recorder)].compare(prompt[-1]["content"], completion[-1]["content"], reference)
                assert value == value_of.get(outcome_of(judgment)), (recorder.__name__, completion, outcome_of(judgment))
                seen[id(recorder)].append(outcome_of(judgment))
    assert {"A", "B"} <= set(seen[id(reward_model)]), seen
    assert len(set(seen[id(generative)])) >= 2, seen
    # What TRL trained on: per completion the nansum of the two functions' rewards (a None counts as 0
    # there), logged per step as their mean and as the mean gap between each prompt's two completions.
    for entry, first, second in zip(step_logs, generative.calls, reward_model.calls):
        totals = [(a if a is not None else 0.0) + (b if b is not None else 0.0) for a, b in zip(first["values"], second["values"])]
        assert entry["objective/scores"] == pytest.approx(sum(totals) / len(totals), abs=1e-6)
        half = len(totals) // 2
        gaps = [abs(totals[i] - totals[i + half]) for i in range(half)]
        assert entry["objective/scores_margin"] == pytest.approx(sum(gaps) / len(gaps), abs=1e-6)
    assert generative.inner.counts.num_completions == 8


def _left_padded_tokenizer():
    from judgetrain.models import load_tokenizer

    return load_tokenizer("tiny", padding_side="left")


# --- over HTTP -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(grader_export, reward_export):
    """`judgetrain serve` of the grader and of the reward export on 127.0.0.1; yields their URLs."""
    from judgetrain.serve import start_server

    servers = [start_server(str(grader_export), "127.0.0.1", 0, batch_size=4), start_server(str(reward_export), "127.0.0.1", 0)]
    yield {"grader": servers[0][0].url, "reward": servers[1][0].url}
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_grpo_with_judges_from_judgetrain_serve_urls_gets_the_local_judges_scores(served, grader_export, reward_export,
                                                                                 policy_dir, tmp_path):
    assert served["grader"].startswith("http://127.0.0.1:")
    grader = JudgeReward.from_card(served["grader"], name="served_grader")
    reward = JudgeReward.from_card(served["reward"], name="served_reward")
    assert type(grader.judge.backend).__name__ == "OpenAIHTTPBackend" and reward.judge.scorer.name == "http-reward"
    log, _ = run_grpo(policy_dir, [grader, reward], tmp_path / "grpo")
    local_grader, local_reward = Judge.from_card(grader_export), Judge.from_card(reward_export)
    for _, question, completion, rewards in log.rows():
        assert same(rewards["served_grader"], own_reward(local_grader, question, completion)), (question, completion)
        assert rewards["served_reward"] == pytest.approx(own_reward(local_reward, question, completion), **REWARD_TOLERANCE)
    assert reward.counts.num_scored == 8 and grader.counts.num_errors == 0


# --- refusals ------------------------------------------------------------------------------------


def test_each_reward_function_refuses_a_judge_it_cannot_use_and_names_a_missing_column(grader_export, pairwise_export):
    with pytest.raises(ValueError, match="compares two answers.*ReferenceReward"):
        JudgeReward.from_card(pairwise_export)
    with pytest.raises(ValueError, match="grades one answer.*JudgeReward"):
        ReferenceReward.from_card(grader_export)
    versus_reference = ReferenceReward.from_card(pairwise_export)
    with pytest.raises(ValueError, match="column 'reference'.*reference_column"):
        versus_reference(prompts=["Name a colour."], completions=["Red."], answer=["Blue."])
    with pytest.raises(ValueError, match="win > tie > loss"):
        ReferenceReward(versus_reference.judge, win=0.0, loss=1.0)


def test_a_judge_that_answers_no_completion_stops_training(reward_export):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    unreachable = JudgeReward.from_card(f"http://127.0.0.1:{closed_port}", card=reward_export, model="judge")
    with pytest.raises(RuntimeError, match="answered none of the 2 completions"):
        unreachable(prompts=["Name a colour.", "Name a city."], completions=["Red.", "Oslo."])
