"""The package's modules import one another without a cycle, so each can be read from the bottom up.

Every module of ``pixelrnn_utils`` is parsed with ``ast`` (nothing is imported) and every import of
another module of the package is collected: ``from .x import y``, ``from . import x``,
``import pixelrnn_utils.x``, ``from pixelrnn_utils.x import y``, ``from pixelrnn_utils import x``,
at the top of the file or inside a function (an import deferred into a function body still ties the
two modules together). A name imported from the package itself (``from . import sample``) counts as
an import of ``__init__``. A module of a subpackage is named by its dotted path inside the package
(``exercises.feedback``), the subpackage's ``__init__.py`` by the subpackage's (``exercises``);
relative imports resolve from the subpackage (inside ``exercises/``, ``from . import feedback`` is
``exercises.feedback``, ``from ..model import y`` is ``model``). docs/ARCHITECTURE.md lists the
layers this graph allows.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "pixelrnn_utils"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE


def _name(path: Path, root: Path) -> str:
    """``data``, ``__init__``, ``exercises.feedback``, ``exercises`` (for ``exercises/__init__.py``)."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Module name (``data``, ``model``, ``__init__``, ``exercises.feedback``) -> file, for every
    ``.py`` of the package and its subpackages."""
    return {_name(path, root): path for path in sorted(root.rglob("*.py"))}


def _target(name: str, known: set[str]) -> str | None:
    """The package module that ``pixelrnn_utils.<name>`` (or a name in it) refers to, or None: the
    longest leading dotted part of ``name`` that is a module."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in known:
            return ".".join(parts[:end])
    return None


def imports_of(source: str, known: set[str], package: str = "") -> set[str]:
    """The package modules that ``source`` (one module's text) imports, anywhere in the file.
    ``package`` is the subpackage the module is in (``exercises``), "" for the package itself."""
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
            base = package.split(".") if package else []
            if node.level > len(base) + 1:
                raise ValueError(f"import from above the package: {ast.unparse(node)}")
            # the module imported from, as a dotted path inside the package ("" for the package)
            module = node.module or ""
            if node.level:  # from . import x, from .x import y, from ..x import y
                inner = ".".join(base[: len(base) - node.level + 1] + ([module] if module else []))
            else:  # from pixelrnn_utils import x, from pixelrnn_utils.x import y
                inner = module[len(PACKAGE) + 1 :]
            for alias in node.names:  # each name: a module, or a name of the module imported from
                found.add(_target(".".join(filter(None, (inner, alias.name))), known) or "__init__")
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the other package modules it imports."""
    files = modules(root)
    known = set(files)
    return {
        name: imports_of(path.read_text(), known, ".".join(path.relative_to(root).parent.parts))
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
    assert {"data", "settings", "model", "multiscale", "sampling"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in pixelrnn_utils: " + " -> ".join(cycle)


def test_the_lowest_modules_import_nothing_of_the_package_but_settings():
    """``settings`` imports nothing of the package; the next layer only ``settings``."""
    graph = import_graph()
    assert graph["settings"] == set()
    low = ("masks", "metrics", "progress", "conditioning", "causality", "cuda_graphs", "precision")
    low += ("runtime", "datasets", "datasets.image_dataset", "datasets.cache", "datasets.amat")
    for name in low:
        assert graph[name] <= {"settings"}, f"{name} imports {sorted(graph[name])}"


def test_data_re_exports_the_datasets_subpackage():
    """``data`` is the datasets' public face: it imports the ``datasets`` modules (and settings),
    which never import it back."""
    graph = import_graph()
    assert {"datasets.loading", "datasets.levels", "datasets.shipped"} <= graph["data"]
    assert all(m.startswith("datasets") or m == "settings" for m in graph["data"])
    assert not any("data" in graph[m] for m in graph if m.startswith("datasets"))


def test_the_exercises_subpackage_is_in_the_graph_and_on_top():
    """The check modules are read too; their shared feedback imports nothing of the package, and no
    module outside ``exercises`` imports a check module."""
    graph = import_graph()
    assert {"exercises", "exercises.feedback", "exercises.nb06_sampling"} <= set(graph)
    assert graph["exercises.feedback"] == set()
    assert {"sampling", "exercises.feedback"} <= graph["exercises.nb06_sampling"]
    for name, imported in graph.items():
        if not name.startswith("exercises"):
            assert not any(m.startswith("exercises") for m in imported), f"{name} imports exercises"


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
        ("from . import feedback", {"exercises.feedback"}),
        ("from .feedback import _verdict", {"exercises.feedback"}),
        ("from . import check_skew", {"exercises"}),
        ("from .. import model, sample", {"model", "__init__"}),
        ("from ..model import build_model", {"model"}),
        ("from ..exercises.feedback import _verdict", {"exercises.feedback"}),
        ("import pixelrnn_utils.exercises.feedback", {"exercises.feedback"}),
        (
            "from pixelrnn_utils.exercises import check_skew, feedback",
            {"exercises", "exercises.feedback"},
        ),
    ],
)
def test_relative_imports_resolve_inside_a_subpackage(line, expected):
    known = {"model", "__init__", "exercises", "exercises.feedback"}
    assert imports_of(line, known, package="exercises") == expected
    with pytest.raises(ValueError, match="above the package"):
        imports_of("from ... import model", known, package="exercises")


def test_a_cycle_is_found_and_named(tmp_path):
    (tmp_path / "a.py").write_text("from .b import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from . import c\n")
    (tmp_path / "c.py").write_text("import pixelrnn_utils.a\n")
    (tmp_path / "d.py").write_text("from .a import y\n")
    cycle = find_cycle(import_graph(tmp_path))
    assert cycle == ["a", "b", "c", "a"]
    (tmp_path / "c.py").write_text("import torch\n")
    assert find_cycle(import_graph(tmp_path)) is None
    (tmp_path / "sub").mkdir()  # a subpackage whose module imports back the one that imports it
    (tmp_path / "sub" / "__init__.py").write_text("from .e import z\n")
    (tmp_path / "sub" / "e.py").write_text("from ..d import w\n")
    (tmp_path / "d.py").write_text("from .sub import e\n")
    cycle = find_cycle(import_graph(tmp_path))
    assert cycle == ["d", "sub.e", "d"]


def _layers(graph: dict[str, set[str]]) -> dict[str, int]:
    """Each module's layer: one more than the highest layer it imports from (0: imports nothing)."""
    layer: dict[str, int] = {}

    def of(name: str) -> int:
        if name not in layer:
            layer[name] = 1 + max((of(dep) for dep in graph[name]), default=-1)
        return layer[name]

    for name in graph:
        of(name)
    return layer


def test_architecture_doc_shows_this_graph_and_every_module():
    """docs/ARCHITECTURE.md's import-layer table is this graph, and its module table names every
    module (a subpackage's numbered notebook modules as one row)."""
    doc = (ROOT.parent / "docs" / "ARCHITECTURE.md").read_text()
    graph = import_graph()
    layer = _layers(graph)
    expected = {
        f"| {layer[m]} | `{m}` | "
        + (", ".join(f"`{d}`" for d in sorted(graph[m])) or "nothing")
        + " |"
        for m in graph
    }
    shown = {line for line in doc.splitlines() if line.startswith("| ") and line[2].isdigit()}
    assert shown == expected, (
        f"out of date: missing {sorted(expected - shown)[:3]}, stale {sorted(shown - expected)[:3]}"
    )
    named = {line.split("`")[1] for line in doc.splitlines() if line.startswith("| `")}
    packages = {"__init__"} | {m for m in graph if any(n.startswith(m + ".") for n in graph)}
    unnamed = {m for m in graph if m not in named | packages and not m.startswith("exercises.nb")}
    assert unnamed == set(), f"modules missing from the module table: {sorted(unnamed)}"
