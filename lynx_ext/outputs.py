"""Writing a generation's files: video (mp4 / webp), a PNG contact sheet of frames, the JSON report.

Every file is written to a temporary name and renamed into place, and existing files are only replaced
with ``overwrite=True``: an interrupted run never leaves a half-written or clobbered output. `check_targets`
checks a whole plan of outputs (formats, writable folders, collisions, existing files) before any work starts.
Reports are strict JSON: NaN and infinities become null.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from .atomic_write import atomic_path
from .errors import LynxFileError, LynxValueError

VIDEO_FORMATS = (".mp4", ".webp")


class OutputExistsError(LynxFileError, FileExistsError):
    """An output file exists and overwriting was not asked for."""


def default_video_name(image: str | Path, variant: str, preset: str, seed: int) -> str:
    """``<image>_lynx_<variant>_<preset>_s<seed>.mp4``: a generation's default file name. The model and the seed are
    in it, so runs that differ in either never claim each other's files (only a repeated run meets its own)."""
    return f"{Path(str(image)).stem}_lynx_{variant}_{preset}_s{seed}.mp4"


def check_free(paths: Sequence[Path], overwrite: bool) -> None:
    """Refuse up front (before any work) if an output exists and ``overwrite`` is False."""
    if overwrite:
        return
    taken = [str(p) for p in paths if Path(p).exists()]
    if taken:
        raise OutputExistsError(f"Output already exists: {', '.join(taken)}. Pass --overwrite (Python: "
                                "overwrite=True) to replace it, or choose another --output.")


def check_video_format(path: str | Path) -> Path:
    """``path`` if its suffix is a video format we write (.mp4, .webp)."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_FORMATS:
        raise LynxValueError(f"Unsupported video format '{path.suffix}' for {path}; use .mp4 or .webp.")
    return path


def check_writable(path: str | Path) -> None:
    """``path`` can be created: it is not a folder, and its nearest existing parent is a writable folder."""
    path = Path(path)
    if path.is_dir():
        raise LynxFileError(f"Output {path} is a folder; give a file name, e.g. {path / 'video.mp4'}.")
    probe = path.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise LynxFileError(f"Output {path} cannot be written: {probe} is a file, not a folder. Choose another "
                            "output folder.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise LynxFileError(f"Output {path} cannot be written: the folder {probe} is not writable (permission "
                            "denied). Choose another output folder.")


def check_targets(plan: Sequence[Sequence[Path]], overwrite: bool, labels: Optional[Sequence[str]] = None) -> None:
    """Check every output of a run before any work: each writable, no two jobs writing the same file, nothing
    overwritten without ``overwrite``. ``plan``: the files of each job; ``labels``: how to name the jobs."""
    labels = list(labels) if labels is not None else [f"job {i}" for i in range(len(plan))]
    owner: dict[str, int] = {}
    for index, files in enumerate(plan):
        for path in files:
            key = os.path.normcase(os.path.abspath(path))
            if key in owner and owner[key] != index:
                raise LynxFileError(f"{labels[owner[key]]} and {labels[index]} would both write {path}. Give each "
                                    "job its own output.")
            owner[key] = index
            check_writable(path)
    check_free([p for files in plan for p in files], overwrite)


def to_strict(obj: Any) -> Any:
    """``obj`` with numpy values made plain, paths made text and every non-finite float replaced by None."""
    if isinstance(obj, dict):
        return {str(k): to_strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_strict(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_strict(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(float(obj)) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps_strict(obj: Any, indent: Optional[int] = 1, default=None) -> str:
    """Strict JSON (``allow_nan=False`` after `to_strict`); ``default`` renders other objects (e.g. ``str``)."""
    return json.dumps(to_strict(obj), indent=indent, allow_nan=False, ensure_ascii=False, default=default)


def write_video(frames: Sequence[Image.Image], path: str | Path, fps: int, overwrite: bool = False) -> Path:
    """mp4 (H.264 through imageio-ffmpeg) or animated webp, chosen by the suffix."""
    path = check_video_format(path)
    suffix = path.suffix.lower()
    with atomic_path(path, overwrite=overwrite) as tmp:
        if suffix == ".mp4":
            import imageio

            from .compat import ffmpeg_spawn_without_preexec

            ffmpeg_spawn_without_preexec()
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
        tmp.write_text(dumps_strict(report, indent=2, default=str), encoding="utf-8")
    return Path(path)
