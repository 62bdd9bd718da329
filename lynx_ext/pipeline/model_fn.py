"""`model_fn_lynx`: wraps the host's ``pipe.model_fn`` to feed the adapter branches and run Lynx guidance.

Both `WanVideoPipeline.__call__` and DiffSynth's `FlowMatchSFTLoss` call ``pipe.model_fn``; this one path
therefore serves inference and training.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch

from .guidance import LynxGuidance, combine_guidance


def step_fraction(timestep: torch.Tensor, timesteps: Optional[torch.Tensor]) -> Optional[float]:
    """Position of ``timestep`` in the sampling schedule, in [0, 1); None without a schedule."""
    if timesteps is None or len(timesteps) == 0:
        return None
    t = float(timestep.flatten()[0])
    idx = int(torch.argmin((timesteps.float().cpu() - t).abs()))
    return idx / len(timesteps)


def in_window(fraction: Optional[float], window: Optional[Sequence[float]]) -> bool:
    if window is None or fraction is None:
        return True
    start, end = float(window[0]), float(window[1])
    return start <= fraction < end or (end >= 1.0 and fraction >= start)


def model_fn_lynx(
    lynx=None,
    lynx_id_tokens: Optional[torch.Tensor] = None,
    lynx_ref_features: Optional[dict] = None,
    lynx_id_scale: Optional[float] = None,
    lynx_ref_scale: Optional[float] = None,
    lynx_guidance: Optional[LynxGuidance] = None,
    lynx_step_window: Optional[Sequence[float]] = None,
    lynx_timesteps: Optional[torch.Tensor] = None,
    lynx_blocks: Optional[Sequence[int]] = None,
    timestep: Optional[torch.Tensor] = None,
    context: Optional[torch.Tensor] = None,
    *,
    _inner: Callable,
    _defaults: dict,
    **kwargs,
):
    """Set the branch inputs on ``lynx.state``, then call the host model function (once, or per guidance branch)."""
    if lynx is None:
        return _inner(timestep=timestep, context=context, **kwargs)
    state = lynx.state
    state.segments = None
    state.capture = None
    state.id_lens = None
    state.ref_lens = None
    state.id_scale = _defaults["id_scale"] if lynx_id_scale is None else float(lynx_id_scale)
    state.ref_scale = _defaults["ref_scale"] if lynx_ref_scale is None else float(lynx_ref_scale)
    blocks = lynx_blocks if lynx_blocks is not None else _defaults.get("blocks")
    state.blocks = None if blocks is None else frozenset(int(b) for b in blocks)
    state.active = in_window(step_fraction(timestep, lynx_timesteps), lynx_step_window)

    def branch(ctx, id_tokens, ref_features):
        state.id_tokens = id_tokens
        state.ref_features = ref_features
        return _inner(timestep=timestep, context=ctx, **kwargs)

    cond = branch(context, lynx_id_tokens, lynx_ref_features)
    if lynx_guidance is None or not lynx_guidance.enabled:
        return cond
    g = lynx_guidance
    uncond = branch(g.context_nega, g.id_tokens_nega, g.ref_features_nega)
    identity = None
    if g.cfg_scale_i is not None:
        identity = branch(g.context_nega, lynx_id_tokens, lynx_ref_features)
    # Leave the conditional inputs in place for anything that inspects the state afterwards.
    state.id_tokens, state.ref_features = lynx_id_tokens, lynx_ref_features
    return combine_guidance(cond, uncond, g.cfg_scale, identity, g.cfg_scale_i)
