"""`LynxSettings`: the installed adapter defaults of a pipeline, the one owner of every call-level ``None``."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional, Sequence

_UNSET = object()


@dataclass(frozen=True)
class LynxSettings:
    """How the adapters act when a call does not say otherwise (set by `install`, changed by `set_scales`).

    Attributes:
        id_scale: ID-branch scale.
        ref_scale: Ref-branch scale.
        blocks: block selection (sorted block indices); None = every adapted block.
        step_window: ``(start, end)`` fractions of the denoising steps where the adapters act; None = all steps.
    """

    id_scale: float = 1.0
    ref_scale: float = 1.0
    blocks: Optional[tuple[int, ...]] = None
    step_window: Optional[tuple[float, float]] = None

    def __post_init__(self):
        for name in ("id_scale", "ref_scale"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}.")
        if self.step_window is not None:
            start, end = self.step_window
            if not (0.0 <= start <= end <= 1.0):
                raise ValueError(f"step_window must be (start, end) with 0 <= start <= end <= 1 (start == end: never), "
                                 f"got {self.step_window}.")

    def updated(self, id_scale=None, ref_scale=None, blocks=_UNSET, step_window=_UNSET) -> "LynxSettings":
        """A copy with the given values changed (``None`` scales keep theirs; ``blocks=None`` means all blocks)."""
        changes = {}
        if id_scale is not None:
            changes["id_scale"] = float(id_scale)
        if ref_scale is not None:
            changes["ref_scale"] = float(ref_scale)
        if blocks is not _UNSET:
            changes["blocks"] = normalise_blocks(blocks)
        if step_window is not _UNSET:
            changes["step_window"] = normalise_window(step_window)
        return replace(self, **changes)


def normalise_blocks(blocks: Optional[Sequence[int]]) -> Optional[tuple[int, ...]]:
    if blocks is None:
        return None
    return tuple(sorted({int(b) for b in blocks}))  # empty: no block (the adapters are off)


def normalise_window(window: Optional[Sequence[float]]) -> Optional[tuple[float, float]]:
    if window is None:
        return None
    if len(window) != 2:
        raise ValueError(f"step_window needs two fractions (start, end), got {window!r}.")
    return float(window[0]), float(window[1])
