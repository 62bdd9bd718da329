"""Per-frame similarity plots as small standalone SVG files (no plotting library needed; they open anywhere)."""
from __future__ import annotations

import math
from html import escape
from typing import Optional, Sequence

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
Series = Sequence[tuple[float, Optional[float]]]


def line_plot_svg(series: dict[str, Series], title: str, x_label: str = "frame",
                  y_label: str = "cosine similarity", width: int = 560, height: int = 230,
                  x_range: Optional[tuple[float, float]] = None) -> str:
    """An SVG line chart: one line per series, broken where a value is None (no face), y in [min(0, ..), 1]."""
    left, right, top, bottom = 52, 150, 26, 38
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts if y is not None and math.isfinite(y)]
    x0, x1 = x_range or ((min(xs), max(xs)) if xs else (0.0, 1.0))
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    y0 = min(0.0, math.floor(min(ys) * 4) / 4) if ys else 0.0
    y1 = max(1.0, math.ceil(max(ys) * 4) / 4) if ys else 1.0

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return top + (y1 - y) / (y1 - y0) * plot_h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="16" font-size="12" font-weight="bold">{escape(title)}</text>']
    steps = round((y1 - y0) / 0.25)
    for i in range(steps + 1):
        y = y0 + i * 0.25
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.2f}</text>')
    for x in nice_ticks(x0, x1):
        out.append(f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" '
                   'stroke="#888"/>')
        out.append(f'<text x="{px(x):.1f}" y="{top + plot_h + 15}" text-anchor="middle">{x:g}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>')
    out.append(f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle">{escape(x_label)}</text>')
    out.append(f'<text transform="translate(12 {top + plot_h / 2}) rotate(-90)" text-anchor="middle">'
               f'{escape(y_label)}</text>')
    for k, (name, points) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        run: list[str] = []
        for x, y in list(points) + [(None, None)]:
            if y is None or x is None or not math.isfinite(y):
                if len(run) > 1:
                    out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{" ".join(run)}"/>')
                run = []
                continue
            run.append(f"{px(x):.1f},{py(y):.1f}")
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.2" fill="{color}"/>')
        ly = top + 10 + 16 * k
        out.append(f'<line x1="{left + plot_w + 10}" x2="{left + plot_w + 28}" y1="{ly}" y2="{ly}" '
                   f'stroke="{color}" stroke-width="2"/>')
        out.append(f'<text x="{left + plot_w + 32}" y="{ly + 4}">{escape(name[:22])}</text>')
    out.append("</svg>")
    return "\n".join(out)


def nice_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """Round tick positions (steps of 1, 2 or 5 times a power of ten) covering [lo, hi]."""
    raw = (hi - lo) / max(target - 1, 1)
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def case_plot_svg(row: dict) -> str:
    """Similarity of every scored frame of one case, one line per recogniser."""
    series = {name: list(zip(row["frame_indices"], values)) for name, values in row.get("per_frame", {}).items()
              if values is not None}
    return line_plot_svg(series, f"{row['case_id']}")


def clip_profile(rows: Sequence[dict], recogniser: str, bins: int = 10) -> list[tuple[float, Optional[float]]]:
    """Mean similarity by position in the clip (0-100 %), pooled over ``rows`` (bins without a value left out)."""
    sums, counts = [0.0] * bins, [0] * bins
    for row in rows:
        values = (row.get("per_frame") or {}).get(recogniser) or []
        total = (row.get("video_info") or {}).get("frames") or 0
        for index, value in zip(row.get("frame_indices", []), values):
            if value is None or total < 1:
                continue
            b = min(bins - 1, int(index / max(total - 1, 1) * bins))
            sums[b] += value
            counts[b] += 1
    return [((b + 0.5) * 100 / bins, sums[b] / counts[b]) for b in range(bins) if counts[b]]
