"""``manifest.csv`` of a folder of existing videos: which subject (and prompt) each video is scored against.

Columns ``video,subject,prompt`` (required; video paths relative to the folder; ``subject`` is the stem of a photo
in the subjects folder; a video may appear on several rows, one per subject) and optionally ``arm`` (the system
or run that made it, for side-by-side reports) and ``seed``.
"""
from __future__ import annotations

import csv
from pathlib import Path

from .cases import Case
from .strict_fields import DefinitionError

MANIFEST = "manifest.csv"
REQUIRED = ("video", "subject", "prompt")
OPTIONAL = ("arm", "seed")
DEFAULT_ARM = "videos"


def read_manifest(videos_dir: Path) -> list[Case]:
    """The cases of ``videos_dir/manifest.csv`` in file order.

    Raises:
        DefinitionError: no manifest, missing or unknown columns, empty cells, a bad seed, a repeated row.
    """
    path = Path(videos_dir) / MANIFEST
    if not Path(videos_dir).is_dir():
        raise DefinitionError(f"Videos folder {videos_dir} does not exist.")
    if not path.is_file():
        raise DefinitionError(f"{path} is missing; write a CSV with the columns {','.join(REQUIRED)} "
                              f"(optional: {', '.join(OPTIONAL)}).")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED if c not in columns]
        if missing:
            raise DefinitionError(f"{path} has no column {missing[0]!r} (its columns: {', '.join(columns) or 'none'}; "
                                  f"required: {', '.join(REQUIRED)}).")
        unknown = [c for c in columns if c not in REQUIRED + OPTIONAL]
        if unknown:
            raise DefinitionError(f"{path}: unknown column {unknown[0]!r}; the columns are {', '.join(REQUIRED)} "
                                  f"and optionally {', '.join(OPTIONAL)}.")
        rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    if not rows:
        raise DefinitionError(f"{path} has no rows.")
    prompt_ids: dict[str, str] = {}
    cases, seen = [], {}
    for line, row in enumerate(rows, start=2):
        empty = [c for c in REQUIRED if not row.get(c)]
        if empty:
            raise DefinitionError(f"{path} line {line}: the {empty[0]!r} cell is empty.")
        seed = row.get("seed") or None
        if seed is not None:
            try:
                seed = int(seed)
            except ValueError:
                raise DefinitionError(f"{path} line {line}: seed {seed!r} is not an integer.") from None
        prompt_id = prompt_ids.setdefault(row["prompt"], f"p{len(prompt_ids) + 1:02d}")
        case = Case(arm=row.get("arm") or DEFAULT_ARM, subject=row["subject"], prompt_id=prompt_id,
                    prompt=row["prompt"], seed=seed, video=Path(row["video"]).as_posix())
        if case.id in seen:
            raise DefinitionError(f"{path} lines {seen[case.id]} and {line} both score {case.video} against "
                                  f"{case.subject}; remove one.")
        seen[case.id] = line
        cases.append(case)
    return cases
