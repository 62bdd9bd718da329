"""The Ref-adapter's reference pass: one frozen DiT forward at t=0 recording every block's attention input."""
from __future__ import annotations

import torch

from ..adapters.forward_inputs import BRANCHES_OFF
from .installation import installation


@torch.no_grad()
def capture_reference_features(pipe, ref_latents: torch.Tensor, ref_context: torch.Tensor) -> dict[int, torch.Tensor]:
    """Run the installed pipeline's DiT on the normalised reference latent at timestep 0 with both branches off.

    Returns ``{block: feature}``, each feature ``[B, N_ref, dim]`` = LayerNorm(h)·(1+scale_msa)+shift_msa of
    that block (the adaLN-modulated input of its self-attention), as the official ``ref_buffer``.
    """
    inst = installation(pipe)
    features: dict[int, torch.Tensor] = {}
    inst.handle.bind(inst.forward_inputs(capture=features))
    try:
        timestep = torch.zeros(ref_latents.shape[0], dtype=ref_latents.dtype, device=ref_latents.device)
        inst.host_model_fn(dit=pipe.dit, latents=ref_latents, timestep=timestep, context=ref_context)
    finally:
        inst.handle.bind(BRANCHES_OFF)
    missing = [b for b in pipe.lynx.config.ref_blocks if b not in features]
    if missing:
        raise RuntimeError(
            f"The reference pass recorded no feature for blocks {missing}: their self-attention forward is not "
            "Lynx's (another extension may have replaced it after install)."
        )
    return features
