"""Build the frozen DiffSynth pipeline and the adapter config a training recipe asks for."""
from __future__ import annotations

from pathlib import Path

from ..inference.generator import DTYPES
from .args import AdapterArgs, BaseModelArgs


def build_pipe(base: BaseModelArgs, device: str = "cpu"):
    """A `WanVideoPipeline` for ``base`` (weights on ``device``; Lightning moves the module afterwards)."""
    from diffsynth.core import ModelConfig
    from diffsynth.pipelines.wan_video import WanVideoPipeline

    from ..inference.presets import BASE_MODELS
    from ..models.tiny import MANIFEST, build_tiny_wan, load_tiny_pipe
    from ..models.wan_diffusers import register_diffusers_wan_14b

    dtype = DTYPES[base.dtype]
    if base.preset == "tiny":
        from ..inference.tiny_preset import tiny_home

        key = "_".join(f"{k}{v}" for k, v in sorted(base.tiny_dit.items())) or "default"
        folder = tiny_home() / f"wan_train_{key}_t{base.tiny_text_dim}"
        if not (folder / MANIFEST).is_file():
            build_tiny_wan(folder, dit=dict(base.tiny_dit, text_dim=base.tiny_text_dim))
        return load_tiny_pipe(folder, torch_dtype=dtype, device=device)
    register_diffusers_wan_14b()
    configs = [ModelConfig(path=p) for p in base.model_paths]
    specs = list(base.model_id_with_origin_paths)
    if base.preset == "wan2.1-t2v-14b" and not configs and not specs:
        specs = BASE_MODELS["wan2.1-t2v-14b"].model_id_with_origin_paths
    if not configs and not specs:
        raise ValueError("base.preset is 'custom' but neither base.model_paths nor base.model_id_with_origin_paths "
                         "is set.")
    for spec in specs:
        model_id, _, pattern = spec.partition(":")
        configs.append(ModelConfig(model_id=model_id, origin_file_pattern=pattern))
    missing = [p for p in base.model_paths if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"Base model file {missing[0]} does not exist (base.model_paths).")
    tok_id, _, tok_pattern = BASE_MODELS["wan2.1-t2v-14b"].tokenizer.partition(":")
    tok = ModelConfig(path=base.tokenizer_path) if base.tokenizer_path else ModelConfig(model_id=tok_id,
                                                                                       origin_file_pattern=tok_pattern)
    return WanVideoPipeline.from_pretrained(torch_dtype=dtype, device=device, model_configs=configs,
                                            tokenizer_config=tok)


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
