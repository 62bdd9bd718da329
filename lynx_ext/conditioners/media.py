"""Reading training media: videos through imageio's ffmpeg reader, images through `load_image` (one frame).

The media type follows the file suffix (`VIDEO_SUFFIXES`); everything else is read as an image. Any failure to
read a file becomes a `LynxInputError` that names the file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

from PIL import Image

from .errors import LynxInputError
from .images import load_image

VIDEO, IMAGE = "video", "image"
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".avi", ".gif", ".mkv")


def media_type(path: str | os.PathLike) -> str:
    """``"video"`` for the suffixes in `VIDEO_SUFFIXES`, else ``"image"``."""
    return VIDEO if Path(path).suffix.lower() in VIDEO_SUFFIXES else IMAGE


def probe_media(path: str | os.PathLike) -> dict:
    """``{"media_type", "num_frames", "width", "height", "fps"}`` of a video or image (``fps`` is None for images).

    A video is decoded once to count its frames exactly, which also checks that it is readable to the end; an
    image is fully decoded (EXIF rotation applied, so width/height are as displayed).

    Raises:
        LynxInputError: missing, unreadable or corrupt file, or a video without frames.
    """
    path = _existing(path)
    if media_type(path) == IMAGE:
        width, height = load_image(path).size
        return {"media_type": IMAGE, "num_frames": 1, "width": width, "height": height, "fps": None}
    reader = _open_video(path)
    try:
        meta = reader.get_meta_data()
        num_frames = int(reader.count_frames())
        width, height = (int(v) for v in meta["size"])
        fps = float(meta["fps"]) if meta.get("fps") else None
    except LynxInputError:
        raise
    except Exception as err:  # ffmpeg errors surface as RuntimeError/OSError/KeyError depending on the damage
        raise LynxInputError(f"Could not read the video {path} ({type(err).__name__}: {_short(err)}). "
                             "Check the file or re-encode it (e.g. ffmpeg -i in.mov -c:v libx264 out.mp4).") from err
    finally:
        reader.close()
    if num_frames < 1:
        raise LynxInputError(f"The video {path} has no decodable frames. Check the file or re-encode it.")
    return {"media_type": VIDEO, "num_frames": num_frames, "width": width, "height": height, "fps": fps}


def load_frames(path: str | os.PathLike, indices: Optional[Sequence[int]] = None) -> list[Image.Image]:
    """RGB frames of a video (all, or those at ``indices``, in the order given) or the one frame of an image.

    Raises:
        LynxInputError: missing / unreadable / corrupt file, or an index outside the media.
    """
    path = _existing(path)
    wanted = None if indices is None else [int(i) for i in indices]
    if wanted is not None and any(i < 0 for i in wanted):
        raise LynxInputError(f"Frame indices must be >= 0; got {wanted} for {path}.")
    if media_type(path) == IMAGE:
        if wanted is not None and any(i != 0 for i in wanted):
            raise LynxInputError(f"{path} is an image (one frame, index 0); got frame indices {wanted}.")
        image = load_image(path)
        return [image] + [image.copy() for _ in range(len(wanted) - 1)] if wanted else [image]
    reader = _open_video(path)
    try:
        if wanted is None:
            frames = [Image.fromarray(frame) for frame in reader]
        else:
            frames = []
            for i in wanted:
                try:
                    frames.append(Image.fromarray(reader.get_data(i)))
                except (IndexError, StopIteration) as err:
                    raise LynxInputError(f"Frame {i} is past the end of the video {path}; "
                                         "probe_media gives its frame count.") from err
    except LynxInputError:
        raise
    except Exception as err:
        raise LynxInputError(f"Could not decode frames of the video {path} ({type(err).__name__}: {_short(err)}). "
                             "Check the file or re-encode it.") from err
    finally:
        reader.close()
    if not frames:
        raise LynxInputError(f"The video {path} has no decodable frames. Check the file or re-encode it.")
    return frames


def _existing(path: str | os.PathLike) -> Path:
    path = Path(os.path.expanduser(str(path)))
    if not path.exists():
        raise LynxInputError(f"Media file {path} does not exist. Check the path (relative to the dataset folder).")
    if not path.is_file():
        raise LynxInputError(f"Media path {path} is not a file.")
    return path


def _open_video(path: Path):
    import imageio.v3 as iio

    from ..compat import ffmpeg_spawn_without_preexec

    ffmpeg_spawn_without_preexec()

    # imageio's ffmpeg plugin does not claim .gif files although ffmpeg decodes them; present those as .mp4
    hint = ".mp4" if path.suffix.lower() == ".gif" else None
    try:
        return iio.imopen(str(path), "r?", plugin="FFMPEG", legacy_mode=True, extension=hint).legacy_get_reader()
    except Exception as err:  # OSError "could not load meta information", RuntimeError from ffmpeg, ...
        raise LynxInputError(f"Could not open the video {path} ({type(err).__name__}: {_short(err)}). It is "
                             "corrupt, truncated or not a video; re-encode it (e.g. to H.264 mp4).") from err


def _short(err: BaseException, limit: int = 300) -> str:
    """The first meaningful line of an error (ffmpeg errors carry its whole log)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = lines[0] if lines else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
