"""Judge formats: one module per family, each owning its prompts and their parsers.

``get(name)`` returns a :class:`JudgeFormat` by its versioned template name; ``names()`` lists them.

A judge kind that writes no judgment has a template too, which is not a JudgeFormat: the reward
judge's ``reward-chat-v1`` (:mod:`judgetrain.reward.data`) scores each answer's conversation alone,
so there is no judge prompt to render and no judgment to parse. :data:`KIND_TEMPLATES` declares such
templates so ``judgetrain formats`` lists them and ``get`` says what they are instead of "unknown".
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass

from judgetrain.formats.base import DEFAULT_TARGET_LABELS, JudgeFormat, Message, swap_names

FAMILIES = ("judgelm", "autoj", "mtbench", "pandalm", "prometheus")
"""Family modules under ``judgetrain.formats``; each exposes ``FORMATS``, a tuple of JudgeFormat."""

_registry: dict[str, JudgeFormat] = {}

REWARD_TEMPLATE = "reward-chat-v1"
"""The reward judge's template, recorded in its judgments and judge card (defined by :mod:`judgetrain.reward.data`)."""


@dataclass(frozen=True)
class KindTemplate:
    """The template of a judge kind that scores instead of writing: its name, the kind, the protocols
    it judges and what it does. It has no prompt and no parser."""

    name: str
    kind: str
    protocols: tuple[str, ...]
    description: str


KIND_TEMPLATES: dict[str, KindTemplate] = {
    REWARD_TEMPLATE: KindTemplate(
        name=REWARD_TEMPLATE, kind="reward", protocols=("pairwise", "single"),
        description="each answer's conversation (the question's user turns, that answer's assistant turns) scored alone "
                    "by a sequence-classification head; a pair is decided by r_A - r_B and the card's tie margin",
    ),
}
"""Templates of the judge kinds that write no judgment, by name."""


def kind_template(name: str) -> KindTemplate | None:
    """The :class:`KindTemplate` registered as ``name``, or None when ``name`` is not one."""
    return KIND_TEMPLATES.get(name)


def _load() -> dict[str, JudgeFormat]:
    if not _registry:
        for family in FAMILIES:
            module = importlib.import_module(f"judgetrain.formats.{family}")
            for fmt in module.FORMATS:
                assert fmt.name not in _registry, f"duplicate template name {fmt.name}"
                assert fmt.family == family, f"{fmt.name} declares family {fmt.family}, lives in {family}"
                _registry[fmt.name] = fmt
        for fmt in _registry.values():
            if fmt.reference_twin is not None:
                twin = _registry.get(fmt.reference_twin)
                # A twin differs only in showing the reference, so a sample can move between the two.
                assert twin is not None and twin.reference_twin == fmt.name, f"{fmt.name}: twin {fmt.reference_twin} does not name it back"
                assert (twin.family, twin.protocol, twin.multi_turn, type(twin)) == (fmt.family, fmt.protocol, fmt.multi_turn, type(fmt)), fmt.name
                assert twin.with_reference != fmt.with_reference, f"{fmt.name} and its twin both {'show' if fmt.with_reference else 'lack'} a reference"
    return _registry


def names() -> list[str]:
    """Every versioned template name, sorted."""
    return sorted(_load())


def get(name: str) -> JudgeFormat:
    """The format registered under ``name``; an unknown name raises ValueError with the closest names."""
    registry = _load()
    if name in KIND_TEMPLATES:
        kind = KIND_TEMPLATES[name].kind
        raise ValueError(f"{name!r} is the {kind} judge's template, not a judge format: a {kind} judge scores each answer's "
                         "conversation alone and writes no judgment, so there is no prompt to render or verdict to parse. "
                         f"Judge with a {kind} export as its card says (`judgetrain judge --model EXPORT_DIR`, no --format); "
                         f"`judgetrain formats --show {name}` explains it.")
    if name not in registry:
        close = difflib.get_close_matches(name, registry, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown judge format {name!r}.{hint} Run `judgetrain formats` to list them.")
    return registry[name]


def for_family(family: str) -> list[JudgeFormat]:
    """The formats of one family, by name."""
    return [fmt for name, fmt in sorted(_load().items()) if fmt.family == family]


__all__ = ["JudgeFormat", "Message", "DEFAULT_TARGET_LABELS", "FAMILIES", "get", "names", "for_family", "swap_names",
           "REWARD_TEMPLATE", "KindTemplate", "KIND_TEMPLATES", "kind_template"]
