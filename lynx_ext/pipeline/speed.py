"""Structural speed-ups of an installed pipeline: regional ``torch.compile`` and float8 FFN layers.

`compile_dit` uses the host's own ``compile_pipeline`` (regional compilation of the repeated DiT blocks). The
Lynx attention overrides are excluded from tracing (``torch.compiler.disable``): they read per-block Python
state (block index, adapter layers, the bound `LynxForwardInputs`) that would otherwise specialise one graph per
block. Each block is therefore compiled as three graphs shared by all 40 blocks (before self-attention, between
the attentions, after cross-attention), and the overrides call the compiled elementwise kernels of
`lynx_ext.adapters.compute` (norms + float32 RoPE, float8 quantisation).

`enable_fp8_ffn` gives the FFN linear layers a per-instance forward that computes in float8 while a generation
asks for ``fp8_compute`` and is ``nn.Linear``'s otherwise (parameters untouched).
"""
from __future__ import annotations

import functools

import torch
from torch import nn

from ..adapters.compute import check_plain_linear, compile_kernels, fp8_linear_forward
from .installation import installation


def _dits(pipe) -> list[tuple[str, nn.Module]]:
    return [(n, d) for n in ("dit", "dit2") if (d := getattr(pipe, n, None)) is not None]


def _vram_managed(dit: nn.Module) -> bool:
    return bool(getattr(dit, "vram_management_enabled", False)) or any(
        type(m).__name__.startswith("AutoWrapped") for m in dit.modules())


def compile_dit(pipe, mode: str = "default", **compile_kwargs) -> None:
    """Compile the installed pipeline's DiT blocks regionally (see the module docstring). Outputs are those of
    the eager path within bf16 rounding; the first forward of each new shape pays the compilation."""
    inst = installation(pipe)
    if getattr(inst, "compiled", False):
        return
    for name, dit in _dits(pipe):
        if _vram_managed(dit):
            raise ValueError("compile needs the DiT on the device without VRAM management; drop --vram-limit/"
                             "--offload or --compile.")
    for module, _ in inst.overridden:
        forward = module.__dict__.get("forward")
        if isinstance(forward, functools.partial) and not getattr(forward, "lynx_compile_excluded", False):
            excluded = functools.partial(torch.compiler.disable(forward.func), *forward.args,
                                         **{**forward.keywords, "compiled": True})
            excluded.lynx_override = True
            excluded.lynx_compile_excluded = True
            module.forward = excluded
    compile_kernels(**compile_kwargs)
    for _, dit in _dits(pipe):
        if disable_fp8_ffn(dit):
            enable_fp8_ffn(dit, compiled=True)
    pipe.compile_pipeline(mode=mode, dynamic=True, compile_models=[n for n, _ in _dits(pipe)], **compile_kwargs)
    inst.compiled = True


def is_compiled(dit: nn.Module) -> bool:
    return any(getattr(block, "_compiled_call_impl", None) is not None for block in dit.blocks)


def enable_fp8_ffn(dit: nn.Module, compiled: bool | None = None) -> int:
    """Give every block's FFN linear layers the float8-capable forward (idempotent). Returns the layers changed."""
    compiled = is_compiled(dit) if compiled is None else compiled
    changed = 0
    for block in dit.blocks:
        for layer in block.ffn:
            if not isinstance(layer, nn.Module) or "forward" in layer.__dict__ or not isinstance(layer, nn.Linear):
                continue
            check_plain_linear(layer, "fp8 compute")
            forward = functools.partial(torch.compiler.disable(fp8_linear_forward), layer, compiled=compiled)
            forward.lynx_fp8 = True
            layer.forward = forward
            changed += 1
    return changed


def disable_fp8_ffn(dit: nn.Module) -> int:
    """Remove the forwards `enable_fp8_ffn` set. Returns how many there were."""
    removed = 0
    for block in dit.blocks:
        for layer in block.ffn:
            if getattr(layer.__dict__.get("forward"), "lynx_fp8", False):
                del layer.__dict__["forward"]
                removed += 1
    return removed
