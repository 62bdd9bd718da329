"""CurricularFace IR-101 (OpenS2V-Eval's FaceSim-Cur recogniser) as a `FaceEmbedder`.

Preprocessing as in OpenS2V's ``eval/get_facesim.py``: a 224-px ArcFace-template ``norm_crop`` (RGB), resized to
112 px with bilinear interpolation, ``(x / 255 - 0.5) / 0.5``, channels in RGB order -> `IR101` -> 512-d unit vector.

The weights are never downloaded here: a missing file raises `FaceModelsMissingError` naming the file, where to put
it and where it is published.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from .errors import FaceModelsMissingError
from .ir101 import IR101

CURRICULARFACE_FILE = "glint360k_curricular_face_r101_backbone.bin"
CURRICULARFACE_URL = f"https://huggingface.co/BestWishYsh/OpenS2V-Weight/resolve/main/{CURRICULARFACE_FILE}"  # the file


class CurricularFaceEmbedder:
    """CurricularFace IR-101 behind the `FaceEmbedder` interface (crop 224 px, network 112 px).

    Args:
        model: a loaded `IR101` (see `from_file`).
        device: torch device to run on.
    """

    name = "curricularface-ir101"
    dim = 512
    input_size = 224

    def __init__(self, model: IR101, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    @classmethod
    def from_file(cls, weights: str | os.PathLike, device: str | torch.device = "cpu") -> "CurricularFaceEmbedder":
        """Load the published ``.bin`` (a plain state dict; a ``state_dict`` wrapper or ``module.`` prefix is
        accepted) strictly, mapped to ``device``."""
        try:
            state = torch.load(os.fspath(weights), map_location=device, weights_only=True)
        except Exception as err:  # pickle / zip errors of a file that is not a torch checkpoint
            raise ValueError(f"{weights} is not a readable torch checkpoint ({type(err).__name__}: {err}).") from err
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"{weights} holds a {type(state).__name__}, not a state dict of CurricularFace IR-101.")
        state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
        model = IR101()
        expected = model.state_dict()
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected]
        wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
        if missing or unexpected or wrong:
            detail = (f"first missing key {missing[0]!r}" if missing else f"first unexpected key {unexpected[0]!r}"
                      if unexpected else f"{wrong[0]!r} has shape {tuple(state[wrong[0]].shape)}, expected "
                      f"{tuple(expected[wrong[0]].shape)}")
            raise ValueError(f"{weights} is not the CurricularFace IR-101 checkpoint ({CURRICULARFACE_FILE}): "
                             f"{len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} mis-shaped keys; "
                             f"{detail}.")
        model.load_state_dict(state, strict=True)
        return cls(model, device=device)

    @staticmethod
    def preprocess(aligned_rgb_224: Iterable[np.ndarray]) -> torch.Tensor:
        """RGB uint8 crops ``[N](224, 224, 3)`` -> ``[N, 3, 112, 112]`` RGB in [-1, 1] (OpenS2V's order)."""
        import cv2

        crops = [cv2.resize(np.asarray(a, dtype=np.uint8), (112, 112)) for a in aligned_rgb_224]
        x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()
        return (x / 255.0 - 0.5) / 0.5

    @torch.no_grad()
    def embed_batch(self, aligned_rgb_224: Iterable[np.ndarray]) -> np.ndarray:
        """``[N, 512]`` float32 unit vectors."""
        x = self.preprocess(aligned_rgb_224).to(self.device)
        feats = self.model(x).float().cpu().numpy()
        return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)

    def embed_aligned(self, aligned_rgb: np.ndarray) -> np.ndarray:
        return self.embed_batch([aligned_rgb])[0]


def resolve_curricularface_weights(weights: str | os.PathLike | None = None,
                                   search_dirs: Iterable[str | os.PathLike] = ()) -> Path:
    """Path of ``glint360k_curricular_face_r101_backbone.bin``: the given file (or folder), else the first hit in
    ``search_dirs`` and ``~/.cache/lynx_ext/curricularface/``.

    Raises:
        FaceModelsMissingError: not found (nothing is downloaded).
    """
    from .model_files import cache_dir, find_weights

    folders = [Path(os.path.expanduser(str(d))) for d in search_dirs] + [cache_dir() / "curricularface"]
    found = find_weights(weights, CURRICULARFACE_FILE, "CurricularFace IR-101 weights", CURRICULARFACE_URL, folders)
    return found if found is not None else _missing(folders)


def _missing(folders: list[Path]) -> Path:
    searched = ", ".join(str(f) for f in folders)
    raise FaceModelsMissingError(
        "CurricularFace IR-101 weights (OpenS2V FaceSim-Cur)", CURRICULARFACE_FILE, folders[-1] / CURRICULARFACE_FILE,
        CURRICULARFACE_URL, hint=f"Searched: {searched}. Or pass the face-models folder that holds it.")


def load_curricularface_embedder(weights: str | os.PathLike | None = None, device: str = "cpu",
                                 search_dirs: Iterable[str | os.PathLike] = ()) -> CurricularFaceEmbedder:
    """Find ``glint360k_curricular_face_r101_backbone.bin`` (see `resolve_curricularface_weights`) and load it."""
    return CurricularFaceEmbedder.from_file(resolve_curricularface_weights(weights, search_dirs), device=device)
