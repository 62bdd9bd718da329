"""dlib HOG face detector + 68-point landmarks, reported as ArcFace's 5 points (no download needed).

ArcFace points from the 68-point layout: eye centres (mean of points 36-41 and 42-47), nose tip (30), mouth
corners (48, 54). The 68-point model comes from ``face-recognition-models``; it was trained on iBUG 300-W, whose
terms exclude commercial use, so treat it as a research/test tool. Large photos are detected on a copy at most
``max_side`` px long; landmarks are then fitted on the full-resolution photo.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from .protocols import DetectedFace


class DlibDetector:
    """`FaceDetector` on dlib's frontal HOG detector.

    Args:
        model_dir: folder with ``shape_predictor_68_face_landmarks.dat``; default: ``face-recognition-models``.
        upsample: image pyramid upsampling steps (1 finds faces down to ~40 px).
        threshold: HOG score threshold (dlib's default 0).
        max_side: long side of the copy the detector runs on.
    """

    name = "dlib-hog-68"
    standin = False
    score_scale = "dlib HOG margin: above 0 is a face, no upper bound (about 0 to 3); not a 0-1 confidence"

    def __init__(self, model_dir: Optional[str | os.PathLike] = None, upsample: int = 1, threshold: float = 0.0,
                 max_side: int = 1200):
        import dlib

        from .model_files import resolve_dlib_file

        self.detector = dlib.get_frontal_face_detector()
        self.landmarks = dlib.shape_predictor(str(resolve_dlib_file("landmarks_68", model_dir)))
        self.upsample, self.threshold, self.max_side = int(upsample), float(threshold), int(max_side)

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        import cv2
        import dlib

        rgb = np.ascontiguousarray(rgb)
        scale = min(1.0, self.max_side / max(rgb.shape[:2]))
        small = rgb if scale == 1.0 else cv2.resize(
            rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        rects, scores, _ = self.detector.run(small, self.upsample, self.threshold)
        faces = []
        for rect, score in sorted(zip(rects, scores), key=lambda rs: -rs[1]):
            box = np.array([rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1], np.float32) / scale
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            full = dlib.rectangle(x1, y1, x2 - 1, y2 - 1)
            pts = np.array([[p.x, p.y] for p in self.landmarks(rgb, full).parts()], dtype=np.float32)
            kps = np.stack([pts[36:42].mean(0), pts[42:48].mean(0), pts[30], pts[48], pts[54]])
            faces.append(DetectedFace(bbox=box, kps=kps.astype(np.float32), score=float(score)))
        return faces
