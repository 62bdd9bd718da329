"""Writing a generation's files: video (mp4 / webp), a PNG contact sheet of frames, the JSON report.

Every file is written to a temporary name and renamed into place, and existing files are only replaced
with ``overwrite=True``: an interrupted run never leaves a half-written or clobbered output.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from .atomic_write import atomic_path


class OutputExistsError(FileExistsError):
    """An output file exists and overwriting was not asked for."""


def check_free(paths: Sequence[Path], overwrite: bool) -> None:
    """Refuse up front (before any work) if an output exists and ``overwrite`` is False."""
    if overwrite:
        return
    taken = [str(p) for p in paths if Path(p).exists()]
    if taken:
        raise OutputExistsError(f"Output already exists: {', '.join(taken)}. Pass --overwrite (Python: "
                                "overwrite=True) to replace it, or choose another --output.")


def write_video(frames: Sequence[Image.Image], path: str | Path, fps: int, overwrite: bool = False) -> Path:
    """mp4 (H.264 through imageio-ffmpeg) or animated webp, chosen by the suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".mp4", ".webp"):
        raise ValueError(f"Unsupported video format '{suffix}' for {path}; use .mp4 or .webp.")
    with atomic_path(path, overwrite=overwrite) as tmp:
        if suffix == ".mp4":
            import imageio

            with imageio.get_writer(str(tmp), fps=fps, codec="libx264", quality=8, format="FFMPEG",
                                    macro_block_size=1, ffmpeg_log_level="error") as writer:
                for frame in frames:
                    writer.append_data(np.asarray(frame.convert("RGB")))
        else:
            frames = [f.convert("RGB") for f in frames]
            frames[0].save(str(tmp), format="WEBP", save_all=True, append_images=frames[1:],
                           duration=max(1, round(1000 / fps)), loop=0, quality=90)
    return path


def contact_sheet(frames: Sequence[Image.Image], columns: int = 6, max_frames: int = 24, thumb_width: int = 208,
                  face: Image.Image | None = None) -> Image.Image:
    """A grid of evenly spaced frames (optionally led by the conditioning face), labelled with frame indices."""
    n = len(frames)
    idx = sorted(set(np.linspace(0, n - 1, min(n, max_frames)).round().astype(int).tolist())) if n else []
    tiles = ([("face", face)] if face is not None else []) + [(str(i), frames[i]) for i in idx]
    w = thumb_width
    h = max(1, round(w * frames[0].height / frames[0].width)) if n else w
    cols = min(columns, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    sheet = Image.new("RGB", (cols * w, rows * (h + 14)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (label, img) in enumerate(tiles):
        x, y = (k % cols) * w, (k // cols) * (h + 14)
        sheet.paste(img.convert("RGB").resize((w, h)), (x, y + 14))
        draw.text((x + 3, y + 1), label if label == "face" else f"frame {label}", fill="black")
    return sheet


def write_image(image: Image.Image, path: str | Path, overwrite: bool = False) -> Path:
    with atomic_path(path, overwrite=overwrite) as tmp:
        image.save(str(tmp), format="PNG")
    return Path(path)


def write_report(report: dict, path: str | Path, overwrite: bool = False) -> Path:
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(report, indent=2, default=str))
    return Path(path)
