"""Reading the imports: no package imports one of a higher layer (function-level imports included), no module
imports around a circle, and no module only re-exports another's names."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lynx_ext"

# Lower number = lower layer. A module may import its own layer and the layers below it.
LAYERS = {
    "atomic_write": 0, "compat": 0, "errors": 0, "outputs": 0,
    "adapters": 1, "conditioners": 1, "models": 1, "tiny": 1, "validation": 1,
    "pipeline": 2, "extension": 2,
    "inference": 3, "training": 3, "callbacks": 3, "evaluation": 3, "parity": 3,
    "app": 4, "cli": 4, "demo": 4,
}
# Top-layer siblings that stay independent of each other (training's callbacks belong to training).
SIBLINGS = {"inference": {"training", "callbacks", "evaluation"}, "training": {"inference", "evaluation"},
            "callbacks": {"inference", "evaluation"}, "evaluation": {"training", "callbacks"}}


def _room(parts: tuple[str, ...]) -> str:
    return parts[0] if parts else "__init__"


def _imports(path: Path):
    """(imported top-level room of lynx_ext, line) for every import in ``path``."""
    rel = path.relative_to(PACKAGE).with_suffix("").parts
    package = rel[:-1] if path.name != "__init__.py" else rel[:-1]
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = tuple(base) + tuple((node.module or "").split(".") if node.module else ())
                if not node.module:
                    for alias in node.names:
                        yield _room(target + (alias.name,)), node.lineno
                    continue
                yield _room(target), node.lineno
            elif node.module and node.module.startswith("lynx_ext."):
                yield _room(tuple(node.module.split(".")[1:])), node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("lynx_ext."):
                    yield _room(tuple(alias.name.split(".")[1:])), node.lineno
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("lynx_ext."):
                yield _room(tuple(arg.value.split(".")[1:])), node.lineno


def test_every_room_has_a_layer():
    rooms = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())) and p.name != "__init__.py"}
    assert rooms <= set(LAYERS), f"rooms without a layer: {sorted(rooms - set(LAYERS))}"


def test_no_import_runs_upward():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("").parts
        room = _room(rel) if rel[0] != "__init__" else "__init__"
        if room == "__init__":
            continue
        for target, line in _imports(path):
            if target not in LAYERS or target == room:
                continue
            if LAYERS[target] > LAYERS[room] or target in SIBLINGS.get(room, ()):
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({room}) imports {target}")
    assert not problems, "\n".join(problems)


def test_the_layer_check_sees_function_level_imports(tmp_path, monkeypatch):
    """The check itself: an upward import inside a function is found."""
    fake = PACKAGE / "adapters" / "__layer_probe__.py"
    fake.write_text("def f():\n    from ..inference import generator\n")
    try:
        found = list(_imports(fake))
    finally:
        fake.unlink()
    assert ("inference", 2) in found


# ------------------------------------------------------------------------------------------------ import cycles
def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == "TYPE_CHECKING"


def import_graph(root: Path = PACKAGE) -> dict[str, list[tuple[str, int, bool]]]:
    """``{module: [(imported module of the package, line, inside a function), ...]}`` for every module under
    ``root``. ``from a import b`` counts as importing ``a.b`` when that is a module, else ``a``; imports under
    ``if TYPE_CHECKING:`` never run and are left out; a submodule's implicit import of its parent package is not
    counted (a package's ``__init__`` re-exporting its submodules is the usual shape)."""
    modules = {_module_name(p, root): p for p in root.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = []

        def visit(node, in_function: bool):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and _is_type_checking(child):
                    for sub in child.orelse:
                        visit(sub, in_function)
                    continue
                if isinstance(child, ast.ImportFrom):
                    if child.level:
                        base = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                        source = ".".join(base + ([child.module] if child.module else []))
                    else:
                        source = child.module or ""
                    for alias in child.names:
                        target = f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                        if target in modules and target != name:
                            edges.append((target, child.lineno, in_function))
                elif isinstance(child, ast.Import):
                    edges.extend((a.name, child.lineno, in_function) for a in child.names if a.name in modules)
                visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

        visit(ast.parse(path.read_text(), str(path)), False)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, list[tuple[str, int, bool]]], function_level: bool) -> list[list[str]]:
    """The strongly connected groups of more than one module (or a module importing itself), each as a sorted list;
    ``function_level``: count imports inside functions too."""
    edges = {m: sorted({t for t, _, inside in es if function_level or not inside}) for m, es in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def strong(v):  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in edges[v]:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return found


def describe(group: list[str], graph) -> str:
    return "; ".join(dict.fromkeys(f"{m} -> {t} (line {line}{', in a function' if inside else ''})"
                                   for m in group for t, line, inside in graph[m] if t in group))


def test_no_import_cycles():
    """No two modules of lynx_ext import each other, directly or around a circle: neither at import time (module
    level) nor counting the imports inside functions."""
    graph = import_graph()
    for function_level in (False, True):
        found = cycles(graph, function_level)
        assert not found, ("function-level" if function_level else "module-level") + " import cycles:\n" + "\n".join(
            describe(g, graph) for g in found)


def test_format_detection_sits_below_the_readers():
    """`detect_format` sniffs with the layouts' signatures only: the modules that read and write the layouts import
    it, it imports none of them (anywhere, functions included)."""
    formats = "lynx_ext.adapters.formats"
    readers = {f"{formats}.{m}" for m in ("ours", "official", "comfyui", "layout", "loader")}
    graph = import_graph()
    below = {t for t, _, _ in graph[f"{formats}.detect"]}
    assert not below & (readers | {"lynx_ext.adapters.lynx_adapters"}), sorted(below)
    assert all(f"{formats}.detect" in {t for t, _, _ in graph[r]} for r in (f"{formats}.ours", f"{formats}.comfyui",
                                                                             f"{formats}.loader"))


def test_the_cycle_check_finds_circles(tmp_path):
    """The check itself, on a throw-away package: a function-level circle and a module-level one are found, an
    import under TYPE_CHECKING and a package re-exporting its submodule are not circles."""
    pkg = tmp_path / "lynx_ext"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .a import f\n")
    (pkg / "sub" / "a.py").write_text("from .b import g\n\ndef f():\n    return g()\n")
    (pkg / "sub" / "b.py").write_text("def g():\n    from .a import f\n    return f\n")
    (pkg / "sub" / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .d import D\n")
    (pkg / "sub" / "d.py").write_text("from . import c\nfrom lynx_ext.sub import e\n")
    (pkg / "sub" / "e.py").write_text("import lynx_ext.sub.d\n")
    graph = import_graph(pkg)
    assert cycles(graph, function_level=True) == [["lynx_ext.sub.a", "lynx_ext.sub.b"],
                                                  ["lynx_ext.sub.d", "lynx_ext.sub.e"]]
    assert cycles(graph, function_level=False) == [["lynx_ext.sub.d", "lynx_ext.sub.e"]]


def test_no_module_only_re_exports():
    """A module that only imports names (and lists them in ``__all__``) is a second address for them; import from
    the module that defines them. Packages' ``__init__`` files are the exception: they are the public surface."""
    only_imports = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        body = [n for n in ast.parse(path.read_text()).body
                if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
        if body and all(isinstance(n, (ast.Import, ast.ImportFrom)) or (
                isinstance(n, ast.Assign) and [getattr(t, "id", None) for t in n.targets] == ["__all__"])
                for n in body):
            only_imports.append(str(path.relative_to(PACKAGE.parent)))
    assert not only_imports, f"modules that only re-export: {only_imports}"
