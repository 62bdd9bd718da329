"""Which frames of a video are scored.

Rule: with ``N`` decoded frames and ``k`` requested, score ``floor(linspace(0, N - 1, k))`` (OpenS2V-Eval's rule,
k = 32 there and by default here): the first and last frame and evenly spaced ones between, so the same number
of frames is scored over the whole clip whatever its length or frame rate. When ``N <= k`` (or ``k`` is None)
every frame is scored once.
"""
from __future__ import annotations

from typing import Optional

import numpy as np


def sample_indices(num_frames: int, k: Optional[int]) -> list[int]:
    """Indices of the frames to score (sorted, distinct)."""
    if num_frames <= 0:
        return []
    if k is None or num_frames <= k:
        return list(range(num_frames))
    return [int(i) for i in np.linspace(0, num_frames - 1, int(k), dtype=int)]
