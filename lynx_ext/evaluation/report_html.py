"""``report.html``: one static page (no scripts, no server) with the tables, plots and contact sheets; the images
sit beside it in ``assets/``, so the folder can be zipped and opened anywhere."""
from __future__ import annotations

from html import escape

from .aggregate import row_columns
from .tables import Table, primary_label, report_tables

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1300px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f3f3}tr:nth-child(even) td{background:#fafafa}
.note{color:#555;font-size:13px}
.standin{background:#fff3cd;border:1px solid #e0b000;padding:8px 12px;font-size:14px}
.yes{color:#0a7d20;font-weight:bold}.no{color:#888}
.plots img{margin:4px;border:1px solid #eee}.sheet img{max-width:100%;border:1px solid #ddd}
"""


def _html_table(table: Table) -> str:
    out = [f'<h2 id="{table.key}">{escape(table.title)}</h2>']
    if table.note:
        out.append(f'<p class="note">{escape(table.note)}</p>')
    out.append(f'<table class="report-table" data-table="{table.key}"><thead><tr>')
    out += [f"<th>{escape(h)}</th>" for h in table.header]
    out.append("</tr></thead><tbody>")
    for i, row in enumerate(table.rows):
        cells = []
        for j, text in enumerate(row):
            link = table.links.get((i, j))
            body = f'<a href="{escape(link)}">{escape(text)}</a>' if link and text else escape(text)
            cls = ' class="yes"' if text == "yes" else ' class="no"' if text == "no" else ""
            cells.append(f"<td{cls}>{body}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def render_html(report: dict) -> str:
    bench = report.get("benchmark") or {}
    title = f"Evaluation report: {bench.get('name') or 'videos'}"
    scoring, progress = report["scoring"], report["progress"]
    facts = [
        f"mode: {report['mode']}; arms: {', '.join(report['arms'])}",
        f"cases finished: {progress['cases_finished']} of {progress['cases_planned'] or progress['cases_finished']}",
        f"face detector: {scoring['detector']}" + (f" ({scoring['detector_note']})" if scoring["detector_note"]
                                                   else ""),
        f"frames scored per video: {scoring['frames'] or 'all'}, evenly spaced",
        f"primary metric: {primary_label(report)}; intervals: {scoring['confidence']:.0%} bootstrap "
        f"({scoring['bootstrap_samples']} resamples of cases)",
    ]
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{escape(title)}</title>",
             f"<style>{STYLE}</style></head><body>", f"<h1>{escape(title)}</h1>", "<ul>"]
    if report.get("standin"):
        parts.insert(len(parts) - 1, f'<p class="standin"><b>Stand-in models: not metrics.</b> '
                     f'{escape(report["standin"]["note"])}</p>')
    parts += [f"<li>{escape(f)}</li>" for f in facts] + ["</ul>"]
    if report["subjects_skipped"]:
        skipped = "; ".join(f"{s['subject']} ({s.get('reason', '')})" for s in report["subjects_skipped"])
        parts.append(f'<p class="note"><b>Subjects skipped:</b> {escape(skipped)}</p>')
    tables = report_tables(report)
    parts += [_html_table(t) for t in tables[:-1]]
    assets = report["assets"]
    if assets["profiles"]:
        parts.append('<h2 id="profiles">Similarity along the clip</h2><div class="plots">')
        parts += [f'<img class="plot" src="{escape(p)}" alt="{escape(n)} along the clip">'
                  for n, p in assets["profiles"].items()]
        parts.append("</div>")
    if assets["contact_sheets"]:
        parts.append('<h2 id="contact-sheets">Best and worst cases</h2>')
        primary = report.get("primary_metric")
        for arm, path in assets["contact_sheets"].items():
            parts.append(f'<h3>{escape(arm)}</h3><div class="sheet"><img class="contact-sheet" src="{escape(path)}" '
                         f'alt="best and worst cases of {escape(arm)}"></div>')
            scored = [(row_columns(r).get(primary), r) for r in report["cases"] if r["arm"] == arm]
            ranked = [r for v, r in sorted((vr for vr in scored if vr[0] is not None), key=lambda vr: -vr[0])]
            chosen = ranked[:2] + ranked[-2:] if len(ranked) > 4 else ranked
            plots = [assets["case_plots"][r["case_id"]] for r in chosen if r["case_id"] in assets["case_plots"]]
            parts.append('<div class="plots">' + "".join(f'<img class="plot" src="{escape(p)}" alt="per-frame '
                                                         f'similarity">' for p in plots) + "</div>")
    parts.append(_html_table(tables[-1]))
    parts.append('<p class="note">Schema lynx-ext/eval-report/1; the numbers are in report.json.</p></body></html>')
    return "\n".join(parts)
