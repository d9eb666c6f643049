"""The speed comparisons in benchmarks/ run and report what they measured.

Tiny settings, one round: these check the harnesses (both versions run, each from its own tree; the
CLI comparison's kept-memory baseline gets its allocator settings, page faults are counted), never
any speed. Each extracts an earlier version with ``git archive``, so each needs the git history.
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


def _run_json(script: str, *args: str) -> dict:
    command = [sys.executable, str(ROOT / "benchmarks" / script), *args, "--json"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.skipif(not _has_revision(BASELINE), reason=f"needs git history with {BASELINE}")
def test_cli_speed_compares_both_versions_end_to_end(tiny_folder):
    report = _run_json(
        "cli_speed.py",
        *("--data", str(tiny_folder), "--limit", "16", "--val-limit", "8", "--rounds", "1"),
        *("--train-flags", "--hidden 4 --layers 1 --image-size 8", "--kept-memory-baseline"),
    )
    runs = report["results"]
    names = [f"baseline {BASELINE}", f"baseline {BASELINE}, freed memory kept", "this tree"]
    assert list(runs) == names
    for name in names:
        (run,) = runs[name]
        assert run["images_per_s"] > 0 and run["wall_s"] > 0 and run["minor_page_faults"] > 0
        assert 0 < run["val_bits_per_dim"] < 9
    assert report["info"]["threads"] == 1 and report["info"]["limit"] == 16


@pytest.mark.skipif(not _has_revision(BASELINE), reason=f"needs git history with {BASELINE}")
def test_training_speed_times_the_baseline_and_this_version():
    report = _run_json(
        "training_speed.py",
        *("--threads", "1", "--rounds", "1", "--steps", "1", "--batch", "2", "--flops"),
        "--readable",
    )
    assert report["info"]["baseline"] == BASELINE and report["info"]["batch"] == 2
    runs = report["results"]
    assert list(runs) == ["baseline fp32", "fp32", "auto", "fp32 readable"]
    assert runs["baseline fp32"]["dtype"] == runs["fp32"]["dtype"] == "float32"
    assert runs["fp32 readable"]["dtype"] == "float32"
    # the Row LSTM's two paths do the same products, but for the fast one's extra rows (a zero
    # row after each state tap's, and the bias's row of ones: 4 of 452 at h = 64) and the
    # gradient of row -1's zero states, which only the fast one computes
    fast, readable = runs["fp32"]["gflop_per_step"], runs["fp32 readable"]["gflop_per_step"]
    assert readable < fast < 1.06 * readable
    for run in runs.values():
        assert run["images_per_s"] > 0 and run["first_step_s"] > 0
        assert run["gflop_per_s"] > 0 and run["matmul_gflop_per_s"] > 0
    # the same model in both precisions (bf16 runs the Row LSTM's readable loop, see below); the
    # baseline's masked kernels still compute their always-masked taps (a 1 x 3 input-to-state
    # kernel where this version uses 1 x 2)
    assert runs["auto"]["gflop_per_step"] == pytest.approx(runs["fp32"]["gflop_per_step"], rel=0.02)
    assert runs["baseline fp32"]["gflop_per_step"] > 1.1 * runs["fp32"]["gflop_per_step"]


DIAGONAL_BASELINE = "4d9fa0b"


@pytest.mark.skipif(
    not _has_revision(DIAGONAL_BASELINE), reason=f"needs git history with {DIAGONAL_BASELINE}"
)
def test_diagonal_bilstm_speed_times_the_per_column_layer_and_this_one():
    report = _run_json(
        "diagonal_bilstm_speed.py",
        *("--threads", "1", "--rounds", "1", "--steps", "1", "--batch", "2"),
        *("--configs", "mnist", "--baseline", DIAGONAL_BASELINE),
    )
    (row,) = report["results"]
    assert (row["config"], row["threads"]) == ("mnist", 1)
    assert row["baseline"] > 0 and row["new"] > 0
    assert row["ratio"] == pytest.approx(row["new"] / row["baseline"])


def test_run_notebook_without_ipython(tmp_path):
    """benchmarks/run_notebook.py runs a notebook where IPython is not installed (the lent GPU
    machine): matplotlib figures and ``display(Markdown(...))`` still work, through its stub."""
    cells = [
        "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([0, 1])\nplt.show()",
        "from IPython.display import Markdown, display\ndisplay(Markdown('**shown as text**'))",
    ]
    notebook = {
        "cells": [{"cell_type": "code", "source": c, "metadata": {}} for c in cells],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = tmp_path / "tiny.ipynb"
    path.write_text(json.dumps(notebook))
    no_ipython = (
        "import runpy, sys; sys.modules['IPython'] = None; "  # None there: import fails
        f"sys.argv = ['run_notebook.py', {str(path)!r}]; "
        f"runpy.run_path({str(ROOT / 'benchmarks' / 'run_notebook.py')!r}, run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", no_ipython], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "**shown as text**" in done.stdout
    assert "ran top to bottom" in done.stdout
