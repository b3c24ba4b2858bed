"""The documentation cannot drift from the code.

Link format (every derivation page docs/derivations/<op>.md has both kinds; any page may use them):

    - Code: [tinygrad_tx/ops/matmul.py](../../tinygrad_tx/ops/matmul.py) `MatMul.forward`, `MatMul.backward`
    - Test: [tests/ops/test_ops.py](../../tests/ops/test_ops.py) `test_gradcheck_matmul`, `test_against_torch_matmul`

Every linked file must exist and define every named symbol (``Class.method`` chains are followed in
the file's syntax tree, so nothing is imported); a Test symbol must name a test function. A
```python block on a derivation page quotes its Code files: each of its lines must still be in one of
them. On the pages of the fused ops (KERNEL_DERIVATIONS), every ```python block of section 3 ("As
implemented") must be a verbatim excerpt of tinygrad_tx/kernels/reference.py: consecutive lines, the
same text, one indentation removed. Every relative link in docs/ must resolve, every page the source
code names must exist, and the ```python blocks of the runnable pages run, in order, in one namespace
per page.
"""

import ast
import re

import pytest

from helpers import ROOT

DOCS = ROOT / "docs"
DERIVATIONS = sorted((DOCS / "derivations").glob("*.md"))
ALL_PAGES = sorted(DOCS.rglob("*.md")) + [ROOT / "README.md"]
RUNNABLE_PAGES = [DOCS / "autograd.md", DOCS / "experimenting.md", DOCS / "kernels.md", ROOT / "README.md"]
KERNEL_DERIVATIONS = ["softmax", "cross_entropy", "layernorm", "embedding", "gelu", "dropout", "attention", "adamw"]
REQUIRED_DERIVATIONS = ["matmul", "broadcasting", "elementwise", "movement"] + KERNEL_DERIVATIONS
REFERENCE_KERNELS = ROOT / "tinygrad_tx" / "kernels" / "reference.py"

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
CODE_LINK_LINE = re.compile(r"^- (Code|Test): \[[^\]]+\]\(([^)\s]+)\)((?:,? `[\w.]+`)+)\s*$")
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
FENCED_BLOCK = re.compile(r"^```.*?^```", re.S | re.M)


def _relative(path):
    return path.relative_to(ROOT).as_posix()


def _prose(page):
    """The page's text without its fenced code blocks (examples there are not links)."""
    return FENCED_BLOCK.sub("", page.read_text(encoding="utf-8"))


def _page_links(page):
    """(kind, target path, [symbols]) for each Code/Test line of a page; a malformed one fails."""
    links = []
    for line in _prose(page).splitlines():
        if not line.startswith(("- Code:", "- Test:")):
            continue
        match = CODE_LINK_LINE.match(line)
        assert match, f"{_relative(page)}: malformed link line (see tests/docs/test_docs.py for the format): {line}"
        kind, target, symbols = match.groups()
        links.append((kind, (page.parent / target).resolve(), re.findall(r"`([\w.]+)`", symbols)))
    return links


def _defines(tree, dotted):
    """Whether the module syntax tree defines ``dotted`` (a name, or Class.attr chains)."""
    body = tree.body
    for part in dotted.split("."):
        found = None
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == part:
                found = node
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == part for t in targets):
                    found = node
        if found is None:
            return False
        body = getattr(found, "body", [])
    return True


def test_every_required_derivation_page_exists():
    missing = [name for name in REQUIRED_DERIVATIONS if not (DOCS / "derivations" / f"{name}.md").is_file()]
    assert not missing, f"docs/derivations/: pages missing: {missing}"


@pytest.mark.parametrize("page", DERIVATIONS, ids=lambda p: p.name)
def test_derivation_pages_link_code_and_tests(page):
    kinds = {kind for kind, _, _ in _page_links(page)}
    assert kinds == {"Code", "Test"}, (
        f"{_relative(page)}: needs at least one '- Code:' and one '- Test:' line "
        f"in the format of tests/docs/test_docs.py, found {sorted(kinds)}"
    )


@pytest.mark.parametrize("page", ALL_PAGES, ids=lambda p: _relative(p))
def test_code_and_test_links_name_existing_symbols(page):
    for kind, target, symbols in _page_links(page):
        assert target.is_file(), f"{_relative(page)}: {kind} link to a missing file {target}"
        tree = ast.parse(target.read_text(encoding="utf-8"))
        for symbol in symbols:
            assert _defines(tree, symbol), f"{_relative(page)}: `{symbol}` is not defined in {_relative(target)}"
            if kind == "Test":
                assert target.parent.parent == ROOT / "tests", (
                    f"{_relative(page)}: Test link {_relative(target)} is not in a test folder tests/<part>/"
                )
                assert symbol.split(".")[-1].startswith("test"), (
                    f"{_relative(page)}: Test symbol `{symbol}` is not a test function"
                )


@pytest.mark.parametrize("page", DERIVATIONS, ids=lambda p: p.name)
def test_derivation_code_quotes_are_still_in_the_code(page):
    code_lines = set()
    for kind, target, _ in _page_links(page):
        if kind == "Code" and target.is_file():
            code_lines.update(line.strip() for line in target.read_text(encoding="utf-8").splitlines())
    for block in PYTHON_BLOCK.findall(page.read_text(encoding="utf-8")):
        for line in block.splitlines():
            if line.strip():
                assert line.strip() in code_lines, (
                    f"{_relative(page)}: quoted line `{line.strip()}` is no longer in its Code files"
                )


def _is_verbatim_excerpt(block, source_lines):
    """Whether ``block``'s lines are consecutive lines of the source, each with the same indentation added."""
    lines = block.rstrip("\n").split("\n")
    for start in range(len(source_lines) - len(lines) + 1):
        first = source_lines[start]
        indent = first[: len(first) - len(lines[0])]
        if (
            first.endswith(lines[0])
            and not indent.strip()
            and all(source == (indent + line if line else "") for source, line in zip(source_lines[start:], lines))
        ):
            return True
    return False


def _as_implemented(page):
    text = page.read_text(encoding="utf-8")
    start = text.index("## 3. As implemented")
    return text[start : text.index("\n## 4.", start)]


@pytest.mark.parametrize("name", KERNEL_DERIVATIONS)
def test_as_implemented_quotes_the_reference_kernels_verbatim(name):
    page = DOCS / "derivations" / f"{name}.md"
    source_lines = REFERENCE_KERNELS.read_text(encoding="utf-8").splitlines()
    blocks = PYTHON_BLOCK.findall(_as_implemented(page))
    assert blocks, f"{_relative(page)}: section 3 quotes no code from {_relative(REFERENCE_KERNELS)}"
    for block in blocks:
        assert _is_verbatim_excerpt(block, source_lines), (
            f"{_relative(page)}: this quoted block is not a verbatim excerpt of "
            f"{_relative(REFERENCE_KERNELS)}:\n{block}"
        )


def test_the_verbatim_check_rejects_an_edited_quote():
    source_lines = ["def f(x):", "    y = x + 1", "", "    return y"]
    assert _is_verbatim_excerpt("y = x + 1\n\nreturn y\n", source_lines)
    assert _is_verbatim_excerpt("def f(x):\n    y = x + 1\n", source_lines)
    assert not _is_verbatim_excerpt("y = x + 2\n", source_lines)  # edited
    assert not _is_verbatim_excerpt("y = x + 1\nreturn y\n", source_lines)  # a line left out
    assert not _is_verbatim_excerpt("def f(x):\ny = x + 1\n", source_lines)  # indentation changed


@pytest.mark.parametrize("page", ALL_PAGES, ids=lambda p: _relative(p))
def test_relative_links_resolve(page):
    for target in LINK.findall(_prose(page)):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{_relative(page)}: link ({target}) points to a missing file"


def test_pages_named_in_the_source_exist():
    sources = [path for folder in ("tinygrad_tx", "models", "train", "bench") for path in (ROOT / folder).rglob("*.py")]
    for source in sorted(sources):
        for name in re.findall(r"docs/derivations/([\w-]+\.md)", source.read_text(encoding="utf-8")):
            assert (DOCS / "derivations" / name).is_file(), (
                f"{_relative(source)} names docs/derivations/{name}, which does not exist"
            )


@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=lambda p: p.name)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # whatever an example writes lands in a scratch folder
    monkeypatch.syspath_prepend(str(ROOT))  # the examples import models/ as if run from the repository root
    blocks = PYTHON_BLOCK.findall(page.read_text(encoding="utf-8"))
    assert blocks, f"{_relative(page)}: no ```python blocks to run"
    namespace = {"__name__": f"docs_{page.stem}"}
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"{_relative(page)}, python block {number}", "exec"), namespace)


# ---------------------------------------------------------------- each fused Function names its formula, page and test
def _fused_functions():
    """(class name, docstring) of every Function in tinygrad_tx/nn/ that runs a kernel (calls ``pick``)."""
    found = []
    for path in sorted((ROOT / "tinygrad_tx" / "nn").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            bases = [getattr(base, "id", getattr(base, "attr", None)) for base in getattr(node, "bases", [])]
            if isinstance(node, ast.ClassDef) and "Function" in bases and "pick(" in ast.unparse(node):
                found.append((node.name, ast.get_docstring(node) or ""))
    return found


FUSED_FUNCTIONS = _fused_functions()


def test_the_fused_functions_are_found():
    names = {name for name, _ in FUSED_FUNCTIONS}
    assert {"LinearFunction", "EmbeddingFunction", "LayerNormFunction", "DropoutFunction"} <= names
    assert not names & {"Linear", "Embedding", "LayerNorm", "Dropout"}, "a fused Function shares a Module's name"


@pytest.mark.parametrize("name, docstring", FUSED_FUNCTIONS, ids=[name for name, _ in FUSED_FUNCTIONS])
def test_each_fused_function_names_its_reference_derivation_and_test(name, docstring):
    fields = dict(re.findall(r"^(Reference|Derivation|Test): (.+)$", docstring, re.M))
    assert fields.keys() == {"Reference", "Derivation", "Test"}, f"{name}: docstring lacks Reference/Derivation/Test"
    path, _, functions = fields["Reference"].partition(": ")
    assert path == "kernels/reference.py", f"{name}: {fields['Reference']}"
    defined = {node.name for node in ast.parse(REFERENCE_KERNELS.read_text()).body if isinstance(node, ast.FunctionDef)}
    for function in functions.split(", "):
        assert function in defined, f"{name}: kernels/reference.py has no {function}"
    assert (ROOT / fields["Derivation"]).is_file(), f"{name}: no page {fields['Derivation']}"
    test_file, _, test_name = fields["Test"].partition("::")
    assert (ROOT / test_file).is_file(), f"{name}: no test file {test_file}"
    assert re.search(rf"^def {re.escape(test_name)}\(", (ROOT / test_file).read_text(), re.M), (
        f"{name}: {test_file} has no test {test_name}"
    )


def test_no_bar_over_a_superscript():
    """Regression (issue 24): MathJax draws \\bar{\\sigma^2} with the bar detached from the sigma; \\overline
    spans the whole argument."""
    offenders = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in sorted((ROOT / "docs").rglob("*.md"))
        for match in re.finditer(r"\\bar\{[^}]*\^", path.read_text(encoding="utf-8"))
    ]
    assert not offenders, offenders
