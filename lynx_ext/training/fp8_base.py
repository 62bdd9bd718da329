"""The frozen base stored in float8: half the memory of bf16 for the DiT's linear weights, computed in bf16.

`store_frozen_linears_fp8` turns the ``weight`` of every frozen `nn.Linear` of the DiT blocks into float8 e4m3
rows with one float32 scale per row (``W ~= q * scale``), in place: the parameter keeps its name (state dicts,
peft LoRAs on the same layers, `named_parameters`), only its dtype changes, and the scale is a non-persistent
buffer. A per-instance forward dequantises the weight to the input's dtype for the matmul; its autograd function
saves the float8 weight (not the bf16 copy) for the input gradient, so a backward without checkpointing does not
bring the bf16 model back either.

Why not the host's fp8 storage (`AutoWrappedLinear` with an fp8 onload dtype): it casts without a scale (Wan's
weights, ~0.02, then sit in float8's subnormal range with ~5 % rounding) and its cast is saved in bf16 for the
backward. Why not torchao's float8 weight-only tensors: the frozen base needs only this dequantise-and-matmul,
and a plain parameter keeps Lightning's checkpoint filtering, peft and `load_state_dict` unchanged.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from ..adapters.compute import quantize_rows

FP8 = torch.float8_e4m3fn


class _Fp8StoredLinear(torch.autograd.Function):
    """``x @ (q * scale).T + b`` with ``q``/``scale`` frozen; the backward recomputes ``q * scale``."""

    @staticmethod
    def forward(ctx, x, q, scale, bias):
        ctx.save_for_backward(q, scale)
        return F.linear(x, (q.to(scale.dtype) * scale).to(x.dtype), None if bias is None else bias.to(x.dtype))

    @staticmethod
    def backward(ctx, grad):
        q, scale = ctx.saved_tensors
        return grad @ (q.to(scale.dtype) * scale).to(grad.dtype), None, None, None


def _forward(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    dtype = x.dtype
    if torch.is_autocast_enabled(x.device.type):  # what autocast would compute a Linear in
        dtype = torch.get_autocast_dtype(x.device.type)
    with torch.autocast(x.device.type, enabled=False):
        return _Fp8StoredLinear.apply(x.to(dtype), layer.weight, layer.fp8_scale, layer.bias)


def is_fp8_stored(layer: nn.Module) -> bool:
    return getattr(layer.__dict__.get("forward"), "lynx_fp8_storage", False)


def store_frozen_linears_fp8(module: nn.Module) -> int:
    """Store the weight of every frozen `nn.Linear` under ``module`` in float8 with per-row scales (in place,
    idempotent; each layer quantised on its own device, so the bf16 copy of one layer at a time is what it costs).
    Layers with trainable weights (a LoRA's A/B, a trained DiT) are left alone. Returns the layers changed."""
    changed = 0
    for layer in module.modules():
        if type(layer) is not nn.Linear or is_fp8_stored(layer) or layer.weight.requires_grad:
            continue
        with torch.no_grad():
            q, scale = quantize_rows(layer.weight.detach())
        layer.weight = nn.Parameter(q, requires_grad=False)
        layer.register_buffer("fp8_scale", scale, persistent=False)
        forward = functools.partial(_forward, layer)
        forward.lynx_fp8_storage = True
        layer.forward = forward
        changed += 1
    return changed


def fp8_stored_bytes(module: nn.Module) -> int:
    """Bytes of the float8 weights and their scales under ``module`` (what the storage costs on the device)."""
    return sum(layer.weight.nbytes + layer.fp8_scale.nbytes for layer in module.modules() if is_fp8_stored(layer))


def restore_linears(module: nn.Module, dtype: torch.dtype = torch.float32) -> int:
    """Undo `store_frozen_linears_fp8`: each such weight back in ``dtype`` (its dequantised value), the layer's own
    forward again. Returns the layers changed."""
    changed = 0
    for layer in module.modules():
        if not is_fp8_stored(layer):
            continue
        with torch.no_grad():
            weight = (layer.weight.to(torch.float32) * layer.fp8_scale).to(dtype)
        layer.weight = nn.Parameter(weight, requires_grad=False)
        del layer.fp8_scale
        del layer.forward
        changed += 1
    return changed
