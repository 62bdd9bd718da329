"""insightface SCRFD face detection (buffalo_l ``det_10g.onnx``), loaded and run by insightface's own code.

The official Lynx code hands insightface ``np.array(PIL RGB image)``. insightface expects BGR (it swaps channels
before the network), so officially the network sees a channel-swapped photo. ``rgb_as_bgr=True`` (default)
reproduces that for identical landmarks; ``rgb_as_bgr=False`` gives insightface the BGR it expects.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from .protocols import DetectedFace
from .standin import onnx_standin_note

SCORE_SCALE = "SCRFD confidence, 0 to 1 (threshold 0.5)"
SCORE_SCALE_STANDIN = "a constant written into the stand-in file, not a detection"


class InsightFaceDetector:
    """SCRFD with 5 landmarks via ``insightface.model_zoo.get_model``.

    Args:
        model_file: a SCRFD ``.onnx`` with keypoint outputs (e.g. ``det_10g.onnx``).
        providers: onnxruntime providers, e.g. ``["CPUExecutionProvider"]``; None lets insightface choose.
        ctx_id: insightface's device switch; negative forces the CPU provider.
        det_size: network input ``(width, height)`` or one int; Lynx uses 640.
        det_thresh: score threshold (insightface's default 0.5).
        rgb_as_bgr: reproduce the official channel quirk (see module docstring).
    """

    def __init__(self, model_file: str | os.PathLike, providers: Optional[Sequence[Any]] = None, ctx_id: int = 0,
                 det_size: int | tuple[int, int] = 640, det_thresh: float = 0.5, rgb_as_bgr: bool = True):
        from insightface.model_zoo import model_zoo

        self.model_file = Path(model_file)
        self.det_size = (det_size, det_size) if isinstance(det_size, int) else tuple(int(v) for v in det_size)
        self.det_thresh = float(det_thresh)
        self.rgb_as_bgr = bool(rgb_as_bgr)
        model = model_zoo.get_model(str(self.model_file), providers=list(providers) if providers else None)
        if getattr(model, "taskname", None) != "detection":
            raise ValueError(
                f"{self.model_file} is not a face detector (insightface routed it to "
                f"{type(model).__name__ if model is not None else 'nothing'}); pass an SCRFD file such as det_10g.onnx."
            )
        if not model.use_kps:
            raise ValueError(f"{self.model_file} has no landmark outputs; use a *_kps SCRFD model like det_10g.onnx.")
        model.prepare(ctx_id, input_size=self.det_size, det_thresh=self.det_thresh)
        self.model = model
        note = onnx_standin_note(model)
        self.standin = note is not None
        self.name = (f"stand-in detector {self.model_file.name} ({note})" if self.standin
                     else f"insightface-scrfd:{self.model_file.name}")
        self.score_scale = (SCORE_SCALE_STANDIN if self.standin else SCORE_SCALE)

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        """All faces above the threshold in an RGB uint8 image, in insightface's order (score, then NMS)."""
        image = rgb if self.rgb_as_bgr else rgb[..., ::-1]
        bboxes, kpss = self.model.detect(np.ascontiguousarray(image), max_num=0, metric="default")
        return [
            DetectedFace(bbox=bboxes[i, :4].astype(np.float32), kps=kpss[i].astype(np.float32),
                         score=float(bboxes[i, 4]))
            for i in range(bboxes.shape[0])
        ]
