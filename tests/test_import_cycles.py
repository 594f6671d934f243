"""No import cycles among the modules of the ``driftline`` package, and layers that depend one way.

The package is installed from three folders: ``stream/`` is ``driftline`` itself (``live/``,
``offline/``, ``cli/`` and a few shared modules), ``learners/`` is ``driftline.learners`` and
``detectors/`` ``driftline.detectors``.

The graph is read from the source with :mod:`ast`, function-level imports included (a function-level
import that closes a cycle only hides it); imports under ``if TYPE_CHECKING:`` are left out (they
never run). ``from pkg import name`` counts as importing ``pkg.name`` when that is a module, else
``pkg``; importing ``pkg.mod`` runs ``pkg/__init__.py`` too, so it counts as importing ``pkg``
(except from a module inside ``pkg``: ``pkg`` was initialised before it).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Where each package's modules live (pyproject's ``[tool.setuptools.package-dir]``).
FOLDERS = {
    "driftline": REPO / "stream",
    "driftline.learners": REPO / "learners",
    "driftline.detectors": REPO / "detectors",
}
PACKAGES = ("driftline",)

#: The layers, lowest first: a module may import its own layer's and lower layers' modules only.
#: ``live`` and ``offline`` are one rank but may not import each other (the two drivers of the one
#: engine); the ``driftline`` package itself (the notebook API) and ``__main__`` sit on top.
LAYERS = [
    ("driftline.detectors",),
    ("driftline.learners",),
    (
        "driftline.settings",
        "driftline.keys",
        "driftline.errors",
        "driftline.label_order",
        "driftline.progress",
    ),
    ("driftline.live", "driftline.offline"),
    ("driftline.cli",),
    ("driftline", "driftline.__main__"),
]


def layer_of(module: str) -> tuple[int, str]:
    """(rank, group) of ``module``: the longest matching group in :data:`LAYERS`."""
    best: tuple[int, str] = (-1, "")
    for rank, groups in enumerate(LAYERS):
        for group in groups:
            matches = module == group or module.startswith(f"{group}.")
            if matches and len(group) > len(best[1]):
                best = (rank, group)
    assert best[0] >= 0, f"{module} is in no layer: add it to LAYERS"
    return best


def module_files() -> dict[str, Path]:
    modules = {}
    for package, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = path
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
    from driftline.live.worker import Worker
else:
    import driftline.live.metrics
def f():
    from driftline.keys import load_key
"""
    names = [
        node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
        for node in _imports(ast.parse(source))
    ]
    assert names == ["typing", "driftline.live.metrics", "driftline.keys"]
    graph = import_graph()
    assert "driftline.live.app" in graph["driftline.cli.serve"]  # imported inside a function
    assert "driftline.learners.config" in graph["driftline.learners.engine"]


def test_there_is_no_import_cycle() -> None:
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n\n".join(describe(graph, c) for c in found)


def test_the_layers_depend_one_way() -> None:
    # cli -> live | offline -> shared modules -> learners -> detectors; live and offline apart.
    graph = import_graph()
    wrong = []
    for module, targets in graph.items():
        rank, group = layer_of(module)
        for target in targets:
            target_rank, target_group = layer_of(target)
            sideways = target_rank == rank and target_group != group and rank == 3
            if target_rank > rank or sideways:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_nothing_imports_the_command_line() -> None:
    graph = import_graph()
    users = sorted(
        module
        for module, targets in graph.items()
        if not module.startswith(("driftline.cli", "driftline.__main__"))
        and any(t == "driftline.cli" or t.startswith("driftline.cli.") for t in targets)
    )
    assert not users, users


#: A module a newcomer reads in one sitting (issue 8: "about 300 lines, none over 400").
MAX_MODULE_LINES = 400


def test_no_module_of_the_package_is_over_400_lines() -> None:
    long = {
        name: count
        for name, path in module_files().items()
        if (count := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"split these by responsibility (lines): {long}"
