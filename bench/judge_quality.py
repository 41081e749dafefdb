"""Judge quality: train the shipped CPU judge recipe from scratch and judge full held-out benchmarks.

    python bench/judge_quality.py [--recipe recipes/smollm2-135m-judge-cpu.yaml] [--data-dir ../shared/data]
                                  [--out runs/bench/judge_quality] [--max-steps N] [--benchmarks pandalm-test,...]

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
    """The judge of one model dir (a reward model, or a generative checkpoint judged with its template)."""
    if kind == "reward":
        from judgetrain.reward.judge import LocalRewardScorer, RewardJudge

        key = str(model_dir)
        if key not in memo:
            memo[key] = MemoScorer(LocalRewardScorer(model_dir, max_seq_len=max_seq_len, batch_size=16))
        return RewardJudge(memo[key], tie_margin=tie_margin)
    from judgetrain.judging import Judge
    from judgetrain.judging.backends.transformers_backend import TransformersBackend

    key = str(model_dir)
    if key not in memo:
        memo[key] = TransformersBackend(str(model_dir), batch_size=8, dtype="auto")
    return Judge(memo["format"], memo[key], both_orders=True, aggregation="probabilities", tie_margin=tie_margin)


def evaluate(benchmark: str, judge, data_dir: Path) -> dict:
    from judgetrain_eval.runner import run_benchmark

    started, cpu_started = time.perf_counter(), time.process_time()
    result = run_benchmark(benchmark, judge=judge, data_dir=data_dir, num_resamples=NUM_RESAMPLES)
    metrics = result.results["metrics"]
    return {"metrics": metrics, "length": result.results.get("length"),
            **timing(time.perf_counter() - started, time.process_time() - cpu_started)}


def baselines(benchmark: str, data_dir: Path) -> dict:
    """Majority-class and longer-answer-wins figures of a benchmark, with bootstrap intervals."""
    from judgetrain_eval.runner import get_benchmark

    spec = get_benchmark(benchmark)
    samples = spec.load(None, data_dir)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", type=Path, default=DEFAULT_RECIPE)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / "bench" / "judge_quality")
    parser.add_argument("--max-steps", type=int, default=None, help="override the recipe's optimizer steps (a shorter run)")
    parser.add_argument("--benchmarks", default=",".join(BENCHMARKS))
    parser.add_argument("--before-benchmarks", default=None,
                        help="the benchmarks the untrained model is judged on (default: all of --benchmarks)")
    parser.add_argument("--skip-train", action="store_true", help="reuse the run already under --out (evaluate only)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "offline")
    benchmarks = [b for b in args.benchmarks.split(",") if b]
    before_benchmarks = benchmarks if args.before_benchmarks is None else [b for b in args.before_benchmarks.split(",") if b]

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
    if kind != "reward":
        from judgetrain import formats

        memo["format"] = formats.get(card.template)
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
    if CURVE_BENCHMARK in benchmarks:
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
