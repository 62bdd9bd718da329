"""Build the frozen DiffSynth pipeline and the adapter config a training recipe asks for."""
from __future__ import annotations

from .args import AdapterArgs, BaseModelArgs


def build_pipe(base: BaseModelArgs, device: str = "cpu"):
    """A `WanVideoPipeline` for ``base`` (weights on ``device``; Lightning moves the module afterwards)."""
    from ..models.build import build_wan_pipe

    tiny_dit = dict(base.tiny_dit, text_dim=base.tiny_text_dim) if base.preset == "tiny" else None
    return build_wan_pipe(preset=base.preset, model_paths=base.model_paths,
                          model_id_with_origin_paths=base.model_id_with_origin_paths,
                          tokenizer_path=base.tokenizer_path, device=device, dtype=base.dtype, tiny_dit=tiny_dit).pipe


def build_adapter_config(dit, args: AdapterArgs):
    """The official layout of ``args.variant`` at the DiT's size, with the recipe's resampler shape."""
    from ..adapters import LynxAdapterConfig, ResamplerConfig

    dim, blocks = int(dit.dim), len(dit.blocks)
    id_dim = args.id_dim or (dim if args.variant == "full" else 2048)
    res = ResamplerConfig(dim=args.resampler_dim, depth=args.resampler_depth, dim_head=args.resampler_dim_head,
                          heads=args.resampler_heads, num_queries=args.num_queries, embedding_dim=args.embedding_dim,
                          output_dim=id_dim)
    return LynxAdapterConfig.official(args.variant, dim=dim, num_blocks=blocks,
                                      num_registers=args.num_registers if args.variant == "full" else 0, resampler=res)
