"""Summary statistics of case values: mean, spread and a percentile-bootstrap confidence interval.

The bootstrap resamples cases with replacement (``samples`` times, a fixed seed so a report is reproducible) and
takes the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the resampled means. Values that are
None (no face, unreadable video) are left out and counted in ``n_missing``.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

BOOTSTRAP_SEED = 0


def finite(values: Sequence[Optional[float]]) -> np.ndarray:
    return np.array([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)


def bootstrap_ci(values: np.ndarray, samples: int = 1000, confidence: float = 0.95,
                 seed: int = BOOTSTRAP_SEED) -> tuple[Optional[float], Optional[float]]:
    """Percentile-bootstrap interval of the mean of ``values`` (None, None for fewer than 2 values)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return None, None
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(int(samples), values.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


def summarize(values: Sequence[Optional[float]], samples: int = 1000, confidence: float = 0.95) -> dict:
    """``{n, n_missing, mean, std, min, max, ci_low, ci_high}`` (std: sample standard deviation)."""
    vals = finite(values)
    lo, hi = bootstrap_ci(vals, samples, confidence)
    return {
        "n": int(vals.size), "n_missing": int(len(values) - vals.size),
        "mean": float(vals.mean()) if vals.size else None,
        "std": float(vals.std(ddof=1)) if vals.size >= 2 else None,
        "min": float(vals.min()) if vals.size else None, "max": float(vals.max()) if vals.size else None,
        "ci_low": lo, "ci_high": hi,
    }


MIN_EFFECT = 0.01  # the smallest mean difference that counts (the metric's units: cosine for face similarity)


def paired_difference(baseline: dict[str, Optional[float]], other: dict[str, Optional[float]], samples: int = 1000,
                      confidence: float = 0.95, min_effect: float = MIN_EFFECT) -> dict:
    """Mean of ``other - baseline`` over the keys where both have a value, with its bootstrap interval.

    ``exceeds_noise`` ("larger than noise") is true when the interval excludes 0 **and** the mean difference is at
    least ``min_effect`` in size: a difference of 0.0004 with a tight interval is real but too small to matter.
    None when fewer than 2 pairs.
    """
    keys = [k for k in baseline if k in other and baseline[k] is not None and other[k] is not None
            and math.isfinite(baseline[k]) and math.isfinite(other[k])]
    diffs = np.array([other[k] - baseline[k] for k in keys], dtype=np.float64)
    lo, hi = bootstrap_ci(diffs, samples, confidence)
    return {
        "n_pairs": len(keys),
        "baseline_mean": float(np.mean([baseline[k] for k in keys])) if keys else None,
        "mean": float(np.mean([other[k] for k in keys])) if keys else None,
        "difference": float(diffs.mean()) if keys else None,
        "ci_low": lo, "ci_high": hi, "min_effect": float(min_effect),
        "exceeds_noise": None if lo is None else bool((lo > 0 or hi < 0) and abs(diffs.mean()) >= min_effect),
    }
