"""`build_wan_pipe`: the one place a DiffSynth `WanVideoPipeline` is built, for inference, training and the tiny preset."""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple, Optional, Sequence

import torch

from .dtypes import torch_dtype
from .hub import base_model_specs, locate_model_files
from .presets import BASE_MODELS


def vram_options(device: str, dtype: torch.dtype, offload: bool, fp8: bool, vram_limit: Optional[float]) -> dict:
    """DiffSynth `ModelConfig` VRAM keywords: weights stored on the CPU (fp8 when asked), computed on ``device``."""
    if not (offload or fp8 or vram_limit is not None):
        return {}
    store = torch.float8_e4m3fn if fp8 else dtype
    return dict(offload_device="cpu", offload_dtype=store, onload_device="cpu", onload_dtype=store,
                preparing_device=device, preparing_dtype=dtype, computation_device=device, computation_dtype=dtype)


class WanPipe(NamedTuple):
    """What `build_wan_pipe` returns: the pipeline, its weight files, and its VRAM keywords (empty: all on device)."""

    pipe: Any
    files: list[str]
    vram: dict


def build_wan_pipe(
    preset: str = "wan2.1-t2v-14b",
    model_paths: Sequence[str | Sequence[str]] = (),
    model_id_with_origin_paths: Sequence[str] = (),
    tokenizer_path: Optional[str] = None,
    device: str = "cpu",
    dtype: str = "bf16",
    vram_limit: Optional[float] = None,
    offload: bool = False,
    fp8: bool = False,
    tiny_dit: Optional[dict] = None,
    tiny_home: Optional[Path] = None,
):
    """A `WanVideoPipeline` (as a `WanPipe` with its weight files and VRAM keywords).

    ``preset``: ``wan2.1-t2v-14b`` (DiffSynth model ids, downloaded when online, unless ``model_paths`` /
    ``model_id_with_origin_paths`` are given), ``custom`` (those are required) or ``tiny`` (a tiny random Wan
    built once under ``tiny_home``; ``tiny_dit`` overrides its `WanModel` keywords).
    """
    from diffsynth.core import ModelConfig
    from diffsynth.pipelines.wan_video import WanVideoPipeline

    from .wan_diffusers import register_diffusers_wan_14b

    dt = torch_dtype(dtype)
    vram = vram_options(device, dt, offload, fp8, vram_limit)
    if vram and device == "cpu":
        from ..compat import ensure_cpu_empty_cache

        ensure_cpu_empty_cache()
    if preset == "tiny":
        from ..tiny import tiny_home as default_home
        from ..tiny.wan import tiny_model_configs, tiny_wan_folder

        folder = tiny_wan_folder(tiny_home or default_home(), tiny_dit)
        configs, tokenizer = tiny_model_configs(folder, **vram)
    else:
        if preset not in BASE_MODELS and preset != "custom":
            raise ValueError(f"Unknown base model preset {preset!r}; use one of {', '.join(BASE_MODELS)} or custom.")
        entries = [[str(f) for f in p] if isinstance(p, (list, tuple)) else str(p) for p in model_paths]
        missing = [f for e in entries for f in (e if isinstance(e, list) else [e]) if not Path(f).exists()]
        if missing:
            raise FileNotFoundError(f"Base model file {missing[0]} does not exist.")
        register_diffusers_wan_14b()
        configs = [ModelConfig(path=e, **vram) for e in entries]  # a list = the shards of one model
        specs, tok_spec = base_model_specs(preset, model_paths, model_id_with_origin_paths, tokenizer_path)
        if not configs and not specs:
            raise ValueError("The 'custom' base model needs model_paths or model_id_with_origin_paths.")
        # Files on disk are used without the network; offline, missing ones are named at once (models/hub.py).
        located = locate_model_files(specs + ([tok_spec] if tok_spec else []))
        configs += [ModelConfig(**where, **vram) for where in located[:len(specs)]]
        tokenizer = ModelConfig(path=tokenizer_path) if tokenizer_path else ModelConfig(**located[-1])
    pipe = WanVideoPipeline.from_pretrained(torch_dtype=dt, device=device, model_configs=configs,
                                            tokenizer_config=tokenizer, vram_limit=vram_limit)
    files = []
    for c in configs:
        files += c.path if isinstance(c.path, list) else [c.path]
    return WanPipe(pipe, [str(f) for f in files if f], vram)
