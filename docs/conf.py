"""Sphinx configuration of the course website (issue 35).

Build it with ``python tools/build_site.py`` (see README, "The course as a website"): the source
folder is the repository root, so the notebooks, README and notes link to each other exactly as
they do on GitHub; this folder holds only the configuration, ``_ext/course_site.py`` (the page
lists and the few rewrites the build makes) and ``_static/``. Pages come from the stored outputs:
no notebook is executed.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The course's GitHub repository, as in every notebook's setup cell (`COURSE = ...`) and Colab
# badge, and where the site is published (GitHub Pages of that repository). A fork changes both
# here; tests/test_site.py checks COURSE against the notebooks.
COURSE = "pixelrnn-course/pixelrnn-course"
SITE_URL = "https://pixelrnn-course.github.io/pixelrnn-course/"

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
from course_site import include_patterns  # noqa: E402

project = "PixelRNN, hands on"
author = "the PixelRNN course authors"
copyright = "the PixelRNN course authors, MIT license"  # noqa: A001
release = ""

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # the package's Google-style "Args:" / "Raises:" sections
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3 shipped in the site's _static: no CDN
    "course_site",
]

root_doc = "README"
include_patterns = include_patterns()
exclude_patterns = []  # course_site adds everything else under the root (not walked)
templates_path = []
html_static_path = [str(HERE / "_static")]
html_css_files = ["course.css"]
html_baseurl = SITE_URL
html_title = project
html_context = {"default_mode": "light"}  # the theme's mode switch starts set (no console error)
html_theme = "sphinx_book_theme"
html_show_sourcelink = False
html_copy_source = False
html_theme_options = {
    "repository_url": f"https://github.com/{COURSE}",
    "repository_branch": "main",
    "path_to_docs": "",
    "use_repository_button": True,
    "launch_buttons": {"colab_url": "https://colab.research.google.com"},
    "show_navbar_depth": 1,
    "home_page_in_toc": True,
}

# MyST: $...$ and $$...$$ math, heading anchors for README#section links, GitHub-style tables.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 4
myst_dmath_double_inline = True

# MyST-NB: stored outputs only. Markdown outputs (the notebooks' result tables) are MyST too, so
# their math is typeset like the cells'.
nb_execution_mode = "off"
nb_render_markdown_format = "myst"
nb_merge_streams = True
nb_custom_formats = {".ipynb": ["course_site.read_notebook", {}, False]}
nb_output_stderr = "show"

# Autodoc: signatures and docstrings as written, members from each module's __all__.
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
add_module_names = False
# Only the package's own docstrings (not torch's or tqdm's on the methods a class overrides).
autodoc_inherit_docstrings = False
napoleon_numpy_docstring = False
napoleon_use_rtype = False

suppress_warnings = []
