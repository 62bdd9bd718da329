"""A contact sheet of the best and worst cases of an arm: the subject photo, then frames of the video."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from PIL import Image, ImageDraw, ImageOps

THUMB = 112
FRAMES = 6


def case_strip(row: dict, video_root: Path, subject_file: Optional[str], label: str) -> Optional[Image.Image]:
    """One labelled row: subject thumbnail + ``FRAMES`` evenly spaced frames (None if the video is unreadable)."""
    from ..outputs import contact_sheet
    from .video import VideoError, read_video

    try:
        video = read_video(video_root / row["video"])
    except VideoError:
        return None
    face = None
    if subject_file and Path(subject_file).is_file():
        from ..conditioners import LynxInputError, load_image

        try:
            face = ImageOps.fit(load_image(subject_file), (THUMB, THUMB))
        except LynxInputError:
            face = None
    frames = [Image.fromarray(f) for f in video.frames]
    sheet = contact_sheet(frames, columns=FRAMES + 1, max_frames=FRAMES, thumb_width=THUMB, face=face)
    strip = Image.new("RGB", (sheet.width, sheet.height + 16), "white")
    strip.paste(sheet, (0, 16))
    ImageDraw.Draw(strip).text((3, 2), label, fill="black")
    return strip


def best_worst_sheet(rows: Sequence[dict], column: str, video_root: Path, subject_files: dict[str, str],
                     count: int = 4, standin: bool = False) -> Optional[Image.Image]:
    """Rows ranked by ``column`` (their value) -> the ``count`` best and ``count`` worst as one image."""
    from .aggregate import row_columns

    scored = [(row_columns(r).get(column), r) for r in rows]
    scored = sorted([(v, r) for v, r in scored if v is not None], key=lambda vr: -vr[0])
    if not scored:
        return None
    count = min(count, max(1, len(scored) // 2))  # few cases: split them between best and worst
    best = scored[:count]
    worst = [vr for vr in scored[::-1][:count] if all(vr[1] is not b[1] for b in best)]
    strips = []
    for title, chosen in (("best", best), ("worst", worst)):
        for rank, (value, row) in enumerate(chosen, 1):
            seed = "" if row.get("seed") is None else f" / seed {row['seed']}"
            label = f"{title} {rank}: {row['subject']} / {row['prompt_id']}{seed}   {column} {value:.3f}"
            if standin:
                label += "  (stand-in: not a metric)"
            strip = case_strip(row, video_root, subject_files.get(row["subject"]), label)
            if strip is not None:
                strips.append(strip)
    if not strips:
        return None
    width = max(s.width for s in strips)
    sheet = Image.new("RGB", (width, sum(s.height for s in strips) + 4 * len(strips)), "white")
    y = 0
    for strip in strips:
        sheet.paste(strip, (0, y))
        y += strip.height + 4
    return sheet
