"""What a benchmark is: where its data lives, which reader turns it into samples, which label is gold,
how its items are grouped, which metrics apply, and which judge format it is run with by default.

Each benchmark module of ``judgetrain_eval`` defines one :class:`Benchmark` named ``BENCHMARK``; the
registry (``judgetrain.plugins``, entry-point group ``judgetrain.benchmarks``) maps the benchmark's name to that module. Samples come from the
registered readers (``judgetrain.readers``, one per source), so a benchmark never parses raw rows itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from judgetrain import plugins
from judgetrain.types import JudgeSample

KINDS = ("pairwise", "grading", "grade_pair")
"""``pairwise``: two answers, a gold winner, judged in both orders. ``grading``: one answer with a gold
grade, judged once (correlations). ``grade_pair``: two answers each graded on its own (absolute
grading); correct when the preferred answer (the first, "chosen") gets the strictly higher grade."""

DATA_DIR_ENV = "JUDGETRAIN_DATA_DIR"
"""Where the local benchmark files live when ``--data-dir`` is not given (the shared data layout)."""


def default_data_dir() -> Path:
    """``$JUDGETRAIN_DATA_DIR``, else ``./data``."""
    return Path(os.environ.get(DATA_DIR_ENV, "data"))


def fetch_hub_file(repo_id: str, filename: str) -> str:
    """The local path of one file of a hub dataset repo (downloaded once into the hub cache)."""
    from huggingface_hub import hf_hub_download

    try:
        return hf_hub_download(repo_id=repo_id, filename=filename, repo_type="dataset")
    except Exception as err:  # offline, missing file, no access: say what to do instead
        raise ValueError(f"could not fetch {filename} from the hub dataset {repo_id} ({type(err).__name__}: {err}); "
                         f"download it and pass --data PATH") from None


@dataclass(frozen=True)
class Benchmark:
    """One benchmark.

    Attributes:
        name: the registered name (``pandalm-test``).
        description: one line: what the set is and which published figure it reproduces.
        kind: one of :data:`KINDS`.
        reader: the data source (a ``judgetrain.readers`` entry point, e.g. ``pandalm``) whose reader reads the raw file.
        default_path: the file (or dir) relative to the data dir, in the shared data layout; None when
            the set is read from the hub by default.
        hub_id: the hub dataset id, when the set is on the hub.
        label_key: which of ``sample.labels`` is gold (``human_majority``, ``gpt4``, ``gold`` …).
        default_format: the judge template a judge is run with unless ``--format`` says otherwise.
        metrics: the headline metric keys that apply (see ``judgetrain.evaluation.scoring.METRIC_DEFINITIONS``).
        version: the benchmark's own version, recorded in every results.json; raise it whenever a
            change (data mapping, label key, grouping, metrics) can change its numbers.
        reader_options: keyword options passed to the reader's ``read``.
        split: the split passed to the reader.
        group_of: the group an item belongs to (scenario group, subset, category …), or None.
        group_names: groups always reported (even when a ``--limit`` run leaves one empty).
        format_of: the template for one sample given the run's template (MT-bench turn 2 uses the
            multi-turn variant); None runs every sample with the run's template.
        annotate: called with the loaded samples, the source read, the data dir and the run's
            benchmark options; returns the samples with what grouping needs (Auto-J's scenario groups
            come from a separate file) added to ``meta``.
        anchor: where the comparable published numbers are.
    """

    name: str
    description: str
    kind: str
    reader: str
    label_key: str
    default_format: str
    metrics: tuple[str, ...]
    version: int
    default_path: str | None = None
    hub_id: str | None = None
    reader_options: dict[str, Any] = field(default_factory=dict)
    split: str | None = None
    group_of: Callable[[JudgeSample], str | None] | None = None
    group_names: tuple[str, ...] = ()
    format_of: Callable[[JudgeSample, str], str] | None = None
    annotate: Callable[..., list[JudgeSample]] | None = None
    anchor: str = ""

    def __post_init__(self) -> None:
        assert self.kind in KINDS, f"{self.name}: unknown kind {self.kind}"
        assert self.default_path or self.hub_id, f"{self.name}: needs a default path or a hub id"
        assert isinstance(self.version, int) and not isinstance(self.version, bool) and self.version >= 1, \
            f"{self.name}: version must be an integer >= 1, got {self.version!r}"

    def resolve_source(self, data: str | None, data_dir: str | Path | None) -> str:
        """The path or hub id to read: ``data`` when given, else the default path under the data dir,
        else the hub id."""
        if data:
            return str(data)
        if self.default_path is not None:
            path = Path(data_dir if data_dir is not None else default_data_dir()) / self.default_path
            if path.exists() or self.hub_id is None:
                if not path.exists():
                    raise ValueError(
                        f"benchmark {self.name}: {path} does not exist; pass --data PATH to the file, or "
                        f"--data-dir DIR holding {self.default_path} (or set ${DATA_DIR_ENV})"
                    )
                return str(path)
        assert self.hub_id is not None
        return self.hub_id

    def read(self, source: str, *, limit: int | None = None, on_bad_row: str = "error",
             report: Any = None) -> list[JudgeSample]:
        """The samples of ``source`` through the ``data_prep`` reader, at most ``limit`` of them."""
        from judgetrain.data.rows import ReadReport

        module = plugins.reader(self.reader)
        report = report if report is not None else ReadReport()
        samples: list[JudgeSample] = []
        for sample in module.read(source, split=self.split, report=report, on_bad_row=on_bad_row, **self.reader_options):
            samples.append(sample)
            if limit is not None and len(samples) >= limit:
                break
        return samples

    def load(self, data: str | None = None, data_dir: str | Path | None = None, *, limit: int | None = None,
             on_bad_row: str = "error", options: dict[str, Any] | None = None) -> list[JudgeSample]:
        """The benchmark's items as canonical samples (every one carrying the gold label).

        ``options`` are benchmark-specific settings (``scenario_groups`` for autoj-pairwise)."""
        source = self.resolve_source(data, data_dir)
        samples = self.read(source, limit=limit, on_bad_row=on_bad_row)
        if self.annotate is not None:
            samples = self.annotate(samples, source, data_dir, dict(options or {}))
        for sample in samples:
            self.check_sample(sample)
        return samples

    def check_sample(self, sample: JudgeSample) -> None:
        """Raise ValueError when a sample lacks what this benchmark scores against."""
        label = sample.labels.get(self.label_key)
        if label is None:
            raise ValueError(f"benchmark {self.name}: sample {sample.id!r} has no {self.label_key!r} label "
                             f"(labels: {sorted(sample.labels)}); is this the right file?")
        if self.kind == "pairwise" and (label.winner is None or len(sample.answers) != 2):
            raise ValueError(f"benchmark {self.name}: sample {sample.id!r} needs two answers and a winner in {self.label_key!r}")
        if self.kind == "grading" and (not label.scores or label.scores[0] is None):
            raise ValueError(f"benchmark {self.name}: sample {sample.id!r} needs a grade in {self.label_key!r}")
        if self.kind == "grade_pair" and len(sample.answers) != 2:
            raise ValueError(f"benchmark {self.name}: sample {sample.id!r} needs two answers (chosen, rejected)")

    def group(self, sample: JudgeSample) -> str | None:
        """The item's group for per-group tables, or None when the benchmark has no groups."""
        return self.group_of(sample) if self.group_of is not None else None
