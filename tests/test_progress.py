"""Progress bars: plain text outside Jupyter; in a kernel, one display output updated in place."""

from __future__ import annotations

import pytest

from pixelrnn_utils import progress
from pixelrnn_utils.progress import NotebookBar, in_notebook, progress_bar


class FakeHandle:
    def __init__(self, shown: list) -> None:
        self.shown = shown

    def update(self, data, raw=False):
        assert raw
        self.shown.append(data)


@pytest.fixture
def shown(monkeypatch):
    """Every output a NotebookBar displays or updates, in order."""
    import IPython.display

    outputs: list[dict] = []

    def display(data, raw=False, display_id=False):
        assert raw and display_id
        outputs.append(data)
        return FakeHandle(outputs)

    monkeypatch.setattr(IPython.display, "display", display)
    return outputs


def test_outside_a_kernel_the_bar_is_plain_tqdm(capsys):
    assert not in_notebook()
    bar = progress_bar(range(3), desc="work", mininterval=0)
    assert not isinstance(bar, NotebookBar)
    assert list(bar) == [0, 1, 2]
    assert "work: 100%" in capsys.readouterr().err


def test_notebook_bar_updates_one_output_and_ends_at_its_final_state(shown, capsys):
    bar = NotebookBar(total=10, desc="sampling", leave=False, mininterval=0)
    for _ in range(10):
        bar.update(1)
    bar.close()
    assert len(shown) > 2  # first display, then in-place updates
    final = shown[-1]
    assert "sampling: 100%" in final["text/plain"] and "10/10" in final["text/plain"]
    assert '<progress value="10" max="10"' in final["text/html"]
    assert capsys.readouterr().err == ""  # nothing on stderr: no pink band in a notebook


def test_disabled_bar_shows_nothing(shown):
    bar = NotebookBar(range(5), disable=True)
    assert list(bar) == list(range(5))
    assert shown == []


def test_progress_bar_picks_the_notebook_bar_in_a_kernel(monkeypatch, shown):
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    bar = progress.progress_bar(range(4), desc="evaluate")
    assert isinstance(bar, NotebookBar)
    assert list(bar) == [0, 1, 2, 3]
    assert "evaluate: 100%" in shown[-1]["text/plain"]
