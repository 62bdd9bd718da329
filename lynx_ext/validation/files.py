"""Input files and folders: present, readable, decodable, and inside the folder they were given relative to."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ..errors import LynxFileError, LynxFormatError, LynxMissingFileError


def check_input_file(path, what: str) -> Path:
    """``path`` as a readable file (a `LynxFileError` naming ``what`` and the path otherwise)."""
    path = Path(os.path.expanduser(str(path)))
    if not path.exists():
        raise LynxMissingFileError(f"{what} {path} does not exist. Check the path.")
    if path.is_dir():
        raise LynxFileError(f"{what} {path} is a folder, not a file.")
    if not os.access(path, os.R_OK):
        raise LynxFileError(f"{what} {path} cannot be read (permission denied). Check its permissions.")
    return path


def check_input_folder(path, what: str) -> Path:
    """``path`` as an existing folder (a `LynxFileError` naming ``what`` and the path otherwise)."""
    path = Path(os.path.expanduser(str(path)))
    if not path.exists():
        raise LynxMissingFileError(f"{what} {path} does not exist. Check the path.")
    if not path.is_dir():
        raise LynxFileError(f"{what} {path} is a file, not a folder.")
    return path


def read_text_file(path, what: str) -> str:
    """A UTF-8 text file (a byte-order mark is allowed); any other encoding is an error naming the file."""
    path = check_input_file(path, what)
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise LynxFormatError(
            f"{what} {path} is not UTF-8 text (byte 0x{data[err.start]:02x} at position {err.start} cannot be "
            "decoded). Save it as UTF-8, or pass the text itself.") from None


def is_inside(path, root) -> bool:
    """Whether ``path`` lies in the folder ``root``, judged on the written path (``..`` and absolute paths
    count; symbolic links the user placed inside ``root`` are allowed)."""
    full = os.path.abspath(os.path.expanduser(str(path)))
    base = os.path.abspath(os.path.expanduser(str(root)))
    return os.path.commonpath([full, base]) == base


def resolve_inside(path, root, what: str, hint: str = "") -> Path:
    """``path`` (relative paths are relative to ``root``) made absolute; a path leading outside ``root`` is refused."""
    root = Path(os.path.expanduser(str(root)))
    full = Path(os.path.abspath(root / os.path.expanduser(str(path))))
    if not is_inside(full, root):
        raise LynxFileError(f"{what} {path} points outside {root} (to {full}); a file listed there must lie "
                            f"inside it.{(' ' + hint) if hint else ''}")
    return full


def load_cached_array(path, what: str, rows: Optional[int] = None, dim: Optional[int] = None, todo: str = ""):
    """A float ``[K, D]`` ``.npy`` array written by lynx-ext, read without unpickling; damage is a
    `LynxFormatError` naming the file (``rows``: the expected K, ``dim``: the expected D; ``todo``: the remedy)."""
    import numpy as np

    path = check_input_file(path, what)
    todo = f" {todo}" if todo else ""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise LynxFormatError(f"{what} {path} is damaged or not a NumPy .npy array "
                              f"({str(err).splitlines()[0] if str(err) else type(err).__name__}).{todo}") from None
    if array.dtype.kind != "f" or array.ndim != 2 or array.shape[0] < 1 or (dim is not None and array.shape[1] != dim):
        want = f"[K, {dim}]" if dim is not None else "[K, D]"
        raise LynxFormatError(f"{what} {path} holds a {array.dtype} array of shape {list(array.shape)}, expected "
                              f"float {want}.{todo}")
    if rows is not None and array.shape[0] != rows:
        raise LynxFormatError(f"{what} {path} holds {array.shape[0]} embeddings, expected {rows}.{todo}")
    if not np.isfinite(array).all():
        raise LynxFormatError(f"{what} {path} holds NaN or infinite values.{todo}")
    return array
