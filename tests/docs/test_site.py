"""The documentation site (mkdocs.yml, mkdocs_hooks.py): it builds strictly, holds every page of docs/, the
notebooks and the API reference, fetches nothing from the network, and its math is typeset in a real browser.

Needs the docs extra (pip install -e ".[docs]"); the browser check needs Chromium (apt-get install chromium).
CI builds the site once and passes its folder in TINYGRAD_TX_SITE_DIR; without it the tests build their own.
"""

import functools
import html.parser
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from helpers import ROOT

pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')")
pytest.importorskip("mkdocs_jupyter", reason="the docs extra is not installed (pip install -e '.[docs]')")
CHROMIUM = next(
    (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    given = os.environ.get("TINYGRAD_TX_SITE_DIR")
    if given:
        return Path(given)
    site_dir = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return site_dir


def page(site, uri):
    path = site / uri / "index.html"
    assert path.exists(), f"{uri} is missing from the site"
    return path.read_text(encoding="utf-8")


def test_every_docs_page_and_notebook_is_in_the_site_and_its_navigation(site):
    home = page(site, ".")
    for markdown in sorted((ROOT / "docs").rglob("*.md")):
        uri = markdown.relative_to(ROOT / "docs").with_suffix("").as_posix()
        uri = "." if uri == "README" else uri
        page(site, uri)
        assert f'href="{uri}/"' in home or uri == ".", f"{uri} is not in the navigation"
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        text = page(site, f"notebooks/{notebook.stem}")
        assert "jupyter-wrapper" in text and "jp-OutputArea-output" in text, f"{notebook.name}: no outputs"


def test_api_reference_comes_from_the_docstrings(site):
    viz = page(site, "api/tinygrad_tx.viz")
    assert "draw_graph" in viz and "what" in viz and "backward()" in viz
    assert "Tensor" in page(site, "api/tinygrad_tx")


def test_links_to_source_files_lead_to_source_pages(site):
    layernorm = page(site, "derivations/layernorm")
    assert 'href="../../source/tinygrad_tx/nn/normalization.py/"' in layernorm
    source = page(site, "source/tinygrad_tx/nn/normalization.py")
    assert "class" in source and "LayerNorm" in source


class _Assets(html.parser.HTMLParser):
    """Every URL the browser would fetch by itself: scripts, stylesheets, images, frames."""

    def __init__(self):
        super().__init__()
        self.fetched = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "img", "iframe", "source") and attrs.get("src"):
            self.fetched.append(attrs["src"])
        if (
            tag == "link"
            and attrs.get("rel") in ("stylesheet", "preload", "modulepreload", "icon")
            and attrs.get("href")
        ):
            self.fetched.append(attrs["href"])


def test_nothing_is_fetched_from_the_network_at_view_time(site):
    remote = []
    for path in site.rglob("*.html"):
        parser = _Assets()
        parser.feed(path.read_text(encoding="utf-8"))
        remote += [f"{path.relative_to(site)}: {url}" for url in parser.fetched if re.match(r"(https?:)?//", url)]
    for path in site.rglob("*.css"):
        remote += [
            f"{path.relative_to(site)}: {url}"
            for url in re.findall(r"url\(['\"]?((?:https?:)?//[^)'\"]+)", path.read_text(encoding="utf-8"))
        ]
    assert not remote, "\n".join(remote[:20])
    assert (site / "assets/mathjax/MathJax.js").exists() and (site / "assets/mathjax/config/tinygrad_tx.js").exists()


class _VisibleText(html.parser.HTMLParser):
    """The text a reader sees (outside script and style), and how many typeset formulas there are."""

    def __init__(self):
        super().__init__()
        self.text, self.formulas, self._hidden = [], 0, 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._hidden += 1
        classes = (dict(attrs).get("class") or "").split()
        self.formulas += "MathJax" in classes or "MathJax_Display" in classes

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._hidden -= 1

    def handle_data(self, data):
        if not self._hidden:
            self.text.append(data)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def rendered_dom(site, uri, profile):
    """The DOM of a page after headless Chromium ran its scripts (served on loopback: fonts need http)."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=20000",
                "--dump-dom",
                f"http://127.0.0.1:{server.server_address[1]}/{uri}/",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr[-2000:]
    parser = _VisibleText()
    parser.feed(result.stdout)
    return parser.formulas, "".join(parser.text)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium to render the page (apt-get install chromium)")
@pytest.mark.parametrize("uri, minimum", [("derivations/layernorm", 40), ("notebooks/backprop_by_hand", 8)])
def test_math_is_typeset_in_a_browser(site, uri, minimum, tmp_path):
    formulas, text = rendered_dom(site, uri, tmp_path / "chromium-profile")
    assert formulas >= minimum, f"{uri}: only {formulas} typeset formulas"
    for raw in ("$$", "\\[", "\\(", "\\frac", "\\sum"):
        assert raw not in text, f"{uri}: raw TeX {raw!r} is visible"


def test_pages_missing_from_the_nav_are_appended_to_their_section(monkeypatch):
    """A page another branch adds (docs/distributed.md, docs/derivations/new_op.md) lands in the navigation
    without anyone editing mkdocs.yml, so the strict build does not fail on it."""
    monkeypatch.syspath_prepend(str(ROOT))
    from mkdocs.structure.files import File, Files

    import mkdocs_hooks

    def page_file(uri):
        return File(uri, str(ROOT / "docs"), "/unused", True)

    files = Files(
        [
            page_file(uri)
            for uri in (
                "README.md",
                "derivations/softmax.md",
                "derivations/new_op.md",
                "distributed.md",
                "gpu/emulator.md",
            )
        ]
    )
    config = {"nav": [{"Home": "README.md"}, {"Derivations": ["derivations/softmax.md"]}]}
    mkdocs_hooks._complete_nav(config, files)
    assert config["nav"] == [
        {"Home": "README.md"},
        {"Derivations": ["derivations/softmax.md", "derivations/new_op.md"]},
        {"More": ["distributed.md", "gpu/emulator.md"]},
    ]
