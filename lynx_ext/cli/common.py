"""Small helpers shared by the ``diffsynth-ext`` commands."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Optional

from ..errors import LynxError, LynxValueError, is_usage_error


class Parser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` whose errors are one line on stderr (exit 2), naming the flag and pointing to
    ``--help`` (argparse would print the whole usage first)."""

    def error(self, message: str):
        from .foreign_flags import foreign_flag_hint

        command = self.prog.split()[1] if len(self.prog.split()) > 1 else self.prog
        if message.startswith("unrecognized arguments: "):  # a DiffSynth spelling: name ours
            message = foreign_flag_hint(command, message.split(": ", 1)[1].split()) or message
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def add_alias_flag(parser, flag: str, **kwargs):
    """Add ``--kebab-case`` with its DiffSynth-style ``--snake_case`` spelling as an alias."""
    names = [flag]
    snake = flag.replace("-", "_").replace("__", "--", 1)
    if snake != flag:
        names.append(snake)
    return parser.add_argument(*names, **kwargs)


def read_prompt(value: str, what: str = "Prompt file") -> str:
    """A prompt given inline, or a UTF-8 text file holding it (a missing, empty or non-UTF-8 file is an error
    naming the file)."""
    from ..validation.files import read_text_file
    from ..validation.values import check_text

    path = Path(value) if len(value) < 1024 and "\n" not in value else None
    if path is not None and (is_file(path) or path.suffix.lower() in (".txt", ".prompt")):
        text = read_text_file(path, what).strip()
        if not text:
            raise LynxValueError(f"{what} {path} is empty; write the prompt into it or pass --prompt TEXT.")
        return text
    return check_text(value, "the prompt")


def is_file(path) -> bool:
    """``Path.is_file`` that answers False for text too long to be a file name (an inline prompt)."""
    try:
        return Path(path).is_file()
    except OSError:
        return False


def parse_blocks(text: Optional[str]) -> Optional[list[int]]:
    """'0-19' / '0,2,4' / '0-9,20-29' -> list of block indices (errors name ``--blocks``)."""
    from ..validation.generation import parse_blocks as parse

    try:
        blocks = parse(text)
    except LynxValueError as err:
        raise err.renamed("--blocks") from None
    return None if blocks is None else list(blocks)


def flag_of(field: Optional[str]) -> Optional[str]:
    """``num_inference_steps`` -> ``--num-inference-steps``."""
    return None if field is None else "--" + field.split(" ")[0].replace("_", "-") + field[len(field.split(" ")[0]):]


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
    """Print one line for a failure: the message for bad input (exit 2) and our own errors, the type too for
    anything else (exit 1). ``LYNX_EXT_DEBUG=1`` re-raises it (full traceback)."""
    import os

    if os.environ.get("LYNX_EXT_DEBUG"):
        raise err
    usage = is_usage_error(err) or type(err).__name__ == "MisconfigurationException"  # Lightning: a bad setting
    text = " ".join(str(err).split()) or type(err).__name__
    print(f"error: {text}" if usage or isinstance(err, LynxError) else f"error ({type(err).__name__}): {text}",
          file=sys.stderr)
    return 2 if usage else 1


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
