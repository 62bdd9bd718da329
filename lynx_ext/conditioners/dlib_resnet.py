"""dlib's ResNet face descriptor (128-d, CC0 weights from ``face-recognition-models``) as a `FaceEmbedder`.

It needs no download, so it is the real-model scorer for offline checks and evaluation. dlib aligns faces its own
way (5-point shape predictor -> 150-px chip), so ``embed_aligned`` takes the usual ArcFace-template crop at 224 px,
finds dlib's 5 points inside it (the face's place in such a crop is fixed), and builds dlib's chip from that.
Smaller crops (e.g. the 112-px ArcFace crop of a generated frame) are upscaled to 224 first.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

# Where dlib's HOG detector puts the face in a 224-px ArcFace-template crop (mean over the test photos).
FACE_RECT_224 = (26, 58, 188, 220)


class DlibResNetEmbedder:
    """``dlib_face_recognition_resnet_model_v1.dat`` behind the `FaceEmbedder` interface (output L2-normalised).

    Args:
        model_dir: folder with the dlib ``.dat`` files; default: the ``face-recognition-models`` package.
        num_jitters: dlib's test-time augmentation (0 = off, deterministic).
    """

    name = "dlib-resnet-v1"
    dim = 128
    input_size = 224

    def __init__(self, model_dir: Optional[str | os.PathLike] = None, num_jitters: int = 0):
        import dlib

        from .model_files import resolve_dlib_file

        self.shape_predictor = dlib.shape_predictor(str(resolve_dlib_file("landmarks_5", model_dir)))
        self.recognizer = dlib.face_recognition_model_v1(str(resolve_dlib_file("recognition", model_dir)))
        self.num_jitters = int(num_jitters)

    def embed_aligned(self, aligned_rgb: np.ndarray) -> np.ndarray:
        import cv2
        import dlib

        crop = np.ascontiguousarray(np.asarray(aligned_rgb, dtype=np.uint8))
        if crop.shape[:2] != (self.input_size, self.input_size):
            grow = crop.shape[0] < self.input_size
            crop = cv2.resize(crop, (self.input_size, self.input_size),
                              interpolation=cv2.INTER_CUBIC if grow else cv2.INTER_AREA)
        shape = self.shape_predictor(crop, dlib.rectangle(*FACE_RECT_224))
        chip = dlib.get_face_chip(crop, shape, size=150, padding=0.25)
        vec = np.asarray(self.recognizer.compute_face_descriptor(chip, self.num_jitters), dtype=np.float32)
        return vec / max(float(np.linalg.norm(vec)), 1e-12)
