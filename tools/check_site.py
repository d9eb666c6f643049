"""Open the built course website in headless Chromium, as a learner would, and check every page.

    python tools/check_site.py [--site build/site] [--out build/site-check]

Build the site first (``python tools/build_site.py``). The site is served from 127.0.0.1 (as
GitHub Pages would serve it) and every request that leaves it is blocked, so a page that needs the
network fails here. For every notebook page:

* it loads with no console error, no uncaught exception and no failed or outside request;
* every figure the notebook stores (``image/png`` outputs) is an image on the page that decodes
  and is displayed (non-zero size, visible);
* the math is typeset by the MathJax shipped with the site: no MathJax error, and no raw
  ``$...$`` left in the text (code and printed outputs aside);
* the Colab badge of the first cell links to this notebook in the course repository
  (``COURSE`` in ``docs/conf.py``);
* the solutions are there and collapsed, and the stored progress bars are shown;
* the sidebar lists the notebooks in course order (``notebooks/[0-9][0-9]_*.ipynb`` sorted).

The landing page and every API page are loaded too (no error; each API page documents something),
and no link or source on any page points outside the site's own files to ``../shared``.
Screenshots of the landing page, two notebook pages and an API page, and ``report.json``, go to
``--out``. Needs Playwright's Python package and Debian's Chromium (``/usr/bin/chromium``, or
``$CHROMIUM``); Playwright's own browser downloads are not used. Exits 1 when a check fails, 2
when it cannot run.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import re
import shutil
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# The flags the course uses to drive Chromium (../shared/tools/jupyterlab-look, in development).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
SCREENSHOTS = {"landing": "index.html", "notebook_05": "05", "notebook_01": "01", "api": "model"}

# What a page shows, read in the page once MathJax is done.
FACTS = r"""async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const q = (s, root = document) => Array.from(root.querySelectorAll(s));
  const article = document.querySelector('article.bd-article') || document.body;
  const imgs = q('div.cell_output img', article);
  const decoded = await Promise.all(imgs.map(i => i.decode().then(() => true, () => false)));
  const shown = imgs.map(i => { const r = i.getBoundingClientRect(), s = getComputedStyle(i);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'; });
  const prose = article.cloneNode(true);
  prose.querySelectorAll('pre, code, mjx-container, script, style, .cell_input').forEach(e => e.remove());
  const text = prose.innerText;
  const raw = text.match(/\$\$[^$]+\$\$|\$[^$\s][^$\n]*?\$/g) || [];
  const badge = q('a', article).find(a => a.href.startsWith('https://colab.research.google.com/github/') && a.querySelector('img'));
  const badgeImg = badge ? badge.querySelector('img') : null;
  const solutions = q('div.cell.tag_solution', article);
  return {
    title: document.title,
    images: imgs.length,
    images_not_decoded: decoded.filter(d => !d).length,
    images_not_shown: shown.filter(d => !d).length,
    math: q('mjx-container', article).length,
    math_errors: q('mjx-merror', article).length,
    mathjax: window.MathJax && MathJax.version ? MathJax.version : null,
    raw_math: raw.slice(0, 5),
    badge: badge ? badge.href : null,
    badge_image_ok: badgeImg ? (badgeImg.complete && badgeImg.naturalWidth > 0) : false,
    solutions: solutions.length,
    solutions_open: solutions.filter(c => { const d = c.querySelector('details'), pre = c.querySelector('.cell_input pre');
      return !d || d.open || !pre || pre.checkVisibility(); }).length,
    progress_bars: q('progress', article).length,
    sidebar: q('nav.bd-docs-nav a.reference.internal').map(a => a.href.split('#')[0]),
    api_entries: q('dl.py', article).length,
    heading: (article.querySelector('h1') || {}).innerText || '',
    paragraphs: q('p', article).length,
    urls: q('[href], [src]').map(e => e.getAttribute('href') || e.getAttribute('src')),
  };
}"""


def course() -> str:
    """``COURSE`` of docs/conf.py: the GitHub repository the badges must point to."""
    text = (ROOT / "docs" / "conf.py").read_text(encoding="utf-8")
    return re.search(r'^COURSE = "([^"]+)"', text, re.M).group(1)


def stored(path: Path) -> dict:
    """What a notebook stores: figures, progress bars, solution cells."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    figures = bars = solutions = 0
    math = False
    for cell in nb["cells"]:
        if "solution" in cell.get("metadata", {}).get("tags", []):
            solutions += 1
        if cell["cell_type"] == "markdown":
            math |= bool(re.search(r"\$[^$\s][^$]*\$", "".join(cell["source"])))
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            figures += "image/png" in data
            bars += "".join(data.get("text/html", [])).count("<progress")
            math |= bool(re.search(r"\$[^$\s][^$]*\$", "".join(data.get("text/markdown", []))))
    return {"figures": figures, "progress_bars": bars, "solutions": solutions, "math": math}


def _serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # noqa: D401 - silence the access log
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(site))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def check_page(page, url: str, base: str) -> tuple[dict, list[str]]:
    """Load ``url``; the page's facts and the problems every page must not have."""
    problems: list[str] = []
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"exception: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
    page.on(
        "response",
        lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"),
    )
    response = page.goto(url, wait_until="load")
    if response is None or not response.ok:
        problems.append(f"HTTP {response.status if response else '?'}: {url}")
    facts = page.evaluate(FACTS)
    for u in facts.pop("urls"):
        if u and "shared/" in u and "../" in u:
            problems.append(f"points outside the site: {u}")
    return facts, problems


def check_notebook(
    facts: dict, expected: dict, stem: str, repo: str, order: list[str]
) -> list[str]:
    problems = []
    if facts["images"] != expected["figures"]:
        problems.append(f"{facts['images']} figures shown, {expected['figures']} stored")
    if facts["images_not_decoded"] or facts["images_not_shown"]:
        problems.append(
            f"figures not decoded: {facts['images_not_decoded']}, not shown: {facts['images_not_shown']}"
        )
    if expected["math"] and (facts["math"] == 0 or facts["mathjax"] is None):
        problems.append("no typeset math (MathJax did not run)")
    if facts["math_errors"]:
        problems.append(f"{facts['math_errors']} MathJax errors")
    if facts["raw_math"]:
        problems.append(f"raw math left: {facts['raw_math']}")
    want = f"https://colab.research.google.com/github/{repo}/blob/main/notebooks/{stem}.ipynb"
    if facts["badge"] != want:
        problems.append(f"Colab badge links to {facts['badge']}, not {want}")
    if not facts["badge_image_ok"]:
        problems.append("the Colab badge's image does not show")
    if facts["solutions"] != expected["solutions"] or facts["solutions_open"]:
        problems.append(
            f"solutions: {facts['solutions']} on the page ({expected['solutions']} stored), "
            f"{facts['solutions_open']} not collapsed"
        )
    if facts["progress_bars"] != expected["progress_bars"]:
        problems.append(
            f"{facts['progress_bars']} progress bars shown, {expected['progress_bars']} stored"
        )
    listed = [
        m.group(1) for h in facts["sidebar"] if (m := re.search(r"/notebooks/(\d\d_\w+)\.html$", h))
    ]
    if listed != order:
        problems.append(f"sidebar order {listed}, course order {order}")
    return problems


def check_site(site: Path, out: Path) -> dict:
    """Check every page of the built ``site``; screenshots and report.json go to ``out``."""
    from playwright.sync_api import sync_playwright

    site, out = Path(site).resolve(), Path(out).resolve()
    if not (site / "index.html").is_file():
        raise FileNotFoundError(f"{site / 'index.html'} not found: build the site first")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    order = [p.stem for p in notebooks]
    repo = course()
    api = sorted((site / "docs" / "api").glob("*.html"))
    server, base = _serve(site)
    profile = tempfile.mkdtemp(prefix="check-site-chromium-")
    report: dict = {"site": str(site), "pages": {}, "problems": {}}
    try:
        with sync_playwright() as p:
            # a new, empty profile (--user-data-dir) for every check
            context = p.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=FLAGS,
                viewport={"width": 1280, "height": 900},
            )
            # offline: anything not served by the site itself is blocked (and reported)
            context.route(
                re.compile(r"^(?!" + re.escape(base) + r"/)"),
                lambda route: route.abort("blockedbyclient"),
            )
            pages = [("index.html", None)] + [(f"notebooks/{s}.html", s) for s in order]
            pages += [(f"docs/api/{a.name}", None) for a in api]
            for rel, stem in pages:
                page = context.new_page()
                facts, problems = check_page(page, f"{base}/{rel}", base)
                if stem is not None:
                    problems += check_notebook(
                        facts, stored(ROOT / "notebooks" / f"{stem}.ipynb"), stem, repo, order
                    )
                elif rel.startswith("docs/api/") and rel != "docs/api/index.html":
                    module = rel.removeprefix("docs/api/").removesuffix(".html")
                    title = module.removeprefix("pixelrnn_utils.")
                    if title not in facts["heading"] or not (
                        facts["api_entries"] or facts["paragraphs"]
                    ):
                        problems.append(f"no documentation of {module} on the page")
                report["pages"][rel] = facts
                if problems:
                    report["problems"][rel] = problems
                _screenshots(page, rel, stem, out)
                page.close()
            context.close()
    finally:
        server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)
    report["screenshots"] = sorted(str(p) for p in out.glob("*.png"))
    (out / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    return report


def _screenshots(page, rel: str, stem: str | None, out: Path) -> None:
    """The landing page; notebooks 01 and 05 at their top, first figure and first display math;
    the API page of ``model``."""
    if rel == "index.html":
        page.screenshot(path=str(out / "landing.png"))
    elif rel == "docs/api/pixelrnn_utils.model.html":
        page.screenshot(path=str(out / "api_model.png"))
        signature = page.locator("dl.py.function").first
        if signature.count():
            signature.scroll_into_view_if_needed()
            page.evaluate("window.scrollBy(0, -120)")
            page.screenshot(path=str(out / "api_model_signature.png"))
    elif stem and stem[:2] in ("01", "05"):
        page.screenshot(path=str(out / f"{stem}_top.png"))
        for name, selector in (
            ("figure", "div.cell_output img"),
            ("math", "mjx-container[display]"),
        ):
            element = page.locator(selector).first
            if element.count():
                element.scroll_into_view_if_needed()
                page.evaluate("window.scrollBy(0, -120)")
                page.screenshot(path=str(out / f"{stem}_{name}.png"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, default=ROOT / "build" / "site")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site-check")
    options = parser.parse_args(argv)
    try:
        import playwright  # noqa: F401
    except ImportError:
        print("error: Playwright is not installed: pip install -e '.[dev]'", file=sys.stderr)
        return 2
    if not Path(CHROMIUM).is_file():
        print(
            f"error: no Chromium at {CHROMIUM}: apt-get install chromium (or set CHROMIUM)",
            file=sys.stderr,
        )
        return 2
    try:
        report = check_site(options.site, options.out)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for rel, facts in report["pages"].items():
        mark = "FAIL" if rel in report["problems"] else "ok  "
        print(f"{mark} {rel}: {facts['images']} figures, {facts['math']} formulas")
        for problem in report["problems"].get(rel, []):
            print(f"       {problem}")
    print(f"{len(report['pages'])} pages, {len(report['problems'])} with problems; screenshots:")
    for path in report["screenshots"]:
        print(f"  {path}")
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
