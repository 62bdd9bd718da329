"""The documentation site: every page reachable, tables without literal ``\\|``, no internal labels in headings,
diagrams that fit the page, and a strict mkdocs build."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p.name for p in DOCS.glob("*.md"))
DIAGRAM_COLUMNS = 80  # what a code block shows at desktop width (the site's diagrams do not wrap)


def _config() -> dict:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!ENV", lambda loader, node: None)  # mkdocs' environment-variable tag
    return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)


def _nav_pages(nav) -> set[str]:
    found = set()
    for entry in nav:
        for value in (entry.values() if isinstance(entry, dict) else [entry]):
            found |= _nav_pages(value) if isinstance(value, list) else {value}
    return found


def _fences(text: str):
    """(info string, lines) of every fenced code block."""
    for match in re.finditer(r"^( *)```([^\n]*)\n(.*?)^\1```", text, re.M | re.S):
        yield match.group(2).strip(), match.group(3).splitlines()


def test_every_page_is_in_the_nav_and_linked_from_the_index():
    config = _config()
    assert set(PAGES) == _nav_pages(config["nav"]), "docs/*.md and the mkdocs.yml nav differ"
    index = (DOCS / "index.md").read_text()
    unlinked = [p for p in PAGES if p != "index.md" and f"]({p})" not in index]
    assert not unlinked, f"not linked from docs/index.md: {unlinked}"
    assert "repo_url" in config and all((DOCS / css).is_file() for css in config["extra_css"])


@pytest.mark.parametrize("page", PAGES)
def test_tables_headings_and_diagrams(page):
    text = (DOCS / page).read_text()
    assert "\\|" not in text, f"{page}: a literal \\| renders as such inside code; write {{a,b}} or &#124;"
    for heading in re.findall(r"^#{1,6} .*$", text, re.M):
        assert not re.search(r"\(issue\b|\bissue:|\bitem \d|\bwave\b", heading, re.I), f"{page}: {heading}"
    for info, lines in _fences(text):
        boxed = any(ch in line for line in lines for ch in "┌└│▼►◄")
        if ".diagram" in info:
            wide = [line for line in lines if len(line) > DIAGRAM_COLUMNS]
            assert not wide, f"{page}: diagram lines wider than {DIAGRAM_COLUMNS} columns: {wide[:2]}"
        elif boxed and "tree" not in info:
            pytest.fail(f"{page}: a box drawing outside a ```{{.text .diagram}} block would wrap: {lines[:2]}")


def test_the_css_keeps_diagrams_and_wraps_the_rest():
    css = (DOCS / "stylesheets" / "extra.css").read_text()
    assert re.search(r"pre > code\s*{\s*white-space: pre-wrap", css)
    assert re.search(r"\.diagram pre > code\s*{\s*white-space: pre;", css)


@pytest.mark.skipif(shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None,
                    reason="mkdocs is in the docs extra")
def test_strict_build(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    proc = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                          capture_output=True, text=True, env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = (tmp_path / "site" / "architecture" / "index.html").read_text()
    assert 'class="language-text diagram highlight"' in html


# ----------------------------------------------------------------------------------------------- install lines
PIP_INSTALL = re.compile(r"pip install ([^`'\"\n]*(?:'[^'\n]*'[^`'\"\n]*)*)")
SOURCES = [ROOT / "README.md", ROOT / "Makefile", *DOCS.glob("*.md"), *(ROOT / "lynx_ext").rglob("*.py")]


def _install_lines():
    for path in SOURCES:
        for match in PIP_INSTALL.finditer(path.read_text()):
            yield path.relative_to(ROOT), match.group(1)


def test_install_lines_work_from_where_the_reader_is():
    """lynx-ext is not on PyPI: every `pip install` of it (or of its extras) installs the checkout (`-e .` /
    `-e '.[extra]'`), never `lynx-ext[...]` by name, and names extras that exist."""
    import tomllib

    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    lines = list(_install_lines())
    assert len(lines) > 5, lines  # the scan finds the install lines at all
    for where, args in lines:
        for word in args.split("#")[0].replace("'", " ").replace('"', " ").split():
            assert not re.match(r"lynx[-_]ext\b", word, re.I), f"{where}: `pip install {args}` (not on PyPI)"
            if word.startswith(".["):
                named = set(word[2:].rstrip("]").split(","))
                assert named <= extras, f"{where}: `pip install {args}` names unknown extras {named - extras}"
