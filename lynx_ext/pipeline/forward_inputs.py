"""The one builder of `LynxForwardInputs`: call-level values over the installed `LynxSettings`."""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import torch

from ..adapters.forward_inputs import LynxForwardInputs, PackedSegments
from ..validation.generation import check_blocks_fit
from .settings import LynxSettings, normalise_blocks, normalise_window


def step_fraction(timestep: torch.Tensor, timesteps: Optional[torch.Tensor]) -> Optional[float]:
    """Position of ``timestep`` in the sampling schedule, in [0, 1); None without a schedule (training)."""
    if timesteps is None or len(timesteps) == 0:
        return None
    t = float(torch.as_tensor(timestep).flatten()[0])
    idx = int(torch.argmin((timesteps.float().cpu() - t).abs()))
    return idx / len(timesteps)


def in_window(fraction: Optional[float], window: Optional[Sequence[float]]) -> bool:
    """Whether a step at ``fraction`` of the schedule lies in ``window`` = [start, end) (end 1 includes the last)."""
    if window is None or fraction is None:
        return True
    start, end = float(window[0]), float(window[1])
    return start <= fraction < end or (end >= 1.0 and fraction >= start)


def forward_inputs(
    settings: LynxSettings,
    num_blocks: int,
    *,
    id_tokens: Optional[torch.Tensor] = None,
    ref_features: Optional[Mapping[int, torch.Tensor]] = None,
    id_scale: Optional[float] = None,
    ref_scale: Optional[float] = None,
    blocks: Optional[Sequence[int]] = None,
    step_window: Optional[Sequence[float]] = None,
    fraction: Optional[float] = None,
    segments: Optional[PackedSegments] = None,
    id_lens: Optional[Sequence[int]] = None,
    ref_lens: Optional[Sequence[int]] = None,
    capture: Optional[dict] = None,
) -> LynxForwardInputs:
    """Everything one DiT forward hands the branches. ``None`` means the installed value (``settings``).

    Args:
        settings: the pipeline's installed defaults.
        num_blocks: blocks of the DiT (a block selection must lie in ``range(num_blocks)``).
        fraction: the step's position in the schedule (None: no schedule, the step window does not apply).
        segments: packed samples (training).
        id_lens: identity tokens per packed sample.
        ref_lens: reference tokens per packed sample.
        capture: a dict that receives every block's self-attention input (the reference pass); the branches
            are off then.
    """
    s = settings.updated(id_scale=id_scale, ref_scale=ref_scale)
    chosen = s.blocks if blocks is None else normalise_blocks(blocks)
    window = s.step_window if step_window is None else normalise_window(step_window)
    check_blocks_fit(chosen, num_blocks)
    if capture is not None and (id_tokens is not None or ref_features is not None):
        raise ValueError("The reference pass (capture) runs with both branches off: pass no tokens or features.")
    return LynxForwardInputs(
        id_scale=s.id_scale, ref_scale=s.ref_scale, id_tokens=id_tokens,
        id_lens=None if id_lens is None else tuple(int(n) for n in id_lens),
        ref_features=ref_features, ref_lens=None if ref_lens is None else tuple(int(n) for n in ref_lens),
        active=in_window(fraction, window), blocks=None if chosen is None else frozenset(chosen),
        segments=segments, capture=capture,
    )
