"""Temporal identity consistency: does the face stay the same person from one scored frame to the next?"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..conditioners.similarity import cosine_similarity


def temporal_consistency(embeddings: Sequence[Optional[np.ndarray]]) -> Optional[float]:
    """Mean cosine similarity of consecutive face embeddings (frames without a face are passed over).

    1.0 means the identity never changes between scored frames; None when fewer than two frames have a face.
    """
    faces = [e for e in embeddings if e is not None]
    pairs = [cosine_similarity(a, b) for a, b in zip(faces, faces[1:])]
    return float(np.mean(pairs)) if pairs else None
