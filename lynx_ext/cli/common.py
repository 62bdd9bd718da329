"""Small helpers shared by the ``diffsynth-ext`` commands."""
from __future__ import annotations

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
