"""Perceiver Resampler: ArcFace embedding -> identity tokens.

The host's `InfiniteYouImageProjector` is, key for key and operation for operation, the official Lynx
`Resampler` (IP-Adapter-Plus style). We reuse it instead of carrying a copy.
"""
from __future__ import annotations

import torch
from diffsynth.models.flux_infiniteyou import InfiniteYouImageProjector

from .config import ResamplerConfig


class PerceiverResampler(InfiniteYouImageProjector):
    """`[B, 512]` or `[B, N, 512]` face embeddings -> `[B, num_queries, output_dim]` identity tokens."""

    def __init__(self, config: ResamplerConfig):
        super().__init__(
            dim=config.dim, depth=config.depth, dim_head=config.dim_head, heads=config.heads,
            num_queries=config.num_queries, embedding_dim=config.embedding_dim,
            output_dim=config.output_dim, ff_mult=config.ff_mult,
        )
        self.config = config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x[:, None, :]
        if x.dim() != 3 or x.shape[-1] != self.config.embedding_dim:
            raise ValueError(
                f"The resampler expects face embeddings of shape [B, {self.config.embedding_dim}] or "
                f"[B, N, {self.config.embedding_dim}], got {tuple(x.shape)}."
            )
        x = x.to(dtype=self.proj_in.weight.dtype, device=self.proj_in.weight.device)
        return super().forward(x)
