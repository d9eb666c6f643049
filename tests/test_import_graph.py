"""The package's modules import one another without a cycle, so each can be read from the bottom up.

Every module of ``pixelrnn_utils`` is parsed with ``ast`` (nothing is imported) and every import of
another module of the package is collected: ``from .x import y``, ``from . import x``,
``import pixelrnn_utils.x``, ``from pixelrnn_utils.x import y``, ``from pixelrnn_utils import x``,
at the top of the file or inside a function (an import deferred into a function body still ties the
two modules together). A name imported from the package itself (``from . import sample``) counts as
an import of ``__init__``. docs/ARCHITECTURE.md lists the layers this graph allows.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "pixelrnn_utils"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Module name (``data``, ``model``, ``__init__``) -> file, for every ``.py`` of the package."""
    return {path.stem: path for path in sorted(root.glob("*.py"))}


def _target(name: str, known: set[str]) -> str | None:
    """The package module that ``pixelrnn_utils.<name>`` (or a name in it) refers to, or None."""
    first = name.split(".")[0]
    return first if first in known else None


def imports_of(source: str, known: set[str]) -> set[str]:
    """The package modules that ``source`` (one module's text) imports, anywhere in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):  # import pixelrnn_utils.x [as y]
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == PACKAGE:
                    found.add(_target(".".join(parts[1:]), known) or "__init__")
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and (node.module or "").split(".")[0] != PACKAGE:
                continue  # torch, numpy, the standard library
            if node.level > 1:
                raise ValueError(f"import from above the package: {ast.unparse(node)}")
            # what follows "from ." / "from pixelrnn_utils." ("" for the package itself)
            module = node.module or ""
            inner = module if node.level else module[len(PACKAGE) + 1 :]
            if inner:  # from .x import y, from pixelrnn_utils.x import y
                found.add(_target(inner, known) or "__init__")
            else:  # from . import x, from pixelrnn_utils import x: a module, or a name of __init__
                for alias in node.names:
                    found.add(_target(alias.name, known) or "__init__")
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the other package modules it imports."""
    files = modules(root)
    known = set(files)
    return {name: imports_of(path.read_text(), known) - {name} for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None when it has none (depth-first search)."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once fully explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_package_imports_without_a_cycle():
    graph = import_graph()
    assert {"data", "settings", "model", "multiscale", "sampling"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in pixelrnn_utils: " + " -> ".join(cycle)


def test_the_lowest_modules_import_nothing_of_the_package_but_settings():
    """``settings`` imports nothing of the package; the next layer only ``settings``."""
    graph = import_graph()
    assert graph["settings"] == set()
    for name in ("masks", "metrics", "progress", "conditioning", "causality", "cuda_graphs"):
        assert graph[name] <= {"settings"}, f"{name} imports {sorted(graph[name])}"


@pytest.mark.parametrize(
    "line, expected",
    [
        ("from .data import load_dataset", {"data"}),
        ("from . import data, sample", {"data", "__init__"}),
        ("import pixelrnn_utils.model as m", {"model"}),
        ("import pixelrnn_utils", {"__init__"}),
        ("from pixelrnn_utils.sampling import sample", {"sampling"}),
        ("from pixelrnn_utils import checkpoint", {"checkpoint"}),
        ("def f():\n    from .multiscale import sample_multiscale", {"multiscale"}),
        ("import torch\nfrom torch import nn\nimport os.path", set()),
    ],
)
def test_every_form_of_import_is_seen(line, expected):
    known = {"data", "model", "sampling", "checkpoint", "multiscale", "__init__"}
    assert imports_of(line, known) == expected


def test_a_cycle_is_found_and_named(tmp_path):
    (tmp_path / "a.py").write_text("from .b import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from . import c\n")
    (tmp_path / "c.py").write_text("import pixelrnn_utils.a\n")
    (tmp_path / "d.py").write_text("from .a import y\n")
    cycle = find_cycle(import_graph(tmp_path))
    assert cycle == ["a", "b", "c", "a"]
    (tmp_path / "c.py").write_text("import torch\n")
    assert find_cycle(import_graph(tmp_path)) is None
