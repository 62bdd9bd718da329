"""``diffsynth-ext``: discovers extensions through the ``diffsynth.extensions`` entry points and dispatches.

    diffsynth-ext extensions                       # list installed extensions
    diffsynth-ext generate --extension lynx ...    # an extension's command
"""
from __future__ import annotations

import sys
from typing import Optional

USAGE = """usage: diffsynth-ext <command> --extension NAME [options]
       diffsynth-ext extensions

Commands are provided by extensions (see `diffsynth-ext extensions`). `diffsynth-ext <command> --extension NAME
--help` shows a command's options."""


def _pop_extension(argv: list[str]) -> tuple[Optional[str], list[str]]:
    rest, name, i = [], None, 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--extension", "-e"):
            if i + 1 >= len(argv):
                raise SystemExit("--extension needs a name, e.g. --extension lynx")
            name, i = argv[i + 1], i + 2
            continue
        if arg.startswith("--extension="):
            name = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    return name, rest


def list_extensions() -> int:
    from ..extension import load_extensions

    exts = load_extensions()
    if not exts:
        print("No DiffSynth extensions are installed.")
        return 0
    for name, ext in sorted(exts.items()):
        commands = ", ".join(getattr(ext, "commands", ()))
        print(f"{name:<12} {getattr(ext, 'pipeline', '?'):<18} {getattr(ext, 'description', '')}")
        if commands:
            print(f"{'':<12} commands: {commands}")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "extensions":
        return list_extensions()
    name, rest = _pop_extension(rest)
    if name is None:
        print(f"diffsynth-ext {command}: --extension NAME is required (activation is opt-in; "
              "`diffsynth-ext extensions` lists what is installed).", file=sys.stderr)
        return 2
    from ..extension import get_extension

    try:
        ext = get_extension(name)
    except LookupError as err:
        print(f"diffsynth-ext: {err}", file=sys.stderr)
        return 2
    if command not in getattr(ext, "commands", ()):
        print(f"diffsynth-ext: extension '{name}' has no command '{command}' "
              f"(it has: {', '.join(getattr(ext, 'commands', ())) or 'none'}).", file=sys.stderr)
        return 2
    return run_extension_command(ext, command, rest)


def run_extension_command(ext, command: str, argv: list[str]) -> int:
    """Import the extension's ``"module:function"`` for ``command`` and run it on ``argv``."""
    import importlib

    module, _, function = ext.commands[command].partition(":")
    return int(getattr(importlib.import_module(module), function)(argv) or 0)


if __name__ == "__main__":
    sys.exit(main())
