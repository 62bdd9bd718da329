"""Face similarity with one recogniser: cosine between the subject's and each scored frame's largest face.

Both faces are aligned the same way (5 landmarks -> ArcFace template crop at the recogniser's input size) and
embedded by the recogniser. Per case: the per-frame values (None where a frame has no face), their mean over the
frames with a face (None if no frame has one: such cases are counted and listed, never averaged as zero), the
mean of the values clipped at 0 (OpenS2V's per-frame rule) and the temporal identity consistency.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ...conditioners.protocols import DetectedFace, FaceEmbedder
from ...conditioners.similarity import cosine_similarity
from ..temporal import temporal_consistency
from .base import MetricEnv, MetricScore, ScoredVideo, SubjectFace


class FaceSimilarityMetric:
    """Base of the recogniser metrics: subclasses set ``name``, ``description`` and ``build_embedder``."""

    kind = "face_similarity"
    default = True
    name = ""
    description = ""

    def __init__(self):
        self.embedder: Optional[FaceEmbedder] = None
        self._video_key: Optional[str] = None
        self._video_embeddings: list[Optional[np.ndarray]] = []
        self._subjects: dict[str, np.ndarray] = {}

    def build_embedder(self, env: MetricEnv) -> FaceEmbedder:
        raise NotImplementedError

    def load(self, env: MetricEnv) -> None:
        from ...conditioners import FaceAnalyzer

        self.embedder = self.build_embedder(env)
        self._analyzer = FaceAnalyzer(detector=None, embedder=self.embedder)  # its checked `embed_aligned` only

    def describe(self) -> dict[str, Any]:
        out = {"name": self.name, "kind": self.kind, "model": getattr(self.embedder, "name", ""),
               "description": self.description}
        if getattr(self.embedder, "standin", False):  # never described as the published score it stands in for
            out.update(standin=True, description=f"STAND-IN for {self.name}: not a face model; its numbers test the "
                                                 "plumbing and are not face similarity")
        return out

    def embed(self, rgb: np.ndarray, face: DetectedFace) -> np.ndarray:
        """Unit embedding of ``face`` in ``rgb`` (ArcFace-template crop at the recogniser's input size)."""
        from ...conditioners.alignment import arcface_crop

        return self._analyzer.embed_aligned(arcface_crop(rgb, face.kps, int(self.embedder.input_size)))

    def score(self, video: ScoredVideo, subject: SubjectFace, prompt: str) -> MetricScore:
        reference = self._subjects.get(str(subject.path))
        if reference is None:
            reference = self._subjects[str(subject.path)] = self.embed(subject.image, subject.face)
        if video.key != self._video_key:
            self._video_embeddings = [None if face is None else self.embed(frame, face)
                                      for frame, face in zip(video.frames, video.faces)]
            self._video_key = video.key
        per_frame = [cosine_similarity(e, reference) for e in self._video_embeddings]
        found = [v for v in per_frame if v is not None]
        return MetricScore(
            value=float(np.mean(found)) if found else None,
            per_frame=per_frame,
            extras={"temporal_consistency": temporal_consistency(self._video_embeddings),
                    "clipped_mean": float(np.mean(np.maximum(found, 0.0))) if found else None,
                    "min": float(np.min(found)) if found else None},
        )
