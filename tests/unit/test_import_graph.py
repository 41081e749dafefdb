"""The import graph of the judge-building modules points one way: the card is a leaf, the two judge
kinds are built from it, the factory sits above them and the client and the commands on top.

Every import of every ``judgetrain`` module is read with ``ast``, function-level and TYPE_CHECKING
imports included (a function-level import closes a circle as surely as a top-level one, only later).
A package's ``__init__`` counts as the module it is, by its own explicit imports."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "judgetrain"

JUDGE_MODULES = (
    "judgetrain.card", "judgetrain.decoding", "judgetrain.client", "judgetrain.export", "judgetrain.export_files",
    "judgetrain.judging.judge", "judgetrain.judging.protocol", "judgetrain.judging.card_target", "judgetrain.judging.ranking",
    "judgetrain.judging.cli", "judgetrain.judging.rerank_cli", "judgetrain.reward.judge", "judgetrain.reward.export",
    "judgetrain.reward.data", "judgetrain.serve", "judgetrain.browse.playground",
)
"""The modules that read cards, build judges or sit on top of them."""

KNOWN_CYCLES = {frozenset({"judgetrain.formats", "judgetrain.formats.base"})}
"""The format registry and its base class look each other up (a template's twin by name); no judge
module is in that circle. Any other circle fails the test."""


def _module_names(root: Path) -> dict[str, Path]:
    names = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is a module of the package (``a.b.Class`` → ``a.b``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


@functools.lru_cache(maxsize=None)
def import_graph(root: Path = PACKAGE_ROOT) -> dict[str, frozenset[str]]:
    """Each module of the package at ``root`` → the package's modules it imports anywhere in its source."""
    modules = _module_names(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                # `from a import b` imports the module a.b when there is one, else a name of a.
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            for target in targets:
                if target.startswith("judgetrain"):
                    resolved = _resolve(target, modules)
                    if resolved is not None and resolved != name:
                        graph[name].add(resolved)
    return {name: frozenset(imported) for name, imported in graph.items()}


def strongly_connected(graph: dict[str, frozenset[str]]) -> list[set[str]]:
    """The circles of ``graph``: its strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for neighbour in graph[node]:
            if neighbour not in index:
                visit(neighbour)
                low[node] = min(low[node], low[neighbour])
            elif neighbour in on_stack:
                low[node] = min(low[node], index[neighbour])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_reader_sees_function_level_and_relative_imports(tmp_path):
    """The reader itself: a circle closed only inside a function, through a relative import, is found."""
    package = tmp_path / "judgetrain"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "low.py").write_text("def later():\n    from judgetrain.high import thing\n")
    (package / "high.py").write_text("from .sub.low import later\nthing = 1\n")
    assert strongly_connected(import_graph(package)) == [{"judgetrain.high", "judgetrain.sub.low"}]


def test_no_import_circle_in_the_package():
    circles = [sorted(c) for c in strongly_connected(import_graph()) if frozenset(c) not in KNOWN_CYCLES]
    assert not circles, f"import circles among judgetrain modules: {circles}"


@pytest.mark.parametrize("module", JUDGE_MODULES)
def test_judge_modules_are_in_no_circle(module):
    graph = import_graph()
    assert module in graph, f"{module} is not a module of the package"
    assert not [c for c in strongly_connected(graph) if module in c]


def test_dependencies_point_down_the_layout():
    graph = import_graph()
    # The card is a leaf: it reads and writes judge_card.json and builds nothing.
    assert graph["judgetrain.card"] <= {"judgetrain.decoding", "judgetrain.atomic"}, graph["judgetrain.card"]
    assert graph["judgetrain.decoding"] == set()
    # The two judge kinds build themselves from a card and never reach up to the factory or the client.
    for kind in ("judgetrain.judging.judge", "judgetrain.reward.judge"):
        assert not graph[kind] & {"judgetrain.judging.protocol", "judgetrain.client"}, (kind, graph[kind])
    # What lies below both kinds imports neither.
    for below in ("judgetrain.judging.card_target", "judgetrain.judging.ranking"):
        assert not graph[below] & {"judgetrain.judging.judge", "judgetrain.reward.judge"}, (below, graph[below])
    # The reward export shares its files with the generative one through a module both import.
    assert "judgetrain.export" not in graph["judgetrain.reward.export"]
    assert "judgetrain.export_files" in graph["judgetrain.reward.export"] & graph["judgetrain.export"]
    # The client is only a front: it re-exports what lies below it.
    assert graph["judgetrain.client"] <= {"judgetrain.judging.protocol", "judgetrain.judging.card_target",
                                          "judgetrain.judging.ranking"}
