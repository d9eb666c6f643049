"""The course website's own Sphinx extension: what is on the site, in which order, and the few
rewrites the build makes so that pages written for GitHub read the same on the site.

Nothing here is written by hand per page: the notebooks are ``notebooks/[0-9][0-9]_*.ipynb`` in
order, and the API pages are the package's modules (every module whose name does not start with
``_``), so a new notebook or module appears without editing this file. Notebooks are never edited
and never executed: their stored outputs are what the site shows.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "pixelrnn_utils"
NOTEBOOK_GLOB = "notebooks/[0-9][0-9]_*.ipynb"
API_DIR = "docs/api"  # generated at every build (git-ignored)
# The pages besides the notebooks and the API, in sidebar order (all linked from README or the
# notebooks as they are on GitHub).
NOTES = [
    "docs/ARCHITECTURE",
    "docs/paper",
    "data/README",
    "checkpoints/README",
    "benchmarks/README",
    "CONTRIBUTING",
]
# Colab's badge image, served by Google; the site ships its own copy so that it reads offline.
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
LOCAL_BADGE = "docs/_static/colab-badge.svg"
SOLUTION_TAG = "solution"


def notebook_docnames(root: Path = ROOT) -> list[str]:
    """The course's notebooks in course order: ``notebooks/01_...``, ``notebooks/02_...``, ..."""
    return [f"notebooks/{p.stem}" for p in sorted(root.glob(NOTEBOOK_GLOB))]


def api_modules(root: Path = ROOT) -> list[str]:
    """Every public module of the package, found on disk (nothing imported), in name order."""
    modules = []
    base = root / PACKAGE
    for path in sorted(base.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(part.startswith("_") for part in parts):
            continue
        if "__pycache__" in path.parts:
            continue
        modules.append(".".join(parts))
    return sorted(modules)


def short_name(module: str) -> str:
    """An API page's title: the module's name inside the package (``model``, ``datasets.loading``)."""
    return module.removeprefix(f"{PACKAGE}.") if module != PACKAGE else PACKAGE


def _summary(module: str, root: Path = ROOT) -> str:
    """First line of a module's docstring, read with ``ast`` (no import)."""
    path = root / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def include_patterns() -> list[str]:
    return [
        "README.md",
        "CONTRIBUTING.md",
        NOTEBOOK_GLOB,
        "docs/*.md",
        f"{API_DIR}/*.md",
        "data/README.md",
        "checkpoints/README.md",
        "benchmarks/README.md",
    ]


def exclude_patterns_for(root: Path) -> list[str]:
    """Everything else under the repository root, named so Sphinx does not even walk it (a
    learner's clone may hold a virtual environment, runs and downloaded data)."""
    keep = {
        "README.md",
        "CONTRIBUTING.md",
        "notebooks",
        "docs",
        "data",
        "checkpoints",
        "benchmarks",
    }
    excluded = [p.name for p in root.iterdir() if p.name not in keep]
    for folder in sorted(keep - {"README.md", "CONTRIBUTING.md"}):
        for sub in sorted((root / folder).glob("*/")) if (root / folder).is_dir() else []:
            if sub.is_dir() and f"{folder}/{sub.name}" != API_DIR:
                excluded.append(f"{folder}/{sub.name}")
    return excluded


def api_pages(root: Path = ROOT) -> dict[str, str]:
    """The generated API pages: ``{file name: MyST text}``, an index and one page per module."""
    modules = api_modules(root)
    pages = {}
    rows = []
    for module in modules:
        pages[f"{module}.md"] = (
            f"# {short_name(module)}\n\n```{{eval-rst}}\n.. automodule:: {module}\n```\n"
        )
        rows.append(f"| [`{module}`]({module}.md) | {_summary(module, root)} |")
    pages["index.md"] = (
        "# API reference\n\n"
        f"The `{PACKAGE}` package, one page per module, generated from its docstrings (each "
        "module's public names, as listed in its `__all__`). Which module teaches what, and the "
        "order they build on each other, is in [How the course is built](../ARCHITECTURE.md).\n\n"
        "| module | what it holds |\n|---|---|\n"
        + "\n".join(rows)
        + "\n\n```{toctree}\n:hidden:\n:maxdepth: 1\n\n"
        + "\n".join(modules)
        + "\n```\n"
    )
    return pages


def write_api_pages(root: Path = ROOT) -> None:
    """Write the API pages into ``docs/api/`` (only those that changed; stale ones removed)."""
    folder = root / API_DIR
    folder.mkdir(parents=True, exist_ok=True)
    pages = api_pages(root)
    for stale in folder.glob("*.md"):
        if stale.name not in pages:
            stale.unlink()
    for name, text in pages.items():
        path = folder / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


def _toctree(caption: str, entries: list[str]) -> str:
    return (
        "\n```{toctree}\n:hidden:\n:caption: " + caption + "\n\n" + "\n".join(entries) + "\n```\n"
    )


def read_notebook(text: str) -> nbformat.NotebookNode:
    """MyST-NB's notebook reader, plus the rewrites a notebook needs on the site (in memory only):

    * a cell tagged ``solution`` (stored collapsed in Jupyter and Colab) stays collapsed, behind
      a "Show solution" toggle;
    * Jupyter's heading anchors (``#The-naive-sampler``) become MyST's (``#the-naive-sampler``).
    """
    nb = nbformat.reads(text, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and SOLUTION_TAG in cell.metadata.get("tags", []):
            cell.metadata["tags"] = [*cell.metadata["tags"], "hide-input"]
            cell.metadata["mystnb"] = {
                "code_prompt_show": "Show solution",
                "code_prompt_hide": "Hide solution",
            }
        elif cell.cell_type == "markdown":
            cell.source = re.sub(
                r"\]\(#([^)\s]+)\)", lambda m: f"](#{m.group(1).lower()})", cell.source
            )
    return nb


def _source_read(app, docname: str, source: list[str]) -> None:
    text = source[0]
    badge = os.path.relpath(LOCAL_BADGE, os.path.dirname(docname) or ".")
    text = text.replace(COLAB_BADGE, badge.replace(os.sep, "/"))
    if docname == app.config.root_doc:
        text += _toctree("Course", notebook_docnames(Path(app.srcdir)))
        text += _toctree("Notes", NOTES)
        text += _toctree("Reference", [f"{API_DIR}/index"])
    source[0] = text


def _builder_inited(app) -> None:
    # autodoc documents the package of the folder being built (not another installed copy)
    sys.path.insert(0, str(app.srcdir))
    write_api_pages(Path(app.srcdir))


def _build_finished(app, exception) -> None:
    """The landing page is README; publish it as the site's ``index.html`` too."""
    if exception is None and app.builder.format == "html":
        out = Path(app.outdir)
        shutil.copyfile(out / f"{app.config.root_doc}.html", out / "index.html")


def _config_inited(app, config) -> None:
    config.exclude_patterns = [*config.exclude_patterns, *exclude_patterns_for(Path(app.srcdir))]


def setup(app):
    app.connect("config-inited", _config_inited)
    app.connect("builder-inited", _builder_inited)
    app.connect("source-read", _source_read)
    app.connect("build-finished", _build_finished)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
