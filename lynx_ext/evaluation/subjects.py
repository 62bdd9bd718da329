"""The subjects folder: one photo per subject, named by its file stem."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from .strict_fields import DefinitionError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


def find_subject_images(folder: str | os.PathLike) -> dict[str, Path]:
    """``{stem: path}`` of the images in ``folder`` (not recursive), sorted by stem.

    Raises:
        DefinitionError: the folder is missing or has no images, or two images share a stem (or a file name
        after unsafe characters are replaced).
    """
    folder = Path(os.path.expanduser(str(folder)))
    if not folder.is_dir():
        raise DefinitionError(f"Subjects folder {folder} does not exist; pass a folder of face photos (--subjects).")
    found: dict[str, Path] = {}
    safe: dict[str, str] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith("."):
            continue
        if path.stem in found:
            raise DefinitionError(f"Subjects {found[path.stem].name} and {path.name} share the name {path.stem!r}; "
                                  "keep one photo per subject.")
        key = safe_name(path.stem)
        if key in safe:
            raise DefinitionError(f"Subjects {safe[key]!r} and {path.stem!r} differ only in characters that cannot "
                                  "go into file names; rename one.")
        found[path.stem], safe[key] = path, path.stem
    if not found:
        raise DefinitionError(f"Subjects folder {folder} has no images ({', '.join(IMAGE_SUFFIXES)}).")
    return found


def safe_name(text: str) -> str:
    """``text`` with every character outside ``A-Za-z0-9._=,+-`` replaced by ``_`` (for file names)."""
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a (small) file, to notice a subject photo that changed between runs."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
