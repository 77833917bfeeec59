"""Sphinx configuration for shoal's documentation."""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the pictures module
sys.path.insert(0, str(HERE.parent / "src"))
os.environ.setdefault("KERAS_BACKEND", "torch")  # the Keras example runs on PyTorch

import shoal  # noqa: E402

project = "shoal"
copyright = "2026, the shoal developers"
release = shoal.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "matplotlib.sphinxext.plot_directive",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.md5"]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = f"shoal {release}"

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
# The annotations (for type checkers) would make signatures such as a mux's
# unreadable; the numpydoc Parameters sections already give each type in words.
# ("description" for all parameters would add a second Parameters list.)
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
numpydoc_show_class_members = False
numpydoc_validation_checks = set()

intersphinx_mapping = {}

plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 100)]

sphinx_gallery_conf = {
    "examples_dirs": str(HERE.parent / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"\.py$",  # run every example
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
}

suppress_warnings = ["config.cache"]
