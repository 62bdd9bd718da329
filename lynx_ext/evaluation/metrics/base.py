"""What a metric sees and returns. A metric is any class with the attributes and methods of `Metric`."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol, runtime_checkable

import numpy as np

from ...conditioners.errors import LynxInputError
from ...conditioners.protocols import DetectedFace


class MetricUnavailable(LynxInputError):
    """A metric cannot run here (a package is missing or it is not configured); the message says what to do.

    A missing model *file* raises `FaceModelsMissingError` instead, which names the file and where to put it.
    """


@dataclass
class MetricEnv:
    """What a metric may use to load its models."""

    face_models: Optional[Path] = None  # folder with the scoring models
    model_files: dict[str, str] = field(default_factory=dict)  # explicit weight file per metric name
    device: str = "cpu"
    providers: list = field(default_factory=lambda: ["CPUExecutionProvider"])  # onnxruntime
    ctx_id: int = -1  # insightface's device switch (negative = CPU)
    judge: Optional[str] = None  # "module:function"
    judge_options: dict = field(default_factory=dict)

    def search_dirs(self) -> list[Path]:
        return [self.face_models] if self.face_models is not None and self.face_models.is_dir() else []


@dataclass
class ScoredVideo:
    """The sampled frames of one video and the largest face found in each (None: no face)."""

    key: str  # identifies the decoded file (path, size, mtime); metrics cache per-video work under it
    frames: list[np.ndarray]  # RGB uint8, the sampled frames only
    indices: list[int]  # their indices in the video
    faces: list[Optional[DetectedFace]]
    face_counts: list[int]  # faces detected per sampled frame
    info: dict  # frames, fps, width, height of the whole video


@dataclass
class SubjectFace:
    """A subject photo and the (largest) face found in it."""

    name: str
    path: Path
    image: np.ndarray  # RGB uint8
    face: DetectedFace
    num_faces: int
    note: str = ""


@dataclass
class MetricScore:
    """A metric's result for one case.

    Attributes:
        value: the case's number (None: nothing to score, e.g. no face in any frame).
        per_frame: one value per scored frame (None where the frame had no face), if the metric is per frame.
        extras: further named numbers (aggregated in the report like ``value``).
    """

    value: Optional[float]
    per_frame: Optional[list[Optional[float]]] = None
    extras: dict[str, Optional[float]] = field(default_factory=dict)


@runtime_checkable
class Metric(Protocol):
    """A named metric. ``kind`` is ``"face_similarity"`` for recognisers (their ``value`` lands in the report's
    ``face_similarity`` mapping) or anything else (``metrics``). ``default`` metrics run unless ``--metrics`` says
    otherwise. ``load`` raises `FaceModelsMissingError` / `MetricUnavailable` when it cannot run."""

    name: str
    kind: str
    default: bool
    description: str

    def load(self, env: MetricEnv) -> None: ...

    def describe(self) -> dict[str, Any]: ...

    def score(self, video: ScoredVideo, subject: SubjectFace, prompt: str) -> MetricScore: ...
