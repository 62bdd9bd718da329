"""Face similarity: the one cosine helper and per-frame similarity to a reference embedding."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def cosine_similarity(a, b) -> Optional[float]:
    """Cosine similarity of two embeddings (any norm); None when either is None (no face was found).

    A `ValueError` on sizes that differ (two embedders mixed) or a zero / non-finite vector.
    """
    if a is None or b is None:
        return None
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"Cannot compare embeddings of sizes {a.shape[0]} and {b.shape[0]}: use one embedder.")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0 or not np.isfinite(na * nb):
        raise ValueError("Cannot compare a zero or non-finite embedding.")
    return float(np.dot(a, b) / (na * nb))


def frame_similarities(analyzer, frames: Sequence, reference) -> list[Optional[float]]:
    """Cosine similarity of the largest face of every frame to ``reference`` (None where no face is found)."""
    from .errors import NoFaceError

    values: list[Optional[float]] = []
    for frame in frames:
        try:
            values.append(cosine_similarity(analyzer.analyze(frame).embedding, reference))
        except NoFaceError:
            values.append(None)
    return values


def summarise_similarities(values: Sequence[Optional[float]]) -> dict:
    """``per_frame``, ``mean`` over frames with a face (None when there is none), ``frames_with_face``, ``frames``."""
    found = [v for v in values if v is not None]
    return {"per_frame": list(values), "mean": float(np.mean(found)) if found else None,
            "frames_with_face": len(found), "frames": len(values)}
