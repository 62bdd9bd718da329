"""Input files and folders: present, readable, decodable, and inside the folder they were given relative to."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ..errors import LynxFileError, LynxFormatError


def check_input_file(path, what: str) -> Path:
    """``path`` as a readable file (a `LynxFileError` naming ``what`` and the path otherwise)."""
    path = Path(os.path.expanduser(str(path)))
    if not path.exists():
        raise LynxFileError(f"{what} {path} does not exist. Check the path.")
    if path.is_dir():
        raise LynxFileError(f"{what} {path} is a folder, not a file.")
    if not os.access(path, os.R_OK):
        raise LynxFileError(f"{what} {path} cannot be read (permission denied). Check its permissions.")
    return path


def check_input_folder(path, what: str) -> Path:
    """``path`` as an existing folder (a `LynxFileError` naming ``what`` and the path otherwise)."""
    path = Path(os.path.expanduser(str(path)))
    if not path.exists():
        raise LynxFileError(f"{what} {path} does not exist. Check the path.")
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
    """Whether ``path`` (resolved, symbolic links followed) lies in the folder ``root``."""
    try:
        Path(path).resolve().relative_to(Path(root).resolve())
        return True
    except ValueError:
        return False


def resolve_inside(path, root, what: str, hint: str = "") -> Path:
    """``path`` (relative paths are relative to ``root``) resolved; a path leading outside ``root`` is refused."""
    root = Path(root)
    full = (root / Path(path)).resolve() if not Path(path).is_absolute() else Path(path).resolve()
    if not is_inside(full, root):
        raise LynxFileError(f"{what} {path} points outside {root} (to {full}); a file listed there must lie "
                            f"inside it.{(' ' + hint) if hint else ''}")
    return full


def load_cached_array(path, what: str, rows: Optional[int] = None, dim: Optional[int] = None):
    """A float ``.npy`` array written by lynx-ext, read without unpickling; damage is a `LynxFormatError`
    naming the file (``dim``: the expected last dimension)."""
    import numpy as np

    path = check_input_file(path, what)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise LynxFormatError(f"{what} {path} is damaged or not a NumPy .npy array ({str(err).splitlines()[0]}).")
    if array.dtype.kind != "f" or array.ndim != 2 or array.shape[0] < 1 or (dim is not None and array.shape[1] != dim):
        want = f"[K, {dim}]" if dim is not None else "[K, D]"
        raise LynxFormatError(f"{what} {path} holds a {array.dtype} array of shape {list(array.shape)}, expected "
                              f"float {want}.")
    if rows is not None and array.shape[0] != rows:
        raise LynxFormatError(f"{what} {path} holds {array.shape[0]} embeddings, expected {rows}.")
    if not np.isfinite(array).all():
        raise LynxFormatError(f"{what} {path} holds NaN or infinite values.")
    return array
