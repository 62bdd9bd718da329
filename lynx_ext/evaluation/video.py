"""Reading a video to score: every frame decoded once (imageio / ffmpeg, through the training data reader), with
its frame rate and size. Any failure is a `VideoError` that the runner records for that case only."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..conditioners.errors import LynxInputError


class VideoError(LynxInputError):
    """The video is missing, empty, undecodable or has no frames."""


@dataclass
class Video:
    frames: list[np.ndarray]  # RGB uint8, H x W x 3
    fps: Optional[float]
    width: int
    height: int

    def info(self) -> dict:
        return {"frames": len(self.frames), "fps": self.fps, "width": self.width, "height": self.height}


def read_video(path: str | os.PathLike) -> Video:
    """Decode ``path`` (mp4/webm/mov/avi/gif/mkv; an image counts as a one-frame video).

    Raises:
        VideoError: what went wrong, naming the file.
    """
    from ..conditioners.media import load_frames, probe_media

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"Video {path} does not exist.")
    if path.stat().st_size == 0:
        raise VideoError(f"Video {path} is empty (0 bytes).")
    try:
        info = probe_media(path)
        frames = [np.asarray(f.convert("RGB")) for f in load_frames(path)]
    except LynxInputError as err:
        raise VideoError(str(err)) from err
    if not frames:
        raise VideoError(f"Video {path} has no decodable frames.")
    height, width = frames[0].shape[:2]
    return Video(frames=frames, fps=info.get("fps"), width=int(width), height=int(height))
