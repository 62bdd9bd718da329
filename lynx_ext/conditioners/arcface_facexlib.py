"""The official Lynx identity embedder: facexlib's ArcFace IR-SE50 weights on our own backbone (any device).

Preprocessing as in the official code: 112-px ``norm_crop`` (RGB) -> [0, 1] -> ``(x - 0.5) / 0.5`` -> channels
flipped to BGR -> IR-SE50 -> 512-d unit vector.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np
import torch

from .ir_se50 import IRSE50


class FacexlibArcFaceEmbedder:
    """ArcFace IR-SE50 (``recognition_arcface_ir_se50.pth``) behind the `FaceEmbedder` interface.

    Args:
        model: a loaded `IRSE50` (see `from_file`).
        device: torch device to run on.
    """

    dim = 512
    input_size = 112

    def __init__(self, model: IRSE50, device: str | torch.device = "cpu", name: str = "facexlib-arcface-ir_se50"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.name = name

    @classmethod
    def from_file(cls, weights: str | os.PathLike, device: str | torch.device = "cpu") -> "FacexlibArcFaceEmbedder":
        """Load facexlib's ``.pth`` (a plain state dict) strictly, mapped to ``device``."""
        model = IRSE50()
        state = torch.load(os.fspath(weights), map_location=device, weights_only=True)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ValueError(
                f"{weights} is not facexlib's ArcFace IR-SE50 checkpoint (recognition_arcface_ir_se50.pth): {err}"
            ) from err
        return cls(model, device=device)

    @staticmethod
    def preprocess(aligned_rgb: Sequence[np.ndarray]) -> torch.Tensor:
        """RGB uint8 crops ``[N](112, 112, 3)`` -> ``[N, 3, 112, 112]`` BGR in [-1, 1] (the official order)."""
        batch = np.stack([np.asarray(a, dtype=np.uint8) for a in aligned_rgb])
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255.0
        x = (x - 0.5) / 0.5
        return x[:, [2, 1, 0]].contiguous()

    @torch.no_grad()
    def embed_batch(self, aligned_rgb: Sequence[np.ndarray]) -> np.ndarray:
        """``[N, 512]`` float32 unit vectors."""
        x = self.preprocess(aligned_rgb).to(self.device)
        param = next(self.model.parameters())
        return self.model(x.to(param.dtype)).float().cpu().numpy()

    def embed_aligned(self, aligned_rgb: np.ndarray) -> np.ndarray:
        return self.embed_batch([aligned_rgb])[0]


def load_facexlib_embedder(weights: Optional[str | os.PathLike] = None, device: str = "cpu",
                           offline_ok: Optional[bool] = None, search_dirs: Sequence[os.PathLike] = ()
                           ) -> FacexlibArcFaceEmbedder:
    """Find (``weights``, ``search_dirs``, the cache, facexlib's folder) or download (when online)
    ``recognition_arcface_ir_se50.pth`` and load it."""
    from pathlib import Path

    from .model_files import resolve_facexlib_weights

    path = resolve_facexlib_weights(weights, search_dirs=[Path(d) for d in search_dirs], offline_ok=offline_ok)
    return FacexlibArcFaceEmbedder.from_file(path, device=device)
