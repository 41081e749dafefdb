"""Run a benchmark: load its items, get verdicts (from a judge, or from a predictions file), score them.

Both ways end in the same list of :class:`~judgetrain.evaluation.rows.ItemResult` rows, and one
function (:func:`judgetrain.evaluation.scoring.score_items`, through :func:`score_items` here) turns
rows into metrics, so a judge's run and the same verdicts fed back as a predictions file give the same
numbers. Nothing is written here; :mod:`judgetrain_eval.report` writes the run directory.

Items come from the benchmark's own reader, or, when ``--data`` is a file of canonical samples
(``JudgeSample.to_dict()`` rows, such as the eval files shipped in ``judgetrain/resources`` and the
``samples/`` of a prepared dir), from those rows as they are (:func:`canonical_samples_source`). A bad
row stops the run naming its file and line, or with ``on_bad_row="skip"`` is skipped and counted in
the run's ``data_read`` record (results.json, report.md), as ``judgetrain prep`` does.

A judge given as an export dir or a served judge's URL is built from its card by the one factory of
judges (:func:`judgetrain.judging.protocol.judge_from_card`), either kind.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from judgetrain_eval.base import Benchmark
from judgetrain import metrics as m
from judgetrain import plugins
from judgetrain.card import JudgeCard, has_card
from judgetrain.data.rows import ReadReport, check_on_bad_row
from judgetrain.evaluation.rows import ItemResult, fill_from_judgment, fill_grade_pair, row_of_sample
from judgetrain.evaluation.scoring import score_items as score_rows
from judgetrain.formats.base import JudgeFormat
from judgetrain.types import JudgeSample, Judgment


def get_benchmark(name: str) -> Benchmark:
    """The benchmark registered under ``name`` (ValueError listing the names otherwise)."""
    return plugins.benchmark(name)


# --- the items -----------------------------------------------------------------------------------

CANONICAL_REQUIRED_FIELDS = ("id", "source", "question", "answers")
"""The fields every canonical sample row has (``JudgeSample.to_dict()``)."""
CANONICAL_SCHEMA = "judgesample"
"""The schema name a canonical samples file is recorded under."""


def _is_canonical_row(row: Any) -> bool:
    fields = {f.name for f in dataclasses.fields(JudgeSample)}
    return isinstance(row, dict) and set(CANONICAL_REQUIRED_FIELDS) <= set(row) and set(row) <= fields


def _first_row(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                try:
                    return json.loads(line)
                except ValueError:
                    return None  # not JSON lines: the benchmark's reader reports it
    return None


def canonical_samples_source(source: str) -> str | None:
    """What to read as canonical samples when ``source`` holds them, else None (the benchmark's reader
    reads it): a JSONL file whose first row is a canonical sample, a prepared dir (its ``samples/``),
    or a dir of such JSONL files."""
    from judgetrain.data.prepared import SAMPLES_DIR

    path = Path(source)
    if path.is_dir() and (path / SAMPLES_DIR).is_dir():
        path = path / SAMPLES_DIR
    if path.is_file():
        return str(path) if path.suffix == ".jsonl" and _is_canonical_row(_first_row(path)) else None
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
        return str(path) if files and _is_canonical_row(_first_row(files[0])) else None
    return None


def load_items(benchmark: Benchmark, data: str | None = None, data_dir: str | Path | None = None, *,
               limit: int | None = None, on_bad_row: str = "error", options: dict[str, Any] | None = None,
               report: ReadReport | None = None) -> list[JudgeSample]:
    """The benchmark's items, at most ``limit`` rows read: canonical sample rows as they are when the
    source holds them, else through the benchmark's reader. A row that is malformed or is not an item
    of the benchmark (no gold label) raises ValueError naming it, or with ``on_bad_row="skip"`` is
    skipped and counted in ``report``."""
    check_on_bad_row(on_bad_row)
    report = report if report is not None else ReadReport()
    source = benchmark.resolve_source(data, data_dir)
    canonical = canonical_samples_source(source)
    if canonical is not None:
        reader = plugins.reader("jsonl")  # canonical rows without a field mapping
        report.source = f"{benchmark.name} ({CANONICAL_SCHEMA} rows)"
        samples = []
        for sample in reader.read(canonical, report=report, on_bad_row=on_bad_row):
            samples.append(sample)
            if limit is not None and len(samples) >= limit:
                break
    else:
        report.source = benchmark.name
        samples = benchmark.read(source, limit=limit, on_bad_row=on_bad_row, report=report)
    if benchmark.annotate is not None:
        samples = benchmark.annotate(samples, source, data_dir, dict(options or {}))
    items = []
    for sample in samples:
        try:
            benchmark.check_sample(sample)
        except ValueError as err:
            if on_bad_row != "skip":
                raise ValueError(f"{source}: {err}. Fix the row, or pass --on-bad-row skip to skip and count it") from None
            report.skip("not a benchmark item", f"{source}: sample {sample.id!r}", str(err))
            continue
        items.append(sample)
    report.samples_built = len(items)
    return items


# --- one row per item ---------------------------------------------------------------------------

def base_row(benchmark: Benchmark, sample: JudgeSample) -> ItemResult:
    """The row of ``sample`` before any verdict: its id, group, labels and gold."""
    return row_of_sample(sample, label_key=benchmark.label_key, kind=benchmark.kind, group=benchmark.group(sample))


# --- verdicts from a predictions file -------------------------------------------------------------

def rows_from_predictions(benchmark: Benchmark, samples: Sequence[JudgeSample], predictions: str | Path,
                          predictions_swapped: str | Path | None = None, label_map: str | None = None,
                          limited: bool = False) -> list[ItemResult]:
    """Rows for ``samples`` from a predictions file (and its swapped-order twin)."""
    from judgetrain_eval.predictions import parse_label_map, read_predictions

    mapping = parse_label_map(label_map)
    if benchmark.kind != "pairwise" and predictions_swapped is not None:
        raise ValueError(f"benchmark {benchmark.name} is {benchmark.kind}: it has no swapped order; drop --predictions-swapped")
    first = read_predictions(predictions, samples, kind=benchmark.kind, label_map=mapping, limited=limited)
    second = (read_predictions(predictions_swapped, samples, kind=benchmark.kind, label_map=mapping, swapped=True,
                               limited=limited) if predictions_swapped is not None else None)
    rows = []
    for i, sample in enumerate(samples):
        row = base_row(benchmark, sample)
        p = first[i]
        if benchmark.kind == "pairwise":
            row.orders = ["original"]
            row.verdict = p.winner
            row.scores = list(p.scores) if p.scores is not None else None
            row.raw_texts = [p.raw]
            row.parse_failures = [p.parse_failure]
            if second is not None:
                q = second[i]
                row.orders.append("swapped")
                row.verdict_swapped = q.winner
                row.raw_texts.append(q.raw)
                row.parse_failures.append(q.parse_failure)
        elif benchmark.kind == "grading":
            row.orders = ["original"]
            row.scores = list(p.scores)
            row.raw_texts = [p.raw]
            row.parse_failures = [p.parse_failure]
        else:
            row.orders = ["first_answer", "second_answer"]
            row.scores = list(p.scores)
            row.raw_texts = [p.raw, p.raw]
            row.parse_failures = [None if s is not None else p.parse_failure for s in p.scores]
        row.template = "predictions"
        rows.append(row)
    return rows


# --- verdicts from a judge ------------------------------------------------------------------------

def _judge_in_groups(samples: Sequence[JudgeSample], judge_for: Callable[[JudgeSample], Any]) -> list[Judgment]:
    """Judge ``samples`` with the judge each one needs (one call per judge), results in sample order."""
    by_judge: dict[int, tuple[Any, list[int]]] = {}
    for i, sample in enumerate(samples):
        judge = judge_for(sample)
        by_judge.setdefault(id(judge), (judge, []))[1].append(i)
    out: list[Judgment | None] = [None] * len(samples)
    for judge, indices in by_judge.values():
        judgments = judge.judge([samples[i] for i in indices])
        assert len(judgments) == len(indices), "the judge must return one judgment per sample"
        for i, judgment in zip(indices, judgments):
            out[i] = judgment
    return out  # type: ignore[return-value]


def rows_from_judge(benchmark: Benchmark, samples: Sequence[JudgeSample], judge: Any | Callable[[JudgeSample], Any]) -> list[ItemResult]:
    """Rows for ``samples`` judged by ``judge``: a ``judgetrain.judging.Judge``, or a function giving
    the Judge for a sample (when samples need different templates, e.g. MT-bench turn 2).

    Pairwise items are judged in both orders by the judge itself (``both_orders=True``); grading items
    once; grade pairs as two single-answer samples (``<id>/first`` and ``<id>/second``)."""
    judge_for = judge if callable(judge) and not hasattr(judge, "judge") else (lambda sample: judge)
    rows = [base_row(benchmark, s) for s in samples]
    if benchmark.kind == "grade_pair":
        singles = []
        for sample in samples:
            for suffix, answer in zip(("first", "second"), sample.answers):
                singles.append(sample.replace(id=f"{sample.id}/{suffix}", answers=(answer,), labels={}))
        judgments = _judge_in_groups(singles, judge_for)
        for i, row in enumerate(rows):
            fill_grade_pair(row, judgments[2 * i: 2 * i + 2], fmt=_parser_of(judge_for(singles[2 * i])))
        return rows
    judgments = _judge_in_groups(list(samples), judge_for)
    for sample, row, judgment in zip(samples, rows, judgments):
        fill_from_judgment(row, judgment, benchmark.kind, fmt=_parser_of(judge_for(sample)))
    return rows


def _parser_of(judge: Any) -> JudgeFormat | None:
    """The format whose strict and lenient parsers re-read a judge's raw outputs; None for a judge
    without one (a reward judge's outputs are numbers, not text to parse)."""
    fmt = getattr(judge, "format", None)
    return fmt if isinstance(fmt, JudgeFormat) else None


# --- scoring --------------------------------------------------------------------------------------

def score_items(benchmark: Benchmark, rows: Sequence[ItemResult], *, policy: str = "wrong",
                num_resamples: int = m.DEFAULT_BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """The library scorer (:func:`judgetrain.evaluation.scoring.score_items`) with the benchmark's
    kind, headline metrics, groups and gold label."""
    return score_rows(rows, kind=benchmark.kind, metrics=benchmark.metrics, group_names=benchmark.group_names,
                      label_key=benchmark.label_key, policy=policy, num_resamples=num_resamples, seed=seed)


# --- a whole run ----------------------------------------------------------------------------------

@dataclass
class EvalRun:
    """A scored run: the benchmark, the resolved config, one row per item and the metrics."""

    benchmark: Benchmark
    config: dict[str, Any]
    rows: list[ItemResult]
    results: dict[str, Any]
    seconds: float = 0.0

    def headline(self) -> dict[str, Any]:
        """The ``--print-json`` object: stable metric keys with their values (rates as fractions),
        only the metrics that apply, per-group values under ``groups``."""
        out: dict[str, Any] = {"benchmark": self.benchmark.name,
                               "parse_failure_policy": self.config["parse_failure_policy"]}
        for key, value in self.results["metrics"].items():
            out[key] = int(value["value"]) if key == "num_items" else value["value"]
        out["groups"] = {g: {k: (int(v["value"]) if k == "num_items" else v["value"]) for k, v in metrics.items()}
                         for g, metrics in self.results["groups"].items()}
        return out


def versions() -> dict[str, str]:
    """Versions of what produced the numbers."""
    out = {"python": platform.python_version()}
    for name in ("judgetrain", "numpy", "scipy", "torch", "transformers"):
        try:
            out[name] = importlib.import_module(name).__version__
        except Exception:  # a version we cannot read is left out, not guessed
            continue
    return out


def judge_factory(judge_spec: str, base_format: str | None, benchmark: Benchmark, *, max_new_tokens: int | None = None,
                  backend_options: dict[str, Any] | None = None, card: JudgeCard | None = None,
                  cache: str | Path | None = None):
    """(a function giving the Judge for a sample, the backend) for ``judge_spec`` (checkpoint dir,
    export dir, ``openai:MODEL`` or ``tiny``).

    An export dir or a served judge's URL (its judge card, or ``card``) judges exactly as
    ``Judge.from_card(dir)`` does: the judge is built by :func:`judgetrain.judging.protocol.judge_from_card`,
    so the kind, template, parser mode, decoding, both-orders judging, disagreement policy, aggregation
    and tie margin are the card's (see :func:`card_judge_factory`). Any other judge: one backend, one Judge per template the
    samples need (``base_format``, default the benchmark's); pairwise templates run both orders with
    disagreement kept as "inconsistent", so each order's own verdict is scored; grade pairs use the
    template on each answer alone.

    ``cache`` (a result-cache file, :mod:`judgetrain.judging.cache`) puts the result cache in front of
    the backend: every finished call is stored as it arrives, so a killed run that is started again
    pays for no call twice. A reward judge's scores are not generations and are not cached."""
    if card is not None or is_card_judge(judge_spec):
        options = dict(backend_options or {})
        return card_judge_factory(judge_spec, benchmark, format_name=base_format, max_new_tokens=max_new_tokens,
                                  batch_size=options.pop("batch_size", None), api_key_env=options.pop("api_key_env", None),
                                  card=card, cache=cache, **options)
    from judgetrain import formats
    from judgetrain.judging import Judge, default_decoding, make_backend
    from judgetrain.judging.cache import CachingBackend

    from judgetrain.judging.card_target import refuse_reward_model_dir

    base_format = base_format or benchmark.default_format
    formats.get(base_format)  # an unknown template is a user error before any model loads
    refuse_reward_model_dir(judge_spec.removeprefix("hf:").removeprefix("vllm:"), base_format)
    backend = make_backend(judge_spec, **(backend_options or {}))
    if cache is not None:
        # One cache in front of the one backend that every template's Judge shares.
        try:
            backend = CachingBackend(backend, cache)
        except BaseException:
            backend.close()  # a cache that cannot be opened must not leave the model loaded
            raise
    judges: dict[str, Any] = {}

    def judge_for(sample: JudgeSample):
        name = benchmark.format_of(sample, base_format) if benchmark.format_of is not None else base_format
        if name not in judges:
            fmt = formats.get(name)
            decoding = default_decoding(fmt, max_new_tokens=max_new_tokens)
            judges[name] = Judge(fmt, backend, decoding, both_orders=fmt.protocol == "pairwise",
                                 disagreement_policy="inconsistent")
        return judges[name]

    return judge_for, backend


def is_export_dir(judge_spec: str) -> bool:
    """Whether ``judge_spec`` is an export dir (a dir holding a judge card)."""
    return Path(judge_spec).is_dir() and has_card(judge_spec)


def is_card_judge(judge_spec: str) -> bool:
    """Whether ``judge_spec`` is judged from a judge card: an export dir or a served judge's URL."""
    from judgetrain.judging.card_target import is_served

    return is_served(judge_spec) or is_export_dir(judge_spec)


def judge_card_of(judge_spec: str, card: JudgeCard | None = None, api_key_env: str | None = None) -> JudgeCard | None:
    """The judge card ``judge_spec`` is judged from (``card`` when given), or None for a judge without one."""
    from judgetrain.judging.card_target import load_card

    if card is None and not is_card_judge(judge_spec):
        return None
    return load_card(judge_spec, card=card, api_key_env=api_key_env)


def card_judge_factory(export_dir: str, benchmark: Benchmark, *, format_name: str | None = None,
                       max_new_tokens: int | None = None, batch_size: int | None = None, card: JudgeCard | None = None,
                       cache: str | Path | None = None, api_key_env: str | None = None, **options: Any):
    """(a function giving the Judge for a sample, its backend) for an export dir or a served judge's
    URL: the judge ``Judge.from_card(export_dir)`` builds, through the one factory
    (:func:`judgetrain.judging.protocol.judge_from_card`).

    ``format_name`` may only name the card's own template (the one the judge was trained on);
    ``max_new_tokens`` replaces the card's generation budget (a reward judge has none: an error). A
    sample the benchmark renders with a variant of the card's template (MT-bench turn 2: its
    ``-multi-turn`` twin) gets a Judge of that variant with the same backend and the card's settings.
    A reward card gives its RewardJudge. ``cache``: the result-cache file in front of the backend (not
    used by a reward judge). ``options`` go to the factory (``backend_name``, ``dtype``)."""
    from judgetrain.judging import Judge
    from judgetrain.judging.protocol import judge_from_card

    card = judge_card_of(export_dir, card, api_key_env)
    assert card is not None
    factory_options: dict[str, Any] = {"batch_size": batch_size} if batch_size else {}
    if cache is not None and card.kind != "reward":
        factory_options["cache"] = cache  # the Judge wraps its backend; the variants below share that wrapper
    judge = judge_from_card(export_dir, card=card, format_name=format_name or None, max_new_tokens=max_new_tokens,
                            api_key_env=api_key_env, **factory_options, **options)
    card = judge.card
    if card.kind == "reward":
        return (lambda sample: judge), judge.backend
    judges: dict[str, Any] = {card.template: judge}

    def judge_for(sample: JudgeSample):
        name = benchmark.format_of(sample, card.template) if benchmark.format_of is not None else card.template
        if name not in judges:
            judges[name] = Judge(name, judge.backend, **card.judge_options())
        return judges[name]

    return judge_for, judge.backend


def run_benchmark(name: str, *, judge: str | Any | None = None, predictions: str | Path | None = None,
                  predictions_swapped: str | Path | None = None, label_map: str | None = None,
                  data: str | None = None, data_dir: str | Path | None = None, limit: int | None = None,
                  format_name: str | None = None, policy: str = "wrong",
                  num_resamples: int = m.DEFAULT_BOOTSTRAP_RESAMPLES, seed: int = 0,
                  max_new_tokens: int | None = None, options: dict[str, Any] | None = None,
                  backend_options: dict[str, Any] | None = None, cache: str | Path | None = None,
                  on_bad_row: str = "error") -> EvalRun:
    """Load benchmark ``name``, get verdicts from ``judge`` (a spec string or a built Judge) or from
    ``predictions``, and score them. Exactly one of ``judge`` and ``predictions`` must be given.
    ``cache``: a result-cache file for the judge a spec string builds (see :func:`judge_factory`);
    a built Judge brings its own (``Judge(..., cache=...)``). ``on_bad_row``: ``"error"`` stops at a
    bad row of the data, ``"skip"`` skips and counts it (see :func:`load_items`)."""
    if (judge is None) == (predictions is None):
        raise ValueError("give exactly one of --judge (run a judge) and --predictions (score a file)")
    if cache is not None and not isinstance(judge, str):
        raise ValueError("a result cache goes with --judge SPEC (a built Judge takes its own cache=); "
                         "drop --cache or run a judge")
    if predictions is None and (predictions_swapped is not None or label_map is not None):
        raise ValueError("--predictions-swapped and --label-map go with --predictions")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    m.check_policy(policy)
    benchmark = get_benchmark(name)
    started = time.perf_counter()
    read_report = ReadReport()
    samples = load_items(benchmark, data, data_dir, limit=limit, on_bad_row=on_bad_row, options=options, report=read_report)
    if not samples:
        raise ValueError(f"benchmark {name}: no items were read; check --data / --data-dir")
    config: dict[str, Any] = {
        "benchmark": name, "kind": benchmark.kind, "label_key": benchmark.label_key,
        "data": benchmark.resolve_source(data, data_dir),
        "limit": limit, "num_items": len(samples), "parse_failure_policy": policy, "options": dict(options or {}),
        "bootstrap": {"num_resamples": num_resamples, "confidence": 0.95, "seed": seed},
        "data_read": {"on_bad_row": on_bad_row, **read_report.to_dict()},
    }
    if predictions is not None:
        rows = rows_from_predictions(benchmark, samples, predictions, predictions_swapped, label_map,
                                     limited=limit is not None)
        config.update(mode="predictions", predictions=str(predictions),
                      predictions_swapped=str(predictions_swapped) if predictions_swapped else None, label_map=label_map)
    else:
        if isinstance(judge, str):
            # An export dir or a served judge judges as Judge.from_card(dir) does; its card is recorded with the run.
            card = judge_card_of(judge, api_key_env=(backend_options or {}).get("api_key_env"))
            chosen = card.template if card is not None else format_name or benchmark.default_format
            judge_for, backend = judge_factory(judge, format_name, benchmark, max_new_tokens=max_new_tokens,
                                               backend_options=backend_options, card=card, cache=cache)
            try:
                rows = rows_from_judge(benchmark, samples, judge_for)
            finally:
                backend.close()
            config.update(judge=judge, backend=getattr(backend, "name", ""), model=getattr(backend, "model_id", ""),
                          result_cache=str(cache) if cache is not None and (card is None or card.kind != "reward") else None)
            if card is not None:
                written = card.to_dict()
                from judgetrain.judging.card_target import card_where

                config["judge_card"] = {"path": card_where(judge),
                                        **{k: written[k] for k in ("kind", "name", "format", "parser", "tie_policy", "decoding")},
                                        **({"reward": written["reward"]} if card.reward is not None else {})}
        else:
            chosen = judge.format.name
            rows = rows_from_judge(benchmark, samples, judge)
            config.update(judge=getattr(getattr(judge, "backend", None), "model_id", "") or type(judge).__name__)
        first_call = next((r.judgments[0] for r in rows if r.judgments), {})
        config.update(mode="judge", format=chosen, templates=sorted({r.template for r in rows}),
                      both_orders=benchmark.kind == "pairwise", decoding=first_call.get("decoding"),
                      backend=first_call.get("backend") or config.get("backend"))
    results = score_items(benchmark, rows, policy=policy, num_resamples=num_resamples, seed=seed)
    return EvalRun(benchmark, config, rows, results, seconds=time.perf_counter() - started)
