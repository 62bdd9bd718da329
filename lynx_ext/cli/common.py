"""Small helpers shared by the ``diffsynth-ext`` commands."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Optional


def add_alias_flag(parser, flag: str, **kwargs):
    """Add ``--kebab-case`` with its DiffSynth-style ``--snake_case`` spelling as an alias."""
    names = [flag]
    snake = flag.replace("-", "_").replace("__", "--", 1)
    if snake != flag:
        names.append(snake)
    return parser.add_argument(*names, **kwargs)


def read_prompt(value: str) -> str:
    """A prompt given inline, or a text file holding it (a missing or empty file is an error)."""
    path = Path(value) if len(value) < 1024 and "\n" not in value else None
    if path is not None and (path.is_file() or path.suffix.lower() in (".txt", ".prompt")):
        if not path.is_file():
            raise FileNotFoundError(f"Prompt file {path} does not exist.")
        text = path.read_text(encoding="utf-8").strip()
        if not text:
            raise ValueError(f"Prompt file {path} is empty; write the prompt into it or pass --prompt TEXT.")
        return text
    if not value.strip():
        raise ValueError("The prompt is empty.")
    return value


def parse_blocks(text: Optional[str]) -> Optional[list[int]]:
    """'0-19' / '0,2,4' / '0-9,20-29' -> list of block indices."""
    if text is None:
        return None
    blocks: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                a, b = part.split("-", 1)
                blocks += list(range(int(a), int(b) + 1))
            else:
                blocks.append(int(part))
        except ValueError:
            raise ValueError(f"--blocks {text!r}: use indices and ranges such as '0-19' or '0,2,4'.") from None
    return sorted(set(blocks))


# Failures caused by what the user gave (shown as one sentence, exit 2); anything else is a bug or the machine.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, LookupError)


def run_command(run: Callable[[], int], interrupted: str = "interrupted; no partial outputs were written") -> int:
    """The one wrapper of every command's work: a clear line and exit 2 for bad input, 130 on Ctrl-C."""
    try:
        return int(run() or 0)
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
    except SystemExit as exit_:  # argparse / LightningCLI: they have printed their message
        if isinstance(exit_.code, str):
            print(f"error: {exit_.code}", file=sys.stderr)
            return 2
        return int(exit_.code or 0)
    except Exception as err:  # noqa: BLE001 - every failure becomes one clear line and a non-zero exit
        return fail(err)


def fail(err: BaseException) -> int:
    """Print one clear line for an expected failure (and the type for anything else); return the exit code."""
    import os

    if os.environ.get("LYNX_EXT_DEBUG"):
        raise err
    kind = type(err).__name__
    print(f"error: {err}" if isinstance(err, USER_ERRORS) else f"error ({kind}): {err}", file=sys.stderr)
    return 2 if isinstance(err, USER_ERRORS) else 1


# ------------------------------------------------------------------------------------ DiffSynth's conventions
class ModelPathsError(ValueError, argparse.ArgumentTypeError):
    """A ``--model-paths`` value that is neither a path nor DiffSynth's JSON list (argparse prints the message)."""


def parse_model_paths(value: str) -> list:
    """One ``--model-paths`` value -> its entries: DiffSynth's JSON list (``'["a.safetensors", ["s1", "s2"]]'``,
    an inner list = the shards of one model) or a single path. Repeated flags add up (argparse ``extend``)."""
    import json

    text = str(value).strip()
    if not text:
        raise ModelPathsError("--model-paths is empty; give a file, or a JSON list such as '[\"dit.safetensors\"]'.")
    if text[0] not in '["':
        return [text]
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as err:
        raise ModelPathsError(f"--model-paths {text!r} is not valid JSON ({err.msg} at character {err.pos}); "
                              "write it as DiffSynth does: '[\"a.safetensors\", [\"shard1\", \"shard2\"]]'.") from None
    entries = parsed if isinstance(parsed, list) else [parsed]
    for entry in entries:
        shards = entry if isinstance(entry, list) else [entry]
        if not shards or not all(isinstance(s, str) and s.strip() for s in shards):
            raise ModelPathsError(f"--model-paths entry {json.dumps(entry)} must be a path or a non-empty list of "
                                  "paths (the shards of one model).")
    return entries


def add_download_source_flag(parser):
    """``--download-source modelscope|huggingface``: sets the host's ``DIFFSYNTH_DOWNLOAD_SOURCE`` when parsed, so
    the base model, the adapters (``hub:``) and the face models come from the same hub."""
    import os

    from ..models.hub import SOURCE_ENV, download_source

    class SetSource(argparse.Action):
        def __call__(self, parser_, namespace, value, option_string=None):
            try:
                source = download_source(value)
            except ValueError as err:
                parser_.error(str(err))
            os.environ[SOURCE_ENV] = source
            setattr(namespace, self.dest, source)

    return add_alias_flag(parser, "--download-source", action=SetSource, default=None, metavar="modelscope|huggingface",
                          help=f"where downloads come from (default: ${SOURCE_ENV}, else modelscope, as DiffSynth); "
                               "the other hub is tried next")


def version_text() -> str:
    """``lynx-ext X (diffsynth Y, torch Z, Python W)`` without importing torch or DiffSynth."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from .. import __version__

    def installed(dist: str) -> str:
        try:
            return version(dist)
        except PackageNotFoundError:
            return "not installed"

    return (f"lynx-ext {__version__} (diffsynth {installed('diffsynth')}, torch {installed('torch')}, "
            f"Python {platform.python_version()})")


def add_version_flag(parser):
    """``--version`` on a command's parser."""
    return parser.add_argument("--version", action="version", version=f"{parser.prog}: {version_text()}")


def snake_case_flags(argv: list) -> list:
    """``--trainer.max-epochs 3`` -> ``--trainer.max_epochs 3``: kebab-case spellings of snake_case option names
    (values are left alone)."""
    out = []
    for arg in argv:
        if isinstance(arg, str) and arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg[2:].partition("=")
            arg = "--" + name.replace("-", "_") + eq + value
        out.append(arg)
    return out
