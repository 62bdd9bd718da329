"""DiffSynth VRAM management for the adapters, so that 14B + full adapters (~4.3 B parameters) fit small cards."""
from __future__ import annotations

import torch
from torch import nn


def enable_adapter_vram_management(pipe, offload_dtype: torch.dtype, offload_device: str = "cpu",
                                   vram_limit: float | None = None) -> None:
    """Wrap the adapters' Linear layers with the host's `AutoWrappedLinear` (offloaded, onloaded per layer).

    ``pipe.lynx`` then follows ``pipe.load_models_to_device`` like the DiT does. ``offload_dtype`` may be an fp8
    dtype (weights stored in fp8, computed in the pipeline dtype).
    """
    from diffsynth.core.vram.layers import AutoWrappedLinear, AutoWrappedModule, enable_vram_management

    config = {
        "offload_dtype": offload_dtype, "offload_device": offload_device,
        "onload_dtype": offload_dtype, "onload_device": offload_device,
        "preparing_dtype": pipe.torch_dtype, "preparing_device": pipe.device,
        "computation_dtype": pipe.torch_dtype, "computation_device": pipe.device,
    }
    adapters = pipe.lynx
    adapters.resampler.to(device=pipe.device, dtype=pipe.torch_dtype)  # small: kept on the device
    for name in ("id_layers", "ref_layers"):
        enable_vram_management(getattr(adapters, name), {nn.Linear: AutoWrappedLinear, nn.LayerNorm: AutoWrappedModule},
                               vram_config=config, vram_limit=vram_limit)
    for layer in adapters.id_layers.values():
        if layer.registers is not None:
            layer.registers.data = layer.registers.data.to(device=pipe.device, dtype=pipe.torch_dtype)
    adapters.vram_management_enabled = True
    pipe.vram_management_enabled = True
