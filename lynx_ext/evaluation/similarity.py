"""Face similarity of two identity embeddings."""
from __future__ import annotations

from typing import Optional

import numpy as np


def cosine_similarity(a: Optional[np.ndarray], b: Optional[np.ndarray]) -> Optional[float]:
    """Cosine of two embeddings; None when either is None (no face was found)."""
    if a is None or b is None:
        return None
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
