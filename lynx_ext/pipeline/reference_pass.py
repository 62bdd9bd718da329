"""The Ref-adapter's reference pass: one frozen DiT forward at t=0 recording every block's attention input."""
from __future__ import annotations

from typing import Callable, Optional

import torch


@torch.no_grad()
def capture_reference_features(
    dit,
    lynx,
    ref_latents: torch.Tensor,
    ref_context: torch.Tensor,
    inner_model_fn: Optional[Callable] = None,
) -> dict[int, torch.Tensor]:
    """Run ``dit`` on the normalised reference latent at timestep 0 with both adapter branches off.

    Returns ``{block: feature}``, each feature ``[B, N_ref, dim]`` = LayerNorm(h)·(1+scale_msa)+shift_msa of
    that block (the adaLN-modulated input of its self-attention), as the official ``ref_buffer``.
    """
    if inner_model_fn is None:
        from diffsynth.pipelines.wan_video import model_fn_wan_video as inner_model_fn
    state = lynx.state
    saved = dict(state.__dict__)
    try:
        state.id_tokens = None
        state.ref_features = None
        state.segments = None
        state.active = True
        state.capture = {}
        timestep = torch.zeros(ref_latents.shape[0], dtype=ref_latents.dtype, device=ref_latents.device)
        inner_model_fn(dit=dit, latents=ref_latents, timestep=timestep, context=ref_context)
        features = state.capture
    finally:
        state.__dict__.update(saved)
    missing = [b for b in lynx.config.ref_blocks if b not in features]
    if missing:
        raise RuntimeError(
            f"The reference pass recorded no feature for blocks {missing}: their self-attention forward is not "
            "Lynx's (another extension or USP may have replaced it after install)."
        )
    return features
