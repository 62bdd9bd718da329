"""Cross-attention forward with the ID branch, set per instance on ``block.cross_attn``.

Same computation as the host's `CrossAttention.forward`, plus
``id_scale * Attn(norm_q(q), key_norm(to_k_ip(T)), to_v_ip(T))`` over the identity tokens ``T`` (with the
block's register tokens appended), no RoPE, added before ``o``. The key norm is the block's own ``norm_k``
(full) or a parameter-free RMSNorm with eps 1e-5 (lite).
"""
from __future__ import annotations

import torch
from diffsynth.models.wan_video_dit import flash_attention

from .handle import AdapterHandle
from .segment_attention import segment_attention

LITE_KEY_NORM_EPS = 1e-5


def parameter_free_rms_norm(x: torch.Tensor, eps: float = LITE_KEY_NORM_EPS) -> torch.Tensor:
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + eps)).to(x.dtype)


def branch_dtype(linear, x: torch.Tensor) -> torch.dtype:
    """Compute a branch in its weights' dtype (fp32 trainable adapters on a bf16 DiT), or in the hidden-state
    dtype when the weights are only *stored* in another dtype (fp8 under VRAM management) or absent."""
    weight = getattr(linear, "weight", None)
    if weight is None or not weight.is_floating_point() or weight.element_size() < 2 or weight.device.type == "meta":
        return x.dtype
    return weight.dtype


def effective_id_scale(scale: float, lite_zero_scale_quirk: bool) -> float:
    """The official lite code computes ``ip_scale or 1.0``; we only do that when asked to."""
    if lite_zero_scale_quirk and not scale:
        return 1.0
    return scale


def id_cross_attention_forward(self, x: torch.Tensor, y: torch.Tensor, *, handle: AdapterHandle, block: int):
    state = handle.state
    seg = state.segments
    if self.has_image_input:
        img, ctx = y[:, :257], y[:, 257:]
    else:
        ctx = y
    q = self.norm_q(self.q(x))
    k = self.norm_k(self.k(ctx))
    v = self.v(ctx)
    if seg is None:
        out = self.attn(q, k, v)
    else:
        out = segment_attention(q, k, v, self.num_heads, seg.video_lens, seg.text_lens)
    if self.has_image_input:
        k_img = self.norm_k_img(self.k_img(img))
        v_img = self.v_img(img)
        out = out + flash_attention(q, k_img, v_img, num_heads=self.num_heads)
    adapters = handle.adapters
    layer = adapters.id_layers[str(block)] if str(block) in adapters.id_layers else None
    scale = effective_id_scale(state.id_scale, adapters.config.lite_zero_scale_quirk)
    if layer is not None and state.id_tokens is not None and scale != 0 and state.block_active(block):
        dtype = branch_dtype(layer.to_k_ip, x)
        tokens = state.id_tokens.to(dtype=dtype, device=x.device)
        tokens, lens = layer.tokens_with_registers(tokens, state.id_lens)
        id_k = layer.to_k_ip(tokens)
        id_k = self.norm_k(id_k) if adapters.config.id_key_norm == "shared" else parameter_free_rms_norm(id_k)
        id_v = layer.to_v_ip(tokens)
        q_b, id_k, id_v = q.to(id_v.dtype), id_k.to(id_v.dtype), id_v
        if seg is None:
            id_out = segment_attention(q_b, id_k, id_v, self.num_heads)
        else:
            id_out = segment_attention(q_b, id_k, id_v, self.num_heads, seg.video_lens, lens)
        out = out + scale * id_out.to(out.dtype)
    return self.o(out)
