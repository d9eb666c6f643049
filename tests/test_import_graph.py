"""The package's modules import one another without a cycle, so each can be read from the bottom up.

Every module of ``pixelrnn_utils`` is parsed with ``ast`` (nothing is imported) and every import of
another module of the package is collected: ``from .x import y``, ``from . import x``,
``import pixelrnn_utils.x``, ``from pixelrnn_utils.x import y``, ``from pixelrnn_utils import x``,
at the top of the file or inside a function (an import deferred into a function body still ties the
two modules together). A name imported from the package itself (``from . import sample``) counts as
an import of ``__init__``. A module of a subpackage is named by its dotted path inside the package
(``datasets.cache``; its ``__init__.py`` is ``datasets``), and its relative imports are resolved from
there (in ``datasets/``, ``from . import x`` is ``datasets.x``, ``from ..settings import y`` is
``settings``). docs/ARCHITECTURE.md lists the layers this graph allows.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "pixelrnn_utils"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE


def _name(path: Path, root: Path) -> str:
    """``data``, ``__init__``, ``datasets.cache``, ``datasets`` (for ``datasets/__init__.py``)."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if len(parts) > 1 and parts[-1] == "__init__" else parts)


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Module name (``data``, ``model``, ``__init__``, ``datasets.cache``) -> file, for every ``.py``
    of the package and its subpackages."""
    return {_name(path, root): path for path in sorted(root.rglob("*.py"))}


def _target(name: str, known: set[str]) -> str | None:
    """The package module that ``pixelrnn_utils.<name>`` (or a name in it) refers to, or None: the
    longest dotted prefix of ``name`` that is a module (``datasets.cache.x`` -> ``datasets.cache``)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in known:
            return ".".join(parts[:end])
    return None


def imports_of(source: str, known: set[str], package: str = "") -> set[str]:
    """The package modules that ``source`` (one module's text) imports, anywhere in the file.

    ``package``: the subpackage the module is in (``"datasets"`` for ``datasets/cache.py``), which
    relative imports start from; ``""`` for a module directly in ``pixelrnn_utils``.
    """
    here = package.split(".") if package else []
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
            if node.level > len(here) + 1:
                raise ValueError(f"import from above the package: {ast.unparse(node)}")
            # the dotted path inside the package ("" for the package itself): in datasets/,
            # "from .x" is "datasets.x" and "from ..x" is "x"; "from pixelrnn_utils.x" is "x"
            module = node.module or ""
            if node.level:
                base = here[: len(here) + 1 - node.level]
                inner = ".".join(base + ([module] if module else []))
            else:
                inner = module[len(PACKAGE) + 1 :]
            # from .x import y (a name of x), from . import x, from .pkg import x (a module, or
            # a name of the package's __init__)
            for alias in node.names:
                name = f"{inner}.{alias.name}" if inner else alias.name
                found.add(_target(name, known) or "__init__")
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the other package modules it imports."""
    files = modules(root)
    known = set(files)
    return {
        name: imports_of(path.read_text(), known, ".".join(path.parent.relative_to(root).parts))
        - {name}
        for name, path in files.items()
    }


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
    assert {"data", "settings", "model", "multiscale", "sampling", "datasets.loading"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in pixelrnn_utils: " + " -> ".join(cycle)


def test_the_lowest_modules_import_nothing_of_the_package_but_settings():
    """``settings`` imports nothing of the package; the next layer only ``settings``."""
    graph = import_graph()
    assert graph["settings"] == set()
    low = ("masks", "metrics", "progress", "conditioning", "causality", "cuda_graphs")
    for name in (*low, "datasets", "datasets.image_dataset", "datasets.cache", "datasets.amat"):
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


@pytest.mark.parametrize(
    "line, expected",
    [
        ("from . import cache", {"datasets.cache"}),
        ("from .cache import _cached_decode", {"datasets.cache"}),
        ("from . import NAME", {"datasets"}),  # a name of datasets/__init__.py
        ("from .. import settings", {"settings"}),
        ("from ..settings import project_root", {"settings"}),
        ("from .. import sample", {"__init__"}),
        ("import pixelrnn_utils.datasets.cache", {"datasets.cache"}),
        ("from pixelrnn_utils.datasets import cache", {"datasets.cache"}),
    ],
)
def test_relative_imports_inside_a_subpackage_are_resolved(line, expected):
    known = {"settings", "data", "__init__", "datasets", "datasets.cache"}
    assert imports_of(line, known, package="datasets") == expected


def test_a_subpackage_is_read_and_named_by_its_dotted_path(tmp_path):
    (tmp_path / "__init__.py").write_text("from .top import x\n")
    (tmp_path / "top.py").write_text("from .sub import low\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "__init__.py").write_text("")
    (tmp_path / "sub" / "low.py").write_text("from ..top import y\n")
    graph = import_graph(tmp_path)
    assert graph == {"__init__": {"top"}, "top": {"sub.low"}, "sub": set(), "sub.low": {"top"}}
    assert find_cycle(graph) == ["top", "sub.low", "top"]
    with pytest.raises(ValueError, match="above the package"):
        imports_of("from ... import x", {"top"}, package="sub")


def test_a_cycle_is_found_and_named(tmp_path):
    (tmp_path / "a.py").write_text("from .b import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from . import c\n")
    (tmp_path / "c.py").write_text("import pixelrnn_utils.a\n")
    (tmp_path / "d.py").write_text("from .a import y\n")
    cycle = find_cycle(import_graph(tmp_path))
    assert cycle == ["a", "b", "c", "a"]
    (tmp_path / "c.py").write_text("import torch\n")
    assert find_cycle(import_graph(tmp_path)) is None
