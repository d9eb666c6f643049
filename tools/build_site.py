"""Build the course website: README, the notebooks with their stored outputs, the notes and the
API reference, as static HTML.

    python tools/build_site.py [--out build/site]

Sphinx with MyST-NB and the book theme (configuration in ``docs/conf.py``), warnings are errors,
nothing is executed and nothing is downloaded: the site is ``build/site/`` (git-ignored), its
landing page ``build/site/index.html``. Open that file in a browser, or check it in headless
Chromium with ``python tools/check_site.py``. Exits non-zero, with Sphinx's messages, on a broken
page, a broken link between pages or an API docstring that does not render.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "build" / "site"


def build(
    out: Path = DEFAULT_OUT, quiet: bool = False, fresh: bool = False, source: Path = ROOT
) -> int:
    """Run Sphinx on the repository (source = root, configuration = ``docs/``) into ``out``.

    ``source`` is another folder laid out like the repository (the tests build small broken
    ones to see the build fail).

    Returns Sphinx's exit status (0 when the build had no warning). The doctrees (Sphinx's
    cache) go beside ``out``, not inside it, so that ``out`` is exactly what is published.
    """
    from sphinx.cmd.build import build_main

    out = Path(out).resolve()
    args = ["-b", "html", "-W", "--keep-going", "-c", str(ROOT / "docs")]
    args += ["-d", str(out.parent / f"{out.name}-doctrees")]
    if fresh:
        args.append("-E")
    if quiet:
        args.append("-q")
    return build_main([*args, str(Path(source).resolve()), str(out)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (%(default)s)")
    parser.add_argument("--fresh", action="store_true", help="re-read every page (no cache)")
    parser.add_argument("--source", type=Path, default=ROOT, help=argparse.SUPPRESS)
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    options = parser.parse_args(argv)
    start = time.perf_counter()
    status = build(options.out, quiet=options.quiet, fresh=options.fresh, source=options.source)
    seconds = time.perf_counter() - start
    if status == 0:
        print(f"site built in {seconds:.0f} s: {options.out / 'index.html'}")
    else:
        print(
            f"error: the site did not build ({seconds:.0f} s): see the messages above",
            file=sys.stderr,
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
