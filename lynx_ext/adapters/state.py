"""Per-call runtime state read by the attention overrides (a plain object, never a Module)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch


@dataclass
class PackedSegments:
    """Per-sample token counts when several samples share one sequence (batch dimension 1).

    ``video_lens`` are the query lengths; ``text_lens`` the text key lengths of each sample.
    """

    video_lens: list[int]
    text_lens: list[int]


@dataclass
class LynxRuntimeState:
    """What the ID and Ref branches see during one DiT forward.

    The state is set by `model_fn_lynx` before the forward and deliberately *not* cleared afterwards:
    non-reentrant gradient checkpointing re-runs the blocks during ``backward()``.
    """

    id_tokens: Optional[torch.Tensor] = None  # [B, N, C], or [1, sum(id_lens), C] when packed
    id_lens: Optional[list[int]] = None
    ref_features: Optional[dict[int, torch.Tensor]] = None  # block -> [B, Nr, dim] (or packed [1, sum, dim])
    ref_lens: Optional[list[int]] = None
    id_scale: float = 1.0
    ref_scale: float = 1.0
    active: bool = True  # False outside the step window
    blocks: Optional[frozenset[int]] = None  # block selection; None = every adapted block
    segments: Optional[PackedSegments] = None
    capture: Optional[dict[int, torch.Tensor]] = field(default=None)  # reference pass: block -> attn input

    def block_active(self, block: int) -> bool:
        return self.active and (self.blocks is None or block in self.blocks)

    def reset(self) -> None:
        fresh = LynxRuntimeState(id_scale=self.id_scale, ref_scale=self.ref_scale, blocks=self.blocks)
        self.__dict__.update(fresh.__dict__)
