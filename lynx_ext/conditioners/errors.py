"""Errors of the face-conditioning path: bad user input vs. missing model files."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import LynxMissingFileError, LynxUsageError


class LynxInputError(LynxUsageError):
    """An input of the face path (an image, a media file, a face option) cannot be used; the message says what to
    do instead. Callers that skip bad data (``prepare``, evaluation) catch this class, not every usage error."""


class NoFaceError(LynxInputError):
    """The detector found no face in the image."""


class FaceModelsMissingError(LynxMissingFileError):
    """A face model file is not on disk and could not (or may not) be downloaded.

    Attributes:
        filename: the file that is missing, e.g. ``det_10g.onnx``.
        destination: where to put it (a full path).
        url: where a machine with internet can get it (a zip for insightface packs).
    """

    def __init__(self, what: str, filename: str, destination: Path | str, url: Optional[str] = None,
                 hint: str = "", cause: Optional[BaseException] = None):
        self.filename = filename
        self.destination = Path(destination)
        self.url = url
        lines = [f"{what}: {filename} was not found at {self.destination}."]
        if cause is not None:
            lines.append(f"The automatic download failed ({type(cause).__name__}: {cause}).")
        if url:
            lines.append(f"On a machine with internet, download {url} and place {filename} at {self.destination}.")
        else:
            lines.append(f"Place {filename} at {self.destination}.")
        if hint:
            lines.append(hint)
        self.message = " ".join(lines)
        super().__init__(self.message)

