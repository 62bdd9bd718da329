"""The training dataset format: a folder plus ``metadata.csv`` or ``metadata.jsonl``, one row per sample.

Columns (header names are matched case-insensitively; aliases in brackets):

- media [``video`` | ``image`` | ``media``]: path of a video or an image, relative to the dataset folder. Several
  media columns may coexist (e.g. ``video`` and ``image`` in a mixed dataset); each row fills exactly one.
- caption [``prompt`` | ``caption``]: the text prompt.
- ``id_image`` (optional): identity image path(s), ``|``-separated (a JSON list in ``.jsonl``). When empty, the
  media itself (an image) or its middle frame (a video) is the identity image.
- ``identity`` (optional): a person label, used to pair identity images across samples of the same person.

Row-level problems (an empty caption, a missing file) are not raised here: `prepare_dataset` reports them as bad
rows. Problems with the file itself (no metadata, unknown or missing columns, broken JSON) raise `DatasetError`.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ...conditioners.errors import LynxInputError

METADATA_NAMES = ("metadata.csv", "metadata.jsonl")
MEDIA_COLUMNS = ("video", "image", "media")
CAPTION_COLUMNS = ("prompt", "caption")
ID_IMAGE_COLUMNS = ("id_image",)
IDENTITY_COLUMNS = ("identity",)
ID_IMAGE_SEPARATOR = "|"
KNOWN_COLUMNS = MEDIA_COLUMNS + CAPTION_COLUMNS + ID_IMAGE_COLUMNS + IDENTITY_COLUMNS


class DatasetError(LynxInputError):
    """The dataset folder or its metadata file cannot be used; the message says what to change."""


@dataclass
class MetadataRow:
    """One metadata row, with paths made absolute against the dataset folder.

    ``media`` is None when the row names no media; ``media_column`` is the column it came from.
    """

    index: int  # 0-based position among the data rows
    id: str
    media: Optional[Path]
    media_column: str
    prompt: str
    id_images: list[Path] = field(default_factory=list)
    identity: Optional[str] = None
    problem: Optional[str] = None  # a row-level defect found while parsing (e.g. two media columns filled)


def row_id(index: int, media: str) -> str:
    """Stable id of a row: its index and a short hash of its media path as written in the metadata."""
    digest = hashlib.sha1(media.replace("\\", "/").encode("utf-8")).hexdigest()[:8]
    return f"{index:06d}_{digest}"


def find_metadata(dataset_dir: str | os.PathLike, metadata: str | os.PathLike | None = None) -> Path:
    """The metadata file: ``metadata`` if given (absolute, relative to the cwd, or to the dataset folder), else the
    folder's ``metadata.csv`` or ``metadata.jsonl``.

    Raises:
        DatasetError: the folder or the file is missing, both default files exist, or the suffix is unknown.
    """
    folder = Path(os.path.expanduser(str(dataset_dir)))
    if not folder.is_dir():
        raise DatasetError(f"Dataset folder {folder} does not exist (or is not a folder). Pass the folder that "
                           "holds metadata.csv / metadata.jsonl and the media.")
    if metadata is not None:
        path = Path(os.path.expanduser(str(metadata)))
        if not path.is_file() and not path.is_absolute() and (folder / path).is_file():
            path = folder / path
        if not path.is_file():
            raise DatasetError(f"Metadata file {metadata} does not exist (looked in the current folder and in "
                               f"{folder}).")
        if path.suffix.lower() not in (".csv", ".jsonl"):
            raise DatasetError(f"Metadata file {path} must be .csv or .jsonl (got {path.suffix or 'no suffix'!r}).")
        return path
    found = [folder / name for name in METADATA_NAMES if (folder / name).is_file()]
    if not found:
        raise DatasetError(f"No metadata.csv or metadata.jsonl in {folder}. Create one (columns: video|image|media, "
                           "prompt|caption, optional id_image, identity) or pass --metadata FILE.")
    if len(found) > 1:
        raise DatasetError(f"{folder} holds both metadata.csv and metadata.jsonl; pass --metadata to choose one.")
    return found[0]


def read_metadata(dataset_dir: str | os.PathLike, metadata: str | os.PathLike | None = None) -> list[MetadataRow]:
    """Parse the dataset's metadata into `MetadataRow` objects (see the module docstring for the columns).

    Raises:
        DatasetError: no metadata, unknown / missing / ambiguous columns, unparsable file.
    """
    folder = Path(os.path.expanduser(str(dataset_dir)))
    path = find_metadata(folder, metadata)
    jsonl = path.suffix.lower() == ".jsonl"
    records = _read_jsonl(path) if jsonl else _read_csv(path)
    if not records:  # before the columns: a file without rows has no columns to check either
        raise DatasetError(
            f"{path} has no rows; add one JSON object per video or image, e.g. "
            '{"video": "clips/a.mp4", "prompt": "A woman walks in the rain"}.' if jsonl else
            f"{path} has a header but no rows; add one row per video or image under it, e.g. "
            "'clips/a.mp4,A woman walks in the rain' under 'video,prompt'.")
    columns = list(dict.fromkeys(key for record in records for key in record))
    media_cols, caption_col = _check_columns(columns, path)
    id_col = next((c for c in ID_IMAGE_COLUMNS if c in columns), None)
    identity_col = next((c for c in IDENTITY_COLUMNS if c in columns), None)
    rows = []
    for index, record in enumerate(records):
        filled = [(c, _text(record.get(c))) for c in media_cols if _text(record.get(c))]
        column, media = filled[0] if filled else (media_cols[0], "")
        problem = None
        if len(filled) > 1:
            problem = f"several media columns are filled ({', '.join(c for c, _ in filled)}); fill exactly one"
        id_images = [folder / p for p in _split_paths(record.get(id_col))] if id_col else []
        identity = _text(record.get(identity_col)) if identity_col else ""
        rows.append(MetadataRow(
            index=index, id=row_id(index, media), media=_abs(folder / media) if media else None,
            media_column=column, prompt=_text(record.get(caption_col)), id_images=[_abs(p) for p in id_images],
            identity=identity or None, problem=problem,
        ))
    return rows


def _check_columns(columns: list[str], path: Path) -> tuple[list[str], str]:
    unknown = [c for c in columns if c not in KNOWN_COLUMNS]
    if unknown:
        raise DatasetError(
            f"{path}: unknown column(s) {', '.join(repr(c) for c in unknown)}. Accepted: media = "
            f"{' | '.join(MEDIA_COLUMNS)}; caption = {' | '.join(CAPTION_COLUMNS)}; optional "
            f"{', '.join(ID_IMAGE_COLUMNS + IDENTITY_COLUMNS)}. Rename or remove the column."
        )
    media_cols = [c for c in MEDIA_COLUMNS if c in columns]
    if not media_cols:
        raise DatasetError(f"{path}: no media column; add one named {' | '.join(MEDIA_COLUMNS)} "
                           "(a video or image path relative to the dataset folder).")
    captions = [c for c in CAPTION_COLUMNS if c in columns]
    if not captions:
        raise DatasetError(f"{path}: no caption column; add one named {' | '.join(CAPTION_COLUMNS)}.")
    if len(captions) > 1:
        raise DatasetError(f"{path}: both {' and '.join(captions)} columns are present; keep one caption column.")
    return media_cols, captions[0]


def _read_csv(path: Path) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                raise DatasetError(f"{path} is empty; it needs a header row (e.g. video,prompt) and data rows.")
            names = [h.strip().lower() for h in header]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise DatasetError(f"{path}: column(s) {', '.join(map(repr, dupes))} appear more than once.")
            if "" in names:
                raise DatasetError(f"{path}: column {names.index('') + 1} of the header has no name.")
            records = []
            for line in reader:
                if not any(cell.strip() for cell in line):
                    continue  # blank line
                if len(line) > len(names):
                    raise DatasetError(f"{path}, line {reader.line_num}: {len(line)} cells but the header has "
                                       f"{len(names)} columns; quote cells that contain commas.")
                records.append(dict(zip(names, line)))
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path} is not UTF-8 text ({err}); re-save it as UTF-8.") from err
    except csv.Error as err:
        raise DatasetError(f"{path} is not valid CSV ({err}).") from err
    return records


def _read_jsonl(path: Path) -> list[dict]:
    records = []
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path} is not UTF-8 text ({err}); re-save it as UTF-8.") from err
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DatasetError(f"{path}, line {number}: not valid JSON ({err.msg}). Each line must be one JSON "
                               "object.") from err
        if not isinstance(record, dict):
            raise DatasetError(f"{path}, line {number}: expected a JSON object, got {type(record).__name__}.")
        lowered = {str(k).strip().lower(): v for k, v in record.items()}
        if len(lowered) != len(record):
            raise DatasetError(f"{path}, line {number}: keys differ only in case; keep one of them.")
        records.append(lowered)
    return records


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _split_paths(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else str(value).split(ID_IMAGE_SEPARATOR)
    return [str(p).strip() for p in items if str(p).strip()]


def _abs(path: Path) -> Path:
    return Path(os.path.abspath(path))  # normalised, symlinks kept as given
