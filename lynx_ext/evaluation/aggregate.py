"""From case rows to the report's summaries: overall, per subject, per prompt, spread over seeds, arm comparison.

A row's numbers are its *columns*: ``face_similarity/<recogniser>``, ``temporal_consistency/<recogniser>`` and, for
other metrics, ``<metric>`` (its value) and ``<metric>/<name>`` (its extras).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Optional, Sequence

import numpy as np

from .stats import MIN_EFFECT, finite, paired_difference, summarize

FAILED = ("unreadable", "generation_failed")


def row_columns(row: dict) -> dict[str, Optional[float]]:
    out: dict[str, Optional[float]] = {}
    for name, value in row.get("face_similarity", {}).items():
        out[f"face_similarity/{name}"] = value
    for name, value in row.get("temporal_consistency", {}).items():
        out[f"temporal_consistency/{name}"] = value
    for name, result in row.get("metrics", {}).items():
        if result.get("value") is not None:
            out[name] = result["value"]
        for key, value in (result.get("extras") or {}).items():
            out[f"{name}/{key}"] = value
    return out


def column_names(rows: Sequence[dict]) -> list[str]:
    """Columns in first-seen order; face-similarity columns first."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row_columns(row):
            seen.setdefault(key, None)
    return sorted(seen, key=lambda c: (not c.startswith("face_similarity/"), not c.startswith("temporal_"),
                                       list(seen).index(c)))


def group_key(row: dict) -> str:
    """What rows are paired on across arms."""
    return f"{row['subject']}/{row['prompt_id']}/{row.get('seed')}"


def summarize_rows(rows: Sequence[dict], arms: Sequence[str], samples: int = 1000, confidence: float = 0.95) -> dict:
    columns = column_names(rows)
    by_arm = {arm: [r for r in rows if r["arm"] == arm] for arm in arms}

    def stats(subset: list[dict]) -> dict:
        values = [row_columns(r) for r in subset]
        return {c: summarize([v.get(c) for v in values], samples, confidence) for c in columns}

    def by(field: str, subset: list[dict]) -> dict:
        groups: dict[str, list] = defaultdict(list)
        for row in subset:
            groups[str(row[field])].append(row)
        return {key: stats(group) for key, group in sorted(groups.items())}

    summary = {"columns": columns, "overall": {}, "per_subject": {}, "per_prompt": {}, "seed_spread": {},
               "counts": {}, "no_face_cases": {}, "failed_cases": {}}
    for arm, subset in by_arm.items():
        summary["overall"][arm] = stats(subset)
        summary["per_subject"][arm] = by("subject", subset)
        summary["per_prompt"][arm] = by("prompt_id", subset)
        summary["seed_spread"][arm] = seed_spread(subset, columns)
        statuses = [r.get("status") for r in subset]
        summary["counts"][arm] = {"cases": len(subset), **{s: statuses.count(s) for s in
                                                            ("ok", "no_face", "unreadable", "generation_failed")}}
        summary["no_face_cases"][arm] = [r["case_id"] for r in subset if r.get("status") == "no_face"]
        summary["failed_cases"][arm] = [{"case_id": r["case_id"], "status": r["status"], "error": r.get("error")}
                                        for r in subset if r.get("status") in FAILED]
    return summary


def seed_spread(rows: Sequence[dict], columns: Sequence[str]) -> dict:
    """Per column: the standard deviation over seeds of each (subject, prompt) with >= 2 seeds scored, averaged."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[f"{row['subject']}/{row['prompt_id']}"].append(row_columns(row))
    out = {}
    for column in columns:
        stds = [float(np.std(v, ddof=1)) for v in (finite([g.get(column) for g in group]) for group in groups.values())
                if v.size >= 2]
        out[column] = {"groups": len(stds), "mean_std": float(np.mean(stds)) if stds else None,
                       "max_std": float(np.max(stds)) if stds else None}
    return out


def compare_arms(rows: Sequence[dict], arms: Sequence[str], baseline: Optional[str], samples: int = 1000,
                 confidence: float = 0.95, min_effect: float = MIN_EFFECT,
                 standin_columns: Sequence[str] = ()) -> dict:
    """Every other arm against ``baseline`` (default: the first arm), paired on subject, prompt and seed.

    A column in ``standin_columns`` (scored with a stand-in model) gets ``standin: true`` and no verdict
    (``exceeds_noise`` None): a stand-in's difference is no effect."""
    if len(arms) < 2:
        return {"baseline": None, "rows": []}
    baseline = baseline or arms[0]
    columns = column_names(rows)
    values = {arm: {group_key(r): row_columns(r) for r in rows if r["arm"] == arm} for arm in arms}
    out = []
    for arm in arms:
        if arm == baseline:
            continue
        for column in columns:
            base = {k: v.get(column) for k, v in values[baseline].items()}
            other = {k: v.get(column) for k, v in values[arm].items()}
            row = {"arm": arm, "metric": column, **paired_difference(base, other, samples, confidence, min_effect)}
            if column in standin_columns:
                row.update(exceeds_noise=None, standin=True)
            out.append(row)
    return {"baseline": baseline, "rows": out}


def standin_columns(columns: Sequence[str], scoring: dict) -> list[str]:
    """The columns a stand-in model produced: every face column when the detector was a stand-in (its boxes are
    fixed, not found), else those of stand-in recognisers."""
    faces = [c for c in columns if c.startswith(("face_similarity/", "temporal_consistency/"))]
    if scoring.get("detector_standin"):
        return faces
    names = {m["name"] for m in scoring.get("available", []) if m.get("standin")}
    return [c for c in faces if c.split("/", 1)[1] in names]


def primary_column(summary: dict, preferred: Optional[str] = None) -> Optional[str]:
    """The column ranking best/worst cases: ``preferred`` (a column or metric name) or the first face-similarity
    column with any value."""
    columns = summary["columns"]
    if preferred:
        for candidate in (preferred, f"face_similarity/{preferred}"):
            if candidate in columns:
                return candidate
    for column in columns:
        if column.startswith("face_similarity/") and any(
                s[column]["n"] for s in summary["overall"].values()):
            return column
    return None
