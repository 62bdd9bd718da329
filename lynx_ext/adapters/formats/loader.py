"""One entry point for adapter weights in any layout (ours, official, ComfyUI, the official hub repo), and one
for writing them in any layout."""
from __future__ import annotations

import enum
from pathlib import Path
from typing import Mapping, Optional

import torch
from torch import nn

from ..config import LynxAdapterConfig, Variant
from ..lynx_adapters import LynxAdapters
from .comfyui import read_comfyui, save_comfyui
from .detect import FormatKind, detect_format, not_adapters_error
from ...errors import LynxMissingFileError
from .errors import LynxCheckpointError
from .layout import check_variant
from .official import load_official_folder, save_official_folder
from .ours import write_ours
from .signatures import IP_FILE, REF_FILE, RESAMPLER_CONFIG_FILE, RESAMPLER_FILE


class Layout(enum.Enum):
    """The layouts `write_adapters` writes (the CLI's ``--to`` values)."""

    OURS = "lynx-ext"
    OFFICIAL = "official"
    COMFYUI = "comfyui"


def dit_shape(dit: nn.Module) -> tuple[int, int]:
    """(hidden size, number of blocks) of a DiffSynth `WanModel` (VRAM-managed or not)."""
    return int(dit.dim), len(dit.blocks)


def check_fits(config: LynxAdapterConfig, dim: int, num_blocks: int, source: str) -> None:
    """Refuse adapters made for a DiT of another width or depth."""
    if config.dim != dim or config.num_blocks != num_blocks:
        raise LynxCheckpointError(
            f"{source}: adapters were made for a DiT with dim {config.dim} and {config.num_blocks} blocks, "
            f"but this DiT has dim {dim} and {num_blocks} blocks."
        )


def read_adapters(
    source,
    dim: Optional[int] = None,
    num_blocks: Optional[int] = None,
    variant: Optional[Variant] = None,
) -> LynxAdapters:
    """Read adapters in any layout without a DiT (shapes from the files; ``dim`` / ``num_blocks`` checked if given).

    ``source``: a lynx-ext ``.safetensors`` file; an official ``lynx_full/`` / ``lynx_lite/`` folder; ComfyUI-
    WanVideoWrapper Lynx files (their folder, a list of paths, or one string of comma-separated paths); or
    ``hub:full`` / ``hub:lite`` (the official ``ByteDance/lynx`` repository, downloaded when online). Anything
    else raises `LynxCheckpointError` saying what the file is; nothing is ever unpickled.
    """
    if isinstance(source, (str, Path)) and str(source).startswith("hub:"):
        from ...models.hub import download_official_adapters

        source = download_official_adapters(str(source).split(":", 1)[1])
    found = detect_format(source)
    if found.kind is FormatKind.MISSING:
        raise LynxMissingFileError(
            f"Adapter weights not found at {found.path}. Pass a lynx-ext .safetensors file, an official lynx_full/ "
            "or lynx_lite/ folder, ComfyUI Lynx files (their folder), or hub:full / hub:lite to download the "
            "official weights."
        )
    if found.kind is FormatKind.OURS:
        adapters = LynxAdapters.load(found.path)
        if dim is not None and num_blocks is not None:
            check_fits(adapters.config, dim, num_blocks, str(found.path))
        check_variant(adapters.config, variant, str(found.path))
    elif found.kind is FormatKind.OFFICIAL:
        adapters = load_official_folder(found.path, dim, num_blocks, variant=variant)
    elif found.kind is FormatKind.COMFYUI:
        adapters = read_comfyui(found.comfy, dim, num_blocks, variant=variant)
    else:
        raise not_adapters_error(found)
    adapters.source_format = found
    return adapters


def load_lynx_adapters(
    source,
    dit: nn.Module,
    variant: Optional[Variant] = None,
    device: Optional[torch.device | str] = None,
    dtype: Optional[torch.dtype] = None,
) -> LynxAdapters:
    """Load adapters for ``dit`` from ``source`` in any layout (see `read_adapters`), checked against the DiT.

    Tensors keep their stored dtype unless ``dtype`` is given (`install` casts to the pipeline's dtype).
    """
    dim, num_blocks = dit_shape(dit)
    adapters = read_adapters(source, dim, num_blocks, variant)
    check_fits(adapters.config, dim, num_blocks, str(source))
    return adapters.to(device=device or "cpu", dtype=dtype) if dtype is not None else adapters.to(device or "cpu")


def write_adapters(adapters: LynxAdapters, output: str | Path, layout: Layout | str, overwrite: bool = False,
                   dtype: Optional[torch.dtype] = None, metadata: Optional[Mapping] = None) -> list[Path]:
    """Write ``adapters`` in ``layout`` at ``output`` (a file for ours, a folder otherwise); returns the files.

    ``dtype`` casts every tensor (else each keeps its dtype, so the files hold exactly the same numbers).
    """
    layout = Layout(layout)
    if layout is Layout.OURS:
        return [write_ours(adapters, output, metadata, overwrite=overwrite, dtype=dtype)]
    if layout is Layout.OFFICIAL:
        folder = save_official_folder(adapters, output, overwrite=overwrite, dtype=dtype, metadata=metadata)
        names = [RESAMPLER_FILE, IP_FILE] + ([REF_FILE] if adapters.config.ref_blocks else []) + [RESAMPLER_CONFIG_FILE]
        return [folder / n for n in names]
    return save_comfyui(adapters, output, overwrite=overwrite, dtype=dtype, metadata=metadata)
