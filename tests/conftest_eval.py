"""Helpers of the evaluation tests (import them explicitly: ``from conftest_eval import ...``)."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def strict_json(path: Path):
    """Parse a report, failing on NaN / Infinity (which plain json would accept)."""
    import json

    def refuse(name):
        raise ValueError(f"{path} holds the non-JSON constant {name}")

    return json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=refuse)


def letterbox(image: Image.Image, width: int, height: int) -> Image.Image:
    """``image`` scaled to fit ``width x height`` on a grey canvas."""
    image = image.convert("RGB")
    scale = min(width / image.width, height / image.height)
    small = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS)
    canvas = Image.new("RGB", (width, height), (120, 120, 120))
    canvas.paste(small, ((width - small.width) // 2, (height - small.height) // 2))
    return canvas


def write_clip(path: Path, frames: Sequence[Image.Image], fps: int) -> Path:
    from lynx_ext.outputs import write_video

    return write_video(list(frames), path, fps, overwrite=True)


def pan_clip(image: np.ndarray, count: int, size: tuple[int, int], drift: int = 3) -> list[Image.Image]:
    """``count`` frames of ``image`` with a slow pan, letterboxed to ``size`` (a synthetic 'video' of a photo)."""
    base = Image.fromarray(image)
    frames = []
    for i in range(count):
        box = (i * drift, i * drift // 2, base.width - (count - i) * drift, base.height - (count - i) * drift // 2)
        frames.append(letterbox(base.crop(box), *size))
    return frames


def zero_frame_video(path: Path) -> Path:
    """An mp4 container whose video stream has no frames (made with imageio's ffmpeg binary)."""
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    "color=c=black:s=64x64:r=8", "-frames:v", "0", "-c:v", "libx264", str(path)], check=True)
    return path


def decode_all(path: Path) -> list[np.ndarray]:
    """Every frame of a video, decoded with imageio's ffmpeg reader directly (independent of the evaluation code)."""
    import imageio

    reader = imageio.get_reader(str(path), format="FFMPEG")
    try:
        return [np.asarray(frame) for frame in reader]
    finally:
        reader.close()
