"""``diffsynth-ext``: discovers extensions through the ``diffsynth.extensions`` entry points and dispatches.

    diffsynth-ext extensions                       # list installed extensions
    diffsynth-ext generate --extension lynx ...    # an extension's command
    diffsynth-ext generate ...                     # the same when lynx is the only extension installed
    diffsynth-ext --version
"""
from __future__ import annotations

import sys
from typing import Optional

USAGE = """usage: diffsynth-ext <command> [--extension NAME] [options]
       diffsynth-ext extensions
       diffsynth-ext --version

Commands are provided by extensions (see `diffsynth-ext extensions`); --extension may be left out when exactly
one is installed. `diffsynth-ext <command> --extension NAME --help` shows a command's options; --quiet silences
DiffSynth's loader messages on every command."""


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


def choose_extension(name: Optional[str], command: str):
    """The extension named ``name``, or the only one installed when ``name`` is None (`LookupError` otherwise)."""
    from ..extension import get_extension, load_extensions

    if name is not None:
        return get_extension(name)
    exts = load_extensions()
    if len(exts) == 1:
        return next(iter(exts.values()))
    if not exts:
        raise LookupError("no DiffSynth extension is installed; install one (lynx-ext: `pip install -e .` in its "
                          "checkout).")
    raise LookupError(f"{command}: {len(exts)} extensions are installed ({', '.join(sorted(exts))}); "
                      "choose one with --extension NAME.")


def main(argv: Optional[list[str]] = None) -> int:
    from .common import version_text

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"diffsynth-ext: {version_text()}")
        return 0
    command, rest = argv[0], argv[1:]
    if command == "extensions":
        return list_extensions()
    if command.startswith("-"):
        print(f"diffsynth-ext: {command} is not a command; the command comes first, e.g. "
              f"`diffsynth-ext generate {command} ...`.", file=sys.stderr)
        return 2
    try:
        name, rest = _pop_extension(rest)
        ext = choose_extension(name, command)
    except (LookupError, SystemExit) as err:
        print(f"diffsynth-ext: {err}", file=sys.stderr)
        return 2
    if command not in getattr(ext, "commands", ()):
        print(f"diffsynth-ext: extension '{ext.name}' has no command '{command}' "
              f"(it has: {', '.join(getattr(ext, 'commands', ())) or 'none'}).", file=sys.stderr)
        return 2
    if "--version" in rest:
        print(f"diffsynth-ext {command} --extension {ext.name}: {version_text()}")
        return 0
    return run_extension_command(ext, command, rest)


def run_extension_command(ext, command: str, argv: list[str]) -> int:
    """Import the extension's ``"module:function"`` for ``command`` and run it on ``argv`` (``--quiet``: the
    host's own prints are dropped while it runs)."""
    import importlib

    from .host_output import host_output_silenced, wants_quiet

    if ext.name == "lynx":  # DiffSynth's spellings that this command does not take: name ours before loading it
        from .foreign_flags import foreign_flag_hint

        hint = foreign_flag_hint(command, argv)
        if hint:
            print(f"error: {hint} (see diffsynth-ext {command} --extension lynx --help)", file=sys.stderr)
            return 2
    module, _, function = ext.commands[command].partition(":")
    with host_output_silenced(wants_quiet(argv)):
        return int(getattr(importlib.import_module(module), function)(argv) or 0)


if __name__ == "__main__":
    sys.exit(main())
