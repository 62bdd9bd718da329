"""Scoring one video against one subject photo with every available metric.

A face detector runs once per scored frame (the largest face is kept); each recogniser then embeds that face.
Recognisers whose model files are missing are listed as unavailable, unless they were asked for by name.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Optional, Sequence

from ..conditioners.errors import FaceModelsMissingError, LynxInputError
from .cases import Case
from .definition import ScoringSettings, digest
from .metrics import MetricEnv, MetricUnavailable, ScoredVideo, SubjectFace, create_metric, metric_names
from .sampling import sample_indices
from .strict_fields import DefinitionError
from .video import VideoError, read_video

STANDIN = "standin"


class Scorer:
    """Loads the detector and metrics of ``settings`` (``required``: names that must load, else every default
    metric that can) and scores cases."""

    def __init__(self, settings: ScoringSettings, required: Optional[Sequence[str]] = None):
        self.settings = settings
        self.required = list(required) if required else (list(settings.metrics) if settings.metrics else None)
        self.metrics: list[Any] = []
        self.unavailable: list[dict] = []
        self.detector = None
        self.detector_note = ""
        self._video_key: Optional[str] = None
        self._video: Optional[ScoredVideo] = None

    # ------------------------------------------------------------------------------------------------ loading
    def load(self) -> "Scorer":
        for module in self.settings.plugins:
            try:
                importlib.import_module(module)
            except ImportError as err:
                raise DefinitionError(f"scoring.plugins: cannot import {module!r} ({err}).") from err
        env = self.env()
        self.detector = self._load_detector(env)
        names = self.required or metric_names(default_only=True) + (["judge"] if self.settings.judge else [])
        unknown = [n for n in names if n not in metric_names()]
        if unknown:
            raise DefinitionError(f"Unknown metric {unknown[0]!r}; known metrics: {', '.join(metric_names())}.")
        for name in dict.fromkeys(names):
            metric = create_metric(name)
            try:
                metric.load(env)
            except (FaceModelsMissingError, MetricUnavailable) as err:
                if self.required:
                    raise
                self.unavailable.append({"name": name, "reason": str(err),
                                         "file": getattr(err, "filename", None)})
                continue
            self.metrics.append(metric)
        if not any(m.kind == "face_similarity" for m in self.metrics):
            reasons = "; ".join(f"{u['name']}: {u['reason']}" for u in self.unavailable)
            raise MetricUnavailable(f"No face recogniser can run here. {reasons}")
        return self

    def env(self) -> MetricEnv:
        from ..conditioners.face_analyzer import onnx_providers

        device = self.settings.device or _default_device()
        providers, ctx_id = onnx_providers(device)
        return MetricEnv(face_models=self._face_models(), model_files=dict(self.settings.model_files), device=device,
                         providers=providers, ctx_id=ctx_id, judge=self.settings.judge,
                         judge_options=dict(self.settings.judge_options))

    def _face_models(self) -> Optional[Path]:
        value = self.settings.face_models
        if value is None:
            return None
        if value == STANDIN:
            from ..tiny import tiny_home
            from ..tiny.face_models import standin_pack

            return standin_pack(tiny_home() / "faces")
        path = Path(os.path.expanduser(value))
        if not path.is_dir():
            raise DefinitionError(f"The scoring face-models folder {path} does not exist.")
        return path

    def _load_detector(self, env: MetricEnv):
        from ..conditioners import FaceAnalyzer

        kind = self.settings.detector
        if kind in ("auto", "insightface"):
            from ..conditioners.model_files import resolve_detector_file

            try:
                det_file = resolve_detector_file(env.face_models, offline_ok=True)
            except FaceModelsMissingError as err:
                if kind == "insightface":
                    raise
                self.detector_note = (f"insightface's detector ({err.filename}) was not found, so faces were "
                                      "detected with dlib's HOG detector")
            else:
                from ..conditioners.detection import InsightFaceDetector

                det = InsightFaceDetector(det_file, providers=env.providers, ctx_id=env.ctx_id,
                                          det_size=self.settings.det_size, rgb_as_bgr=False)
                return FaceAnalyzer(det, embedder=None)
        try:
            from ..conditioners.dlib_detector import DlibDetector

            return FaceAnalyzer(DlibDetector(), embedder=None)
        except ImportError as err:
            raise MetricUnavailable("No face detector: put det_10g.onnx in the face-models folder, or "
                                    "pip install dlib-bin face-recognition-models.") from err

    def describe(self) -> dict:
        """Detector, metrics, frame sampling and the key that tells whether a stored result was scored alike."""
        available = [m.describe() for m in self.metrics]
        from ..conditioners.standin import is_standin

        info = {"detector": self.detector.detector.name, "detector_note": self.detector_note,
                "frames": self.settings.frames, "det_size": self.settings.det_size}
        if is_standin(self.detector.detector):
            info["detector_standin"] = True
        key = digest({"metrics": [(m["name"], m["model"]) for m in available], **info})
        return {**info, "scoring_key": key, "available": available, "unavailable": list(self.unavailable)}

    # ------------------------------------------------------------------------------------------------ subjects
    def subject(self, name: str, path: Path) -> tuple[Optional[SubjectFace], dict]:
        """The subject's face, or None with the reason it is skipped (no face, unreadable photo)."""
        import numpy as np

        from ..conditioners import load_image

        info = {"subject": name, "file": str(path)}
        try:
            image = load_image(path)
        except LynxInputError as err:
            return None, {**info, "status": "skipped", "faces": 0, "reason": str(err)}
        faces, _ = self.detector.detect(image)
        if not faces:
            return None, {**info, "status": "skipped", "faces": 0,
                          "reason": f"no face found by {self.detector.detector.name}"}
        face = max(faces, key=lambda f: f.area)
        note = f"{len(faces)} faces found; the largest was used" if len(faces) > 1 else ""
        subject = SubjectFace(name=name, path=Path(path), image=np.asarray(image), face=face, num_faces=len(faces),
                              note=note)
        return subject, {**info, "status": "ok", "faces": len(faces), "note": note}

    # ------------------------------------------------------------------------------------------------ videos
    def scored_video(self, path: Path) -> ScoredVideo:
        """Decode, sample and detect (the last video is cached: it is often scored against several subjects)."""
        stat = Path(path).stat() if Path(path).is_file() else None
        key = f"{path}:{stat.st_size}:{stat.st_mtime_ns}" if stat else f"{path}:missing"
        if key == self._video_key and self._video is not None:
            return self._video
        video = read_video(path)
        indices = sample_indices(len(video.frames), self.settings.frames)
        frames = [video.frames[i] for i in indices]
        faces, counts = [], []
        for frame in frames:
            found, _ = self.detector.detect(frame)
            counts.append(len(found))
            faces.append(max(found, key=lambda f: f.area) if found else None)
        self._video_key = key
        self._video = ScoredVideo(key=key, frames=frames, indices=indices, faces=faces, face_counts=counts,
                                  info=video.info())
        return self._video

    def blank_row(self, case: Case, video_label: str) -> dict[str, Any]:
        """The row of a case with nothing scored yet (every recogniser None)."""
        names = [m.name for m in self.metrics if m.kind == "face_similarity"]
        return {
            "case_id": case.id, "arm": case.arm, "video": video_label, "subject": case.subject,
            "prompt": case.prompt, "prompt_id": case.prompt_id, "seed": case.seed, "status": "pending",
            "face_similarity": dict.fromkeys(names), "temporal_consistency": dict.fromkeys(names),
            "frames_scored": 0, "frames_with_face": 0, "frame_indices": [], "faces_per_frame": [],
            "per_frame": {}, "face_extras": {}, "metrics": {}, "video_info": None, "error": None,
        }

    def score(self, case: Case, video_path: Path, subject: SubjectFace, video_label: str) -> dict:
        """The report row of one case (status ``ok``, ``no_face`` or ``unreadable``)."""
        row = self.blank_row(case, video_label)
        try:
            video = self.scored_video(video_path)
        except VideoError as err:
            return {**row, "status": "unreadable", "error": str(err)}
        row.update(video_info=video.info, frame_indices=video.indices, faces_per_frame=video.face_counts,
                   frames_scored=len(video.frames), frames_with_face=sum(f is not None for f in video.faces))
        for metric in self.metrics:
            if metric.kind != "face_similarity":
                try:
                    result = metric.score(video, subject, case.prompt)
                    row["metrics"][metric.name] = {"value": result.value, "extras": result.extras}
                except Exception as err:  # noqa: BLE001 - a plugged-in judge failing is recorded, not fatal
                    row["metrics"][metric.name] = {"value": None, "extras": {}, "error": f"{type(err).__name__}: {err}"}
                continue
            result = metric.score(video, subject, case.prompt)
            row["face_similarity"][metric.name] = result.value
            row["per_frame"][metric.name] = result.per_frame
            row["temporal_consistency"][metric.name] = result.extras.get("temporal_consistency")
            row["face_extras"][metric.name] = {k: v for k, v in result.extras.items() if k != "temporal_consistency"}
        row["status"] = "ok" if row["frames_with_face"] else "no_face"
        return row


def _default_device() -> str:
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"
