"""``judgetrain quickstart``: the whole day on the embedded SmolLM2-135M, on a CPU.

    judgetrain quickstart [--out runs/quickstart] [--tiny] [--kind reward|generative]

1. data: the pairwise sets shipped in ``judgetrain/resources/quickstart`` (LLMBar, MIT; Prometheus'
   HHH-alignment pairs and Vicuna-bench / MT-bench grade pairs, Apache-2.0; PandaLM's human-annotated test
   set, Apache-2.0 — see its ATTRIBUTION.md) → a prepared training dir and a held-out evaluation set of
   PandaLM test items (majority vote of 3 human annotators), never trained on;
2. evaluate the judge before training: both orders, accuracy / swap consistency / parse failures;
3. train it with :func:`judgetrain.train.trainer.train` (the same choices as the CPU judge recipe
   ``recipes/smollm2-135m-judge-cpu.yaml``);
4. evaluate the trained checkpoint the same way, beside the majority-class and longer-answer-wins baselines;
5. export it (safetensors + judge card), serve it on 127.0.0.1 with ``judgetrain serve`` and judge
   one example through ``Judge.from_card(URL)``;
6. print the summary table; ``OUT/report.md`` and ``OUT/results.json`` hold it, with 95% intervals, the
   length-controlled metrics of every row, and whether the trained judge beat each baseline (the lower end
   of its interval above the baseline's figure). The last two lines printed are ``quickstart_after:`` (the
   trained judge's accuracy with its interval) and ``quickstart_majority:``.

Two kinds of judge (``--kind``):

- ``reward`` (default): a reward judge (:mod:`judgetrain.reward`): one Bradley-Terry score per answer
  from a classification head on SmolLM2, the top decoder layers fine-tuned and the rest frozen, trained
  on the Vicuna-bench and MT-bench grade pairs, HHH and LLMBar's CaseStudy pairs (not LLMBar's Natural
  and Adversarial sets, which the CPU judge recipe evaluates on), every pair with a winner whose answers
  fit the token budget used whole (a longer pair is left out and counted), the tie margin chosen on a
  held-out tenth of the training pairs. Before training is the same model with its new head untrained.
- ``generative``: the choices of the generative CPU judge recipe
  (``recipes/smollm2-135m-generative-judge-cpu.yaml``) on what the package ships: LoRA on SmolLM2, trained to
  write its verdict first in the ``judgelm-v1`` template (the score line "s1 s2" for a
  pair, one grade for a single answer, then the explanation), trained on GPT-4's reference-guided grades of
  arena-bench-v1 (the copy in ``judgetrain/resources/arena_bench_v1``, read by the ``arena_bench`` reader, its
  training split only) as single grades with their critiques and as pairs from two grades, and on the
  Prometheus Vicuna-bench grade pairs (their 1-5 grades mapped onto 1-10); the shipped HHH and LLMBar pairs
  name a winner without grades, which gives JudgeLM's score line nothing to state, and the MT-bench grade
  pairs are judged on a second turn, which its prompt cannot show. Every pair is trained in both orders
  and every sample that shows a reference also without it (swap and reference drop, as JudgeLM
  ablates them); only samples whose whole row fits the token budget are drawn. Pairs are judged in both
  orders and decided by their verdict probabilities (the expected first grades of the two orders) with
  a tie margin chosen on a held-out tenth of the training pairs, which the export's card carries.

``--tiny`` runs the same path in seconds with the tiny random model (for CI): its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from judgetrain.atomic import write_jsonl_atomic, write_text_atomic
from judgetrain.types import JudgeSample, Judgment

RESOURCES = Path(__file__).parent / "resources" / "quickstart"
TRAIN_FILES = ("train_llmbar.jsonl", "train_hhh.jsonl")
REWARD_TRAIN_FILES = TRAIN_FILES + ("train_prometheus_pairs.jsonl", "train_prometheus_mtbench_pairs.jsonl")
REWARD_LEFT_OUT_LLMBAR_SETS = ("LLMBar/Natural", "LLMBar/Adversarial/")
"""LLMBar sets the reward judge does not train on, as in the CPU judge recipe: they are the LLMBar sets a
judge is evaluated on, and the adversarial ones reward the shorter answer in 3 pairs of 4 (built so that the
answer that reads better loses), which teaches a 135M judge to prefer short answers."""
KINDS = ("reward", "generative")
EVAL_FILE = "eval_pandalm.jsonl"
FORMAT = "judgelm-v1"
"""The generative judge's template: verdict first, pairs as "s1 s2", single answers with its single-grading twin."""
ARENA_BENCH_DIR = Path(__file__).parent / "resources" / "arena_bench_v1"
"""The shipped arena-bench-v1 copy (Apache-2.0), read through the ``arena_bench`` reader."""
GENERATIVE_PAIR_FILES = ("train_prometheus_pairs.jsonl",)
"""Shipped pair files with grades a JudgeLM score line can state (single-turn)."""
GENERATIVE_HELD_OUT_FRACTION = 0.1
"""Share of the generative training pairs held out to choose the tie margin on (never trained on)."""
GOLD_LABELS = ("human_majority", "human", "gold", "gpt4")
"""Which label of a shipped sample is its gold one (PandaLM: human_majority, HHH: human, LLMBar: gold,
Vicuna-bench grade pairs: gpt4)."""


@dataclass(frozen=True)
class Size:
    """How big a quickstart run is."""

    model: str
    kind: str
    num_train: int | None
    """Training samples drawn from the shipped pool; None takes all of it."""
    num_eval: int
    max_seq_len_tokens: int
    epochs: float
    max_steps: int | None
    lr: float
    batch_size: int
    grad_accum: int
    max_new_tokens: int
    trainable_layers: int | None = None


# The reward judge trains its top 4 layers at ~480 tokens/s on 2 CPU cores (bf16 autocast): 96 steps of
# 8 pairs of <= 512 tokens is ~8 min, and 300 PandaLM items are scored in ~1 min before and after. The
# shipped pool holds ~330 training pairs that fit: 96 steps is about two passes, at twice the recipe's lr.
# num_train None: every shipped sample of the reward pool.
FULL = Size(model="embedded:smollm2-135m", kind="reward", num_train=None, num_eval=300, max_seq_len_tokens=512, epochs=1.0,
            max_steps=96, lr=2e-4, batch_size=4, grad_accum=2, max_new_tokens=0, trainable_layers=4)
# The generative judge: 60 drawn samples (a third each: arena-bench single grades, arena-bench pairs, Prometheus
# pairs), with their reference-dropped twins and both orders 160 rows of <= 768 tokens (about 85K tokens at
# seed 0), packed 8 rows a step with LoRA at the recipe's lr (the recipe measured about 160 tokens/s on 2 cores);
# 200 PandaLM items judged before and after.
FULL_GENERATIVE = Size(model="embedded:smollm2-135m", kind="generative", num_train=60, num_eval=200, max_seq_len_tokens=768,
                       epochs=1.0, max_steps=None, lr=1e-3, batch_size=2, grad_accum=4, max_new_tokens=8)
TINY = Size(model="tiny", kind="reward", num_train=16, num_eval=6, max_seq_len_tokens=256, epochs=1.0, max_steps=4, lr=1e-3,
            batch_size=4, grad_accum=1, max_new_tokens=0, trainable_layers=1)
TINY_GENERATIVE = Size(model="tiny", kind="generative", num_train=16, num_eval=6, max_seq_len_tokens=2048, epochs=1.0, max_steps=4,
                       lr=1e-3, batch_size=4, grad_accum=1, max_new_tokens=8)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/quickstart", help="where the data, run, export and report go (default runs/quickstart)")
    parser.add_argument("--tiny", action="store_true", help="the same path in seconds with the tiny random model (CI)")
    parser.add_argument("--kind", choices=KINDS, default="reward",
                        help="reward: one Bradley-Terry score per answer (default); generative: a judge writing its verdict first")
    parser.add_argument("--num-train", type=int, default=None,
                        help="training samples (default: reward all 1,096 shipped, generative 60 before their twins; --tiny 16)")
    parser.add_argument("--num-eval", type=int, default=None, help="held-out PandaLM items judged before and after (default: reward 300, "
                                                                      "generative 200; --tiny 6)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample choice, the swap augmentation and training")


def run(args: argparse.Namespace) -> int:
    size = {("reward", False): FULL, ("generative", False): FULL_GENERATIVE, ("reward", True): TINY,
            ("generative", True): TINY_GENERATIVE}[(args.kind, bool(args.tiny))]
    overrides = {k: v for k, v in (("num_train", args.num_train), ("num_eval", args.num_eval)) if v is not None}
    for key, value in overrides.items():
        if value < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be at least 1, got {value}")
    size = Size(**{**size.__dict__, **overrides})
    quickstart(Path(args.out), size, seed=args.seed)
    return 0


def _say(text: str) -> None:
    print(text, flush=True)


# --- data --------------------------------------------------------------------------------------


def read_shipped(name: str) -> list[JudgeSample]:
    """The canonical samples of one shipped file."""
    from judgetrain.data.prepared import read_sample_file

    return read_sample_file(RESOURCES / name)


def gold_winner(sample: JudgeSample) -> str:
    label = sample.label(*GOLD_LABELS)
    assert label is not None and label.winner is not None, f"shipped sample {sample.id} has no gold winner"
    return label.winner


def generative_pool(*, seed: int) -> list[list[JudgeSample]]:
    """The generative judge's shippable sources, each shuffled with ``seed``: arena-bench single grades,
    arena-bench pairs from two grades of one question (both from the shipped copy's training split),
    the single-turn shipped grade pairs."""
    import random

    from judgetrain import plugins
    from judgetrain.data.rows import ReadReport

    def read(reader: str, **options: Any) -> list[JudgeSample]:
        return list(plugins.reader(reader).read(str(ARENA_BENCH_DIR), split="train", report=ReadReport(source=reader), **options))

    sources = [read("arena_bench"), read("pairs-from-grades", grades_from="arena_bench"),
               [s for name in GENERATIVE_PAIR_FILES for s in read_shipped(name) if not s.is_multi_turn]]
    for index, source in enumerate(sources):
        random.Random(seed + index).shuffle(source)
    return sources


def fitting_draw(sources: Sequence[Sequence[JudgeSample]], fmt, tokenizer, max_seq_len_tokens: int, num_samples: int) -> list[JudgeSample]:
    """``num_samples`` samples drawn in turn from each source, in its order, each rendered in its variant
    of ``fmt`` with whatever reference it shows and kept only when its whole row fits the budget (an
    answer cut to fit would no longer deserve its grade); a draw stops looking at a source once it has
    its share."""
    from judgetrain.data.augment import format_for
    from judgetrain.data.tokenize import encode_messages

    share = -(-num_samples // len(sources))
    chosen: list[JudgeSample] = []
    for source in sources:
        kept = 0
        for sample in source:
            if kept == share or len(chosen) == num_samples:
                break
            if tokenizer is None or len(encode_messages(format_for(sample, fmt).render(sample), tokenizer)[0]) <= max_seq_len_tokens:
                chosen.append(sample)
                kept += 1
    return chosen


def held_out_items(num_eval: int, *, seed: int) -> list[JudgeSample]:
    """``num_eval`` PandaLM test items, a seeded draw from the shipped 999 (kept in file order)."""
    import random

    items = read_shipped(EVAL_FILE)
    chosen = sorted(random.Random(seed).sample(range(len(items)), min(num_eval, len(items))))
    return [items[i] for i in chosen]


def build_data(out: Path, size: Size, tokenizer, *, seed: int) -> tuple[Path, list[JudgeSample], list[JudgeSample]]:
    """(training prepared dir, training samples, held-out evaluation samples)."""
    import random

    from judgetrain.data.prepare import prepare_dataset
    from judgetrain.data.prepared import read_samples
    from judgetrain.data.rows import ReadReport

    if size.kind == "generative":
        return build_generative_data(out, size, tokenizer, seed=seed)
    files = REWARD_TRAIN_FILES
    pool = [s for name in files for s in read_shipped(name)]
    pool = [s for s in pool if not s.meta.get("llmbar_set", "").startswith(REWARD_LEFT_OUT_LLMBAR_SETS)]
    random.Random(seed).shuffle(pool)
    # A reward judge scores one answer at a time: no order to swap. A pair with an answer over the
    # budget is left out at training time (data.long_pairs: drop), so every answer is seen whole.
    train = pool[: size.num_train]
    format_name, swap_probability = None, 0.0
    held_out = held_out_items(size.num_eval, seed=seed)
    train_dir = out / "data" / "train"
    read_report = ReadReport(source="quickstart", rows_read=len(pool), samples_built=len(train))
    for name in files:
        read_report.add_input_file(RESOURCES / name)  # so the manifest holds each shipped file's sha256
    prepare_dataset(train, train_dir, source="quickstart", input=str(RESOURCES), report=read_report, format_name=format_name,
                    swap_aug=swap_probability, seed=seed, details={"files": list(files), "max_seq_len_tokens": size.max_seq_len_tokens})
    # The samples as written, i.e. with the swap augmentation applied.
    return train_dir, read_samples(train_dir), held_out


def build_generative_data(out: Path, size: Size, tokenizer, *, seed: int) -> tuple[Path, list[JudgeSample], list[JudgeSample]]:
    """The generative judge's (training prepared dir, training samples as written, held-out PandaLM items):
    :func:`fitting_draw` over :func:`generative_pool`, then every sample with a reference followed by its
    reference-dropped twin and every pair by its swapped twin (``prepare_dataset(reference_twins=True,
    pair_symmetric=True)``)."""
    from judgetrain import formats
    from judgetrain.data.prepare import prepare_dataset
    from judgetrain.data.prepared import read_samples
    from judgetrain.data.rows import ReadReport

    sources = generative_pool(seed=seed)
    train = fitting_draw(sources, formats.get(FORMAT), tokenizer, size.max_seq_len_tokens, size.num_train or sum(map(len, sources)))
    train_dir = out / "data" / "train"
    read_report = ReadReport(source="quickstart", rows_read=sum(map(len, sources)), samples_built=len(train))
    for name in GENERATIVE_PAIR_FILES:
        read_report.add_input_file(RESOURCES / name)
    for path in sorted(ARENA_BENCH_DIR.rglob("*.jsonl.gz")):
        read_report.add_input_file(path)
    prepare_dataset(train, train_dir, source="quickstart", input=str(RESOURCES.parent), report=read_report, format_name=FORMAT,
                    reference_twins=True, pair_symmetric=True, seed=seed,
                    details={"files": [*GENERATIVE_PAIR_FILES, ARENA_BENCH_DIR.name], "max_seq_len_tokens": size.max_seq_len_tokens})
    return train_dir, read_samples(train_dir), held_out_items(size.num_eval, seed=seed)


def num_drawn(samples: Sequence[JudgeSample]) -> int:
    """How many of ``samples`` were drawn, not written as a swapped or reference-dropped twin of another."""
    from judgetrain.data.augment import PAIR_ID_KEY, REFERENCE_TWIN_OF_KEY

    return sum(1 for s in samples if s.meta.get(PAIR_ID_KEY, s.id) == s.id and REFERENCE_TWIN_OF_KEY not in s.meta)


def generative_tie_margin(model: str, train_samples: Sequence[JudgeSample], *, seed: int) -> dict[str, Any] | None:
    """The generative judge's tie margin on P(A) − P(B), chosen on the training pairs the run held out
    (``data.held_out_fraction``), each judged once in both orders
    (:func:`judgetrain.reward.margin.choose_probability_tie_margin`); None when none was decided."""
    from judgetrain.data.augment import PAIR_ID_KEY, REFERENCE_TWIN_OF_KEY
    from judgetrain.judging.backends.transformers_backend import TransformersBackend
    from judgetrain.judging.judge import Judge
    from judgetrain.reward.margin import choose_probability_tie_margin
    from judgetrain.train.data import is_held_out

    pairs = [s for s in train_samples if s.protocol == "pairwise" and s.meta.get(PAIR_ID_KEY, s.id) == s.id
             and REFERENCE_TWIN_OF_KEY not in s.meta and is_held_out(s, GENERATIVE_HELD_OUT_FRACTION, seed)]
    if not pairs:
        return None
    judge = Judge(FORMAT, TransformersBackend(model, batch_size=8), both_orders=True, aggregation="probabilities")
    return choose_probability_tie_margin(judge, pairs, source=f"the {len(pairs)} training pairs held out")


# --- evaluation --------------------------------------------------------------------------------


QUICKSTART_METRICS = ("accuracy", "combined_accuracy", "consistency", "parse_failure_rate")
"""The columns of the quickstart table, named and defined as in :mod:`judgetrain.evaluation.scoring`."""


def scored(judgments: Sequence[Judgment], samples: Sequence[JudgeSample], *, num_resamples: int = 0) -> dict[str, Any]:
    """The evaluation scorer's whole result for the both-orders ``judgments`` against the human label
    (a parse failure counts as wrong): :data:`QUICKSTART_METRICS` with ``num_resamples`` bootstrap
    resamples for their intervals, and the length-controlled metrics under ``length``."""
    from judgetrain.evaluation import rows_from_judgments, score_items

    rows = rows_from_judgments(samples, judgments, label_key=GOLD_LABELS)
    return score_items(rows, kind="pairwise", metrics=QUICKSTART_METRICS, num_resamples=num_resamples)


def score(judgments: Sequence[Judgment], samples: Sequence[JudgeSample]) -> dict[str, Any]:
    """:data:`QUICKSTART_METRICS` of the both-orders ``judgments`` against the human label, from the
    evaluation scorer (a parse failure counts as wrong)."""
    from judgetrain.evaluation import value_of

    result = scored(judgments, samples)
    return {"num_items": len(samples), **{key: value_of(result, key) for key in QUICKSTART_METRICS}}


def baseline_verdicts(train: Sequence[JudgeSample], held_out: Sequence[JudgeSample]) -> dict[str, list[str]]:
    """Each baseline's verdict on every held-out item: the majority class (the commonest training
    label) and "the longer answer wins" (in characters, a tie on equal lengths: the rule and unit of
    :mod:`judgetrain.metrics`' length metrics)."""
    from judgetrain import metrics
    from judgetrain.evaluation.rows import answer_lengths

    majority = Counter(gold_winner(s) for s in train if s.protocol == "pairwise").most_common(1)[0][0]
    return {f"majority class ({majority})": [majority] * len(held_out),
            "longer answer wins": [metrics.longer_answer(*answer_lengths(s)) for s in held_out]}


def baseline_scored(held_out: Sequence[JudgeSample], verdicts: Sequence[str], *, num_resamples: int = 0) -> dict[str, Any]:
    """The evaluation scorer's result for a baseline's ``verdicts`` (one order: a rule has no order to swap)."""
    from judgetrain.evaluation import row_of_sample, score_items

    rows = []
    for sample, verdict in zip(held_out, verdicts):
        row = row_of_sample(sample, label_key=next(k for k in GOLD_LABELS if k in sample.labels))
        row.orders, row.verdict, row.raw_texts, row.parse_failures, row.template = ["original"], verdict, [verdict], [None], "baseline"
        rows.append(row)
    return score_items(rows, kind="pairwise", metrics=QUICKSTART_METRICS, num_resamples=num_resamples)


def baselines(train: Sequence[JudgeSample], held_out: Sequence[JudgeSample]) -> dict[str, dict[str, Any]]:
    """Majority class (the commonest training label, for every item) and longer-answer-wins."""
    from judgetrain import metrics

    gold = [gold_winner(s) for s in held_out]
    (majority_name, majority), (longer_name, longer) = baseline_verdicts(train, held_out).items()
    majority_accuracy = metrics.accuracy(majority, gold)
    longer_accuracy = metrics.accuracy(longer, gold)
    return {
        # One label for every item: no order was shown, so there is no consistency to measure.
        majority_name: {"accuracy": majority_accuracy, "combined_accuracy": majority_accuracy,
                        "consistency": None, "parse_failure_rate": 0.0},
        # The longer answer stays the longer one when the two are swapped: consistent by construction.
        longer_name: {"accuracy": longer_accuracy, "combined_accuracy": longer_accuracy, "consistency": 1.0,
                      "parse_failure_rate": 0.0},
    }


def evaluate(model: str, held_out: Sequence[JudgeSample], size: Size, *, desc: str,
             tie_margin: float = 0.0) -> tuple[dict[str, Any], list[Judgment]]:
    """Judge ``held_out`` with ``model`` in both orders; (scores, judgments)."""
    if size.kind == "reward":
        from judgetrain.reward.judge import LocalRewardScorer, RewardJudge

        _say(f"[quickstart] {desc}: scoring both answers of {len(held_out)} held-out PandaLM items")
        judge = RewardJudge(LocalRewardScorer(model, max_seq_len=size.max_seq_len_tokens), tie_margin=tie_margin)
        judgments = judge.judge(held_out)
        del judge
        return score(judgments, held_out), judgments
    from judgetrain.judging.backends.base import Decoding
    from judgetrain.judging.backends.transformers_backend import TransformersBackend
    from judgetrain.judging.judge import Judge

    _say(f"[quickstart] {desc}: judging {len(held_out)} held-out PandaLM items in both orders")
    backend = TransformersBackend(model, batch_size=8)
    judge = Judge(FORMAT, backend, Decoding(max_new_tokens=size.max_new_tokens), both_orders=True, progress=True,
                  aggregation="probabilities", tie_margin=tie_margin)
    judgments = judge.judge(held_out)
    del backend
    return score(judgments, held_out), judgments


def initial_reward_model(size: Size, out_dir: Path, *, seed: int) -> Path:
    """The reward model before training (pretrained body, untrained head) saved to ``out_dir``."""
    from judgetrain.models import load_tokenizer
    from judgetrain.reward.train import build_reward_model
    from judgetrain.train.config import TrainConfig

    config = TrainConfig()
    config.kind, config.model.path, config.optim.seed = "reward", size.model, seed
    build_reward_model(config).save_pretrained(out_dir)
    load_tokenizer(size.model).save_pretrained(out_dir)
    return out_dir


def train_config_text(size: Size, train_dir: Path, run_dir: Path, config_path: Path, *, seed: int) -> str:
    """The training config the quickstart writes (and a user can rerun)."""
    steps = f"max_steps: {size.max_steps}, " if size.max_steps else ""
    common = (f"optim: {{lr: {size.lr}, epochs: {size.epochs}, {steps}per_device_batch_size: {size.batch_size}, "
              f"gradient_accumulation_steps: {size.grad_accum}, warmup_ratio: 0.1, seed: {seed}"
              f"{', bf16: true' if size.kind == 'reward' and _bf16_fast() else ''}}}\n"
              f"logging: {{stdout: false, every_steps: 5}}\n"
              f"checkpoint: {{every_steps: 0, resume: never}}\n"
              f"output_dir: {json.dumps(str(run_dir))}\n")
    header = f"#   judgetrain train --config {config_path}\n"
    if size.kind == "reward":
        return (f"# A reward judge on {size.model} (top {size.trainable_layers} layers + head), written by `judgetrain quickstart`; "
                f"rerun with:\n{header}kind: reward\n"
                f"model: {{path: {json.dumps(size.model)}}}\n"
                f"data: {{datasets: [{{path: {json.dumps(str(train_dir))}}}], max_seq_len: {size.max_seq_len_tokens}, "
                f"long_pairs: drop, held_out_fraction: 0.1}}\n"
                f"method: {{name: full, trainable_layers: {size.trainable_layers}}}\n" + common)
    # Paths are written as JSON strings, which YAML reads back whatever characters they hold.
    return (f"# LoRA on {size.model} (verdict first), written by `judgetrain quickstart`; rerun with:\n{header}"
            f"model: {{path: {json.dumps(size.model)}}}\n"
            f"data: {{datasets: [{{path: {json.dumps(str(train_dir))}}}], format: {FORMAT}, max_seq_len: {size.max_seq_len_tokens}, "
            f"packing: true, pair_symmetric: true, held_out_fraction: {GENERATIVE_HELD_OUT_FRACTION}}}\n"
            f"method: {{name: lora, lora: {{r: 16, alpha: 32, dropout: 0.0}}}}\n" + common)


def _bf16_fast() -> bool:
    from judgetrain.judging.backends.transformers_backend import bf16_is_fast

    return bf16_is_fast("cpu")


def _write_json(path: Path, content: Any) -> None:
    write_text_atomic(path, json.dumps(content, indent=2, ensure_ascii=False, default=str) + "\n")


# --- the report --------------------------------------------------------------------------------


def _cell(value: float | None, interval: Sequence[float | None] | None = None) -> str:
    if value is None:
        return "—"
    if interval is None or interval[0] is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def summary_table(rows: dict[str, dict[str, Any]], intervals: dict[str, dict[str, list[float | None]]] | None = None) -> str:
    """The markdown table of :data:`QUICKSTART_METRICS` per row, each value with its 95% interval when
    ``intervals[row][metric]`` gives one."""
    intervals = intervals or {}
    lines = ["| judge | " + " | ".join(QUICKSTART_METRICS) + " |", "|---" * (len(QUICKSTART_METRICS) + 1) + "|"]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(_cell(row[key], intervals.get(name, {}).get(key)) for key in QUICKSTART_METRICS) + " |")
    return "\n".join(lines)


def intervals_of(result: dict[str, Any]) -> dict[str, list[float | None]]:
    """``{metric: [low, high]}`` of the :data:`QUICKSTART_METRICS` in a scorer result."""
    return {key: [est["low"], est["high"]] for key, est in result["metrics"].items() if key in QUICKSTART_METRICS}


def length_table(length: dict[str, dict[str, Any]]) -> str:
    """The markdown table of the length-controlled metrics (one row per judge, value and 95% interval)."""
    from judgetrain.evaluation.scoring import LENGTH_METRICS

    lines = ["| judge | " + " | ".join(LENGTH_METRICS) + " |", "|---" * (len(LENGTH_METRICS) + 1) + "|"]
    for name, section in length.items():
        cells = [_cell(est["value"], [est["low"], est["high"]]) for est in (section["metrics"][key] for key in LENGTH_METRICS)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def beats(estimate: dict[str, Any], figure: float | None) -> bool:
    """Whether a judge beat a baseline: the lower end of its 95% interval is above the baseline's figure."""
    return estimate.get("low") is not None and figure is not None and estimate["low"] > figure


def verdict_sentence(accuracy: dict[str, Any], baseline_rows: dict[str, dict[str, Any]], after_length: dict[str, Any]) -> str:
    """One sentence on whether the trained judge (its accuracy estimate ``accuracy``) beat each baseline,
    and one on whether its length_balanced_accuracy beat the longer-answer rule's 0.5."""
    def named(baseline: str) -> str:
        return baseline.replace("majority class (", "the majority class ").rstrip(")") if baseline.startswith("majority") \
            else f'"the {baseline}"'

    said = [f"{'beats' if beats(accuracy, row['accuracy']) else 'is not shown to beat'} {named(name)} ({row['accuracy']:.3f})"
            for name, row in baseline_rows.items()]
    balanced = after_length["metrics"]["length_balanced_accuracy"]
    length_said = ("Its length_balanced_accuracy is not defined here (a length split is empty)." if balanced["value"] is None else
                   f"Its length_balanced_accuracy, {_cell(balanced['value'], [balanced['low'], balanced['high']])}, "
                   f"{'is' if beats(balanced, 0.5) else 'is not shown to be'} above the 0.500 of \"the longer answer wins\".")
    return (f"The trained judge's accuracy, {_cell(accuracy['value'], [accuracy['low'], accuracy['high']])}, "
            + " and ".join(said) + " (beating a baseline means the lower end of the 95% interval is above its figure). "
            + length_said)


def quickstart(out: Path, size: Size, *, seed: int = 0) -> dict[str, Any]:
    """Run the quickstart into ``out``; returns the results written to ``out/results.json``."""
    from judgetrain.export import export
    from judgetrain.judging.judge import Judge
    from judgetrain.models import load_tokenizer, resolve_model_path
    from judgetrain.serve import start_server
    from judgetrain.train.config import load_config
    from judgetrain.train.trainer import train

    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    _say(f"[quickstart] model {size.model}; everything goes to {out}")
    model_path = resolve_model_path(size.model)  # converts the embedded GGUF once (~30 s)
    tokenizer = load_tokenizer(size.model)

    # 1. data
    train_dir, train_samples, held_out = build_data(out, size, tokenizer, seed=seed)
    _say(f"[quickstart] data: {num_drawn(train_samples)} training samples ({len(train_samples)} rows with their twins) in "
         f"{train_dir}; {len(held_out)} held-out PandaLM test items")

    # 2. before training
    if size.kind == "reward":
        model_path = str(initial_reward_model(size, out / "before", seed=seed))
    before, before_judgments = evaluate(model_path, held_out, size, desc="before training")

    # 3. train
    run_dir = out / "run"
    config_path = out / "train_config.yaml"
    config_path.write_text(train_config_text(size, train_dir, run_dir, config_path, seed=seed), encoding="utf-8")
    _say(f"[quickstart] training ({config_path})")
    train_started = time.perf_counter()
    result = train(load_config(config_path))
    train_seconds = time.perf_counter() - train_started
    _say(f"[quickstart] trained {result.global_step} steps in {train_seconds:.0f} s, mean loss {result.train_loss:.3f}")

    # 4. after training (a reward judge with the tie margin it chose on its held-out pairs)
    tie_margin = 0.0
    if size.kind == "reward":
        from judgetrain.reward.margin import read_tie_margin

        tie_margin = (read_tie_margin(result.final_dir) or {}).get("tie_margin", 0.0)
    else:
        from judgetrain.reward.margin import save_tie_margin

        margin = generative_tie_margin(str(result.final_dir), train_samples, seed=seed)
        if margin is not None:
            save_tie_margin(result.final_dir, margin)
            tie_margin = margin["tie_margin"]
        _say(f"[quickstart] tie margin {tie_margin:g} on P(A) - P(B) "
             f"({margin['source'] + ', accuracy ' + format(margin['accuracy'], '.3f') if margin else 'no held-out pair was decided'})")
    after, after_judgments = evaluate(str(result.final_dir), held_out, size, desc="after training", tie_margin=tie_margin)
    eval_dir = run_dir / "eval"
    eval_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl_atomic(eval_dir / "judgments_before.jsonl", (j.to_dict() for j in before_judgments))
    write_jsonl_atomic(eval_dir / "judgments_after.jsonl", (j.to_dict() for j in after_judgments))
    template = "reward-chat-v1" if size.kind == "reward" else FORMAT
    _write_json(eval_dir / "results.json", {"benchmark": "pandalm-test (held out, both orders)", "template": template,
                                            "metrics": after, "before_training": before})

    # 5. export, serve, judge one example through the client
    from judgetrain.judging.backends.base import Decoding

    export_dir = export(result.final_dir, out / "judge", dtype="fp32" if size.model == "tiny" else "bf16",
                        decoding=Decoding(max_new_tokens=size.max_new_tokens) if size.kind == "generative" else None,
                        name=f"quickstart-{Path(size.model).name}",
                        **({"aggregation": "probabilities", "tie_margin": tie_margin} if size.kind == "generative" else {}))
    _say(f"[quickstart] exported to {export_dir}")
    server, _ = start_server(str(export_dir), "127.0.0.1", 0, batch_size=2)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        client_judge = Judge.from_card(url)
        example = held_out[0]
        served = client_judge.compare(example.question_turns[0], example.answers[0].text, example.answers[1].text)
        client_judge.backend.close()
    finally:
        server.shutdown()
        server.server_close()
    served_example = {"url": url, "sample_id": example.id, "human": gold_winner(example), "winner": served.winner,
                      "raw_text": served.raw_text,
                      "both_orders": {k: v for k, v in served.both_orders.to_dict().items() if k not in ("original", "swapped")}
                      if served.both_orders is not None else None}
    _say(f"[quickstart] served judge at {url}: {example.id} -> {served.winner} (human: {gold_winner(example)})")

    # 6. the report: every figure with its 95% bootstrap interval, and the length-controlled metrics
    from judgetrain.metrics import DEFAULT_BOOTSTRAP_RESAMPLES, LENGTH_UNIT

    baseline_rows = baselines(train_samples, held_out)
    rows = {"before training": before, "after training": after, **baseline_rows}
    full = {"before training": scored(before_judgments, held_out, num_resamples=DEFAULT_BOOTSTRAP_RESAMPLES),
            "after training": scored(after_judgments, held_out, num_resamples=DEFAULT_BOOTSTRAP_RESAMPLES)}
    for name, verdicts in baseline_verdicts(train_samples, held_out).items():
        full[name] = baseline_scored(held_out, verdicts, num_resamples=DEFAULT_BOOTSTRAP_RESAMPLES)
    intervals = {name: intervals_of(result_of) for name, result_of in full.items()}
    length = {name: result_of["length"] for name, result_of in full.items()}
    after_accuracy = full["after training"]["metrics"]["accuracy"]
    table = summary_table(rows, intervals)
    results = {
        "model": size.model, "kind": size.kind, "template": template, "tie_margin": tie_margin, "num_train": num_drawn(train_samples),
        "num_train_rows": len(train_samples), "num_eval": len(held_out),
        "train_steps": result.global_step, "train_loss": result.train_loss, "train_seconds": train_seconds,
        "rows": rows, "intervals": intervals, "length_unit": LENGTH_UNIT, "length": length,
        "served_example": served_example, "export_dir": str(export_dir), "run_dir": str(run_dir),
        "wall_seconds": time.perf_counter() - started,
    }
    debiased_said = ""
    if size.kind == "generative":
        # The card's own verdict: both orders' verdict probabilities against the tie margin.
        results["debiased_accuracy"] = {name: full[name]["metrics"].get("debiased_accuracy") for name in ("before training", "after training")}
        after_debiased = results["debiased_accuracy"]["after training"]
        debiased_said = (f"The exported judge decides a pair by both orders' verdict probabilities (tie margin {tie_margin:g}): "
                         f"its debiased_accuracy is {_cell(after_debiased['value'], [after_debiased['low'], after_debiased['high']])} "
                         f"after training.\n\n" if after_debiased and after_debiased["value"] is not None else
                         "No pair was decided by its verdict probabilities (an order did not parse).\n\n")
    _write_json(out / "results.json", results)
    sources = ("Vicuna-bench and MT-bench grade pairs + HHH + LLMBar CaseStudy" if size.kind == "reward"
               else "arena-bench-v1 grades and grade pairs + Vicuna-bench grade pairs, with reference-dropped twins, in both orders")
    report = (f"# judgetrain quickstart\n\nModel `{size.model}`, a {size.kind} judge (template `{template}`), "
              f"{num_drawn(train_samples)} training samples ({sources}; {len(train_samples)} rows), {len(held_out)} held-out "
              f"PandaLM test items judged in both "
              f"orders against the majority vote of 3 human annotators (a parse failure counts as wrong). `accuracy` is the "
              f"original order's verdict; `combined_accuracy` the verdict of both orders (a disagreement between them is a "
              f"tie); `consistency` the share of items with the same verdict in both orders (definitions: "
              f"judgetrain.evaluation.scoring). Brackets hold 95% percentile bootstrap intervals over the items "
              f"({DEFAULT_BOOTSTRAP_RESAMPLES} resamples).\n\n{table}\n\n"
              f"{verdict_sentence(after_accuracy, baseline_rows, length['after training'])}\n\n{debiased_said}"
              f"## Length\n\nAnswer length in {LENGTH_UNIT} of the answer text. The accuracy where the longer answer "
              f"won, where the shorter one won and on equal lengths; their balanced mean (exactly 0.5 for \"the longer "
              f"answer wins\"); the share of decided verdicts (and of the labels) naming the longer answer; and the "
              f"agreement read at equal lengths from a logistic fit, as AlpacaEval's length-controlled win rate "
              f"(definitions: judgetrain.evaluation.scoring).\n\n{length_table(length)}\n\n"
              f"Trained {result.global_step} steps in {train_seconds:.0f} s. Export: `{export_dir}`. "
              f"Wall time {results['wall_seconds']:.0f} s.\n")
    (out / "report.md").write_text(report, encoding="utf-8")
    _say("\n" + table + "\n")
    _say(f"[quickstart] done in {results['wall_seconds']:.0f} s. Report: {out / 'report.md'}; results: {out / 'results.json'}; "
         f"judge: {export_dir}")
    majority_name = next(name for name in baseline_rows if name.startswith("majority class"))
    _say(f"quickstart_after: {_cell(after_accuracy['value'], [after_accuracy['low'], after_accuracy['high']])}")
    _say(f"quickstart_majority: {_cell(baseline_rows[majority_name]['accuracy'])}")
    return results


__all__ = ["configure", "run", "quickstart", "Size", "FULL", "FULL_GENERATIVE", "TINY", "TINY_GENERATIVE", "FORMAT", "KINDS", "build_data", "read_shipped",
           "score", "scored", "baselines", "baseline_verdicts", "baseline_scored", "summary_table", "length_table", "beats",
           "verdict_sentence", "QUICKSTART_METRICS"]
