"""Reference latents as the official code makes them: a seeded *sample* of the Wan VAE posterior.

DiffSynth's `WanVideoVAE.encode` returns only the normalised mean. We run the host encoder unchanged and
read the posterior parameters (``mu``, ``log_var``) off its ``conv1`` with a forward hook.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from PIL import Image


def image_to_vae_input(image: Image.Image, dtype: torch.dtype, drop: bool = False) -> torch.Tensor:
    """RGB PIL image -> ``[3, 1, H, W]`` in [-1, 1]; ``drop=True`` gives the official grey (all-zero) image."""
    arr = np.asarray(image.convert("RGB"), dtype=np.float32)
    x = torch.from_numpy(arr).permute(2, 0, 1) / 255.0 * 2 - 1
    if drop:
        x = x * 0
    return x[:, None].to(dtype)


@torch.no_grad()
def vae_posterior(vae, video: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Un-normalised posterior ``(mu, log_var)`` of ``video`` ``[3, T, H, W]`` from the host VAE."""
    captured = {}

    def hook(_module, _inputs, output):
        captured["out"] = output

    handle = vae.model.conv1.register_forward_hook(hook)
    try:
        vae.encode([video], device=device, tiled=False)
    finally:
        handle.remove()
    mu, log_var = captured["out"].chunk(2, dim=1)
    return mu, log_var


@torch.no_grad()
def sample_reference_latent(
    vae,
    image: Image.Image,
    seed: Optional[int],
    device,
    dtype: torch.dtype,
    drop: bool = False,
) -> torch.Tensor:
    """Normalised latent ``[1, 16, 1, h, w]`` = ``(mu + exp(0.5*clamp(log_var)) * eps - mean) / std``.

    ``eps`` comes from a CPU generator seeded ``seed`` (the official pipeline passes ``seed + 1``), drawn in
    ``dtype``, so the same seed gives the same latent on any device. ``seed=None`` draws fresh noise.
    """
    video = image_to_vae_input(image, dtype, drop=drop)
    mu, log_var = vae_posterior(vae, video, device)
    std = torch.exp(0.5 * log_var.clamp(-30.0, 20.0))
    generator = torch.Generator("cpu").manual_seed(seed) if seed is not None else None
    eps = torch.randn(mu.shape, generator=generator, dtype=dtype).to(device=mu.device, dtype=mu.dtype)
    z = mu + std * eps
    mean = vae.mean.to(device=z.device, dtype=z.dtype).view(1, -1, 1, 1, 1)
    inv_std = (1.0 / vae.std).to(device=z.device, dtype=z.dtype).view(1, -1, 1, 1, 1)
    return ((z - mean) * inv_std).to(device=device, dtype=dtype)
