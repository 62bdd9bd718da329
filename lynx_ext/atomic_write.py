"""Atomic file writes: a reader never sees a half-written output or checkpoint."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path`` in one step.

    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True (CLI: --overwrite) to replace it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600 files; give outputs the usual mode
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str, overwrite: bool = True) -> Path:
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes, overwrite: bool = True) -> Path:
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(path)


@contextlib.contextmanager
def atomic_folder(folder: str | os.PathLike, names: list[str], overwrite: bool = False,
                  remove: tuple[str, ...] | list[str] = ()) -> Iterator[Path]:
    """Yield a temporary folder beside ``folder``; write ``names`` into it; on success they move into ``folder``.

    A new ``folder`` appears in one rename; into an existing one each file is renamed into place. ``remove``
    names files that must not stay beside the new ones (deleted on success). Existing ``names`` or ``remove``
    files are refused unless ``overwrite``, before anything is written. On any exception nothing changes.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} exists and is not a folder.")
    clashes = [n for n in list(names) + list(remove) if (folder / n).exists()]
    if clashes and not overwrite:
        raise FileExistsError(f"{folder} already holds {', '.join(clashes)}; pass overwrite=True (CLI: --overwrite) "
                              "to replace them.")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        yield tmp
        missing = [n for n in names if not (tmp / n).is_file()]
        if missing:
            raise RuntimeError(f"atomic_folder: {', '.join(missing)} were not written.")
        for n in names:
            os.chmod(tmp / n, 0o666 & ~_umask())
        if not folder.exists():
            os.chmod(tmp, 0o777 & ~_umask())
            os.replace(tmp, folder)
            return
        for n in names:
            os.replace(tmp / n, folder / n)
        for n in remove:
            if (folder / n).exists():
                (folder / n).unlink()
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
