"""Progress bars that suit where the code runs.

In a terminal, a log file or CI, :func:`progress_bar` is tqdm's plain-text bar on stderr. In a
Jupyter kernel (JupyterLab, Colab, VS Code) it is the same bar drawn as one rich output: an HTML
progress bar with tqdm's text beside it, **updated in place** through a display handle. So a
notebook executed by nbconvert or nbval stores each bar's final state (not a frozen first frame,
as a widget bar would be stored), nothing goes to stderr, and a finished bar stays readable.
"""

from __future__ import annotations

import html
import io
from typing import Any

from tqdm.std import tqdm

__all__ = ["NotebookBar", "in_notebook", "progress_bar"]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (ipykernel, Colab), False in a terminal, a script or pytest."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with the notebook tools
        return False
    shell = get_ipython()
    return getattr(shell, "kernel", None) is not None


class NotebookBar(tqdm):
    """tqdm drawn as an HTML ``<progress>`` bar plus tqdm's text, updated through a display handle.

    ``leave=False`` is ignored: a finished bar keeps its final line, so a stored notebook shows
    what ran (and no empty output band where a bar was cleared).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._handle = None
        kwargs["file"] = io.StringIO()  # tqdm's own writes (newlines on close) go nowhere
        kwargs["leave"] = True
        kwargs.setdefault("mininterval", 0.5)
        super().__init__(*args, **kwargs)

    def _outputs(self) -> dict[str, str]:
        values = dict(self.format_dict)
        values["bar_format"] = "{l_bar}{r_bar}"  # tqdm's text without its text-drawn bar
        text = self.format_meter(**values).replace("||", "", 1)  # "50%|| 5/10" -> "50% 5/10"
        total = values.get("total")
        bar = (
            f'<progress value="{values["n"]}" max="{total}" '
            'style="width: 18em; vertical-align: middle"></progress> '
            if total
            else ""
        )
        return {
            "text/plain": text,
            "text/html": f'<div style="font-family: monospace">{bar}{html.escape(text)}</div>',
        }

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        # tqdm calls this only for an enabled bar (close() sets disable just before its last call)
        from IPython.display import display

        if self._handle is None:
            self._handle = display(self._outputs(), raw=True, display_id=True)
        else:
            self._handle.update(self._outputs(), raw=True)
        return True


def progress_bar(*args: Any, **kwargs: Any) -> tqdm:
    """``tqdm(*args, **kwargs)``: a :class:`NotebookBar` in a Jupyter kernel, plain text elsewhere."""
    return NotebookBar(*args, **kwargs) if in_notebook() else tqdm(*args, **kwargs)
