"""The documentation site: every page reachable, tables without literal ``\\|``, no internal labels in headings,
diagrams that fit the page, a strict mkdocs build, install lines that work from the checkout, and every
```python / ```bash block run offline on the tiny preset unless the line before it is
``<!-- docs-test: skip: REASON -->``."""
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
PIP_INSTALL = re.compile(r"pip install ([^`'\"\n(#]*(?:'[^'\n]*'[^`'\"\n(#]*)*)")  # to a quote, "(" or "#"
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


# ------------------------------------------------------------------------------------- the code blocks that run
# Every ```python and ```bash block of the README and the docs runs here (offline, on the tiny preset), unless the
# line before it says why it cannot: <!-- docs-test: skip: REASON --> (e.g. it needs the 14B weights or a GPU).
SKIP_MARK = re.compile(r"<!--\s*docs-test:\s*skip:\s*(\S.*?)\s*-->")
RUN_KINDS = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
DOC_FILES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
# What a block may use without defining it: the face photos of its examples (in the folder it runs in), a tiny
# DiffSynth `pipe`, `torch`, and official-layout adapter folders built from the tiny DiT.
PREAMBLE = '''
import os
import torch
from lynx_ext.adapters import save_official_folder
from lynx_ext.tiny.adapters import tiny_adapters
from lynx_ext.tiny.wan import build_tiny_wan, load_tiny_pipe
pipe = load_tiny_pipe(build_tiny_wan("tiny_wan"))
for variant, folder in (("lite", "downloads/lynx"), ("full", "lynx_full")):
    if not os.path.isdir(folder):
        save_official_folder(tiny_adapters(pipe.dit, variant), folder)
'''
CONTEXT_FILES = ("face.jpg", "face.png", "me.jpg")


def _blocks(path: Path):
    """(line, kind, code, skip reason) of every ```python / ```bash block of ``path``."""
    text = path.read_text()
    for match in re.finditer(r"^( *)```([^\n]*)\n(.*?)^\1```", text, re.M | re.S):
        kind = RUN_KINDS.get(match.group(2).strip().lower())
        if kind is None:
            continue
        before = text[:match.start()].rstrip("\n").splitlines()
        mark = SKIP_MARK.search(before[-1]) if before else None
        code = "\n".join(line[len(match.group(1)):] for line in match.group(3).splitlines())
        yield text[:match.start()].count("\n") + 1, kind, code, mark.group(1) if mark else None


BLOCKS = [(p.relative_to(ROOT), *block) for p in DOC_FILES for block in _blocks(p)]
RUNNABLE = [b for b in BLOCKS if b[4] is None]


def test_every_code_block_runs_or_says_why_not():
    """The harness sees the docs' blocks, and the marks it honours are real: one per block, with a reason."""
    assert len(BLOCKS) > 20 and any(kind == "python" for _, _, kind, _, _ in RUNNABLE) \
        and any(kind == "bash" for _, _, kind, _, _ in RUNNABLE)
    for path in DOC_FILES:
        marks = len(SKIP_MARK.findall(path.read_text()))
        marked = sum(1 for b in BLOCKS if b[0] == path.relative_to(ROOT) and b[4] is not None)
        assert marks == marked, f"{path.name}: a docs-test mark that is not right before a code block"


@pytest.fixture(scope="module")
def doc_world(tmp_path_factory):
    """A folder with the files the examples name, and the environment they run in (offline, tiny)."""
    import os

    from PIL import Image
    from skimage import data

    world = tmp_path_factory.mktemp("docs")
    for name in CONTEXT_FILES:
        Image.fromarray(data.astronaut()).save(world / name)
    env = {**os.environ, "LYNX_EXT_HOME": str(world / "home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "DIFFSYNTH_MODEL_BASE_PATH": str(world / "models")}
    return world, env


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: f"{b[0]}:{b[1]}")
def test_code_block_runs(block, doc_world):
    path, line, kind, code, _ = block
    world, env = doc_world
    if kind == "python":
        argv = [sys.executable, "-c", PREAMBLE + code]
    else:
        argv = ["bash", "-euo", "pipefail", "-c", code]
    proc = subprocess.run(argv, cwd=world, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{path}:{line} failed:\n{code}\n--- stderr ---\n{proc.stderr[-3000:]}"
