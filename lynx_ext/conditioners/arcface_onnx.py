"""insightface's ArcFace ONNX recognizers (buffalo_l ``w600k_r50.onnx``, antelopev2 ``glintr100.onnx``).

Loaded by ``insightface.model_zoo.get_model`` (its ``ArcFaceONNX``), which expects BGR crops and feeds the
network RGB; we hand it our RGB crop flipped to BGR, so the network sees what it was trained on.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from .standin import onnx_standin_note


class InsightFaceArcFaceEmbedder:
    """ArcFace ONNX behind the `FaceEmbedder` interface; outputs are L2-normalised here.

    Args:
        model_file: the recognizer ``.onnx``.
        providers: onnxruntime providers (None lets insightface choose).
        ctx_id: insightface's device switch; negative forces the CPU provider.
    """

    def __init__(self, model_file: str | os.PathLike, providers: Optional[Sequence[Any]] = None, ctx_id: int = 0):
        from insightface.model_zoo import model_zoo

        self.model_file = Path(model_file)
        model = model_zoo.get_model(str(self.model_file), providers=list(providers) if providers else None)
        if getattr(model, "taskname", None) != "recognition":
            raise ValueError(
                f"{self.model_file} is not an ArcFace recognizer (insightface routed it to "
                f"{type(model).__name__ if model is not None else 'nothing'}); pass e.g. w600k_r50.onnx."
            )
        model.prepare(ctx_id)
        self.model = model
        self.input_size = int(model.input_size[0])
        self.dim = int(model.output_shape[-1]) if isinstance(model.output_shape[-1], int) else 512
        note = onnx_standin_note(model)
        self.standin = note is not None
        self.name = (f"stand-in recognizer {self.model_file.name} ({note})" if self.standin
                     else f"insightface-arcface:{self.model_file.name}")

    def embed_batch(self, aligned_rgb: Sequence[np.ndarray]) -> np.ndarray:
        """``[N, dim]`` float32 unit vectors from RGB uint8 crops of ``input_size``."""
        bgr = [np.ascontiguousarray(np.asarray(a, dtype=np.uint8)[..., ::-1]) for a in aligned_rgb]
        feats = np.asarray(self.model.get_feat(bgr), dtype=np.float32).reshape(len(bgr), -1)
        return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)

    def embed_aligned(self, aligned_rgb: np.ndarray) -> np.ndarray:
        return self.embed_batch([aligned_rgb])[0]
