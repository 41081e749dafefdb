"""Plugins: data readers, benchmarks and extra subcommands, found through Python entry points.

The library never imports a reader or a benchmark by name; it asks this registry, which reads the
installed packages' entry points (``importlib.metadata``), so a third-party package adds its own by
declaring them in its ``pyproject.toml``::

    [project.entry-points."judgetrain.readers"]
    my-source = "my_package.my_reader"          # a module with read(input, *, split, report, on_bad_row, **options)

    [project.entry-points."judgetrain.benchmarks"]
    my-benchmark = "my_package.my_benchmark"    # a module defining BENCHMARK

    [project.entry-points."judgetrain.commands"]
    my-command = "my_package.my_cli"            # a module with HELP, configure(parser) and run(args) -> int

judgetrain's own readers (``judgetrain_data_prep``) and benchmarks (``judgetrain_eval``, which also
brings the ``eval`` and ``mtbench`` subcommands) are registered the same way in its pyproject.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

READERS = "judgetrain.readers"
BENCHMARKS = "judgetrain.benchmarks"
COMMANDS = "judgetrain.commands"

_WHAT = {READERS: "data source (--source)", BENCHMARKS: "benchmark (--benchmark)", COMMANDS: "subcommand"}


@lru_cache(maxsize=None)
def _registered(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def names(group: str) -> list[str]:
    """The names registered in ``group``, sorted."""
    return sorted(_registered(group))


def entry_point(group: str, name: str) -> EntryPoint:
    """The entry point registered as ``name`` in ``group``; a ValueError naming the known ones otherwise."""
    registered = _registered(group)
    if name in registered:
        return registered[name]
    if not registered:
        raise ValueError(f"no {_WHAT.get(group, group)} is registered: install judgetrain (`pip install -e .` in its "
                         f"checkout) so its entry points ({group}) are known")
    close = difflib.get_close_matches(name, registered, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown {_WHAT.get(group, group)} {name!r}.{hint} Known: {', '.join(sorted(registered))}")


def load(group: str, name: str) -> ModuleType:
    """The module registered as ``name`` in ``group``."""
    return entry_point(group, name).load()


def reader(source: str) -> ModuleType:
    """The reader module of data source ``source`` (its ``read`` yields JudgeSamples)."""
    return load(READERS, source)


def benchmark(name: str) -> Any:
    """The ``BENCHMARK`` object of benchmark ``name``."""
    return load(BENCHMARKS, name).BENCHMARK
