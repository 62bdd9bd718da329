"""One result file per finished case (``OUTPUT/results/<case>.json``), written atomically.

A run that is killed loses at most the case in flight; the next run reads what is there and skips it. Shards
write into the same folder (or folders that are copied together): every case has its own file.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from ..atomic_write import write_text_atomic
from ..outputs import dumps_strict
from .cases import Case

RESULTS_DIR = "results"


def result_path(output: Path, case: Case) -> Path:
    return Path(output) / RESULTS_DIR / f"{case.slug}.json"


def write_result(output: Path, case: Case, row: dict) -> Path:
    return write_text_atomic(result_path(output, case), dumps_strict(row))


def read_result(path: Path) -> Optional[dict]:
    """The stored row, or None when the file is absent or not a result (e.g. edited by hand into invalid JSON)."""
    try:
        row = json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return row if isinstance(row, dict) and "case_id" in row else None


def load_results(output: Path) -> list[dict]:
    """Every finished case in ``output`` (all shards), sorted by case id."""
    folder = Path(output) / RESULTS_DIR
    rows = [read_result(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return sorted((r for r in rows if r is not None), key=lambda r: r["case_id"])


def plan_resume(output: Path, cases: list[Case], keys: dict[str, str], scoring_key: str,
                changed_input_is_error: bool) -> tuple[list[Case], list[Case], list[Case]]:
    """Split ``cases`` into (to run, to re-score, finished) from the results already in ``output``.

    A stored result whose input key differs from ``keys[case.id]`` was made from other inputs: with
    ``changed_input_is_error`` (generated videos) that is an error, otherwise (existing videos) it is re-scored. A
    result scored with another detector or recogniser set is re-scored.
    """
    from .strict_fields import DefinitionError

    todo, rescore, done = [], [], []
    for case in cases:
        path = result_path(output, case)
        row = read_result(path)
        if row is None:
            todo.append(case)
        elif row.get("input_key") != keys[case.id]:
            if changed_input_is_error:
                raise DefinitionError(
                    f"{output} already holds a result for {case.id} made with other settings or another subject "
                    f"photo ({path}). Use another --output, or delete that file to redo the case.")
            rescore.append(case)
        elif row.get("scoring_key") != scoring_key:
            rescore.append(case)
        else:
            done.append(case)
    return todo, rescore, done
