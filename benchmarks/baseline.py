"""The package as it was at an earlier git revision, for the benchmarks that compare with it."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def extract_package(revision: str, dest: Path | str) -> None:
    """Write ``pixelrnn_utils`` as it was at ``revision`` into the folder ``dest`` (``git archive``).

    Put ``dest`` first on a child's ``PYTHONPATH`` (or ``sys.path``) to import that version.
    """
    archive = subprocess.run(
        ["git", "archive", revision, "pixelrnn_utils"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
