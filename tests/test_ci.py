"""`.ci/run` runs the test command README.md shows a new user, and nothing else."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CI = ROOT / ".ci" / "run"


def _readme_test_command(text: str) -> str:
    """The first line of the ```bash block after the `<!-- test-command -->` marker."""
    lines = text.splitlines()
    start = lines.index("<!-- test-command -->") + 1
    while not lines[start].strip():
        start += 1
    assert lines[start].strip() == "```bash", lines[start]
    return lines[start + 1]


def _print_command(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(root / ".ci" / "run"), "--print-command"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_ci_runs_the_readme_test_command():
    done = _print_command(ROOT)
    assert done.returncode == 0, done.stderr
    command = done.stdout.strip()
    assert command == _readme_test_command((ROOT / "README.md").read_text())
    # what the guide asks of it: install the package with its dev extras, then the tests
    assert command.startswith('pip install -e ".[dev]"') and command.endswith("pytest")


def test_ci_refuses_a_readme_without_the_marker(tmp_path):
    (tmp_path / ".ci").mkdir()
    shutil.copy(CI, tmp_path / ".ci" / "run")
    (tmp_path / "README.md").write_text("# a project\n\n```bash\npytest\n```\n")
    done = _print_command(tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert "README.md has no test command" in done.stderr
    assert not (tmp_path / ".venv-ci").exists()  # stopped before installing anything
