"""What the browser shows, read from disk: evaluation run dirs and FastChat-layout MT-bench dirs.

An evaluation run dir (``judgetrain eval --out``) holds ``results.json`` (config and metrics) and
``judgments.jsonl`` (one :class:`judgetrain.evaluation.rows.ItemResult` row per item). The rows carry the labels,
the verdicts of both orders, the raw judge texts, every judge call with its prompt, and the item's
question, answers and reference, so a run dir is read on its own. Rows written before the texts were
recorded lack them; for those the texts are read back from the benchmark's own data (the benchmark
is found by name in the ``eval`` registry, as ``judgetrain eval`` finds it) and, when that data is
not on this machine, the prompt the judge was sent stands in for them.

An MT-bench dir follows FastChat's layout: ``question.jsonl``, ``model_answer/<model>.jsonl``,
``model_judgment/<judge>_pair.jsonl`` / ``<judge>_single.jsonl`` (and, optionally,
``reference_answer/<model>.jsonl``). Human-judgment rows in the ``lmsys/mt_bench_human_judgments``
schema (``model_a``, ``model_b``, ``winner``) are read as pair judgments too.

Metric names are the evaluation scorer's (:mod:`judgetrain.evaluation.scoring`). A ``results.json``
written before the scorer recorded ``benchmark_version`` used older definitions under some of those
names (its ``positional_agreement`` was ``consistency``), so the browser scores such a run's rows again
with the same scorer rather than showing a figure under a name that now means something else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judgetrain import plugins
from judgetrain.data.rows import read_jsonl

RESULTS_FILE = "results.json"
JUDGMENTS_FILE = "judgments.jsonl"
REPORT_FILE = "report.md"

CURRENT_RESULTS_KEY = "benchmark_version"
"""Present in every results.json written with the current metric definitions."""

AGREEMENTS = ("agree", "disagree", "inconsistent", "parse_failure")
"""How an item's verdict relates to its gold label: matches it, does not, the two orders disagree
with each other, or a judge call did not parse."""


def _require(row: dict[str, Any], name: str, path: Path, line_number: int) -> Any:
    if name not in row:
        raise ValueError(f"{path}:{line_number}: field {name!r} is missing; every row of this file needs it")
    return row[name]


# --- evaluation runs ------------------------------------------------------------------------------

@dataclass
class ItemTexts:
    """The question and answers of one item, as shown, and where they were read (``source``).
    ``from_prompt`` is True when neither the row nor the benchmark data held them and ``prompt`` (the
    messages the judge was sent) stands in for them."""

    question: list[str] = field(default_factory=list)
    answers: list[list[str]] = field(default_factory=list)
    models: list[str | None] = field(default_factory=list)
    reference: list[str] | None = None
    from_prompt: bool = False
    prompt: list[dict[str, str]] = field(default_factory=list)
    source: str = ""


def texts_from_row(row: dict[str, Any]) -> ItemTexts | None:
    """The texts a ``judgments.jsonl`` row records (``question``, ``answers``, ``reference``), or None
    when it records none (a row written before they were)."""
    question, answers = row.get("question"), row.get("answers")
    if question is None or not isinstance(answers, list) or not answers or not all(isinstance(a, dict) for a in answers):
        return None
    return ItemTexts(question=_turns(question), answers=[_turns(a.get("text")) for a in answers],
                     models=[a.get("model") for a in answers], reference=_turns(row.get("reference")) or None,
                     source=JUDGMENTS_FILE)


def _turns(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def judge_winner(row: dict[str, Any], kind: str) -> str | None:
    """The judge's pairwise winner for a row: the original order's verdict (pairwise), or the better
    of the two grades (grade pairs); None for a grading item or when there is none."""
    if kind == "grade_pair":
        scores = row.get("scores") or []
        if len(scores) != 2 or None in scores:
            return None
        return "A" if scores[0] > scores[1] else "B" if scores[1] > scores[0] else "tie"
    return row.get("verdict")


def outcome(row: dict[str, Any], kind: str) -> str:
    """One word for what the judge said on a row: ``A`` / ``B`` / ``tie``, a grade, ``inconsistent``
    (the two orders disagree) or ``parse_failure``."""
    if any(row.get("parse_failures") or []):
        return "parse_failure"
    if kind == "grading":
        scores = row.get("scores") or [None]
        return f"{scores[0]:g}" if scores[0] is not None else "parse_failure"
    if "swapped" in (row.get("orders") or []) and row.get("verdict") != row.get("verdict_swapped"):
        return "inconsistent"
    return judge_winner(row, kind) or "parse_failure"


def agreement(row: dict[str, Any], kind: str) -> str:
    """One of :data:`AGREEMENTS` for a row (grading items agree when the grade equals the gold grade)."""
    said = outcome(row, kind)
    if said in ("parse_failure", "inconsistent"):
        return said
    if kind == "grading":
        return "agree" if row.get("gold_score") is not None and float(said) == row["gold_score"] else "disagree"
    return "agree" if said == row.get("gold_winner") else "disagree"


@dataclass
class Run:
    """One evaluation run dir: its config and metrics, its rows by id, and the items' texts."""

    path: Path
    results: dict[str, Any]
    rows: list[dict[str, Any]]
    texts_note: str = ""
    _texts: dict[str, ItemTexts] | None = None
    _metrics: dict[str, Any] | None = None
    _length: dict[str, Any] | None = None

    @property
    def metrics(self) -> dict[str, Any]:
        """The run's headline metrics (``{name: {"value", "low", "high", "num_items"}}``) under the
        scorer's names: as written, or, for a results.json from before the current definitions, its
        rows scored again (point values, no intervals)."""
        if self._metrics is None:
            written = dict(self.results.get("metrics", {}))
            self._metrics = written if CURRENT_RESULTS_KEY in self.results else self._rescored(written)
        return self._metrics

    def _rescored(self, written: dict[str, Any]) -> dict[str, Any]:
        from judgetrain.evaluation import ItemResult, score_items
        from judgetrain.evaluation.scoring import METRIC_DEFINITIONS

        try:
            rows = [ItemResult.from_dict(row) for row in self.rows]
            wanted = [k for k in written if k.split("_gpt4")[0] in METRIC_DEFINITIONS] or None
            return score_items(rows, kind=self.kind, metrics=wanted, label_key=self.results.get("config", {}).get("label_key"),
                               policy=self.results.get("parse_failure_policy", "wrong"), num_resamples=0)["metrics"]
        except (TypeError, ValueError):  # rows the scorer cannot read: the file's own figures are all there is
            return written

    @property
    def length(self) -> dict[str, Any]:
        """The run's length-controlled metrics (``{name: {"value", "low", "high", "num_items"}}``, the
        scorer's :data:`~judgetrain.evaluation.scoring.LENGTH_METRICS`, lengths in characters): as written,
        or, for a pairwise results.json written before them, its rows scored again (point values, no
        intervals); empty for other kinds or rows the scorer cannot read."""
        if self._length is None:
            written = self.results.get("length")
            self._length = dict(written["metrics"]) if written else self._length_rescored()
        return self._length

    def _length_rescored(self) -> dict[str, Any]:
        from judgetrain.evaluation import ItemResult
        from judgetrain.evaluation.scoring import length_metrics

        if self.kind != "pairwise":
            return {}
        try:
            rows = [ItemResult.from_dict(row) for row in self.rows]
            return length_metrics(rows, self.results.get("parse_failure_policy", "wrong"), num_resamples=0, seed=0)["metrics"]
        except (TypeError, ValueError):  # rows the scorer cannot read: no length figures to show
            return {}

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def benchmark(self) -> str:
        return str(self.results.get("benchmark", "?"))

    @property
    def kind(self) -> str:
        return str(self.results.get("kind", "pairwise"))

    @property
    def judge(self) -> str:
        config = self.results.get("config", {})
        return str(config.get("judge") or config.get("predictions") or "?")

    @property
    def template(self) -> str:
        return str(self.results.get("config", {}).get("format") or "")

    def row(self, item_id: str) -> dict[str, Any] | None:
        return self._by_id.get(item_id)

    def __post_init__(self) -> None:
        self._by_id = {r["id"]: r for r in self.rows}

    def texts(self, item_id: str) -> ItemTexts:
        """The question and answers of ``item_id``: from its row, else from the benchmark data (read on
        first use), else the prompt the judge saw."""
        recorded = texts_from_row(self._by_id.get(item_id) or {})
        if recorded is not None:
            return recorded
        if self._texts is None:
            self._texts = self._load_texts()
        found = self._texts.get(item_id)
        if found is not None:
            return found
        row = self._by_id.get(item_id) or {}
        calls = row.get("judgments") or []
        prompt = [dict(m) for m in calls[0].get("prompt_messages", [])] if calls else []
        return ItemTexts(models=list((row.get("meta") or {}).get("models") or []), from_prompt=True, prompt=prompt)

    def _load_texts(self) -> dict[str, ItemTexts]:
        config = self.results.get("config", {})
        try:
            bench = plugins.benchmark(self.benchmark)
            samples = bench.load(config.get("data"), None, limit=config.get("limit"), options=config.get("options") or None)
        except Exception as err:  # noqa: BLE001 - any failure to re-read the data leaves the prompt as the text
            self.texts_note = f"the benchmark data could not be read ({type(err).__name__}: {err}); showing the prompt the judge saw"
            return {}
        out = {}
        for sample in samples:
            out[sample.id] = ItemTexts(
                question=list(sample.question_turns),
                answers=[list(a.turns) for a in sample.answers],
                models=[a.model for a in sample.answers],
                reference=_turns(sample.reference) or None,
                source=str(config.get("data")),
            )
        self.texts_note = f"question and answers read from {config.get('data')}"
        return out


def load_run(path: str | Path) -> Run:
    """Read an evaluation run dir (``results.json`` + ``judgments.jsonl``)."""
    run_dir = Path(path)
    results_path = run_dir / RESULTS_FILE
    try:
        results = json.loads(results_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{results_path}: not valid JSON ({err.msg} at line {err.lineno}); re-run `judgetrain eval --out`") from None
    judgments_path = run_dir / JUDGMENTS_FILE
    if not judgments_path.is_file():
        raise ValueError(f"{run_dir}: {JUDGMENTS_FILE} is missing; is this a `judgetrain eval --out` directory?")
    rows = []
    for line_number, row in read_jsonl(judgments_path):
        _require(row, "id", judgments_path, line_number)
        rows.append(row)
    return Run(path=run_dir, results=results, rows=rows)


# --- MT-bench (FastChat layout) -----------------------------------------------------------------------

@dataclass
class PairJudgment:
    """One pairwise judgment of ``model_1`` vs ``model_2`` on one turn: the winner of each game
    (``g1`` as shown, ``g2`` with the answers swapped, both as model slots ``model_1`` / ``model_2`` /
    ``tie``; humans give one game) and the judge's text of each."""

    question_id: int
    model_1: str
    model_2: str
    judge: str
    turn: int
    g1_winner: str
    g2_winner: str | None
    g1_judgment: str
    g2_judgment: str
    source: str


@dataclass
class SingleJudgment:
    """One single-answer grade of ``model`` on one turn."""

    question_id: int
    model: str
    judge: str
    turn: int
    score: float | None
    judgment: str
    source: str


def _judge_name(value: Any) -> str:
    # FastChat writes the judge as [judge model, prompt name]; human rows give an annotator id.
    if isinstance(value, (list, tuple)):
        return " / ".join(str(v) for v in value)
    return str(value)


@dataclass
class MTBenchDir:
    """An MT-bench dir in FastChat's layout, read whole (80 questions, a few dozen models)."""

    path: Path
    questions: dict[int, dict[str, Any]]
    answers: dict[str, dict[int, list[str]]]
    references: dict[str, dict[int, list[str]]]
    pairs: list[PairJudgment]
    singles: list[SingleJudgment]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def models(self) -> list[str]:
        named = set(self.answers) | {p.model_1 for p in self.pairs} | {p.model_2 for p in self.pairs} | {s.model for s in self.singles}
        return sorted(named)

    def pair_judgments(self, question_id: int, model_a: str, model_b: str) -> list[tuple[PairJudgment, bool]]:
        """Pair judgments of ``model_a`` vs ``model_b`` on the question, each with True when the row
        lists them the other way round (model_1 is ``model_b``)."""
        out = []
        for p in self.pairs:
            if p.question_id != question_id:
                continue
            if (p.model_1, p.model_2) == (model_a, model_b):
                out.append((p, False))
            elif (p.model_1, p.model_2) == (model_b, model_a):
                out.append((p, True))
        return sorted(out, key=lambda x: (x[0].turn, x[0].judge))

    def single_judgments(self, question_id: int, model: str) -> list[SingleJudgment]:
        return sorted((s for s in self.singles if s.question_id == question_id and s.model == model),
                      key=lambda s: (s.turn, s.judge))


def _answers_file(path: Path) -> dict[int, list[str]]:
    out = {}
    for line_number, row in read_jsonl(path):
        question_id = _require(row, "question_id", path, line_number)
        choices = _require(row, "choices", path, line_number)
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict) or "turns" not in choices[0]:
            raise ValueError(f"{path}:{line_number}: field 'choices' must be a list whose first item has 'turns'")
        out[int(question_id)] = _turns(choices[0]["turns"])
    return out


def _judgment_file(path: Path, pairs: list[PairJudgment], singles: list[SingleJudgment]) -> None:
    for line_number, row in read_jsonl(path):
        question_id = int(_require(row, "question_id", path, line_number))
        turn = int(row.get("turn", 1))
        judge = _judge_name(row.get("judge", path.stem))
        if "model_1" in row:
            pairs.append(PairJudgment(
                question_id, str(row["model_1"]), str(_require(row, "model_2", path, line_number)), judge, turn,
                str(_require(row, "g1_winner", path, line_number)),
                str(row["g2_winner"]) if row.get("g2_winner") is not None else None,
                str(row.get("g1_judgment", "")), str(row.get("g2_judgment", "")), path.name))
        elif "model_a" in row:
            # lmsys/mt_bench_human_judgments: one game, winner model_a / model_b / tie.
            winner = str(_require(row, "winner", path, line_number))
            slot = {"model_a": "model_1", "model_b": "model_2"}.get(winner, winner)
            pairs.append(PairJudgment(question_id, str(row["model_a"]), str(_require(row, "model_b", path, line_number)),
                                      judge, turn, slot, None, "", "", path.name))
        elif "model" in row:
            score = row.get("score")
            singles.append(SingleJudgment(question_id, str(row["model"]), judge, turn,
                                          float(score) if isinstance(score, (int, float)) and score >= 0 else None,
                                          str(row.get("judgment", "")), path.name))
        else:
            raise ValueError(f"{path}:{line_number}: a judgment row needs 'model_1'/'model_2' (pair), "
                             "'model_a'/'model_b' (human pair) or 'model' (single)")


def load_mtbench(path: str | Path) -> MTBenchDir:
    """Read an MT-bench dir in FastChat's layout."""
    root = Path(path)
    question_path = root / "question.jsonl"
    questions = {}
    for line_number, row in read_jsonl(question_path):
        question_id = int(_require(row, "question_id", question_path, line_number))
        row["turns"] = _turns(_require(row, "turns", question_path, line_number))
        questions[question_id] = row
    answers = {p.stem: _answers_file(p) for p in sorted((root / "model_answer").glob("*.jsonl"))}
    references = {p.stem: _answers_file(p) for p in sorted((root / "reference_answer").glob("*.jsonl"))}
    pairs: list[PairJudgment] = []
    singles: list[SingleJudgment] = []
    for judgment_path in sorted((root / "model_judgment").glob("*.jsonl")):
        _judgment_file(judgment_path, pairs, singles)
    return MTBenchDir(root, questions, answers, references, pairs, singles)


def load_dirs(paths: list[str]) -> tuple[list[Run], list[MTBenchDir]]:
    """Sort the given dirs into evaluation runs and MT-bench dirs (ValueError for anything else)."""
    runs, mtbench = [], []
    for given in paths:
        path = Path(given)
        if (path / RESULTS_FILE).is_file():
            runs.append(load_run(path))
        elif (path / "question.jsonl").is_file():
            mtbench.append(load_mtbench(path))
        else:
            raise ValueError(f"{path}: neither an evaluation run dir (no {RESULTS_FILE}; write one with "
                             "`judgetrain eval --out DIR`) nor an MT-bench dir (no question.jsonl)")
    return runs, mtbench
