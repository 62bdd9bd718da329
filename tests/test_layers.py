"""Reading the imports: no package imports one of a higher layer (function-level imports included)."""
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
