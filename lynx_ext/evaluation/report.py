"""The report of an output folder: ``report.json`` (schema ``lynx-ext/eval-report/1``, strict JSON),
``report.md`` and ``report.html`` (static, opens from disk) with plots and contact sheets in ``assets/``.

Built from whatever case results the folder holds (all shards), so it can be rebuilt at any time.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from ..atomic_write import atomic_path, write_text_atomic
from ..outputs import dumps_strict
from .aggregate import compare_arms, primary_column, standin_columns, summarize_rows
from .stats import MIN_EFFECT
from .cases import slug_of
from .results import load_results

SCHEMA = "lynx-ext/eval-report/1"
RUN_FILE = "run.json"
STANDIN_NOTE = ("Stand-in face models (tiny random ONNX files, not face models) scored the columns marked "
                "'stand-in': their numbers test the plumbing of the protocol; they are not face similarity, not the "
                "paper's scores, and no difference between them is an effect.")
ASSETS = "assets"


def read_run(output: Path) -> dict:
    path = Path(output) / RUN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{output} holds no evaluation ({RUN_FILE} is missing); run the evaluation first.")
    return json.loads(path.read_text(encoding="utf-8"))


def build_report(output: Path) -> dict:
    """The report dictionary (without assets) from ``run.json`` and every result in ``output``."""
    output = Path(output)
    run = read_run(output)
    rows = load_results(output)
    arms = list(run.get("arms") or [])
    arms += sorted({r["arm"] for r in rows} - set(arms))
    arms = [a for a in arms if any(r["arm"] == a for r in rows)] or arms
    scoring = run["scoring"]
    samples, confidence = scoring["bootstrap_samples"], scoring["confidence"]
    summary = summarize_rows(rows, arms, samples, confidence)
    planned = run.get("cases_planned", [])
    finished = {r["case_id"] for r in rows}
    video_root = Path(run["video_root"])
    min_effect = scoring.setdefault("min_effect", MIN_EFFECT)  # runs stored before it existed: the default
    standin = standin_columns(summary["columns"], scoring)
    return {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "lynx_ext_version": _version(),
        "mode": run["mode"],
        "benchmark": run.get("benchmark"),
        "source": run.get("source"),
        "arms": arms,
        "prompts": run.get("prompts", {}),
        "scoring": scoring,
        "recognisers": {"available": scoring["available"], "unavailable": scoring["unavailable"]},
        "subjects": run.get("subjects", []),
        "subjects_skipped": [s for s in run.get("subjects", []) if s["status"] != "ok"],
        "progress": {"cases_planned": len(planned), "cases_finished": len(finished & set(planned)) if planned
                     else len(finished), "cases_missing": [c for c in planned if c not in finished]},
        "video_root": str(video_root),
        "video_root_href": Path(os.path.relpath(video_root, output)).as_posix(),
        "primary_metric": primary_column(summary, scoring.get("primary")),
        "standin": {"columns": standin, "detector": bool(scoring.get("detector_standin")), "note": STANDIN_NOTE}
        if standin else None,
        "cases": rows,
        "summary": summary,
        "comparison": compare_arms(rows, arms, scoring.get("baseline"), samples, confidence, min_effect, standin),
    }


def write_reports(output: Path, contact_sheets: bool = True) -> dict[str, Path]:
    """Build the report and write JSON, Markdown, HTML and the assets; returns their paths."""
    from .contact_sheet import best_worst_sheet
    from .plots import case_plot_svg, clip_profile, line_plot_svg
    from .report_html import render_html
    from .report_markdown import render_markdown

    output = Path(output)
    report = build_report(output)
    report["assets"] = {"case_plots": {}, "profiles": {}, "contact_sheets": {}}
    for row in report["cases"]:
        if any(v is not None for v in (row.get("per_frame") or {}).values()):
            rel = f"{ASSETS}/cases/{slug_of(row['case_id'])}.svg"
            write_text_atomic(output / rel, case_plot_svg(row))
            report["assets"]["case_plots"][row["case_id"]] = rel
    for column in report["summary"]["columns"]:
        if not column.startswith("face_similarity/"):
            continue
        name = column.split("/", 1)[1]
        series = {arm: clip_profile([r for r in report["cases"] if r["arm"] == arm], name) for arm in report["arms"]}
        if any(v is not None for pts in series.values() for _, v in pts):
            rel = f"{ASSETS}/profile_{name}.svg"
            standin = column in ((report.get("standin") or {}).get("columns") or [])
            title = f"{name}{' (stand-in: not a metric)' if standin else ''}: mean similarity along the clip"
            write_text_atomic(output / rel, line_plot_svg(series, title,
                                                          x_label="position in the clip (%)", x_range=(0, 100)))
            report["assets"]["profiles"][name] = rel
    primary = report["primary_metric"]
    if contact_sheets and primary:
        subject_files = {s["subject"]: s.get("file") for s in report["subjects"]}
        count = report["scoring"].get("contact_sheet_cases", 4)
        for i, arm in enumerate(report["arms"]):
            rows = [r for r in report["cases"] if r["arm"] == arm and r["status"] == "ok"]
            sheet = best_worst_sheet(rows, primary, Path(report["video_root"]), subject_files, count,
                                     standin=primary in ((report.get("standin") or {}).get("columns") or []))
            if sheet is not None:
                rel = f"{ASSETS}/contact_sheet_{i:02d}.png"
                with atomic_path(output / rel) as tmp:
                    sheet.save(tmp, format="PNG")
                report["assets"]["contact_sheets"][arm] = rel
    paths = {"json": output / "report.json", "markdown": output / "report.md", "html": output / "report.html"}
    write_text_atomic(paths["json"], dumps_strict(report))
    write_text_atomic(paths["markdown"], render_markdown(report))
    write_text_atomic(paths["html"], render_html(report))
    return paths


def _version() -> str:
    from .. import __version__

    return __version__
