"""`LynxSettings`: the installed adapter defaults of a pipeline, the one owner of every call-level ``None``."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence

from ..validation.generation import check_blocks, check_scale, check_window

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

    def __post_init__(self):  # the rules of `lynx_ext.validation.generation` (LynxValueError naming the value)
        for name in ("id_scale", "ref_scale"):
            object.__setattr__(self, name, check_scale(getattr(self, name), name))
        object.__setattr__(self, "blocks", check_blocks(self.blocks))
        object.__setattr__(self, "step_window", check_window(self.step_window))

    def updated(self, id_scale=None, ref_scale=None, blocks=_UNSET, step_window=_UNSET) -> "LynxSettings":
        """A copy with the given values changed (``None`` scales keep theirs; ``blocks=None`` means all blocks)."""
        changes = {}
        if id_scale is not None:
            changes["id_scale"] = id_scale
        if ref_scale is not None:
            changes["ref_scale"] = ref_scale
        if blocks is not _UNSET:
            changes["blocks"] = normalise_blocks(blocks)
        if step_window is not _UNSET:
            changes["step_window"] = normalise_window(step_window)
        return replace(self, **changes)


def normalise_blocks(blocks: Optional[Sequence[int]]) -> Optional[tuple[int, ...]]:
    """Sorted distinct indices (checked); empty: no block (the adapters are off)."""
    return check_blocks(blocks)


def normalise_window(window: Optional[Sequence[float]]) -> Optional[tuple[float, float]]:
    """``(start, end)`` checked: finite fractions with start <= end."""
    return check_window(window)
