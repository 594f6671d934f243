"""No import cycles among the project's modules (``stream``, ``learners``, ``detectors``).

The graph is read from the source with :mod:`ast`, function-level imports included (a function-level
import that closes a cycle only hides it); imports under ``if TYPE_CHECKING:`` are left out (they
never run). ``from pkg import name`` counts as importing ``pkg.name`` when that is a module, else
``pkg``; importing ``pkg.mod`` runs ``pkg/__init__.py`` too, so it counts as importing ``pkg``
(except from a module inside ``pkg``: ``pkg`` was initialised before it).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("stream", "learners", "detectors")

#: Edges that still close cycles around the command line (``stream/cli.py`` and the modules that
#: import its argument types and ``UsageError``). They go with the split of ``stream/`` into
#: ``live``, ``offline`` and ``cli`` (issue 8 part 2): remove an edge here when it goes. Only
#: these may remain; :func:`test_the_known_cycle_edges_still_exist` keeps the list honest.
KNOWN_CYCLE_EDGES = {
    ("stream.alerts_cli", "stream.cli"),
    ("stream.app", "stream.cli"),
    ("stream.app", "stream.predict_cli"),
    ("stream.kafka_clients", "stream.cli"),
    ("stream.predict_cli", "stream.cli"),
    ("stream.produce", "stream.cli"),
    ("stream.replay", "stream.cli"),
    ("stream.snapshots_cli", "stream.cli"),
    ("stream.snapshots_reset", "stream.cli"),
    ("stream.sources", "stream.cli"),
}


def module_files() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_files()

    def owner(name: str) -> str | None:
        """The project module that importing ``name`` runs last (itself, or its package)."""
        parts = name.split(".")
        while parts and ".".join(parts) not in modules:
            parts.pop()
        return ".".join(parts) or None

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in _imports(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    here = name.split(".") if is_package else name.split(".")[:-1]
                    here = here[: len(here) - (node.level - 1)]
                    base = ".".join([*here, *([node.module] if node.module else [])])
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            for target in targets:
                if target.split(".")[0] not in PACKAGES:
                    continue
                parts = target.split(".")
                # Importing a.b.c runs a and a.b first, except for a module inside them (its
                # packages were initialised before it).
                for depth in range(1, len(parts) + 1):
                    module = owner(".".join(parts[:depth]))
                    ancestor = module is not None and name.startswith(f"{module}.")
                    if module is None or module == name or (ancestor and depth < len(parts)):
                        continue
                    graph[name].add(module)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def describe(graph: dict[str, set[str]], component: list[str]) -> str:
    members = set(component)
    return "\n".join(
        f"  {m} -> {', '.join(sorted(graph[m] & members))}" for m in component if graph[m] & members
    )


def test_the_graph_sees_function_level_imports_and_skips_type_checking_ones() -> None:
    source = """
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from stream.worker import Worker
else:
    import stream.metrics
def f():
    from stream.keys import load_key
"""
    names = [
        node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
        for node in _imports(ast.parse(source))
    ]
    assert names == ["typing", "stream.metrics", "stream.keys"]
    graph = import_graph()
    assert "stream.keys" in graph["stream.cli"]  # imported inside a function
    assert "learners.config" in graph["learners.engine"]


def test_there_is_no_import_cycle() -> None:
    graph = import_graph()
    for source, target in KNOWN_CYCLE_EDGES:
        graph[source].discard(target)
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n\n".join(describe(graph, c) for c in found)


@pytest.mark.parametrize("edge", sorted(KNOWN_CYCLE_EDGES))
def test_the_known_cycle_edges_still_exist(edge: tuple[str, str]) -> None:
    source, target = edge
    assert target in import_graph()[source], f"{source} no longer imports {target}: drop it"


def test_the_layers_depend_one_way() -> None:
    # detectors -> nothing of ours; learners -> detectors; stream -> learners, detectors.
    graph = import_graph()
    for module, targets in graph.items():
        layer = module.split(".")[0]
        for target in targets:
            below = {"detectors": {"detectors"}, "learners": {"learners", "detectors"}}
            assert target.split(".")[0] in below.get(layer, set(PACKAGES)), (module, target)
