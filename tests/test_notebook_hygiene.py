"""The stored outputs of the notebooks are what a learner sees on GitHub and Colab: they must be a
clean, complete, in-order run, with nothing of the machine that ran them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
# absolute paths of any machine: Linux/macOS/Colab roots and Windows drives
ABSOLUTE_PATH = re.compile(
    r"(?<![\w.~])/(?:work|home|tmp|root|usr|opt|content|Users|mnt|var|private)/|[A-Za-z]:\\\\"
)


def _code_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def _texts(output: dict) -> str:
    if "text" in output:
        return "".join(output["text"])
    data = output.get("data", {})
    return "".join(
        "".join(v) if isinstance(v, list) else str(v)
        for k, v in data.items()
        if k.startswith("text/")
    )


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 6


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_code_cell_ran_in_order(path):
    counts = [c.get("execution_count") for c in _code_cells(path)]
    assert None not in counts, f"{path.name}: code cell {counts.index(None)} has not run"
    assert counts == sorted(counts) and len(set(counts)) == len(counts), (
        f"{path.name}: cells ran out of order: {counts}"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_errors_warnings_or_machine_paths(path):
    for k, cell in enumerate(_code_cells(path)):
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", f"{path.name} cell {k}: stored error"
            text = _texts(output)
            if output.get("name") == "stderr":
                assert "warning" not in text.lower(), f"{path.name} cell {k}: warning: {text[:300]}"
                assert "Traceback" not in text, f"{path.name} cell {k}: traceback"
            found = ABSOLUTE_PATH.search(text)
            assert not found, (
                f"{path.name} cell {k} shows an absolute path: ...{text[max(0, found.start() - 60) : found.end() + 60]}..."
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_light_enough_to_open(path):
    assert path.stat().st_size < 5_000_000


def test_the_checker_finds_what_it_should():
    assert ABSOLUTE_PATH.search("run folder: /work/main/runs/x")
    assert ABSOLUTE_PATH.search("C:\\\\Users\\\\me")
    assert ABSOLUTE_PATH.search("/content/drive/MyDrive/runs")
    assert not ABSOLUTE_PATH.search("run folder: runs/nb05_cpu, data ../shared/data/cifar10-train")
    assert not ABSOLUTE_PATH.search("~/data/images and 3.07 bits/dim, 10/10 correct")


def test_one_course_repository_everywhere():
    """Setup cells, Colab badges and README name the same GitHub repository, so a fork changes
    ``COURSE`` (and the badges) with one search-and-replace and this test finds any it missed."""
    readme = (NOTEBOOKS[0].parent.parent / "README.md").read_text()
    named = set(re.findall(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/", readme))
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        setup = "".join(cells[2]["source"])
        course = re.search(r'^COURSE = "([\w.-]+/[\w.-]+)"', setup, re.M)
        assert course, f"{path.name}: the setup cell (third cell) sets no COURSE"
        badge = re.findall(
            r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/main/"
            r"notebooks/([\w.-]+)\.ipynb",
            "".join(cells[0]["source"]),
        )
        assert badge == [(course.group(1), path.stem)], f"{path.name}: badge {badge}"
        named.add(course.group(1))
    assert len(named) == 1, f"more than one repository named: {sorted(named)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_solution_cells_are_stored_without_outputs(path):
    """A solution's source is collapsed; its output would show the answer under the exercise
    (``python tools/strip_solution_outputs.py`` after a full run)."""
    solutions = [c for c in _code_cells(path) if "solution" in c["metadata"].get("tags", [])]
    assert solutions, f"{path.name}: no cell tagged solution"
    for cell in solutions:
        assert cell["outputs"] == [], f"{path.name}: a solution cell shows its output"


def test_setup_cells_name_the_package_s_torch_floor():
    """A setup cell's promise that Colab's torch is kept names the floor pyproject.toml sets."""
    pyproject = (NOTEBOOKS[0].parent.parent / "pyproject.toml").read_text()
    floor = re.search(r'^\s*"torch>=([\d.]+)"', pyproject, re.M)
    assert floor, "pyproject.toml has no torch>= dependency"
    for path in NOTEBOOKS:
        setup = "".join(json.loads(path.read_text())["cells"][2]["source"])
        assert re.findall(r"torch>=([\d.]+)", setup) == [floor.group(1)], path.name
