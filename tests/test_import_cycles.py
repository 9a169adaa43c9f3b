"""No module of ``sert/`` or ``stages/`` imports one that imports it back.

The import graph is read from the source with ``ast`` (nothing is imported), over every import
statement, the ones inside functions included: a lazy import that closes a circle still ties the
two modules together. Edges:
  * ``import a.b.c``: to ``a.b.c`` (or its longest prefix that is one of our modules);
  * ``from a.b import c`` (relative ones resolved): to ``a.b.c`` when that is a module, else to
    ``a.b`` (the package ``__init__`` or module that defines ``c``).
Python initialises a parent package before any submodule, but that implied import is NOT an
edge: a registry package whose ``__init__`` imports its backends at the end (``sert.tasks``,
``sert.teachers``, ``sert.samplers``) is fine as long as the backends take what they need from a sibling module
(``sert.tasks.registry``), not from the package that is still being initialised. A backend that
writes ``from sert.tasks import register_task`` is a circle and fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sert", "stages")


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the packages (``__init__`` = the package)."""
    out = {}
    for package in PACKAGES:
        for file in sorted((root / package).rglob("*.py")):
            parts = list(file.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = file
    return out


def imported(name: str, file: Path, known: dict[str, Path]) -> set[str]:
    """The modules among ``known`` that ``name`` (read from ``file``) imports."""
    is_package = file.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), filename=str(file))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = alias.name
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target:
                    out.add(target)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package (for a package __init__, itself)
                package = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    out.add(f"{base}.{alias.name}")
                elif base in known:
                    out.add(base)
    out.discard(name)
    return out


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    known = modules(root)
    return {name: imported(name, file, known) for name, file in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[tuple[list[str], list[str]]]:
    """One circle per strongly connected component of more than one module (Tarjan): a shortest
    path ``[a, b, ..., a]`` back to its first module, and all the component's modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
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
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    out = []
    for component in components:
        start, members = component[0], set(component)
        parent: dict[str, str] = {}
        frontier = [start]
        while frontier and start not in parent:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v] & members):
                    if w not in parent:
                        parent[w] = v
                        nxt.append(w)
            frontier = nxt
        path = [start]
        while path[-1] != start or len(path) == 1:
            path.append(parent[path[-1]])
        out.append((path[::-1], component))
    return out


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(
        f"{' -> '.join(path)}  (circle among: {', '.join(members)})" for path, members in found)


def test_graph_reads_the_registries_as_they_are():
    """The graph sees what the test relies on: a registry package imports its backends, and the
    backends import the registry module, not the package (so the check has something to check)."""
    graph = import_graph()
    assert {"sert.tasks.registry", "sert.tasks.modsum"} <= graph["sert.tasks"]
    assert "sert.tasks.registry" in graph["sert.tasks.modsum"]
    assert "sert.tasks" not in graph["sert.tasks.modsum"]
    assert {"sert.teachers.registry", "sert.teachers.oracle", "sert.teachers.imported",
            "sert.teachers.openai_api"} <= graph["sert.teachers"]
    assert "sert.teachers" not in graph["sert.teachers.oracle"]
    assert {"sert.samplers.registry", "sert.samplers.hf", "sert.samplers.vllm_engine"} <= graph["sert.samplers"]
    assert "sert.samplers.registry" in graph["sert.samplers.hf"]
    assert "sert.samplers" not in graph["sert.samplers.hf"] | graph["sert.samplers.vllm_engine"]


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize("backend_import", [
    "from sert.reg import register",           # from the package that imports the backend
    "from . import register",                  # the same, relative
    "import sert.reg",                         # the package itself
    "from sert.reg.b import x",                # a sibling that imports the backend back
])
def test_detects_a_circle(tmp_path, backend_import):
    _write(tmp_path, {
        "sert/__init__.py": "",
        "sert/reg/__init__.py": "from sert.reg.base import register\nfrom sert.reg import a, b\n",
        "sert/reg/base.py": "def register(cls):\n    return cls\n",
        "sert/reg/a.py": f"{backend_import}\n",
        "sert/reg/b.py": "x = 1\ndef late():\n    from sert.reg import a\n",  # lazy imports count
        "stages/__init__.py": "",
    })
    found = cycles(import_graph(tmp_path))
    assert len(found) == 1
    path, members = found[0]
    assert path[0] == path[-1] and "sert.reg.a" in path and "sert.reg.a" in members
    assert all(b in import_graph(tmp_path)[a] for a, b in zip(path, path[1:]))  # each step is an edge


def test_registry_convention_is_no_circle(tmp_path):
    """The package imports base and backends; the backends import base (their parent package is
    initialised first by Python, which is not an edge)."""
    _write(tmp_path, {
        "sert/__init__.py": "",
        "sert/reg/__init__.py": "from sert.reg.base import register\nfrom sert.reg import a, b\n",
        "sert/reg/base.py": "from sert import util\ndef register(cls):\n    return cls\n",
        "sert/reg/a.py": "from sert.reg.base import register\nfrom .b import x\n",
        "sert/reg/b.py": "from ..util import helper\nx = 1\n",
        "sert/util.py": "def helper():\n    pass\n",
        "stages/__init__.py": "",
        "stages/s.py": "import sert.reg\nfrom sert.reg import register\n",
    })
    graph = import_graph(tmp_path)
    assert graph["sert.reg.a"] == {"sert.reg.base", "sert.reg.b"}
    assert graph["sert.reg.b"] == {"sert.util"}
    assert graph["stages.s"] == {"sert.reg"}
    assert cycles(graph) == []
