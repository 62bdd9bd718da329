"""``report.md``: the report's tables and pictures as Markdown."""
from __future__ import annotations

from .tables import Table, primary_label, report_tables


def _md_table(table: Table) -> list[str]:
    def cell(text: str, i: int, j: int) -> str:
        text = str(text).replace("|", "\\|").replace("\n", " ")
        link = table.links.get((i, j))
        return f"[{text}]({link})" if link and text else text

    lines = [f"## {table.title}", ""]
    if table.note:
        lines += [table.note, ""]
    lines += ["| " + " | ".join(table.header) + " |", "|" + "---|" * len(table.header)]
    lines += ["| " + " | ".join(cell(c, i, j) for j, c in enumerate(row)) + " |" for i, row in enumerate(table.rows)]
    return lines + [""]


def render_markdown(report: dict) -> str:
    bench = report.get("benchmark") or {}
    title = bench.get("name") or "videos"
    scoring = report["scoring"]
    progress = report["progress"]
    lines = [f"# Evaluation report: {title}", "",
             f"- mode: {report['mode']}; arms: {', '.join(report['arms'])}",
             f"- cases finished: {progress['cases_finished']} of "
             f"{progress['cases_planned'] or progress['cases_finished']}",
             f"- face detector: {scoring['detector']}" + (f" ({scoring['detector_note']})" if scoring['detector_note']
                                                          else ""),
             f"- frames scored per video: {scoring['frames'] or 'all'} (evenly spaced, see docs/evaluation.md)",
             f"- primary metric: {primary_label(report)}", ""]
    if report.get("standin"):
        lines[2:2] = [f"> **Stand-in models: not metrics.** {report['standin']['note']}", ""]
    skipped = report["subjects_skipped"]
    if skipped:
        lines += ["**Subjects skipped:** " + "; ".join(f"{s['subject']} ({s.get('reason', '')})" for s in skipped), ""]
    tables = report_tables(report)
    for table in tables[:-1]:
        lines += _md_table(table)
    assets = report["assets"]
    if assets["profiles"]:
        lines += ["## Similarity along the clip", ""]
        lines += [f"![{name}]({path})" for name, path in assets["profiles"].items()] + [""]
    if assets["contact_sheets"]:
        lines += ["## Best and worst cases", ""]
        for arm, path in assets["contact_sheets"].items():
            lines += [f"### {arm}", "", f"![best and worst cases of {arm}]({path})", ""]
    lines += _md_table(tables[-1])
    return "\n".join(lines)
