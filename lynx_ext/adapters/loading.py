"""One entry point for adapter weights: our file, an official folder, or the official hub repo."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import nn

from .checkpoint_check import LynxCheckpointError
from .config import LynxAdapterConfig, Variant
from .lynx_adapters import LynxAdapters
from .official_format import is_official_folder, load_official_folder


def dit_shape(dit: nn.Module) -> tuple[int, int]:
    """(hidden size, number of blocks) of a DiffSynth `WanModel` (VRAM-managed or not)."""
    return int(dit.dim), len(dit.blocks)


def load_lynx_adapters(
    source: str | Path,
    dit: nn.Module,
    variant: Optional[Variant] = None,
    device: Optional[torch.device | str] = None,
    dtype: Optional[torch.dtype] = None,
) -> LynxAdapters:
    """Load adapters for ``dit`` from ``source``.

    ``source`` is one of: a ``.safetensors`` file written by `LynxAdapters.save`; an official folder
    (``lynx_full/`` or ``lynx_lite/``); or ``hub:full`` / ``hub:lite`` (the official ``ByteDance/lynx``
    repository, downloaded when online; see `lynx_ext.models.hub`).
    """
    dim, num_blocks = dit_shape(dit)
    src = str(source)
    if src.startswith("hub:"):
        from ..models.hub import download_official_adapters

        source = download_official_adapters(src.split(":", 1)[1])
    path = Path(source)
    if is_official_folder(path):
        adapters = load_official_folder(path, dim, num_blocks, variant=variant)
    elif path.is_file():
        adapters = LynxAdapters.load(path)
        check_fits(adapters.config, dim, num_blocks, str(path))
        if variant is not None and adapters.config.variant != variant:
            raise LynxCheckpointError(
                f"{path} holds {adapters.config.variant} adapters but variant '{variant}' was requested."
            )
    elif path.is_dir():
        raise FileNotFoundError(
            f"{path} is a folder but not an official Lynx adapter folder: it needs resampler.safetensors and "
            "ip_layers.safetensors (and ref_layers.safetensors for the full model)."
        )
    else:
        raise FileNotFoundError(
            f"Adapter weights not found at {path}. Pass a lynx_ext .safetensors file, an official lynx_full/ or "
            "lynx_lite/ folder, or hub:full / hub:lite to download the official weights."
        )
    return adapters.to(device=device or "cpu", dtype=dtype) if dtype is not None else adapters.to(device or "cpu")


def check_fits(config: LynxAdapterConfig, dim: int, num_blocks: int, source: str) -> None:
    if config.dim != dim or config.num_blocks != num_blocks:
        raise LynxCheckpointError(
            f"{source}: adapters were made for a DiT with dim {config.dim} and {config.num_blocks} blocks, "
            f"but this DiT has dim {dim} and {num_blocks} blocks."
        )
