"""The report's tables (title, header, rows of text), shared by the Markdown and HTML writers."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

CI_LABEL = "CI"


@dataclass
class Table:
    key: str
    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""
    links: dict[tuple[int, int], str] = field(default_factory=dict)  # (row, column) -> relative link


def fmt(value: Optional[float], digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def fmt_ci(stats: dict) -> str:
    return "–" if stats.get("ci_low") is None else f"[{stats['ci_low']:.3f}, {stats['ci_high']:.3f}]"


def fmt_cell(stats: Optional[dict]) -> str:
    if not stats or stats.get("mean") is None:
        return "–"
    return f"{stats['mean']:.3f} {fmt_ci(stats)} (n={stats['n']})"


STANDIN_LABEL = " (stand-in)"


def primary_label(report: dict) -> str:
    """The primary metric's name, marked when a stand-in produced it."""
    primary = report.get("primary_metric")
    if not primary:
        return "–"
    return primary + (STANDIN_LABEL if primary in ((report.get("standin") or {}).get("columns") or []) else "")


def noise_rule(report: dict) -> str:
    """The rule behind "larger than noise", in words."""
    scoring = report["scoring"]
    return (f"'larger than noise' = the {scoring['confidence']:.0%} bootstrap interval of the difference excludes 0 "
            f"and the difference is at least {scoring.get('min_effect', 0.01):g} in size (scoring.min_effect, in the "
            "metric's units: cosine for face similarity)")


def report_tables(report: dict) -> list[Table]:
    summary, arms = report["summary"], report["arms"]
    columns = summary["columns"]
    level = f"{report['scoring']['confidence']:.0%} {CI_LABEL}"
    standin = set((report.get("standin") or {}).get("columns", []))

    def label(column: str) -> str:
        return column + (STANDIN_LABEL if column in standin else "")
    tables = []
    rows = []
    for arm in arms:
        for column in columns:
            s = summary["overall"][arm][column]
            rows.append([arm, label(column), str(s["n"]), str(s["n_missing"]), fmt(s["mean"]), fmt(s["std"]),
                         fmt_ci(s)])
    tables.append(Table("overall", "Overall", ["arm", "metric", "n", "no value", "mean", "std", level], rows,
                        "Case means over subjects x prompts x seeds; 'no value' counts cases with no face in any "
                        "scored frame or an unreadable video (never averaged as zero)."))
    if len(arms) > 1:
        tables.append(Table("side_by_side", "Side by side (means)", ["metric", *arms],
                            [[label(c), *[fmt_cell(summary["overall"][a][c]) for a in arms]] for c in columns]))
        comparison = report["comparison"]
        rows = [[r["arm"], label(r["metric"]), str(r["n_pairs"]), fmt(r["baseline_mean"]), fmt(r["mean"]),
                 fmt(r["difference"], 4), fmt_ci(r),
                 "n/a: stand-in" if r.get("standin") else
                 "–" if r["exceeds_noise"] is None else ("yes" if r["exceeds_noise"] else "no")]
                for r in comparison["rows"]]
        tables.append(Table("difference", f"Difference to the baseline arm ({comparison['baseline']})",
                            ["arm", "metric", "pairs", "baseline", "arm", "difference", f"{level} of difference",
                             "larger than noise"], rows,
                            f"Paired on subject, prompt and seed; {noise_rule(report)}."))
    counts = [[arm, *[str(summary["counts"][arm][k]) for k in ("cases", "ok", "no_face", "unreadable",
                                                                "generation_failed")]] for arm in arms]
    tables.append(Table("counts", "Cases", ["arm", "cases", "ok", "no face", "unreadable", "generation failed"],
                        counts))
    primary = report.get("primary_metric")
    if primary:
        for key, title, field_name in (("per_subject", "Per subject", "per_subject"),
                                       ("per_prompt", "Per prompt", "per_prompt")):
            groups = sorted({g for arm in arms for g in summary[field_name][arm]})
            rows = [[g, *[fmt_cell(summary[field_name][arm].get(g, {}).get(primary)) for arm in arms]] for g in groups]
            if key == "per_prompt":
                texts = report.get("prompts", {})
                rows = [[r[0], texts.get(r[0], "")[:80], *r[1:]] for r in rows]
                header = ["prompt", "text", *arms]
            else:
                header = ["subject", *arms]
            tables.append(Table(key, f"{title} ({label(primary)})", header, rows))
    spread = [[arm, column, str(s["groups"]), fmt(s["mean_std"]), fmt(s["max_std"])]
              for arm in arms for column, s in summary["seed_spread"][arm].items() if s["groups"]]
    if spread:
        tables.append(Table("seed_spread", "Spread over seeds", ["arm", "metric", "subject x prompt groups",
                                                                 "mean std over seeds", "max std"], spread))
    recognisers = report["recognisers"]
    rows = [[m["name"], "stand-in" if m.get("standin") else "available", m.get("model", ""), m.get("description", "")]
            for m in recognisers["available"]]
    rows += [[u["name"], "unavailable", "", u["reason"]] for u in recognisers["unavailable"]]
    tables.append(Table("recognisers", "Metrics", ["metric", "status", "model", "description / reason"], rows))
    rows = [[s["subject"], s.get("file", ""), str(s.get("faces", "")), s["status"],
             s.get("note") or s.get("reason", "")] for s in report["subjects"]]
    tables.append(Table("subjects", "Subjects", ["subject", "photo", "faces", "status", "note"], rows))
    names = [c.split("/", 1)[1] for c in columns if c.startswith("face_similarity/")]
    rows, links = [], {}
    for i, row in enumerate(report["cases"]):
        plot = report["assets"]["case_plots"].get(row["case_id"])
        rows.append([row["case_id"], row["status"], *[fmt(row["face_similarity"].get(n)) for n in names],
                     f"{row['frames_with_face']}/{row['frames_scored']}", "plot" if plot else ""])
        if plot:
            links[(i, len(rows[-1]) - 1)] = plot
        links[(i, 0)] = f"{report['video_root_href']}/{row['video']}"
    tables.append(Table("cases", "Cases", ["case", "status", *[label(f"face_similarity/{n}").split("/", 1)[1]
                                                                for n in names], "frames with face", "per-frame"], rows,
                        "Per-case face similarity (mean over the scored frames that have a face).", links))
    return tables
