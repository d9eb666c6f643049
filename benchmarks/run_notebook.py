"""Run a notebook's code cells top to bottom in one Python process, without Jupyter.

For machines that have PyTorch but no Jupyter (the lent GPU machine; nothing can be installed
there) and for the tests that run notebooks on a pretend GPU. Cells run in order in one
namespace, from the notebook's folder, with matplotlib's Agg backend; ``plt.show()`` closes the
figures, ``display`` prints Markdown as text. Stops at the first failing cell (exit status 1).

    python benchmarks/run_notebook.py notebooks/05_training_gpu.ipynb [--quiet]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import types
from pathlib import Path


def _display_stub() -> None:
    """``IPython.display`` where IPython is not installed: Markdown and display print text.
    matplotlib looks at an ``IPython`` module it finds loaded (its ``version_info``, and
    ``get_ipython()``, which answers None here, as outside IPython)."""
    try:
        import IPython.display  # noqa: F401
    except ImportError:
        display = types.ModuleType("IPython.display")

        class Markdown:
            def __init__(self, data: str) -> None:
                self.data = data

            def __repr__(self) -> str:
                return self.data

        display.Markdown = Markdown
        display.display = lambda *objs, **kwargs: [print(repr(o)) for o in objs]
        package = types.ModuleType("IPython")
        package.display = display
        package.version_info = (0, 0, 0)
        package.get_ipython = lambda: None
        sys.modules.update({"IPython": package, "IPython.display": display})


def code_cells(path: str | os.PathLike) -> list[str]:
    """The sources of the notebook's code cells, in order."""
    cells = json.loads(Path(path).read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def run_notebook(path: str | os.PathLike, quiet: bool = False) -> dict:
    """Execute every code cell of ``path``; returns the namespace. Prints each cell's time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.show = lambda *args, **kwargs: plt.close("all")
    _display_stub()
    path = Path(path).resolve()
    namespace: dict = {"__name__": "__main__"}
    here = os.getcwd()
    os.chdir(path.parent)
    try:
        for k, source in enumerate(code_cells(path), start=1):
            start = time.perf_counter()
            if not quiet:
                print(f"--- {path.name}, code cell {k}", flush=True)
            exec(compile(source, f"{path.name}[code cell {k}]", "exec"), namespace)
            if not quiet:
                print(f"--- code cell {k}: {time.perf_counter() - start:.1f} s", flush=True)
    finally:
        os.chdir(here)
    return namespace


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+")
    parser.add_argument("--quiet", action="store_true", help="no per-cell headers")
    args = parser.parse_args()
    for notebook in args.notebooks:
        start = time.perf_counter()
        run_notebook(notebook, quiet=args.quiet)
        print(f"=== {notebook}: ran top to bottom in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
