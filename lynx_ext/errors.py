"""lynx-ext's own exceptions (layer 0): every error raised on purpose derives from `LynxError`.

Input errors (something the user gave cannot be used) derive from `LynxUsageError` and fall into four kinds:

    LynxError
    └── LynxUsageError (ValueError)          the CLI prints its one-line message and exits 2
        ├── LynxValueError                   an option or setting: out of range, not finite, wrong type, inconsistent
        ├── LynxFileError                    a file or folder: missing (LynxMissingFileError, also a
        │                                    FileNotFoundError), unreadable, unwritable, already there
        ├── LynxFormatError                  a file's content is not what was expected (the message says what it is)
        └── LynxCompatibilityError           valid inputs that do not fit each other, the model or the machine

Every message says what was wrong and what to do. The classes of the rooms (``LynxCheckpointError``,
``LynxInstallError``, ``EmbedderMismatchError``, ``DefinitionError``, ...) derive from these.
"""
from __future__ import annotations

import re
from typing import Callable, Optional


class LynxError(Exception):
    """Base of every error lynx-ext raises on purpose."""


class LynxUsageError(LynxError, ValueError):
    """Something the user gave (a value, a file, a combination) cannot be used; the message says what to do."""


class LynxValueError(LynxUsageError):
    """An option or setting is out of range, not finite, of the wrong type or inconsistent with another.

    Attributes:
        field: the setting's name as the raising code knows it (e.g. ``num_inference_steps``), or None.
        problem: the message without the name (so a caller can name the setting its own way, e.g. a CLI flag).
    """

    def __init__(self, message: str, field: Optional[str] = None, problem: Optional[str] = None,
                 others: tuple[str, ...] = ()):
        super().__init__(message)
        self.field = field
        self.problem = problem
        self.others = tuple(others)

    @classmethod
    def of(cls, field: str, problem: str, others: tuple[str, ...] = ()) -> "LynxValueError":
        """``"<field> <problem>"``, e.g. ``of("fps", "must be at least 1, got 0.")``; ``others``: the other settings
        ``problem`` names (a rule between settings), renamed with it."""
        return cls(f"{field} {problem}", field=field, problem=problem, others=others)

    def renamed(self, label: str, name: Optional[Callable[[str], str]] = None) -> "LynxValueError":
        """The same error naming the setting as ``label`` (a CLI flag, ``batch job 3: seed``, ...) and each of the
        other settings its message names as ``name(setting)`` (``cfg_scale`` -> ``--cfg-scale``)."""
        if self.problem is None:
            return self
        problem = self.problem
        for other in self.others if name is not None else ():
            problem = re.sub(rf"(?<![\w-]){re.escape(other)}(?![\w-])", name(other), problem)
        return type(self)(f"{label} {problem}", field=self.field, problem=self.problem, others=self.others)


class LynxFileError(LynxUsageError):
    """A file or folder is missing, unreadable or unwritable, or an output already exists."""


class LynxFormatError(LynxUsageError):
    """A file's content is not what was expected (damaged, truncated, another kind of file)."""


class LynxCompatibilityError(LynxUsageError):
    """Inputs that are valid alone do not fit each other, the model or the machine (e.g. an embedder's size and
    the adapters', a block index and the DiT, a requested device and the hardware)."""


class DeviceUnavailableError(LynxCompatibilityError):
    """The requested device is not on this machine (never silently replaced by another)."""


class LynxMissingFileError(LynxFileError, FileNotFoundError):
    """A file or folder the user named (or a run needs) is not there (also a `FileNotFoundError`)."""

    def __init__(self, message: str, *args):
        super().__init__(message)
        self.message = message

    def __new__(cls, *args, **kwargs):  # keep OSError from reading our arguments as (errno, strerror, ...)
        return FileNotFoundError.__new__(cls)

    def __str__(self) -> str:
        return self.message


class ModelFilesMissingError(LynxMissingFileError):
    """Model files are not on disk and cannot be downloaded now (offline, or downloads switched off).

    Attributes:
        missing: ``[(what, folder)]``: each missing file (or file pattern) and the folder it belongs in.
    """

    def __init__(self, message: str, missing: Optional[list[tuple[str, str]]] = None):
        super().__init__(message)
        self.missing = list(missing or [])


def is_usage_error(err: BaseException) -> bool:
    """Whether ``err`` is bad input (our usage errors, and the standard ones a command may see)."""
    return isinstance(err, (LynxUsageError, ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
                            IsADirectoryError, PermissionError, LookupError, UnicodeDecodeError))
