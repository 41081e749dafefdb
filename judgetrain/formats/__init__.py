"""Judge formats: one module per family, each owning its prompts and their parsers.

``get(name)`` returns a :class:`JudgeFormat` by its versioned template name; ``names()`` lists them.
"""

from __future__ import annotations

import difflib
import importlib

from judgetrain.formats.base import DEFAULT_TARGET_LABELS, JudgeFormat, Message, swap_names

FAMILIES = ("judgelm", "autoj", "mtbench", "pandalm", "prometheus")
"""Family modules under ``judgetrain.formats``; each exposes ``FORMATS``, a tuple of JudgeFormat."""

_registry: dict[str, JudgeFormat] = {}


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
    if name not in registry:
        close = difflib.get_close_matches(name, registry, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown judge format {name!r}.{hint} Run `judgetrain formats` to list them.")
    return registry[name]


def for_family(family: str) -> list[JudgeFormat]:
    """The formats of one family, by name."""
    return [fmt for name, fmt in sorted(_load().items()) if fmt.family == family]


__all__ = ["JudgeFormat", "Message", "DEFAULT_TARGET_LABELS", "FAMILIES", "get", "names", "for_family", "swap_names"]
