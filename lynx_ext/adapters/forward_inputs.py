"""What one DiT forward hands the ID and Ref branches: one immutable value, bound on the adapter handle."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import torch


@dataclass(frozen=True)
class PackedSegments:
    """Per-sample token counts when several samples share one sequence (batch dimension 1).

    ``video_lens`` are the query lengths; ``text_lens`` the text key lengths of each sample.
    """

    video_lens: tuple[int, ...]
    text_lens: tuple[int, ...]


@dataclass(frozen=True)
class LynxForwardInputs:
    """Everything the adapter branches read during one DiT forward.

    Built in one place (`lynx_ext.pipeline.forward_inputs`) for every forward — each guidance branch, the
    reference pass, a packed training forward — and bound whole on the `AdapterHandle`, so nothing carries over
    from an earlier forward. It stays bound after the forward on purpose: non-reentrant gradient checkpointing
    re-runs the blocks during ``backward()`` and must see the same inputs.

    Attributes:
        id_tokens: ``[B, N, C]`` identity tokens, or ``[1, sum(id_lens), C]`` when packed; None: no ID branch.
        ref_features: block -> ``[B, Nr, dim]`` reference features (packed: ``[1, sum(ref_lens), dim]``).
        id_scale / ref_scale: branch scales.
        active: False outside the step window (both branches off).
        blocks: block selection; None = every adapted block.
        segments: packed samples (None: ordinary batch).
        capture: the reference pass's sink (block -> self-attention input); when set, both branches are off.
    """

    id_scale: float
    ref_scale: float
    id_tokens: Optional[torch.Tensor] = None
    id_lens: Optional[tuple[int, ...]] = None
    ref_features: Optional[Mapping[int, torch.Tensor]] = None
    ref_lens: Optional[tuple[int, ...]] = None
    active: bool = True
    blocks: Optional[frozenset[int]] = None
    segments: Optional[PackedSegments] = None
    capture: Optional[dict[int, torch.Tensor]] = None

    def block_active(self, block: int) -> bool:
        """Whether the branches act in ``block`` (window, selection and capture mode)."""
        return self.capture is None and self.active and (self.blocks is None or block in self.blocks)


BRANCHES_OFF = LynxForwardInputs(id_scale=0.0, ref_scale=0.0)
"""Bound between forwards and by forwards that carry no Lynx inputs: the DiT behaves as the host's."""
