"""Turn whatever the user gives as a face photo into an 8-bit RGB PIL image.

Rules (documented in docs/faces.md):

- EXIF orientation is applied, so the face is upright as a photo viewer shows it.
- Transparency (RGBA, LA, palette with transparency) is composited on **white**: cut-out portraits then look
  like studio shots, and the border of the 256-px reference crop (black, as in the official code) stays
  distinct from the background.
- 16-bit images (PNG, TIFF) keep their full tonal range (scaled by 255/65535), never clipped to white.
- Numpy arrays are read as RGB (or grey, or RGBA): uint8, uint16, bool, or float in [0, 1].
- Images above ``max_pixels`` are decoded at a reduced size where the format allows it (JPEG); other
  formats are refused with a message saying how to shrink them.
"""
from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import LynxInputError

ImageSource = Union[str, os.PathLike, Image.Image, np.ndarray]

DEFAULT_MAX_PIXELS = 120_000_000  # ~ 12000 x 10000; a decoded RGB image of this size takes 360 MB
BACKGROUND = (255, 255, 255)
_OPEN_LOCK = threading.Lock()


def describe_source(source: Any) -> str:
    """Short human-readable name of an image source for messages."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, Image.Image):
        return source.info.get("lynx_source") or getattr(source, "filename", "") or f"PIL image {source.size}"
    if isinstance(source, np.ndarray):
        return f"array {source.shape} {source.dtype}"
    return type(source).__name__


def load_image(source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Path / PIL image / numpy array -> RGB ``PIL.Image`` (8 bit, EXIF orientation applied).

    Raises:
        LynxInputError: the file is missing, unreadable, corrupt, not an image, or too large to decode.
    """
    if isinstance(source, (str, os.PathLike)):
        image = _open_file(Path(source), max_pixels)
    elif isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        image = _from_array(source)
    else:
        raise LynxInputError(
            f"Cannot use a {type(source).__name__} as a face image; pass a file path, a PIL image or an "
            "HxWx3 RGB numpy array."
        )
    name = describe_source(source)
    try:
        image = ImageOps.exif_transpose(image)
        rgb = to_rgb(image)
    except LynxInputError:
        raise
    except (OSError, ValueError, SyntaxError) as err:
        raise LynxInputError(f"Could not decode the image {name}: {err}. Re-save it as PNG or JPEG.") from err
    rgb.info["lynx_source"] = name
    return rgb


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB (alpha composited on white, 16-bit and float scaled, not clipped)."""
    mode = image.mode
    if mode == "RGB":
        return image.copy()
    if mode == "P" and "transparency" in image.info or mode == "PA":
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if mode.startswith("I") or mode == "F":
        return _from_array(np.asarray(image))
    return image.convert("RGB")


def _open_file(path: Path, max_pixels: int) -> Image.Image:
    if not path.exists():
        raise LynxInputError(f"Face image {path} does not exist. Check the path.")
    if not path.is_file():
        raise LynxInputError(f"Face image {path} is not a file. Pass the path of a JPEG/PNG/WebP/TIFF photo.")
    with _OPEN_LOCK:  # our own size limit replaces PIL's global decompression-bomb limit for this call
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            image = Image.open(path)
        except UnidentifiedImageError as err:
            raise LynxInputError(
                f"{path} is not an image format Pillow can read (suffix {path.suffix or 'none'!r}). "
                "Convert it to PNG or JPEG (HEIC/RAW need conversion, e.g. with your photo app)."
            ) from err
        except OSError as err:
            raise LynxInputError(f"Could not read {path}: {err}. Check the file and its permissions.") from err
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    try:
        _limit_size(image, path, max_pixels)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
    except LynxInputError:
        raise
    except (OSError, ValueError, SyntaxError) as err:  # truncated / corrupt data
        raise LynxInputError(
            f"{path} looks corrupt or truncated and cannot be decoded ({err}). Re-export the photo."
        ) from err
    image.info["lynx_source"] = str(path)
    return image


def _limit_size(image: Image.Image, path: Path, max_pixels: int) -> None:
    width, height = image.size
    if width * height <= max_pixels:
        return
    if image.format == "JPEG":
        scale = 2
        while scale < 8 and (width // scale) * (height // scale) > max_pixels:
            scale *= 2
        image.draft(image.mode, (width // scale, height // scale))  # JPEG decodes at 1/2, 1/4 or 1/8 size
        w, h = image.size
        if w * h <= max_pixels:
            return
    raise LynxInputError(
        f"{path} is {width}x{height} ({width * height / 1e6:.0f} MP), above the limit of {max_pixels / 1e6:.0f} MP. "
        "Downscale it (a face photo needs no more than ~4000 px on the long side) or pass a larger max_pixels."
    )


def _from_array(array: np.ndarray) -> Image.Image:
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)) or min(a.shape[:2]) < 1:
        raise LynxInputError(
            f"A face image array must be HxW (grey), HxWx3 (RGB) or HxWx4 (RGBA); got shape {a.shape}."
        )
    a = _to_uint8(a)
    if a.ndim == 2:
        return Image.fromarray(a, "L").convert("RGB")
    if a.shape[-1] == 4:
        return to_rgb(Image.fromarray(a, "RGBA"))
    return Image.fromarray(np.ascontiguousarray(a), "RGB")


def _to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if np.issubdtype(a.dtype, np.floating):
        finite = a[np.isfinite(a)]
        top = float(finite.max()) if finite.size else 0.0
        scale = 255.0 if top <= 1.0 else 1.0  # [0, 1] floats, else already 0..255
        return np.clip(np.nan_to_num(a.astype(np.float64)) * scale, 0, 255).round().astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        top, low = int(a.max()), int(a.min())
        if low < 0 or top > 65535:
            raise LynxInputError(
                f"Integer image values must lie in 0..255 (8 bit) or 0..65535 (16 bit); got {low}..{top}."
            )
        if a.dtype == np.uint16 or top > 255:  # 16-bit data: keep the tonal range
            return (a.astype(np.float64) * (255.0 / 65535.0)).round().astype(np.uint8)
        return a.astype(np.uint8)
    raise LynxInputError(f"Unsupported image array dtype {a.dtype}; use uint8, uint16 or float in [0, 1].")
