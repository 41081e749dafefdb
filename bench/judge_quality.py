"""Judge quality: train the shipped CPU judge recipe from scratch and judge full held-out benchmarks.

    python bench/judge_quality.py [--recipe recipes/smollm2-135m-judge-cpu.yaml] [--data-dir ../shared/data]
                                  [--out runs/bench/judge_quality] [--max-steps N] [--benchmarks pandalm-test,...]
                                  [--ablation] [--limit N] [--margin-pairs N] [--no-curve]

1. Runs the ``judgetrain prep`` commands written in the recipe's opening comment (``../shared/data`` is
   replaced by ``--data-dir``), then ``judgetrain train`` on the recipe with checkpoints at 25%, 50%
   and 100% of its optimizer steps.
2. Judges every item of each benchmark (PandaLM test 999, Auto-J pairwise 1392, LLMBar Natural 100 and
   Adversarial 319; none of them is in the recipe's training data) with the model before training
   (the recipe's initial model), after training (with the tie margin the run chose on its held-out
   split, from the judge card), and, for the learning curve, at 25% and 50% of the budget on PandaLM.
3. Prints one table per benchmark: before / after / the majority class / "the longer answer wins",
   each with its 95% bootstrap interval, swap consistency and parse-failure rate; then the learning
   curve. Baselines are computed from the benchmark files themselves: the majority class is the most
   frequent gold label, and "longer answer wins" picks the answer with more characters (a tie when
   both have the same length).

The headline metric is the benchmark's own: 3-way accuracy for PandaLM (ties count), Auto-J's
agreement (correct in both orders, ties count), accuracy for LLMBar. The last lines are
``pandalm_accuracy``, ``pandalm_majority``, ``pandalm_length``, ``pandalm_consistency``,
``autoj_agreement``, ``pandalm_length_balanced`` (the trained judge's length_balanced_accuracy on PandaLM:
the longer-answer rule scores 0.5 on it) and ``autoj_length`` (the longer-answer baseline on Auto-J).
Everything is also written to ``--out``/quality.json.

A generative recipe (``kind: generative``, e.g. ``recipes/smollm2-135m-generative-judge-cpu.yaml``) takes
the same prep and training steps, then: its tie margin on P(A) − P(B) is chosen on up to
``--margin-pairs`` held-out pairs of its training mixture (the split the run left out) with the reward
judge's chooser, and the export's judge card carries it (``--aggregation probabilities --tie-margin M``);
every pairwise benchmark is judged in both orders, before and after training, and read three ways: the
written verdicts (as the judge read them, and re-read strict and lenient), the original order's verdict
probabilities alone, and both orders' probabilities against the margin (the card's, position-debiased
verdict: the same in both orders, so its accuracy is also its Auto-J agreement); beside them the raw
verdicts' swap consistency (JudgeLM: the same winner in both orders) and the share of items where the
judge leaned to the first-shown answer (JudgeLM's prefer-first rate). ``arena-bench-heldout`` (30 held-out
questions, never trained on) is graded with the template's single-grading twin, with and without the
reference shown, as written and as the expected grade at the first generated position: Pearson, Spearman
and Kendall against GPT-4's grades beside the answer's length alone. The last lines then are
``generative_pandalm_accuracy`` (the debiased verdict), ``generative_raw_consistency`` (PandaLM, the raw
verdicts), ``generative_autoj_agreement`` (the card's judge) and ``arena_grade_spearman`` (written grades,
reference shown). ``--ablation`` trains and judges instead (a) without swap augmentation, (b) with it,
(c) with it and reference drop (JudgeLM's ablation), at the recipe's steps and packed rows, each source
drawing as many rows per epoch, and prints one table; ``--limit N`` judges each benchmark's first N items.

Every timed stage (each prep command, training, each judged benchmark) also prints its CPU share: the
CPU seconds it used over its wall seconds times this machine's cores. Near 1 the stage had the machine;
well below 1 it waited for cores another job held (or was paused), and its seconds mean little.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # the plugin packages sit at the top of the checkout

import numpy as np  # noqa: E402

from judgetrain import metrics as m  # noqa: E402

DEFAULT_RECIPE = REPO_ROOT / "recipes" / "smollm2-135m-judge-cpu.yaml"
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
BENCHMARKS = ("pandalm-test", "autoj-pairwise", "llmbar-natural", "llmbar-adversarial")
HEADLINE = {"pandalm-test": "accuracy", "autoj-pairwise": "both_orders_agreement", "llmbar-natural": "accuracy",
            "llmbar-adversarial": "accuracy"}
CURVE_BENCHMARK = "pandalm-test"
CURVE_FRACTIONS = (0.25, 0.5)
NUM_RESAMPLES = 1000


def recipe_prep_commands(recipe: Path, data_dir: Path) -> list[list[str]]:
    """The ``judgetrain prep`` commands of a recipe's opening comment, with the data dir substituted."""
    commands, current = [], ""
    for line in recipe.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if text.startswith("judgetrain prep") or current:
            current += " " + text.rstrip("\\").strip()
            if not text.endswith("\\"):
                commands.append(shlex.split(current.replace("../shared/data", str(data_dir))))
                current = ""
    if not commands:
        raise ValueError(f"{recipe}: its opening comment names no `judgetrain prep` command")
    return commands


def cpu_share(cpu_seconds: float, wall_seconds: float) -> float:
    """The share of this machine's cores a stage used over its wall time (1.0: all of them throughout)."""
    return cpu_seconds / max(wall_seconds * (os.cpu_count() or 1), 1e-9)


def timing(wall_seconds: float, cpu_seconds: float) -> dict:
    return {"seconds": round(wall_seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
            "cpu_share": round(cpu_share(cpu_seconds, wall_seconds), 3)}


def run(command: list[str], log: Path) -> dict:
    """Run a command from the repo root, its output into ``log``; its wall and CPU seconds and CPU share."""
    started = time.perf_counter()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    with log.open("a", encoding="utf-8") as out:
        out.write("+ " + " ".join(command) + "\n")
        out.flush()
        done = subprocess.run(command, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed (exit {done.returncode}); see {log}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    record = timing(time.perf_counter() - started, used)
    print(f"{' '.join(command[:3])}: {record['seconds']:.0f} s, CPU share {record['cpu_share']:.2f} of {os.cpu_count()} cores",
          flush=True)
    return record


class MemoScorer:
    """A scorer that remembers every conversation's reward, so one model is run once per benchmark
    however many tie margins are read off it."""

    def __init__(self, scorer):
        self.scorer, self.memo = scorer, {}
        self.name, self.model_id = scorer.name, scorer.model_id

    def score(self, conversations):
        keys = [json.dumps(c, sort_keys=True) for c in conversations]
        todo = [i for i, k in enumerate(keys) if k not in self.memo]
        for i, reward in zip(todo, self.scorer.score([conversations[i] for i in todo])):
            self.memo[keys[i]] = reward
        return [self.memo[k] for k in keys]

    def prompt_text(self, messages):
        return self.scorer.prompt_text(messages)


def make_judge(model_dir: Path, *, kind: str, tie_margin: float, max_seq_len: int, memo: dict):
    """The judge of one reward model dir (a generative recipe is judged by :func:`judge_generative`)."""
    assert kind == "reward", f"make_judge judges reward models; a {kind} recipe goes through generative_quality"
    from judgetrain.reward.judge import LocalRewardScorer, RewardJudge

    key = str(model_dir)
    if key not in memo:
        memo[key] = MemoScorer(LocalRewardScorer(model_dir, max_seq_len=max_seq_len, batch_size=16))
    return RewardJudge(memo[key], tie_margin=tie_margin)


def evaluate(benchmark: str, judge, data_dir: Path) -> dict:
    from judgetrain_eval.runner import run_benchmark

    started, cpu_started = time.perf_counter(), time.process_time()
    result = run_benchmark(benchmark, judge=judge, data_dir=data_dir, num_resamples=NUM_RESAMPLES)
    metrics = result.results["metrics"]
    return {"metrics": metrics, "length": result.results.get("length"),
            **timing(time.perf_counter() - started, time.process_time() - cpu_started)}


def baselines(benchmark: str, data_dir: Path, *, limit: int | None = None) -> dict:
    """Majority-class and longer-answer-wins figures of a benchmark (its first ``limit`` items), with
    bootstrap intervals."""
    from judgetrain_eval.runner import get_benchmark

    spec = get_benchmark(benchmark)
    samples = spec.load(None, data_dir, limit=limit)
    gold = [s.labels[spec.label_key].winner for s in samples]
    majority = Counter(gold).most_common(1)[0][0]
    from judgetrain.evaluation.rows import answer_lengths

    # The scorer's rule and unit (characters, a tie on equal lengths), as its length metrics use.
    longer = [m.longer_answer(*answer_lengths(s)) for s in samples]
    return {
        "majority_class": majority,
        "majority": m.estimate_rate(np.array([float(g == majority) for g in gold]), num_resamples=NUM_RESAMPLES).to_dict(),
        "length": m.estimate_rate(np.array([float(p == g) for p, g in zip(longer, gold)]), num_resamples=NUM_RESAMPLES).to_dict(),
        "num_items": len(samples),
    }


def fmt(estimate: dict | None) -> str:
    if not estimate or estimate.get("value") is None:
        return "—"
    if estimate.get("low") is None:
        return f"{estimate['value']:.3f}"
    return f"{estimate['value']:.3f} [{estimate['low']:.3f}, {estimate['high']:.3f}]"


# --- the generative judge ------------------------------------------------------------------------

ARENA_BENCHMARK = "arena-bench-heldout"
GENERATIVE_HEADLINE = {"pandalm-test": "debiased_accuracy", "autoj-pairwise": "debiased_accuracy",
                       "llmbar-natural": "debiased_accuracy", "llmbar-adversarial": "debiased_accuracy"}
"""The deployed generative judge decides a pair by both orders' verdict probabilities (the card's
aggregation), so its verdict is the same in both orders: its accuracy is also its Auto-J agreement
(correct in both orders)."""
MARGIN_PAIRS = 300
"""Held-out pairs the generative judge's tie margin is chosen on: a seeded draw, since every pair is two
generations and a few hundred fix the margin to within a grid step."""
ABLATION_VARIANTS = (
    ("a", "no swap augmentation", ("--pair-symmetric", "--reference-twins")),
    ("b", "swap augmentation", ("--reference-twins",)),
    ("c", "swap augmentation + reference drop", ()),
)
"""JudgeLM's ablation: (name, what it trains with, the recipe's prep flags it leaves out)."""


def held_out_pairs(config, *, limit: int, seed: int = 0) -> list:
    """Up to ``limit`` pairs with a winner label from the held-out split of the recipe's training
    mixture (the split the run left out, :func:`judgetrain.train.data.is_held_out`), each once: its
    original order (the judge swaps it itself) and not its reference-dropped twin (the card's template
    shows no reference, so the two would be the same prompt)."""
    import random

    from judgetrain.data.augment import PAIR_ID_KEY, REFERENCE_TWIN_OF_KEY
    from judgetrain.data.prepared import read_samples
    from judgetrain.reward.margin import labelled_pairs
    from judgetrain.train.data import is_held_out

    chosen = []
    for spec in config.data.datasets:
        for sample in read_samples(spec.path):
            if (sample.protocol == "pairwise" and sample.meta.get(PAIR_ID_KEY, sample.id) == sample.id
                    and REFERENCE_TWIN_OF_KEY not in sample.meta
                    and is_held_out(sample, config.data.held_out_fraction, config.optim.seed)):
                chosen.append(sample)
    chosen, _ = labelled_pairs(chosen)
    random.Random(seed).shuffle(chosen)
    return chosen[:limit]


def generative_backend(model_dir: Path, memo: dict):
    """One transformers backend per model dir, kept for every benchmark judged with it."""
    from judgetrain.judging.backends.transformers_backend import TransformersBackend

    key = str(model_dir)
    if key not in memo:
        memo[key] = TransformersBackend(key, batch_size=8, dtype="fp32")
    return memo[key]


def choose_generative_margin(model_dir: Path, template: str, config, *, limit: int, memo: dict) -> dict:
    """The tie margin of the trained generative judge on P(A) − P(B) (both orders' verdict
    probabilities), chosen on held-out pairs with the reward judge's chooser
    (:func:`judgetrain.reward.margin.choose_probability_tie_margin`)."""
    from judgetrain.judging import Judge
    from judgetrain.reward.margin import choose_probability_tie_margin

    pairs = held_out_pairs(config, limit=limit)
    judge = Judge(template, generative_backend(model_dir, memo), both_orders=True, aggregation="probabilities")
    record = choose_probability_tie_margin(judge, pairs, source=f"held-out split of the training mixture ({len(pairs)} pairs)")
    return record or {"tie_margin": 0.0, "accuracy": None, "num_pairs": 0, "num_ties": 0,
                      "source": f"none of {len(pairs)} held-out pairs with a winner label was decided by its verdict "
                                "probabilities (no pair, or a parse failure in an order): margin 0"}


def one_order_probability_verdict(judgment, fmt, tie_margin: float) -> str | None:
    """The original order's verdict read from its verdict-token probabilities alone: the likeliest
    winner for a template whose first token names one; for JudgeLM's "s1 s2", Assistant 1's expected
    grade at the first position against the grade it then wrote for Assistant 2, over the scale's
    width, against the tie margin. None when the order has neither."""
    from judgetrain.judging.judge import winner_from_probabilities
    from judgetrain.types import WINNERS

    probabilities = judgment.verdict_probabilities or {}
    if probabilities and set(probabilities) <= set(WINNERS):
        return max(probabilities, key=probabilities.get)
    expected = judgment.meta.get("expected_score")
    scores = judgment.verdict.scores if judgment.verdict is not None else None
    if expected is None or fmt.score_scale is None or not scores or len(scores) != 2 or scores[1] is None:
        return None
    low, high = fmt.score_scale
    return winner_from_probabilities({"A": (expected - scores[1]) / (high - low), "B": 0.0}, tie_margin)[0]


def pairwise_readings(result, fmt, tie_margin: float) -> dict:
    """The three readings of a both-orders run of a pairwise benchmark: the written verdicts (as the
    judge read them, strict, lenient), the original order's verdict probabilities, and both orders'
    probabilities (the deployed, debiased verdict); with the raw verdicts' swap consistency (JudgeLM:
    the same winner in both orders) and position bias (the share of items where the judge leaned to
    the first-shown answer, JudgeLM's prefer-first rate)."""
    from judgetrain.types import Judgment

    metrics = result.results["metrics"]
    modes = result.results.get("parser_modes", {})
    gold = [row.gold_winner for row in result.rows]
    one_order = [one_order_probability_verdict(Judgment.from_dict(row.judgments[0]), fmt, tie_margin) if row.judgments else None
                 for row in result.rows]
    # The card's verdict: the scorer's debiased_accuracy when a pair was decided by probabilities, the
    # same reading of the aggregate verdicts (a pair that fell back counts with the verdicts rule) always.
    aggregate = [row.verdict_aggregate for row in result.rows]
    return {
        "num_decided_by_probabilities": sum(1 for row in result.rows if row.aggregated_by == "probabilities"),
        "raw_accuracy": metrics.get("accuracy"),
        "raw_accuracy_strict": modes.get("strict", {}).get("metrics", {}).get("accuracy"),
        "raw_accuracy_lenient": modes.get("lenient", {}).get("metrics", {}).get("accuracy"),
        "one_order_probability_accuracy": m.estimate_rate(m.correct_per_item(one_order, gold, "wrong"),
                                                          num_resamples=NUM_RESAMPLES).to_dict(),
        "debiased_accuracy": m.estimate_rate(m.correct_per_item(aggregate, gold, "wrong"), num_resamples=NUM_RESAMPLES).to_dict(),
        "raw_both_orders_agreement": metrics.get("both_orders_agreement"),
        "raw_consistency": metrics.get("consistency"),
        "prefer_first_rate": metrics.get("prefer_first_rate"),
        "position_bias": metrics.get("position_bias"),
        "parse_failure_rate": metrics.get("parse_failure_rate"),
    }


def arena_grades(model_dir: Path, single_template: str, data_dir: Path, *, limit: int | None, memo: dict) -> dict:
    """The judge's 1-10 grades of the held-out arena-bench answers against GPT-4's, with the reference
    shown (the template's with-reference twin) and without it, each as written (text) and as the
    expected grade at the first generated position; beside the length-alone baseline."""
    from judgetrain import formats
    from judgetrain.judging import Judge
    from judgetrain.types import Judgment
    from judgetrain_eval.arena_bench_heldout import length_baseline
    from judgetrain_eval.runner import get_benchmark, run_benchmark

    base = formats.get(single_template)
    out: dict = {}
    for key, fmt in (("with_reference", base.for_reference(True)), ("without_reference", base.for_reference(False))):
        started, cpu_started = time.perf_counter(), time.process_time()
        judge = Judge(fmt, generative_backend(model_dir, memo))
        result = run_benchmark(ARENA_BENCHMARK, judge=judge, data_dir=data_dir, limit=limit, num_resamples=NUM_RESAMPLES)
        metrics = result.results["metrics"]
        expected = [Judgment.from_dict(row.judgments[0]).meta.get("expected_score") if row.judgments else None for row in result.rows]
        gold = [row.gold_score for row in result.rows]
        by_expectation = m.estimate_statistics(lambda idx: m.correlations([expected[i] for i in idx], [gold[i] for i in idx]),
                                               len(gold), num_resamples=NUM_RESAMPLES)
        out[key] = {"template": fmt.name, "num_items": len(result.rows),
                    "written": {k: metrics.get(k) for k in ("pearson", "spearman", "kendall", "parse_failure_rate")},
                    "expected": {k: v.to_dict() for k, v in by_expectation.items()},
                    **timing(time.perf_counter() - started, time.process_time() - cpu_started)}
    samples = get_benchmark(ARENA_BENCHMARK).load(None, data_dir, limit=limit)
    out["length_baseline"] = {k: v.to_dict() for k, v in length_baseline(samples, num_resamples=NUM_RESAMPLES).items()}
    return out


def judge_generative(model_dir: Path, template: str, tie_margin: float, benchmarks: list[str], data_dir: Path, *,
                     limit: int | None, memo: dict) -> dict:
    """Every benchmark judged by the generative model in ``model_dir`` with ``template`` (pairs in both
    orders, decided by their verdict probabilities against ``tie_margin``; arena-bench grades with the
    template's single-grading twin)."""
    from judgetrain import formats
    from judgetrain.judging import Judge
    from judgetrain_eval.runner import run_benchmark

    fmt = formats.get(template)
    judged: dict = {}
    for benchmark in benchmarks:
        if benchmark == ARENA_BENCHMARK:
            judged[benchmark] = arena_grades(model_dir, fmt.for_protocol("single").name, data_dir, limit=limit, memo=memo)
            continue
        started, cpu_started = time.perf_counter(), time.process_time()
        judge = Judge(fmt, generative_backend(model_dir, memo), both_orders=True, aggregation="probabilities",
                      tie_margin=tie_margin)
        result = run_benchmark(benchmark, judge=judge, data_dir=data_dir, limit=limit, num_resamples=NUM_RESAMPLES)
        judged[benchmark] = {"metrics": result.results["metrics"], "readings": pairwise_readings(result, fmt, tie_margin),
                             "length": result.results.get("length"),
                             **timing(time.perf_counter() - started, time.process_time() - cpu_started)}
    return judged


def value(estimate: dict | None) -> float | None:
    return None if not estimate else estimate.get("value")


def line_value(estimate: dict | None) -> str:
    number = value(estimate)
    return "nan" if number is None else f"{number:.3f}"


def print_generative_report(results: dict) -> None:
    """The generative judge's tables: per pairwise benchmark the three readings before and after
    training beside the baselines; the arena-bench grade correlations; the learning curve."""
    for benchmark, entry in results["benchmarks"].items():
        if benchmark == ARENA_BENCHMARK:
            continue
        base = entry["baselines"]
        print(f"\n{benchmark} ({base['num_items']} items):")
        print(f"  {'judge':<22} {'debiased (card)':<24} {'one order, probs':<24} {'raw text':<24} {'raw strict':<12} "
              f"{'raw lenient':<12} {'raw swap cons.':<15} {'prefer first':<13} parse failures")
        for label, key in (("before training", "before"), ("after training", "after")):
            if entry.get(key) is None:
                print(f"  {label:<22} (not judged: --before-benchmarks)")
                continue
            r = entry[key]["readings"]
            print(f"  {label:<22} {fmt(r['debiased_accuracy']):<24} {fmt(r['one_order_probability_accuracy']):<24} "
                  f"{fmt(r['raw_accuracy']):<24} {line_value(r['raw_accuracy_strict']):<12} {line_value(r['raw_accuracy_lenient']):<12} "
                  f"{line_value(r['raw_consistency']):<15} {line_value(r['prefer_first_rate']):<13} {line_value(r['parse_failure_rate'])}")
        print(f"  {'majority class (' + str(base['majority_class']) + ')':<22} {fmt(base['majority']):<24}")
        print(f"  {'longer answer wins':<22} {fmt(base['length']):<24}")
        if entry.get("after"):
            decided = entry["after"]["readings"]["num_decided_by_probabilities"]
            print(f"  after training, {decided} of {base['num_items']} pairs were decided by their verdict probabilities "
                  "(the others fell back to the verdicts rule: an order did not parse)")
        if benchmark == "autoj-pairwise" and entry.get("after"):
            print(f"  Auto-J agreement (correct in both orders): the card's judge {line_value(entry['after']['readings']['debiased_accuracy'])}"
                  f" (its two orders agree by construction), the raw verdicts {line_value(entry['after']['readings']['raw_both_orders_agreement'])}")
    arena = results["benchmarks"].get(ARENA_BENCHMARK)
    if arena:
        print(f"\n{ARENA_BENCHMARK}: the judge's 1-10 grades against GPT-4's (Pearson / Spearman / Kendall):")
        baseline = arena["length_baseline"]
        for label, key in (("before training", "before"), ("after training", "after")):
            if arena.get(key) is None:
                continue
            for shown in ("with_reference", "without_reference"):
                graded = arena[key][shown]
                for how in ("written", "expected"):
                    c = graded[how]
                    failures = f", parse failures {line_value(graded['written']['parse_failure_rate'])}" if how == "written" else ""
                    print(f"  {label}, {shown.replace('_', ' ')}, {how} grade ({graded['num_items']} items): "
                          f"{fmt(c['pearson'])} / {fmt(c['spearman'])} / {fmt(c['kendall'])}{failures}")
        print(f"  the answer's length alone: {fmt(baseline['pearson'])} / {fmt(baseline['spearman'])} / {fmt(baseline['kendall'])}")
    if results.get("curve"):
        print(f"\nlearning curve ({CURVE_BENCHMARK} debiased accuracy):")
        for fraction, estimate in results["curve"].items():
            print(f"  {float(fraction):>5.0%} of the budget: {fmt(estimate)}")


def print_generative_lines(results: dict) -> None:
    """The generative judge's parsed last lines."""
    pandalm = results["benchmarks"].get("pandalm-test", {}).get("after")
    autoj = results["benchmarks"].get("autoj-pairwise", {}).get("after")
    arena = results["benchmarks"].get(ARENA_BENCHMARK, {}).get("after")
    if pandalm:
        print(f"generative_pandalm_accuracy: {line_value(pandalm['readings']['debiased_accuracy'])}")
        print(f"generative_raw_consistency: {line_value(pandalm['readings']['raw_consistency'])}")
    if autoj:
        print(f"generative_autoj_agreement: {line_value(autoj['readings']['debiased_accuracy'])}")
    if arena:
        print(f"arena_grade_spearman: {line_value(arena['with_reference']['written']['spearman'])}")


def export_generative(final: Path, export_dir: Path, tie_margin: float, log: Path) -> None:
    run(["judgetrain", "export", "--checkpoint", str(final), "--out", str(export_dir), "--dtype", "fp32",
         "--aggregation", "probabilities", "--tie-margin", repr(float(tie_margin))], log)


def generative_quality(args, config, out: Path, run_dir: Path, log: Path, timings: dict, *, benchmarks: list[str],
                       before_benchmarks: list[str], curve_steps: list[int]) -> int:
    """After training a generative recipe: choose the tie margin on the held-out split, export with it,
    judge every benchmark before and after training (and PandaLM along the learning curve), print."""
    from judgetrain.card import read_card
    from judgetrain.reward.margin import save_tie_margin
    from judgetrain.train.config import save_config

    steps = config.optim.max_steps
    final = run_dir / "final"
    memo: dict = {}
    template = config.data.format
    if template is None:
        raise SystemExit(f"{args.recipe}: a generative recipe for this benchmark names its template (data.format)")
    margin = choose_generative_margin(final, template, config, limit=args.margin_pairs, memo=memo)
    save_tie_margin(final, margin)
    print(f"tie margin {margin['tie_margin']:g} (accuracy {margin['accuracy']}) on {margin['num_pairs']} held-out pairs", flush=True)
    export_dir = out / "judge"
    export_generative(final, export_dir, margin["tie_margin"], log)
    card = read_card(export_dir)
    tie_margin = card.tie_policy.tie_margin
    # Before training: the recipe's base model (fresh LoRA adapters, or frozen layers, change nothing yet).
    before_dir = Path(config.model.path)
    results: dict = {"recipe": str(args.recipe), "max_steps": steps, "kind": "generative", "template": card.template,
                     "tie_margin": tie_margin, "tie_margin_choice": margin, "benchmarks": {}, "curve": {}}
    after = judge_generative(export_dir, card.template, tie_margin, benchmarks, args.data_dir, limit=args.limit, memo=memo)
    before_judged = [b for b in benchmarks if b in before_benchmarks]
    before = judge_generative(before_dir, card.template, 0.0, before_judged, args.data_dir, limit=args.limit, memo=memo)
    for benchmark in benchmarks:
        entry = {"before": before.get(benchmark), "after": after[benchmark]}
        if benchmark == ARENA_BENCHMARK:
            results["benchmarks"][benchmark] = {**entry, "length_baseline": after[benchmark]["length_baseline"]}
        else:
            results["benchmarks"][benchmark] = {**entry, "baselines": baselines(benchmark, args.data_dir, limit=args.limit)}
        (out / "quality.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if CURVE_BENCHMARK in benchmarks and not args.no_curve:
        before_curve = results["benchmarks"][CURVE_BENCHMARK]["before"]
        curve = {0.0: before_curve["readings"]["debiased_accuracy"]} if before_curve else {}
        for step in curve_steps:
            judged = judge_generative(run_dir / f"checkpoint-{step}", card.template, tie_margin, [CURVE_BENCHMARK], args.data_dir,
                                      limit=args.limit, memo=memo)
            curve[step / steps] = judged[CURVE_BENCHMARK]["readings"]["debiased_accuracy"]
        curve[1.0] = results["benchmarks"][CURVE_BENCHMARK]["after"]["readings"]["debiased_accuracy"]
        results["curve"] = {f"{k:.2f}": v for k, v in sorted(curve.items())}
    results["timings"] = timings
    (out / "quality.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    save_config(config, out / "recipe_resolved.yaml")
    train_timing = timings.get("train", {"seconds": 0.0, "cpu_share": float("nan")})
    print(f"\nrecipe {args.recipe.name}: kind generative, template {card.template}, {steps} optimizer steps, training "
          f"{train_timing['seconds']:.0f} s (CPU share {train_timing['cpu_share']:.2f} of {os.cpu_count()} cores); tie margin "
          f"{tie_margin:g} on P(A) - P(B) ({margin['source']})")
    print_generative_report(results)
    print_generative_lines(results)
    return 0


def variant_recipe(config, commands: list[list[str]], left_out: tuple[str, ...], suffix: str):
    """An ablation variant of a generative recipe: its prep commands without the flags ``left_out``,
    writing to ``<out><suffix>``, and its config training on those dirs. A dir that loses
    ``--pair-symmetric`` (half the rows: one order per pair) or ``--reference-twins`` (half the rows
    of a reference-bearing source) gets its mixing weight doubled for each, so every variant draws as
    many rows of every source per epoch; with packing and the same steps it then trains on as many
    tokens."""
    import copy

    variant = copy.deepcopy(config)
    factor_of_out, new_commands = {}, []
    for command in commands:
        kept = [part for part in command if part not in left_out]
        target = command[command.index("--out") + 1]
        kept[kept.index("--out") + 1] = target + suffix
        factor_of_out[target] = 2 ** sum(flag in command for flag in left_out)
        new_commands.append(kept)
    for spec in variant.data.datasets:
        if spec.path in factor_of_out:
            spec.weight = spec.weight * factor_of_out[spec.path]
            spec.path = spec.path + suffix
    variant.data.pair_symmetric = config.data.pair_symmetric and "--pair-symmetric" not in left_out
    return variant, new_commands


def run_ablation(args, config, out: Path, log: Path, *, steps: int) -> int:
    """JudgeLM's ablation at one budget: (a) no swap augmentation, (b) swap, (c) swap + reference drop;
    each prepared, trained (same steps, batch and packed rows), its margin chosen, exported and judged."""
    import shutil

    from judgetrain.card import read_card
    from judgetrain.reward.margin import save_tie_margin
    from judgetrain.train.config import save_config

    template = config.data.format
    if config.kind != "generative" or template is None:
        raise SystemExit(f"{args.recipe}: --ablation is for a generative recipe that names its template (data.format)")
    commands = recipe_prep_commands(args.recipe, args.data_dir.resolve())
    benchmarks = [b for b in ("pandalm-test", "autoj-pairwise", ARENA_BENCHMARK) if b in args.benchmarks.split(",") or
                  b == ARENA_BENCHMARK]
    rows: dict = {}
    for name, what, left_out in ABLATION_VARIANTS:
        where = out / "ablation" / name
        where.mkdir(parents=True, exist_ok=True)
        variant, variant_commands = variant_recipe(config, commands, left_out, "" if not left_out else f"-ablation-{name}")
        variant.output_dir = str(where / "run")
        variant.checkpoint.every_steps, variant.checkpoint.resume = 0, "never"
        variant_path = where / "recipe.yaml"
        save_config(variant, variant_path)
        timings: dict = {}
        if not args.skip_train:
            for command in variant_commands:
                target = Path(command[command.index("--out") + 1])
                if not (REPO_ROOT / target / "manifest.json").is_file():
                    timings[f"prep {target.name}"] = run(command, log)
            shutil.rmtree(where / "run", ignore_errors=True)
            timings["train"] = run(["judgetrain", "train", "--config", str(variant_path), f"optim.max_steps={steps}"], log)
        memo: dict = {}
        final = where / "run" / "final"
        margin = choose_generative_margin(final, template, variant, limit=args.margin_pairs, memo=memo)
        save_tie_margin(final, margin)
        export_dir = where / "judge"
        export_generative(final, export_dir, margin["tie_margin"], log)
        card = read_card(export_dir)
        judged = judge_generative(export_dir, card.template, card.tie_policy.tie_margin, benchmarks, args.data_dir,
                                  limit=args.limit, memo=memo)
        rows[name] = {"variant": what, "tie_margin": card.tie_policy.tie_margin, "judged": judged, "timings": timings}
        (out / "ablation.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
        print(f"ablation ({name}) {what}: trained and judged", flush=True)
    print(f"\nablation of {args.recipe.name} ({steps} optimizer steps each, the same packed rows per step and rows of "
          f"every source per epoch):")
    print(f"  {'variant':<40} {'PandaLM acc.':<13} {'Auto-J agr.':<12} {'raw swap cons.':<15} {'prefer first':<13} "
          f"{'Spearman ref':<13} Spearman no ref")
    for name, row in rows.items():
        judged = row["judged"]
        pandalm = judged.get("pandalm-test", {}).get("readings", {})
        autoj = judged.get("autoj-pairwise", {}).get("readings", {})
        arena = judged.get(ARENA_BENCHMARK, {})
        print(f"  {'(' + name + ') ' + row['variant']:<40} {line_value(pandalm.get('debiased_accuracy')):<13} "
              f"{line_value(autoj.get('debiased_accuracy')):<12} {line_value(pandalm.get('raw_consistency')):<15} "
              f"{line_value(pandalm.get('prefer_first_rate')):<13} "
              f"{line_value(arena.get('with_reference', {}).get('written', {}).get('spearman')):<13} "
              f"{line_value(arena.get('without_reference', {}).get('written', {}).get('spearman'))}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", type=Path, default=DEFAULT_RECIPE)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / "bench" / "judge_quality")
    parser.add_argument("--max-steps", type=int, default=None, help="override the recipe's optimizer steps (a shorter run)")
    parser.add_argument("--benchmarks", default=None,
                        help=f"comma-separated (default: {','.join(BENCHMARKS)}; a generative recipe adds {ARENA_BENCHMARK})")
    parser.add_argument("--before-benchmarks", default=None,
                        help="the benchmarks the untrained model is judged on (default: all of --benchmarks)")
    parser.add_argument("--skip-train", action="store_true", help="reuse the run already under --out (evaluate only)")
    parser.add_argument("--ablation", action="store_true",
                        help="a generative recipe: train and judge (a) without swap augmentation, (b) with it, (c) with it and "
                             "reference drop, at the recipe's budget, and print one table")
    parser.add_argument("--limit", type=int, default=None, help="judge only each benchmark's first N items (a quick look)")
    parser.add_argument("--no-curve", action="store_true",
                        help="skip the learning curve (judging PandaLM again at 25%% and 50%% of the steps)")
    parser.add_argument("--margin-pairs", type=int, default=MARGIN_PAIRS,
                        help=f"a generative recipe: held-out pairs its tie margin is chosen on (default {MARGIN_PAIRS})")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "offline")
    from judgetrain.train.config import load_config, save_config

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = out / "commands.log"
    run_dir = out / "run"
    overrides = [f"output_dir={run_dir}"]
    if args.max_steps:
        overrides.append(f"optim.max_steps={args.max_steps}")
    config = load_config(args.recipe, overrides)
    if config.optim.max_steps is None:
        raise SystemExit(f"{args.recipe}: the benchmark needs optim.max_steps to place its learning-curve checkpoints")
    steps = config.optim.max_steps
    curve_steps = sorted({max(1, round(steps * f)) for f in CURVE_FRACTIONS})
    timings: dict[str, dict] = {}
    default_benchmarks = BENCHMARKS + ((ARENA_BENCHMARK,) if config.kind == "generative" else ())
    args.benchmarks = args.benchmarks or ",".join(default_benchmarks)
    benchmarks = [b for b in args.benchmarks.split(",") if b]
    before_benchmarks = benchmarks if args.before_benchmarks is None else [b for b in args.before_benchmarks.split(",") if b]
    if args.ablation:
        return run_ablation(args, config, out, log, steps=steps)
    if args.limit is not None and config.kind == "reward":
        print("--limit has no effect on a reward recipe: its benchmarks are judged whole", flush=True)

    # ---- prepare and train ----
    data_dirs = []
    if not args.skip_train:
        for command in recipe_prep_commands(args.recipe, args.data_dir.resolve()):
            target = Path(command[command.index("--out") + 1])
            data_dirs.append(target)
            if not (REPO_ROOT / target / "manifest.json").is_file():
                timings[f"prep {target.name}"] = run(command, log)
        # Checkpoints land on the learning-curve steps: every_steps is their greatest common step.
        every = int(np.gcd.reduce(curve_steps))
        overrides += [f"checkpoint.every_steps={every}", f"checkpoint.keep_last={steps // every + 1}", "checkpoint.resume=never"]
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)
        timings["train"] = run(["judgetrain", "train", "--config", str(args.recipe), *overrides], log)
    final = run_dir / "final"
    if config.kind == "generative":
        return generative_quality(args, config, out, run_dir, log, timings, benchmarks=benchmarks,
                                  before_benchmarks=before_benchmarks, curve_steps=curve_steps)
    export_dir = out / "judge"
    run(["judgetrain", "export", "--checkpoint", str(final), "--out", str(export_dir), "--dtype", "fp32"], log)
    from judgetrain.card import read_card

    card = read_card(export_dir)
    kind = card.kind
    tie_margin = card.reward.tie_margin if card.reward is not None else card.tie_policy.tie_margin

    # The model before training: the recipe's own starting point (base weights, fresh head).
    before_dir = out / "before"
    if not (before_dir / "config.json").is_file():
        from judgetrain.train.trainer import build_model, tokenizer_name
        from judgetrain.models import load_tokenizer

        initial = build_model(config)
        initial.save_pretrained(before_dir)
        load_tokenizer(tokenizer_name(config)).save_pretrained(before_dir)
        del initial
    memo: dict = {}
    max_seq_len = config.data.max_seq_len

    # ---- judge ----
    results: dict = {"recipe": str(args.recipe), "max_steps": steps, "kind": kind, "tie_margin": tie_margin,
                     "tie_margin_source": card.reward.tie_margin_source if card.reward is not None else None,
                     "benchmarks": {}, "curve": {}}
    for benchmark in benchmarks:
        entry = {"baselines": baselines(benchmark, args.data_dir), "before": None}
        if benchmark in before_benchmarks:
            entry["before"] = evaluate(benchmark, make_judge(before_dir, kind=kind, tie_margin=0.0, max_seq_len=max_seq_len,
                                                             memo=memo), args.data_dir)
        entry["after"] = evaluate(benchmark, make_judge(final, kind=kind, tie_margin=tie_margin, max_seq_len=max_seq_len, memo=memo),
                                  args.data_dir)
        # With a margin of 0 the two judges are one: judging again would only double the time.
        entry["after_no_tie_margin"] = entry["after"] if tie_margin == 0 else evaluate(
            benchmark, make_judge(final, kind=kind, tie_margin=0.0, max_seq_len=max_seq_len, memo=memo), args.data_dir)
        results["benchmarks"][benchmark] = entry
        print(f"judged {benchmark}: {entry['after']['seconds']:.0f} s after training (CPU share {entry['after']['cpu_share']:.2f}); "
              f"{HEADLINE[benchmark]} {fmt(entry['after']['metrics'][HEADLINE[benchmark]])}", flush=True)
        (out / "quality.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if CURVE_BENCHMARK in benchmarks and not args.no_curve:
        metric = HEADLINE[CURVE_BENCHMARK]
        before_curve = results["benchmarks"][CURVE_BENCHMARK]["before"]
        curve = {0.0: before_curve["metrics"][metric]} if before_curve else {}
        for step in curve_steps:
            checkpoint = run_dir / f"checkpoint-{step}"
            judged = evaluate(CURVE_BENCHMARK, make_judge(checkpoint, kind=kind, tie_margin=tie_margin, max_seq_len=max_seq_len,
                                                          memo=memo), args.data_dir)
            curve[step / steps] = judged["metrics"][metric]
        curve[1.0] = results["benchmarks"][CURVE_BENCHMARK]["after"]["metrics"][metric]
        results["curve"] = {f"{k:.2f}": v for k, v in sorted(curve.items())}
    results["timings"] = timings
    (out / "quality.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    save_config(config, out / "recipe_resolved.yaml")

    # ---- report ----
    train_timing = timings.get("train", {"seconds": 0.0, "cpu_share": float("nan")})
    print(f"\nrecipe {args.recipe.name}: kind {kind}, {steps} optimizer steps, training {train_timing['seconds']:.0f} s "
          f"(CPU share {train_timing['cpu_share']:.2f} of {os.cpu_count()} cores); "
          f"tie margin {tie_margin:g} ({results['tie_margin_source'] or 'from the card'})")
    for benchmark, entry in results["benchmarks"].items():
        metric = HEADLINE[benchmark]
        base = entry["baselines"]
        print(f"\n{benchmark} ({base['num_items']} items), {metric}:")
        print(f"  {'judge':<28} {metric:<28} {'swap consistency':<18} parse failures")
        for label, key in (("before training", "before"), ("after training", "after"), ("after, tie margin 0", "after_no_tie_margin")):
            if entry[key] is None:
                print(f"  {label:<28} (not judged: --before-benchmarks)")
                continue
            figures = entry[key]["metrics"]
            print(f"  {label:<28} {fmt(figures.get(metric)):<28} {fmt(figures.get('consistency')):<18} "
                  f"{fmt(figures.get('parse_failure_rate'))}")
        print(f"  {'majority class (' + str(base['majority_class']) + ')':<28} {fmt(base['majority']):<28} {'—':<18} 0.000")
        print(f"  {'longer answer wins':<28} {fmt(base['length']):<28} {'1.000':<18} 0.000")
        length = (entry["after"].get("length") or {}).get("metrics")
        if length:
            print(f"  after training, by length (characters): balanced {fmt(length['length_balanced_accuracy'])} (the longer "
                  f"answer: 0.500), controlled agreement {fmt(length['length_controlled_agreement'])}, picks the longer "
                  f"answer {fmt(length['judge_picked_longer_rate'])} (labels {fmt(length['label_picked_longer_rate'])})")
    if results["curve"]:
        print(f"\nlearning curve ({CURVE_BENCHMARK} {HEADLINE[CURVE_BENCHMARK]}):")
        for fraction, estimate in results["curve"].items():
            print(f"  {float(fraction):>5.0%} of the budget: {fmt(estimate)}")
    pandalm = results["benchmarks"].get("pandalm-test")
    if pandalm:
        print(f"pandalm_accuracy: {pandalm['after']['metrics']['accuracy']['value']:.3f}")
        print(f"pandalm_majority: {pandalm['baselines']['majority']['value']:.3f}")
        print(f"pandalm_length: {pandalm['baselines']['length']['value']:.3f}")
        print(f"pandalm_consistency: {pandalm['after']['metrics']['consistency']['value']:.3f}")
    autoj = results["benchmarks"].get("autoj-pairwise")
    if autoj:
        print(f"autoj_agreement: {autoj['after']['metrics']['both_orders_agreement']['value']:.3f}")
    if pandalm:
        print(f"pandalm_length_balanced: {pandalm['after']['length']['metrics']['length_balanced_accuracy']['value']:.3f}")
    if autoj:
        print(f"autoj_length: {autoj['baselines']['length']['value']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
