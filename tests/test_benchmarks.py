"""The end-to-end speed comparison (benchmarks/cli_speed.py) runs and reports what it measured.

A tiny model on a tiny folder, one round: this checks the harness (both versions run through the
CLI, the kept-memory baseline gets its allocator settings, page faults are counted), not any speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "7783b0b"


def _has_revision(rev: str) -> bool:
    done = subprocess.run(
        ["git", "cat-file", "-e", f"{rev}^{{commit}}"], cwd=ROOT, capture_output=True
    )
    return done.returncode == 0


@pytest.mark.skipif(not _has_revision(BASELINE), reason=f"needs git history with {BASELINE}")
def test_cli_speed_compares_both_versions_end_to_end(tiny_folder):
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "cli_speed.py"),
        "--data",
        str(tiny_folder),
    ]
    command += ["--limit", "16", "--val-limit", "8", "--rounds", "1", "--json"]
    command += ["--train-flags", "--hidden 4 --layers 1 --image-size 8", "--kept-memory-baseline"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    runs = report["results"]
    names = [f"baseline {BASELINE}", f"baseline {BASELINE}, freed memory kept", "this tree"]
    assert list(runs) == names
    for name in names:
        (run,) = runs[name]
        assert run["images_per_s"] > 0 and run["wall_s"] > 0 and run["minor_page_faults"] > 0
        assert 0 < run["val_bits_per_dim"] < 9
    assert report["info"]["threads"] == 1 and report["info"]["limit"] == 16
