"""Sphinx configuration for the skvae documentation.

Build (offline, warnings as errors) from the repository root with::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The gallery scripts in ``docs/examples/`` are run during the build; unchanged
scripts are not run again on the next build.
"""

import os
import re
import sys
from datetime import date

from docutils import nodes

# The gallery trains small networks on small minibatches, where one thread is as
# fast as several and does not oversubscribe a busy machine. Set before torch is
# first imported (by autodoc or a gallery script); a value set by the caller wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Local helpers (the gallery's example order).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ext"))

import skvae  # noqa: E402

# -- Project ------------------------------------------------------------------

project = "skvae"
author = "The skvae developers"
copyright = f"{date.today().year}, {author}"
version = release = skvae.__version__

# -- General ------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    # MathJax served from the built site itself, not a CDN: the formulas render
    # with no network (a local build, an air-gapped machine).
    "sphinx-mathjax-offline",
    "sphinx.ext.viewcode",
    # Charts drawn at build time from numbers in the page (the speed page).
    "matplotlib.sphinxext.plot_directive",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "examples", "Thumbs.db", ".DS_Store"]
root_doc = "index"
default_role = "literal"
# "fit()" rather than "VAETransformer.fit()" in the on-page table of contents.
toc_object_entries_show_parents = "hide"
pygments_style = "sphinx"

# -- API reference ------------------------------------------------------------

autosummary_generate = True
# Classes list their inherited scikit-learn methods too (fit_transform,
# get_params, set_output, ...): see the class template in _templates/.
autodoc_default_options = {"members": True}
autodoc_typehints = "none"
autoclass_content = "class"
# numpydoc lists the methods in a table at the top of each class page, linking
# to their full documentation further down the same page (no stub page per
# method).
numpydoc_show_class_members = True
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# Methods inherited from scikit-learn's mixins carry cross-references into
# scikit-learn's own documentation (glossary terms, example labels) that do not
# exist here. Without intersphinx (which needs the network), turn those into
# plain text rather than broken links.
_SKLEARN_ROLE = re.compile(r":(term|ref|doc):`([^`<]*?)\s*(?:<[^`>]*>)?`")


def _sklearn_reference_text(match):
    text = match.group(2).strip()
    if text.lower() == "user guide":
        return "scikit-learn user guide"
    if text.startswith("sphx_glr_"):
        # An example's label: name the script, e.g. "plot_set_output.py".
        return "the example ``plot_" + text.split("_plot_", 1)[-1] + "``"
    return f"*{text}*"


def _plain_sklearn_references(app, what, name, obj, options, lines):
    module = getattr(obj, "__module__", "") or ""
    if not module.startswith("sklearn"):
        return
    for i, line in enumerate(lines):
        lines[i] = _SKLEARN_ROLE.sub(_sklearn_reference_text, line)


# In a numpydoc type such as "ndarray of shape (n_samples, n_features_in_)" a
# bare name ending in "_" would be read as a reStructuredText link; escape the
# underscore so that it prints as written. Runs before numpydoc parses the
# docstring.
_PARAMETER_LINE = re.compile(r"^(\s*[*\w, ]+ : )(.*)$")
_TRAILING_UNDERSCORE = re.compile(r"(?<![`\\\w])([A-Za-z]\w*?)_(?=\W|$)")


def _escape_trailing_underscores_in_types(app, what, name, obj, options, lines):
    module = getattr(obj, "__module__", "") or ""
    if not module.startswith("skvae"):
        return
    for i, line in enumerate(lines):
        match = _PARAMETER_LINE.match(line)
        if match:
            head, kind = match.groups()
            lines[i] = head + _TRAILING_UNDERSCORE.sub(r"\1\\_", kind)


# Links to other projects' documentation without intersphinx (which needs the
# network at build time): references to scikit-learn objects, and a few others,
# resolve to fixed URLs. Anything else stays plain text.
_SKLEARN_URL = "https://scikit-learn.org/stable/modules/generated/{page}.html{anchor}"
_EXTERNAL_URLS = {
    "FloatingPointError": "https://docs.python.org/3/library/exceptions.html#FloatingPointError",
    "KeyboardInterrupt": "https://docs.python.org/3/library/exceptions.html#KeyboardInterrupt",
    "pickle": "https://docs.python.org/3/library/pickle.html",
    "joblib.dump": "https://joblib.readthedocs.io/en/stable/generated/joblib.dump.html",
    "numpy.random.RandomState": (
        "https://numpy.org/doc/stable/reference/random/legacy.html"
        "#numpy.random.RandomState"
    ),
    "scipy.stats": "https://docs.scipy.org/doc/scipy/reference/stats.html",
    "torch.Generator": "https://docs.pytorch.org/docs/stable/generated/torch.Generator.html",
    "torch.nn.Module": "https://docs.pytorch.org/docs/stable/generated/torch.nn.Module.html",
    "torch.distributions": "https://docs.pytorch.org/docs/stable/distributions.html",
}


def _sklearn_url(target):
    parts = target.split(".")
    # sklearn.decomposition.PCA.score: the method is an anchor on the class's page.
    if len(parts) > 3 and parts[-2][:1].isupper():
        return _SKLEARN_URL.format(page=".".join(parts[:-1]), anchor=f"#{target}")
    return _SKLEARN_URL.format(page=target, anchor="")


def _link_other_projects(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    if target.startswith("sklearn."):
        url = _sklearn_url(target)
    elif target in _EXTERNAL_URLS:
        url = _EXTERNAL_URLS[target]
    else:
        return None
    reference = nodes.reference("", "", internal=False, refuri=url, reftitle=target)
    reference += contnode
    return reference


def setup(app):
    app.connect("missing-reference", _link_other_projects)
    # Priority below numpydoc's default (500): edit the raw docstring first.
    app.connect(
        "autodoc-process-docstring", _escape_trailing_underscores_in_types, priority=400
    )
    app.connect("autodoc-process-docstring", _plain_sklearn_references)


# -- HTML -----------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"skvae {release}"
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
# No left sidebar where it would be empty (single pages) or where the content
# needs the width: the API pages (long signatures) and the examples (code and
# figures), which are reached from the gallery's index and previous/next links.
html_sidebars = {
    "index": [],
    "api": [],
    "design": [],
    "generated/*": [],
    "auto_examples/*": [],
}
html_show_sourcelink = False

# -- Gallery ----------------------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    "within_subsection_order": "gallery_order.ExampleOrder",
    "doc_module": ("skvae",),
    "backreferences_dir": os.path.join("generated", "backreferences"),
    "reference_url": {"skvae": None},
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    # An example that raises fails the build, once all examples have run.
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
}

# -- Charts (matplotlib's plot directive) --------------------------------------

plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 100)]
