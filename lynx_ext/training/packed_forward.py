"""The training forward: several samples of different sizes in one DiT sequence (the only forward training runs).

Each sample keeps its own RoPE grid, text, identity tokens and reference features and attends only to its
own tokens (the official NaViT-style forward). Timesteps may be shared (the official behaviour) or per
sample, using the DiT's per-token modulation path. The host's ``model_fn`` has neither per-sample timesteps
nor variable-length attention; on one unpacked sample this forward equals it (``tests/test_packed_forward.py``).
The Lynx inputs are built by the installation's `forward_inputs`, as for inference.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from diffsynth.core import gradient_checkpoint_forward
from diffsynth.models.wan_video_dit import sinusoidal_embedding_1d
from einops import rearrange

from ..adapters.forward_inputs import BRANCHES_OFF, PackedSegments
from ..pipeline.installation import installation
from .activation_offload import BlockInputOffload, offload_context


def _freqs(dit, f: int, h: int, w: int, device) -> torch.Tensor:
    return torch.cat([
        dit.freqs[0][:f].view(f, 1, 1, -1).expand(f, h, w, -1),
        dit.freqs[1][:h].view(1, h, 1, -1).expand(f, h, w, -1),
        dit.freqs[2][:w].view(1, 1, w, -1).expand(f, h, w, -1),
    ], dim=-1).reshape(f * h * w, 1, -1).to(device)


def _time(dit, timesteps: torch.Tensor, lens: list[int], dtype):
    """Shared timestep -> ([1, dim], [1, 6, dim]); per-sample -> per-token ([1, L, dim], [1, L, 6, dim])."""
    if bool((timesteps == timesteps[0]).all()):
        t = dit.time_embedding(sinusoidal_embedding_1d(dit.freq_dim, timesteps[:1].to(dtype)))
        return t, dit.time_projection(t).unflatten(1, (6, dit.dim))
    t = dit.time_embedding(sinusoidal_embedding_1d(dit.freq_dim, timesteps.to(dtype)))  # [S, dim]
    t = torch.repeat_interleave(t, torch.tensor(lens, device=t.device), dim=0)[None]  # [1, L, dim]
    return t, dit.time_projection(t).unflatten(2, (6, dit.dim))


def packed_forward(
    pipe,
    latents: Sequence[torch.Tensor],
    timesteps: torch.Tensor,
    contexts: Sequence[torch.Tensor],
    id_tokens: Optional[Sequence[torch.Tensor]] = None,
    ref_features: Optional[dict[int, torch.Tensor]] = None,
    ref_lens: Optional[Sequence[int]] = None,
    id_scale: Optional[float] = None,
    ref_scale: Optional[float] = None,
    capture: bool = False,
    use_gradient_checkpointing: bool = False,
    activation_offload: Optional[BlockInputOffload] = None,
):
    """Run the installed pipeline's DiT once over all samples (text-to-video DiTs).

    Args:
        latents: per sample ``[1, C, F, H, W]`` (sizes may differ).
        timesteps: ``[S]`` (or one value shared by all samples).
        contexts: per sample raw text embeddings ``[1, L_i, text_dim]``.
        id_tokens: per sample identity tokens ``[1, N_i, C]`` (or None: no ID branch).
        ref_features: block -> packed ``[1, sum(ref_lens), dim]`` features, with ``ref_lens``.
        id_scale: None = the installed value.
        ref_scale: None = the installed value.
        capture: record every block's self-attention input instead (the packed reference pass); returns
            ``(features, video_lens)``.
        use_gradient_checkpointing: recompute each block in the backward (the host's non-reentrant checkpoint).
        activation_offload: with checkpointing, keep each block's saved inputs in pinned host memory.
    Returns:
        per sample predictions ``[1, C, F, H, W]``.
    """
    inst = installation(pipe)
    dit = pipe.dit
    if getattr(dit, "has_image_input", False):
        raise ValueError("Packed training supports text-to-video Wan DiTs; this DiT takes image inputs (I2V).")
    n = len(latents)
    if len(contexts) != n or (id_tokens is not None and len(id_tokens) != n):
        raise ValueError("latents, contexts and id_tokens need one entry per sample.")
    if ref_features is not None and ref_lens is None:
        raise ValueError("Packed reference features need ref_lens (tokens per sample).")
    dtype = latents[0].dtype
    xs, grids, freqs = [], [], []
    for lat in latents:
        if lat.dim() != 5 or lat.shape[0] != 1:
            raise ValueError(f"Each packed latent must be [1, C, F, H, W], got {tuple(lat.shape)}.")
        x = dit.patchify(lat)
        f, h, w = x.shape[2:]
        grids.append((f, h, w))
        xs.append(rearrange(x, "b c f h w -> b (f h w) c"))
        freqs.append(_freqs(dit, f, h, w, x.device))
    video_lens = [x.shape[1] for x in xs]
    x = torch.cat(xs, dim=1)
    freqs = torch.cat(freqs, dim=0)
    context = torch.cat([dit.text_embedding(c) for c in contexts], dim=1)
    timesteps = torch.as_tensor(timesteps, device=x.device).flatten()
    if timesteps.numel() == 1:
        timesteps = timesteps.expand(n)
    t, t_mod = _time(dit, timesteps, video_lens, dtype)
    segments = PackedSegments(video_lens=tuple(video_lens), text_lens=tuple(c.shape[1] for c in contexts))
    sink: Optional[dict] = {} if capture else None
    if capture:
        inputs = inst.forward_inputs(segments=segments, capture=sink)
    else:
        inputs = inst.forward_inputs(
            id_tokens=None if id_tokens is None else torch.cat(list(id_tokens), dim=1),
            id_lens=None if id_tokens is None else [tok.shape[1] for tok in id_tokens],
            ref_features=ref_features, ref_lens=ref_lens, id_scale=id_scale, ref_scale=ref_scale, segments=segments)
    inst.handle.bind(inputs)
    offload = activation_offload if use_gradient_checkpointing and torch.is_grad_enabled() else None
    for block in dit.blocks:
        with offload_context(offload):
            x = gradient_checkpoint_forward(block, use_gradient_checkpointing, False, x, context, t_mod, freqs)
    if capture:
        inst.handle.bind(BRANCHES_OFF)
        return sink, video_lens
    x = dit.head(x, t)
    if not torch.is_grad_enabled():  # with autograd the inputs stay bound for checkpointed recomputation
        inst.handle.bind(BRANCHES_OFF)
    return [dit.unpatchify(seg, grid) for seg, grid in zip(x.split(video_lens, dim=1), grids)]
