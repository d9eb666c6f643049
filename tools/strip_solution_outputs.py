"""Remove the stored outputs of the notebooks' solution cells (cells tagged ``solution``).

    python tools/strip_solution_outputs.py [notebooks/*.ipynb]

A solution cell's source is collapsed, but what it printed would show the exercise's answer right
under the exercise. After a notebook is run in full (CONTRIBUTING), this keeps each solution cell's
execution count (it did run, in order) and drops its outputs; ``tests/test_notebook_hygiene.py``
fails on any solution cell stored with outputs. Prints the notebooks it changed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent


def strip(path: Path) -> bool:
    """Drop the outputs of ``path``'s solution cells; True if the file changed."""
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        if (
            cell.cell_type == "code"
            and "solution" in cell.metadata.get("tags", [])
            and cell.outputs
        ):
            cell.outputs = []
            changed = True
    if changed:
        nbformat.write(nb, path)
    return changed


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    for path in paths:
        if strip(path):
            print(f"stripped the solution outputs of {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
