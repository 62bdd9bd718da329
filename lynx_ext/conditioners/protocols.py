"""What a face detector and a face embedder must offer, so that any pair plugs into `FaceAnalyzer`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass
class DetectedFace:
    """One detection in image pixel coordinates.

    Attributes:
        bbox: ``(4,)`` float32 ``x1, y1, x2, y2``.
        kps: ``(5, 2)`` float32 landmarks in ArcFace order (l-eye, r-eye, nose, l-mouth, r-mouth; image left first).
        score: detector confidence.
    """

    bbox: np.ndarray
    kps: np.ndarray
    score: float

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = (float(v) for v in self.bbox)
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)


@runtime_checkable
class FaceDetector(Protocol):
    """``detect(rgb HxWx3 uint8) -> list[DetectedFace]``; ``name`` says which model it is."""

    name: str

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]: ...


@runtime_checkable
class FaceEmbedder(Protocol):
    """Identity embedding of an ArcFace-aligned crop.

    ``input_size`` is the crop size the analyzer makes with ``norm_crop`` for it (112, or 224 for a model that
    wants more pixels; the geometry is the ArcFace template either way). ``embed_aligned`` takes that RGB
    uint8 crop and returns a ``(dim,)`` float32 unit vector.
    """

    name: str
    dim: int
    input_size: int

    def embed_aligned(self, aligned_rgb: np.ndarray) -> np.ndarray: ...
