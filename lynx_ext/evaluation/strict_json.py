"""Strict JSON for reports: NaN and infinities become null (plain ``json`` would write invalid ``NaN``).

The one implementation lives in `lynx_ext.outputs` (every report of lynx-ext is written with it).
"""
from __future__ import annotations

from ..outputs import dumps_strict, to_strict

__all__ = ["dumps_strict", "to_strict"]
