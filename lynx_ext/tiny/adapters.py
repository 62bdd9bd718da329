"""Random Lynx adapters of the official layout at a tiny DiT's size, with visibly non-zero branches."""
from __future__ import annotations

import torch


def tiny_adapters(dit, variant: str, seed: int = 0, embedding_dim: int = 512):
    """`LynxAdapters` for ``dit`` (full: ID + Ref with 4 registers; lite: ID on every second block, id_dim 64)."""
    from ..adapters import LynxAdapterConfig, LynxAdapters, ResamplerConfig

    id_dim = dit.dim if variant == "full" else 64
    res = ResamplerConfig(dim=64, depth=2, dim_head=16, heads=4, num_queries=16, embedding_dim=embedding_dim,
                          output_dim=id_dim)
    config = LynxAdapterConfig.official(variant, dim=dit.dim, num_blocks=len(dit.blocks),
                                        num_registers=4 if variant == "full" else 0, resampler=res)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        adapters = LynxAdapters(config, init="random")
    with torch.no_grad():
        for name, p in adapters.named_parameters():
            if name.startswith(("id_layers", "ref_layers")):
                p.copy_(torch.randn(p.shape, generator=generator) / p.shape[-1] ** 0.5)
    return adapters
