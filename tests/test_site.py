"""The course website (issue 35): it builds from the stored outputs with warnings as errors, every
notebook and every package module has its page, links stay inside the site, and in headless
Chromium (where Debian's chromium and Playwright are installed) every notebook page shows its
figures, typeset math, Colab badge and collapsed solutions, in course order."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

import build_site  # noqa: E402
import check_site  # noqa: E402
import course_site  # noqa: E402

pytest.importorskip("sphinx", reason="the site's tools are in the [dev] extra")
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built once for this file by the README's command (warnings are errors)."""
    out = tmp_path_factory.mktemp("site") / "site"
    assert build_site.build(out, quiet=True) == 0, "the site did not build: see the output above"
    return out


def _modules() -> list[str]:
    """The package's public modules, as Python finds them (imported, not read from disk)."""
    import pixelrnn_utils

    names = ["pixelrnn_utils"]
    for info in pkgutil.walk_packages(pixelrnn_utils.__path__, "pixelrnn_utils."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def test_every_notebook_has_a_page_in_course_order(site):
    assert len(NOTEBOOKS) >= 9
    for path in NOTEBOOKS:
        assert (site / "notebooks" / f"{path.stem}.html").is_file(), f"no page for {path.name}"
    index = (site / "index.html").read_text(encoding="utf-8")
    assert index == (site / "README.html").read_text(encoding="utf-8")
    nav = index[index.index("bd-docs-nav") :]
    listed = re.findall(r'href="notebooks/(\d\d_\w+)\.html"', nav[: nav.index("</nav>")])
    assert listed == [p.stem for p in NOTEBOOKS]


def test_every_module_has_an_api_page(site):
    modules = _modules()
    assert "pixelrnn_utils.model" in modules and "pixelrnn_utils.datasets.loading" in modules
    assert course_site.api_modules() == modules
    pages = {p.stem for p in (site / "docs" / "api").glob("*.html")}
    missing = [m for m in modules if m not in pages]
    assert not missing, f"modules without an API page: {missing}"
    # every public class and function of a module is on its page, with its signature
    for module in ("pixelrnn_utils.model", "pixelrnn_utils.train", "pixelrnn_utils.cli"):
        html = (site / "docs" / "api" / f"{module}.html").read_text(encoding="utf-8")
        imported = importlib.import_module(module)
        for name in imported.__all__:
            if callable(getattr(imported, name)):
                assert f'id="{module}.{name}"' in html, f"{module}.{name} is not documented"


def test_pages_are_self_contained(site):
    """Scripts, styles and images come from the site itself (MathJax included), and no link
    leaves the site for a path a learner's clone does not have."""
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()
    for page in site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        for tag, attributes in re.findall(r"<(script|img|link)\b([^>]*)>", html):
            url = re.search(r'\b(?:src|href)="([^"]+)"', attributes)
            if url is None or (tag == "link" and 'rel="stylesheet"' not in attributes):
                continue  # an inline script, or a <link> that loads nothing (canonical, index)
            assert not re.match(r"(https?:)?//", url.group(1)), f"{page.name} loads {url.group(1)}"
        assert not re.search(r'(?:href|src)="[^"]*\.\./shared', html), f"{page.name} -> ../shared"
        # links written for GitHub (../docs/ARCHITECTURE.md, notebooks/01_....ipynb) became pages
        unresolved = re.findall(r'href="(?!https?:)([^"]*\.(?:md|ipynb)(?:#[^"]*)?)"', html)
        assert not unresolved, f"{page.name} links to source files: {unresolved[:3]}"


def test_notebook_pages_show_stored_outputs(site):
    """Figures, collapsed solutions and Colab badges, read from the HTML (the browser check
    below looks at them in Chromium)."""
    course = check_site.course()
    for path in NOTEBOOKS:
        html = (site / "notebooks" / f"{path.stem}.html").read_text(encoding="utf-8")
        want = check_site.stored(path)
        figures = re.findall(r'<img[^>]*\bsrc="\.\./_images/[0-9a-f]{64}\.png"', html)
        assert len(figures) == want["figures"], path.name
        assert html.count("cell tag_solution") == want["solutions"]
        assert html.count('<details class="admonition hide above-input">') >= want["solutions"]
        assert html.count("<progress") == want["progress_bars"]
        badge = f"https://colab.research.google.com/github/{course}/blob/main/notebooks/{path.stem}.ipynb"
        assert badge in html


def test_course_and_site_url_in_one_place():
    conf = (ROOT / "docs" / "conf.py").read_text(encoding="utf-8")
    site_url = re.search(r'^SITE_URL = "(https://[^"]+/)"$', conf, re.M)
    assert site_url, "docs/conf.py sets no SITE_URL"
    for path in NOTEBOOKS:
        setup = "".join(json.loads(path.read_text(encoding="utf-8"))["cells"][2]["source"])
        assert f'COURSE = "{check_site.course()}"' in setup, f"{path.name}: another COURSE"
    workflow = (ROOT / ".github" / "workflows" / "site.yml").read_text(encoding="utf-8")
    assert "python tools/build_site.py" in workflow and "path: build/site" in workflow


def test_solutions_stay_collapsed_and_anchors_resolve():
    nb = {
        "cells": [
            {
                "id": "prose",
                "cell_type": "markdown",
                "metadata": {},
                "source": "see [above](#The-naive-sampler)",
            },
            {
                "id": "solution",
                "cell_type": "code",
                "metadata": {"tags": ["solution"]},
                "source": "x = 1",
                "outputs": [],
                "execution_count": 1,
            },
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    read = course_site.read_notebook(json.dumps(nb))
    assert read.cells[0].source == "see [above](#the-naive-sampler)"
    assert "hide-input" in read.cells[1].metadata["tags"]
    assert read.cells[1].metadata["mystnb"]["code_prompt_show"] == "Show solution"


def test_a_new_notebook_and_module_get_pages_without_config(tmp_path):
    (tmp_path / "notebooks").mkdir()
    for name in ("10_gated_pixelcnn", "02_b", "01_a", "scratch"):
        (tmp_path / "notebooks" / f"{name}.ipynb").write_text("{}")
    assert course_site.notebook_docnames(tmp_path) == [
        "notebooks/01_a",
        "notebooks/02_b",
        "notebooks/10_gated_pixelcnn",
    ]
    (tmp_path / "pixelrnn_utils" / "sub").mkdir(parents=True)
    for name in ("__init__", "__main__", "_private", "gated_pixelcnn", "sub/__init__", "sub/x"):
        (tmp_path / "pixelrnn_utils" / f"{name}.py").write_text('"""Doc."""\n')
    assert course_site.api_modules(tmp_path) == [
        "pixelrnn_utils",
        "pixelrnn_utils.gated_pixelcnn",
        "pixelrnn_utils.sub",
        "pixelrnn_utils.sub.x",
    ]
    pages = course_site.api_pages(tmp_path)
    assert set(pages) == {"index.md", *(f"{m}.md" for m in course_site.api_modules(tmp_path))}
    assert (
        ".. automodule:: pixelrnn_utils.gated_pixelcnn" in pages["pixelrnn_utils.gated_pixelcnn.md"]
    )


def test_a_broken_page_fails_the_build(tmp_path):
    """A link to a missing notebook, a broken anchor and a docstring that is not valid
    reStructuredText each stop the build (a tiny repository, built in a fresh process)."""
    src = tmp_path / "repo"
    for note in course_site.NOTES:
        (src / note).parent.mkdir(parents=True, exist_ok=True)
        (src / f"{note}.md").write_text(f"# {note}\n")
    (src / "notebooks").mkdir()
    shutil.copy(NOTEBOOKS[0], src / "notebooks" / NOTEBOOKS[0].name)
    (src / "README.md").write_text(
        "# Course\n\n[missing](notebooks/99_missing.ipynb) and [gone](docs/paper.md#no-such-part)\n"
    )
    (src / "pixelrnn_utils").mkdir()
    (src / "pixelrnn_utils" / "__init__.py").write_text(
        '"""Package.\n\n* a list\n  that\n    is not valid\n"""\n'
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "build_site.py"), "--source", str(src)]
        + ["--out", str(tmp_path / "site"), "-q"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "99_missing.ipynb" in done.stderr
    assert "no-such-part" in done.stderr
    assert "pixelrnn_utils" in done.stderr and "docstring" in done.stderr


def _browser_missing() -> str | None:
    if not Path(check_site.CHROMIUM).is_file():
        return f"no Chromium at {check_site.CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[dev]')"
    return None


@pytest.mark.skipif(_browser_missing() is not None, reason=f"browser check: {_browser_missing()}")
def test_site_in_a_real_browser(site, tmp_path):
    report = check_site.check_site(site, tmp_path / "check")
    assert not report["problems"], json.dumps(report["problems"], indent=1)
    pages = report["pages"]
    assert all(f"notebooks/{p.stem}.html" in pages for p in NOTEBOOKS)
    assert pages["notebooks/01_data_quantization.html"]["math"] > 10
    assert pages["notebooks/01_data_quantization.html"]["images"] > 0
    assert {Path(p).name for p in report["screenshots"]} >= {
        "landing.png",
        "05_training_gpu_top.png",
        "api_model.png",
    }
