"""Strict JSON for reports: NaN and infinities become null (plain ``json`` would write invalid ``NaN``)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def to_strict(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays made plain and every non-finite float replaced by None."""
    if isinstance(obj, dict):
        return {str(k): to_strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_strict(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_strict(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(float(obj)) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps_strict(obj: Any, indent: int | None = 1) -> str:
    return json.dumps(to_strict(obj), indent=indent, allow_nan=False, ensure_ascii=False)
