"""The judge card (``judge_card.json``): how an exported judge must be asked, as one typed object.

``judgetrain export`` writes the card beside the weights (:func:`write_card`); everything that sets a
judge up from an export reads it back through :func:`read_card` (a dir or the file) or
:meth:`JudgeCard.from_dict` (a card a server published): the one factory of judges
(:func:`judgetrain.judging.protocol.judge_from_card`, behind ``Judge.from_card``, the client and every
command that takes a judge), ``judgetrain serve`` and the playground. The Judge arguments a generative
card fixes come from one place, :meth:`JudgeCard.judge_options`, so every reader judges alike.

This module is a leaf of the package: it imports only :mod:`judgetrain.decoding` and
:mod:`judgetrain.atomic`, and the judges (:mod:`judgetrain.judging`, :mod:`judgetrain.reward`) are
built from it, never the other way round. The vocabulary of a card's tie policy
(:data:`DISAGREEMENT_POLICIES`, :data:`AGGREGATIONS`) is defined here for that reason.

The JSON shape is the one exports have always had, so earlier export dirs load: a card without
``kind`` is generative; a generative card without ``tie_policy.aggregation`` / ``tie_margin`` judges
by verdicts with no margin, as it did when it was written. A reward card keeps
``decoding: {"max_new_tokens": 0}`` (it generates nothing) and its ``reward`` section.

Reading checks what a judge needs (the version, the template, the parser mode, the tie policy, the
decoding of a generative judge, the reward settings of a reward judge) and raises a ValueError naming
the file and the field; the descriptive sections (model, training data, evaluation, serving) are
optional, so a hand-written card of the needed fields loads too.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from judgetrain.decoding import Decoding

CARD_FILE = "judge_card.json"
CARD_VERSION = 1
"""Bumped when a card field changes meaning; readers refuse cards newer than they know."""
KINDS = ("generative", "reward")
"""A generative judge writes its judgment; a reward judge scores each answer (``judgetrain.reward``)."""
PARSER_MODES = ("strict", "lenient")
DISAGREEMENT_POLICIES = ("tie", "inconsistent")
"""What a both-orders disagreement becomes: a tie, or the outcome "inconsistent" kept on its own."""
AGGREGATIONS = ("verdicts", "probabilities")
"""How the two orders of a pair are combined: their verdicts, or their mean verdict probabilities."""
DEFAULT_REWARD_MAX_SEQ_LEN = 1024
"""Token budget of a scored conversation when a reward card does not give the training one."""


@dataclass(frozen=True)
class CardFormat:
    """The judge template: its name (what the judge was trained on) and what it shows."""

    template: str
    family: str | None = None
    version: str | int | None = None
    protocols: tuple[str, ...] = ()
    with_reference: bool | None = None
    multi_turn: bool | None = None
    verdict_first: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "template": self.template, "version": self.version, "protocols": list(self.protocols),
                "with_reference": self.with_reference, "multi_turn": self.multi_turn, "verdict_first": self.verdict_first}


@dataclass(frozen=True)
class ParserSettings:
    """The parser the judge's verdicts are read with: ``strict`` only, or strict then ``lenient``."""

    mode: str
    modes: tuple[str, ...] = PARSER_MODES

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "modes": list(self.modes)}


@dataclass(frozen=True)
class TiePolicy:
    """How a pair is judged: in both answer orders or not, what a disagreement between the orders
    becomes (``tie`` / ``inconsistent``), and how the orders are combined (``verdicts``, or
    ``probabilities`` with ``tie_margin``). ``by_construction``: a reward judge, whose orders cannot differ."""

    both_orders: bool
    disagreement: str = "tie"
    aggregation: str = "verdicts"
    tie_margin: float = 0.0
    by_construction: bool = False


@dataclass(frozen=True)
class RewardSettings:
    """A reward judge's verdict rule: A when r_A − r_B > ``tie_margin``, B when < −``tie_margin``, else a tie."""

    tie_margin: float = 0.0
    tie_margin_source: str | None = None
    max_seq_len: int = DEFAULT_REWARD_MAX_SEQ_LEN
    verdict: str | None = None
    scored_text: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"tie_margin": self.tie_margin, "tie_margin_source": self.tie_margin_source, "max_seq_len": self.max_seq_len,
                "verdict": self.verdict, "scored_text": self.scored_text}


@dataclass(frozen=True)
class ModelInfo:
    """Where the weights came from. ``head`` is set for a reward model (its scoring head)."""

    base: str | None = None
    method: str | None = None
    lora_merged: bool = False
    dtype: str | None = None
    global_step: int | None = None
    head: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"base": self.base, "method": self.method, "lora_merged": self.lora_merged, "dtype": self.dtype,
               "global_step": self.global_step}
        return out if self.head is None else {**out, "head": self.head}


@dataclass(frozen=True)
class TrainingData:
    """The manifest hash of every prepared dir trained on, and the code revision of the run."""

    manifest_hashes: dict[str, str] = field(default_factory=dict)
    git_revision: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"manifest_hashes": dict(self.manifest_hashes), "git_revision": self.git_revision}


@dataclass(frozen=True)
class EvaluationEntry:
    """One evaluation result of the run: ``path`` is the results file inside the export dir (the export
    copies it there from the run dir, at the same relative path), with its benchmark and metrics."""

    path: str
    benchmark: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "benchmark": self.benchmark, "metrics": self.metrics}


@dataclass(frozen=True)
class Serving:
    """How to serve the export: its chat template file, the vLLM and judgetrain commands, the route
    (a reward model is served on ``/pooling``)."""

    chat_template: str | None = None
    vllm: str | None = None
    judgetrain: str | None = None
    route: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"chat_template": self.chat_template, "vllm": self.vllm, "judgetrain": self.judgetrain}
        return out if self.route is None else {**out, "route": self.route}


@dataclass(frozen=True)
class JudgeCard:
    """A judge card. ``decoding`` is None for a reward judge (it generates nothing); ``reward`` is
    set for a reward judge only."""

    format: CardFormat
    parser: ParserSettings
    tie_policy: TiePolicy
    decoding: Decoding | None
    kind: str = "generative"
    name: str | None = None
    created_utc: str | None = None
    judgetrain_version: str | None = None
    score_scale: tuple[float, float] | None = None
    reward: RewardSettings | None = None
    model: ModelInfo = field(default_factory=ModelInfo)
    training_data: TrainingData = field(default_factory=TrainingData)
    evaluation: tuple[EvaluationEntry, ...] = ()
    serving: Serving = field(default_factory=Serving)
    version: int = CARD_VERSION
    """``judge_card_version`` in the file."""

    def __post_init__(self) -> None:
        assert self.kind in KINDS, f"unknown card kind {self.kind!r}"
        assert (self.decoding is None) == (self.kind == "reward"), "a generative card has a decoding, a reward card none"
        assert (self.reward is not None) == (self.kind == "reward"), "a reward card has reward settings, a generative card none"

    @property
    def template(self) -> str:
        """The judge template the judge was trained on."""
        return self.format.template

    def judge_options(self) -> dict[str, Any]:
        """The :class:`judgetrain.judging.Judge` arguments this card fixes (besides the template):
        decoding, both-orders judging, the disagreement policy, the aggregation and tie margin, the parser."""
        if self.kind != "generative":
            raise ValueError(f"judge card {self.name!r} is a {self.kind} card: it has no generative judge's settings")
        return dict(decoding=self.decoding, both_orders=self.tie_policy.both_orders,
                    disagreement_policy=self.tie_policy.disagreement, aggregation=self.tie_policy.aggregation,
                    tie_margin=self.tie_policy.tie_margin, strict=self.parser.mode == "strict")

    def with_decoding(self, **changes: Any) -> "JudgeCard":
        """The card with some decoding settings changed (e.g. ``max_new_tokens``)."""
        assert self.decoding is not None, "a reward card has no decoding"
        return replace(self, decoding=Decoding(**{**self.decoding.to_dict(), **changes}))

    # --- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The card as written to ``judge_card.json``."""
        policy = self.tie_policy
        out: dict[str, Any] = {"judge_card_version": self.version, "kind": self.kind, "name": self.name,
                               "created_utc": self.created_utc, "judgetrain_version": self.judgetrain_version,
                               "format": self.format.to_dict(), "parser": self.parser.to_dict(),
                               "score_scale": list(self.score_scale) if self.score_scale is not None else None}
        if self.kind == "reward":
            assert self.reward is not None
            out["tie_policy"] = {"both_orders": policy.both_orders, "disagreement": policy.disagreement,
                                 "by_construction": policy.by_construction}
            # Readers of earlier versions look for a generation budget: a reward judge's is 0.
            out["decoding"] = {"max_new_tokens": 0}
            out["reward"] = self.reward.to_dict()
        else:
            assert self.decoding is not None
            out["tie_policy"] = {"both_orders": policy.both_orders, "disagreement": policy.disagreement,
                                 "aggregation": policy.aggregation, "tie_margin": policy.tie_margin}
            out["decoding"] = self.decoding.to_dict()
        out.update(model=self.model.to_dict(), training_data=self.training_data.to_dict(),
                   evaluation=[entry.to_dict() for entry in self.evaluation], serving=self.serving.to_dict())
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "judge card") -> "JudgeCard":
        """The card ``data`` holds (parsed JSON); ``where`` (the file or URL) names it in errors."""
        return _CardReader(where).card(data)


class _CardReader:
    """Checks one card's fields; every error names the card and the field."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, field_name: str, problem: str, fix: str = "re-export the judge with `judgetrain export`") -> ValueError:
        return ValueError(f"{self.where}: field {field_name} {problem}; {fix}")

    def section(self, data: dict[str, Any], name: str, *, required: bool) -> dict[str, Any]:
        value = data.get(name)
        if value is None and not required:
            return {}
        if not isinstance(value, dict):
            raise self.fail(name, "is missing" if value is None else f"is {type(value).__name__}, not a JSON object")
        return value

    def value(self, section: dict[str, Any], name: str, kinds: type | tuple[type, ...], *, required: bool = False,
              default: Any = None) -> Any:
        field_name = name
        leaf = name.rsplit(".", 1)[-1]
        if leaf not in section or section[leaf] is None:
            if required:
                raise self.fail(field_name, "is missing")
            return default
        value = section[leaf]
        # bool is an int to Python; a card's true/false is never a number.
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _as_tuple(kinds)):
            raise self.fail(field_name, f"is {value!r} ({type(value).__name__}), not {_kind_names(kinds)}")
        return value

    def margin(self, section: dict[str, Any], name: str) -> float:
        margin = self.value(section, name, (int, float), default=0.0)
        if not margin >= 0 or math.isinf(margin):
            raise self.fail(name, f"is {margin!r}; it must be a finite number >= 0")
        return float(margin)

    def card(self, data: Any) -> JudgeCard:
        if not isinstance(data, dict):
            raise ValueError(f"{self.where}: a judge card is a JSON object, got {type(data).__name__}")
        version = data.get("judge_card_version")
        if isinstance(version, bool) or not isinstance(version, int) or version > CARD_VERSION:
            raise self.fail("judge_card_version", f"is {version!r}, not one this judgetrain reads (<= {CARD_VERSION})",
                            "upgrade judgetrain, or re-export the judge with `judgetrain export`")
        kind = data.get("kind", "generative")
        if kind not in KINDS:
            raise self.fail("kind", f"is {kind!r}, not one of {KINDS}")
        fmt = self.section(data, "format", required=True)
        card_format = CardFormat(
            template=self.value(fmt, "format.template", str, required=True),
            family=self.value(fmt, "format.family", str),
            version=self.value(fmt, "format.version", (str, int)),
            protocols=tuple(self.value(fmt, "format.protocols", list, default=[])),
            with_reference=self.value(fmt, "format.with_reference", bool),
            multi_turn=self.value(fmt, "format.multi_turn", bool),
            verdict_first=self.value(fmt, "format.verdict_first", bool),
        )
        parser = self.section(data, "parser", required=True)
        mode = self.value(parser, "parser.mode", str, required=True)
        if mode not in PARSER_MODES:
            raise self.fail("parser.mode", f"is {mode!r}, not one of {PARSER_MODES}")
        parser_settings = ParserSettings(mode=mode, modes=tuple(self.value(parser, "parser.modes", list, default=list(PARSER_MODES))))
        tie_policy = self.tie_policy(self.section(data, "tie_policy", required=True))
        decoding_section = self.section(data, "decoding", required=True)
        self.value(decoding_section, "decoding.max_new_tokens", int, required=True)
        decoding, reward = None, None
        if kind == "reward":
            reward = self.reward(self.section(data, "reward", required=False))
        else:
            decoding = self.decoding(decoding_section)
        score_scale = self.value(data, "score_scale", list)
        if score_scale is not None and (len(score_scale) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                                         for v in score_scale)):
            raise self.fail("score_scale", f"is {score_scale!r}, not [lowest, highest]")
        return JudgeCard(
            format=card_format, parser=parser_settings, tie_policy=tie_policy, decoding=decoding, kind=kind,
            name=self.value(data, "name", str), created_utc=self.value(data, "created_utc", str),
            judgetrain_version=self.value(data, "judgetrain_version", str),
            score_scale=tuple(score_scale) if score_scale is not None else None, reward=reward,
            model=self.model(self.section(data, "model", required=False)),
            training_data=self.training_data(self.section(data, "training_data", required=False)),
            evaluation=self.evaluation(self.value(data, "evaluation", list, default=[])),
            serving=self.serving(self.section(data, "serving", required=False)), version=version,
        )

    def tie_policy(self, section: dict[str, Any]) -> TiePolicy:
        disagreement = self.value(section, "tie_policy.disagreement", str, default="tie")
        if disagreement not in DISAGREEMENT_POLICIES:
            raise self.fail("tie_policy.disagreement", f"is {disagreement!r}, not one of {DISAGREEMENT_POLICIES}")
        # Cards written before aggregation existed judge as they did then: by verdicts, no margin.
        aggregation = self.value(section, "tie_policy.aggregation", str, default="verdicts")
        if aggregation not in AGGREGATIONS:
            raise self.fail("tie_policy.aggregation", f"is {aggregation!r}, not one of {AGGREGATIONS}")
        return TiePolicy(both_orders=self.value(section, "tie_policy.both_orders", bool, required=True),
                         disagreement=disagreement, aggregation=aggregation,
                         tie_margin=self.margin(section, "tie_policy.tie_margin"),
                         by_construction=self.value(section, "tie_policy.by_construction", bool, default=False))

    def decoding(self, section: dict[str, Any]) -> Decoding:
        known = set(Decoding.__dataclass_fields__)
        unknown = sorted(set(section) - known)
        if unknown:
            raise self.fail(f"decoding.{unknown[0]}", f"is not a decoding setting (known: {sorted(known)})")
        settings = {**section, "stop": tuple(section.get("stop") or ())}
        try:
            return Decoding(**settings)
        except (TypeError, ValueError) as err:
            raise self.fail("decoding", f"is not valid ({err})") from None

    def reward(self, section: dict[str, Any]) -> RewardSettings:
        max_seq_len = self.value(section, "reward.max_seq_len", int, default=DEFAULT_REWARD_MAX_SEQ_LEN)
        if max_seq_len < 1:
            raise self.fail("reward.max_seq_len", f"is {max_seq_len}; it must be >= 1")
        return RewardSettings(tie_margin=self.margin(section, "reward.tie_margin"),
                              tie_margin_source=self.value(section, "reward.tie_margin_source", str), max_seq_len=max_seq_len,
                              verdict=self.value(section, "reward.verdict", str), scored_text=self.value(section, "reward.scored_text", str))

    def model(self, section: dict[str, Any]) -> ModelInfo:
        return ModelInfo(base=self.value(section, "model.base", str), method=self.value(section, "model.method", str),
                         lora_merged=self.value(section, "model.lora_merged", bool, default=False),
                         dtype=self.value(section, "model.dtype", str), global_step=self.value(section, "model.global_step", int),
                         head=self.value(section, "model.head", str))

    def training_data(self, section: dict[str, Any]) -> TrainingData:
        hashes = self.value(section, "training_data.manifest_hashes", dict, default={})
        return TrainingData(manifest_hashes=dict(hashes), git_revision=self.value(section, "training_data.git_revision", str))

    def evaluation(self, entries: list[Any]) -> tuple[EvaluationEntry, ...]:
        out = []
        for index, entry in enumerate(entries):
            name = f"evaluation[{index}]"
            if not isinstance(entry, dict):
                raise self.fail(name, f"is {type(entry).__name__}, not a JSON object")
            out.append(EvaluationEntry(path=self.value(entry, f"{name}.path", str, required=True),
                                       benchmark=self.value(entry, f"{name}.benchmark", str),
                                       metrics=dict(self.value(entry, f"{name}.metrics", dict, default={}))))
        return tuple(out)

    def serving(self, section: dict[str, Any]) -> Serving:
        return Serving(chat_template=self.value(section, "serving.chat_template", str), vllm=self.value(section, "serving.vllm", str),
                       judgetrain=self.value(section, "serving.judgetrain", str), route=self.value(section, "serving.route", str))


def _as_tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _kind_names(kinds: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true/false", list: "a JSON list", dict: "a JSON object"}
    return " or ".join(names.get(kind, kind.__name__) for kind in _as_tuple(kinds))


def card_path(dir_or_path: str | Path) -> Path:
    """The card file of an export dir (or the card file itself)."""
    path = Path(dir_or_path)
    return path / CARD_FILE if path.is_dir() else path


def has_card(dir_or_path: str | Path) -> bool:
    """Whether ``dir_or_path`` is an export dir with a card, or a card file."""
    return card_path(dir_or_path).is_file()


def read_card(dir_or_path: str | Path) -> JudgeCard:
    """The judge card of an export dir (or the card file itself); a ValueError naming the file and
    the field when it is missing or malformed."""
    path = card_path(dir_or_path)
    if not path.is_file():
        raise ValueError(f"{path}: no judge card; export the model with `judgetrain export`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: invalid JSON in the judge card ({err.msg})") from None
    return JudgeCard.from_dict(data, str(path))


def write_card(directory: str | Path, card: JudgeCard) -> Path:
    """Write ``card`` to ``directory/judge_card.json`` atomically (a reader sees the old card or the
    new one, never half); returns the file."""
    from judgetrain.atomic import write_text_atomic

    path = Path(directory) / CARD_FILE
    write_text_atomic(path, json.dumps(card.to_dict(), indent=2, ensure_ascii=False) + "\n")
    return path


__all__ = ["CARD_FILE", "CARD_VERSION", "KINDS", "PARSER_MODES", "DISAGREEMENT_POLICIES", "AGGREGATIONS", "JudgeCard", "CardFormat", "ParserSettings", "TiePolicy",
           "RewardSettings", "ModelInfo", "TrainingData", "EvaluationEntry", "Serving", "card_path", "has_card",
           "read_card", "write_card"]
