"""MkDocs hooks that turn docs/ (written to read well on GitHub) into the site, without editing the pages.

- The notebooks (notebooks/*.ipynb) and one API reference page per public module join the site.
- A link to a file of the repository outside docs/ (``../../tinygrad_tx/nn/functional.py``) becomes a
  link to a generated page that shows that file; a link to a folder becomes a page listing it.
- Every page of docs/ is in the navigation: one missing from mkdocs.yml's ``nav`` is appended to the
  section of its folder (derivations/ -> "Derivations"), or to "More" for a new top-level page.
- MathJax 2 is copied from the ``jupyter-server-mathjax`` package into the site, so math renders with
  no network at view time; the pages and the notebooks load it from ``assets/mathjax``.
"""

import posixpath
import re
import shutil
from pathlib import Path

import jupyter_server_mathjax
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, InclusionLevel

REPO = Path(__file__).resolve().parent
API_MODULES = [
    "tinygrad_tx",
    "tinygrad_tx.tensor",
    "tinygrad_tx.function",
    "tinygrad_tx.gradcheck",
    "tinygrad_tx.nn",
    "tinygrad_tx.nn.functional",
    "tinygrad_tx.optim",
    "tinygrad_tx.kernels",
    "tinygrad_tx.kernels.reference",
    "tinygrad_tx.backend",
    "tinygrad_tx.viz",
    "tinygrad_tx.distributed",
    "models",
    "train.data",
    "train.tokenizers",
]
SECTION_OF_FOLDER = {"derivations": "Derivations"}
MATHJAX_DIR = "assets/mathjax"
# A MathJax config file: the fonts jupyter-server-mathjax ships (STIX-Web), the delimiters arithmatex writes
MATHJAX_CONFIG = """MathJax.Hub.Config({
  tex2jax: {inlineMath: [["\\\\(", "\\\\)"]], displayMath: [["\\\\[", "\\\\]"]], processEscapes: true},
  "HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null},
  messageStyle: "none"
});
MathJax.Ajax.loadComplete("[MathJax]/config/tinygrad_tx.js");
"""
LINK = re.compile(r"(\]\()([^)\s#]+)(#[^)\s]*)?(\))")


def _repo_target(page_uri, link):
    """The repository path a relative link of docs page ``page_uri`` points at, or None if it is not one."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", link) or link.startswith("/"):
        return None
    target = posixpath.normpath(posixpath.join("docs", posixpath.dirname(page_uri), link))
    return None if target.startswith("..") else target


def _site_uri(target):
    """Where the site keeps what a repository path shows: docs pages as they are, other files as source pages."""
    path = REPO / target
    if target.startswith("notebooks/") and path.suffix == ".ipynb":  # the site's notebook pages
        return target
    if target.startswith("docs/") and path.suffix != ".py":  # docs/**/*.py are excluded from the site as files
        inner = target[len("docs/") :]
        return posixpath.join(inner, "index.md") if path.is_dir() and not (path / "README.md").exists() else None
    return posixpath.join("source", target, "index.md") if path.is_dir() else f"source/{target}.md"


def _source_page(target):
    path = REPO / target
    if path.is_dir():
        lines = [f"- [{p.name}]({p.name}.md)" for p in sorted(path.glob("*.py"))]
        return f"# `{target}/`\n\n" + "\n".join(lines) + "\n"
    text = path.read_text(encoding="utf-8")
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    language = {".py": "python", ".sh": "bash", ".yml": "yaml", ".json": "json"}.get(path.suffix, "text")
    return f"# `{target}`\n\n{fence}{language}\n{text}{fence}\n"


def _docs_index_page(folder):
    pages = sorted(p for p in (REPO / "docs" / folder).glob("*.md"))
    lines = [f"- [{_title(p)}]({p.name})" for p in pages]
    return f"# {folder}/\n\n" + "\n".join(lines) + "\n"


def _title(path):
    first = path.read_text(encoding="utf-8").lstrip().splitlines()[0]
    return first.lstrip("# ").strip() if first.startswith("#") else path.stem


def _generated_targets(files):
    """Repository paths that docs pages link to and that need a generated page."""
    targets = set()
    for file in files.documentation_pages():
        if file.generated_by or not file.src_uri.endswith(".md"):
            continue
        for match in LINK.finditer(Path(file.abs_src_path).read_text(encoding="utf-8")):
            target = _repo_target(file.src_uri, match.group(2))
            if target and (REPO / target).exists() and _site_uri(target) and not target.startswith("notebooks/"):
                targets.add(target)
    # a source folder's page lists its files, so each listed file needs its own page too
    for target in [t for t in targets if (REPO / t).is_dir() and not t.startswith("docs/")]:
        targets.update(str(p.relative_to(REPO)) for p in (REPO / target).iterdir() if p.is_file() and p.suffix == ".py")
    return targets


def _nav_pages(nav):
    for item in nav if isinstance(nav, list) else [nav]:
        if isinstance(item, dict):
            for value in item.values():
                yield from _nav_pages(value)
        elif isinstance(item, str):
            yield item


def _complete_nav(config, files):
    """Append every docs page that mkdocs.yml's nav does not list to its folder's section, or to "More"."""
    listed = set(_nav_pages(config["nav"]))
    for file in sorted(files.documentation_pages(), key=lambda f: f.src_uri):
        uri = file.src_uri
        if uri in listed or file.generated_by or not uri.endswith(".md") or file.inclusion.is_not_in_nav():
            continue
        section = SECTION_OF_FOLDER.get(uri.split("/")[0], "More") if "/" in uri else "More"
        entries = next((item[section] for item in config["nav"] if isinstance(item, dict) and section in item), None)
        if entries is None:
            entries = []
            config["nav"].append({section: entries})
        entries.append(uri)


@event_priority(100)  # before mkdocs-jupyter looks for notebooks among the files
def on_files(files, config):
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        files.append(File(f"notebooks/{notebook.name}", str(REPO), config["site_dir"], config["use_directory_urls"]))
    for module in API_MODULES:
        files.append(File.generated(config, f"api/{module}.md", content=f"# `{module}`\n\n::: {module}\n"))
    for target in sorted(_generated_targets(files)):
        uri = _site_uri(target)
        if files.get_file_from_path(uri) is not None:
            continue
        in_docs = target.startswith("docs/") and (REPO / target).is_dir()
        content = _docs_index_page(target[len("docs/") :]) if in_docs else _source_page(target)
        files.append(File.generated(config, uri, content=content, inclusion=InclusionLevel.NOT_IN_NAV))
    _complete_nav(config, files)
    return files


def on_page_markdown(markdown, page, config, files):
    """Point links to repository files outside docs/ (and to folders) at their generated pages."""
    if page.file.generated_by or not page.file.src_uri.endswith(".md"):
        return markdown

    def relink(match):
        target = _repo_target(page.file.src_uri, match.group(2))
        uri = _site_uri(target) if target and (REPO / target).exists() else None
        if uri is None:
            return match.group(0)
        link = posixpath.relpath(uri, posixpath.dirname(page.file.src_uri) or ".")
        anchor = "" if uri.startswith("source/") else match.group(3) or ""  # a source page has no line anchors
        return f"{match.group(1)}{link}{anchor}{match.group(4)}"

    return LINK.sub(relink, markdown)


def on_post_build(config):
    """Ship MathJax with the site (no CDN at view time), with this site's configuration file."""
    source = Path(jupyter_server_mathjax.__file__).parent / "static"
    destination = Path(config["site_dir"]) / MATHJAX_DIR
    shutil.copytree(source, destination, dirs_exist_ok=True, ignore=shutil.ignore_patterns("localization", "*.md"))
    (destination / "config" / "tinygrad_tx.js").write_text(MATHJAX_CONFIG, encoding="utf-8")
