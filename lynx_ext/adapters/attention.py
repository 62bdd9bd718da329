"""The attention forwards with the Lynx branches, set per instance on every block's ``self_attn`` / ``cross_attn``.

Both compute exactly the host's `SelfAttention.forward` / `CrossAttention.forward` and add one separate
softmax attention before ``o``, reading the current `LynxForwardInputs` from the `AdapterHandle`:

- Ref branch (self-attention): ``ref_scale * Attn(norm_q(q), norm_k(to_k_ref(F)), to_v_ref(F))`` over the
  block's reference features ``F``, no RoPE. In capture mode the block's input is recorded instead.
- ID branch (cross-attention): ``id_scale * Attn(norm_q(q), key_norm(to_k_ip(T)), to_v_ip(T))`` over the
  identity tokens ``T`` (the block's register tokens appended), no RoPE. The key norm is the block's own
  ``norm_k`` (full) or a parameter-free RMSNorm with eps 1e-5 (lite).

How they compute (attention kernel, fused or float8 projections, compiled norm+RoPE) follows the current
`compute.ComputeOptions`; the default is the host's own code path.
"""
from __future__ import annotations

from typing import Optional

import torch
from diffsynth.models.wan_video_dit import flash_attention, rope_apply

from .compute import ComputeOptions, attend, current_options, kernel, project, rms_norm, rope_table
from .handle import AdapterHandle

LITE_KEY_NORM_EPS = 1e-5


def segment_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    num_heads: int,
    q_lens: Optional[tuple[int, ...]] = None,
    kv_lens: Optional[tuple[int, ...]] = None,
) -> torch.Tensor:
    """Multi-head attention on ``[B, S, heads*head_dim]`` tensors, no mask, scale 1/sqrt(head_dim).

    With ``q_lens``/``kv_lens`` (batch 1, samples packed along the sequence) query segment i attends only to
    key segment i: a block-diagonal attention, as the official varlen flash-attention call does.
    Key/value batches of size 1 are broadcast over the query batch.
    """
    if (q_lens is None) != (kv_lens is None):
        raise ValueError("segment_attention needs both q_lens and kv_lens, or neither.")
    if q_lens is None:
        if k.shape[0] != q.shape[0]:
            if k.shape[0] != 1:
                raise ValueError(f"Key batch {k.shape[0]} does not match query batch {q.shape[0]}.")
            k = k.expand(q.shape[0], -1, -1)
            v = v.expand(q.shape[0], -1, -1)
        return flash_attention(q=q, k=k, v=v, num_heads=num_heads)
    if q.shape[0] != 1 or len(q_lens) != len(kv_lens):
        raise ValueError(
            f"Packed attention needs batch 1 and one key segment per query segment; got batch {q.shape[0]}, "
            f"{len(q_lens)} query and {len(kv_lens)} key segments."
        )
    if sum(q_lens) != q.shape[1] or sum(kv_lens) != k.shape[1]:
        raise ValueError(
            f"Segment lengths do not cover the sequences: sum(q_lens)={sum(q_lens)} vs {q.shape[1]}, "
            f"sum(kv_lens)={sum(kv_lens)} vs {k.shape[1]}."
        )
    qs, ks, vs = q.split(list(q_lens), dim=1), k.split(list(kv_lens), dim=1), v.split(list(kv_lens), dim=1)
    groups: dict[tuple[int, int], list[int]] = {}  # segments of one shape run as one batch (a pack of equal clips:
    for i, shape in enumerate(zip(q_lens, kv_lens)):  # one attention call instead of one per sample)
        groups.setdefault(shape, []).append(i)
    outs: list[Optional[torch.Tensor]] = [None] * len(q_lens)
    for members in groups.values():
        if len(members) == 1:
            i = members[0]
            outs[i] = flash_attention(q=qs[i], k=ks[i], v=vs[i], num_heads=num_heads)
            continue
        batch = flash_attention(q=torch.cat([qs[i] for i in members]), k=torch.cat([ks[i] for i in members]),
                                v=torch.cat([vs[i] for i in members]), num_heads=num_heads)
        for row, i in enumerate(members):
            outs[i] = batch[row:row + 1]
    return torch.cat(outs, dim=1)


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


def _branch(q, k, v, num_heads, segments, kv_lens):
    """One branch's attention (packed when ``segments`` is set), computed in the branch values' dtype."""
    q = q.to(v.dtype)
    if segments is None:
        return segment_attention(q, k.to(v.dtype), v, num_heads)
    return segment_attention(q, k.to(v.dtype), v, num_heads, segments.video_lens, kv_lens)


def _add_branch(out: torch.Tensor, scale: float, branch: torch.Tensor) -> torch.Tensor:
    """``out + scale * branch``; one in-place pass when no gradient is recorded."""
    branch = branch.to(out.dtype)
    if torch.is_grad_enabled():
        return out + scale * branch
    return out.add_(branch, alpha=scale)


def _self_qkv(self, x: torch.Tensor, freqs: torch.Tensor, options: ComputeOptions, compiled: bool):
    """q (normed), RoPE'd q and k, and v of the host self-attention. Projections: the host's modules, or one
    fused/float8 matmul; norms and RoPE: the host's ops, or (compiled) one fused float32 kernel. In eager mode the
    host's float64 RoPE is kept: written out in float32 it needs more kernels and was measured slower."""
    if options.own_projections:
        q, k, v = project(x, (self.q, self.k, self.v), options, fp8=True, compiled=compiled)
    else:
        q, k, v = self.q(x), self.k(x), self.v(x)
    if not compiled:
        q, k = self.norm_q(q), self.norm_k(k)
        return q, rope_apply(q, freqs, self.num_heads), rope_apply(k, freqs, self.num_heads), v
    torch_norm = bool(getattr(self.norm_q, "use_torch_norm", False))
    q, q_rope, k_rope = kernel("normed_rope", compiled)(q, k, self.norm_q.weight, self.norm_k.weight, self.norm_q.eps,
                                                        torch_norm, rope_table(freqs), self.num_heads)
    return q, q_rope, k_rope, v


def _out(self, out: torch.Tensor, options: ComputeOptions, compiled: bool) -> torch.Tensor:
    if not options.own_projections:
        return self.o(out)
    return project(out, (self.o,), options, fp8=True, compiled=compiled)[0]


def _attend(self, q, k, v, options: ComputeOptions) -> torch.Tensor:
    """The block's own attention: the host's module, or SageAttention when asked for."""
    return attend(q, k, v, self.num_heads) if options.attention == "sage" else self.attn(q, k, v)


def ref_self_attention_forward(self, x: torch.Tensor, freqs: torch.Tensor, *, handle: AdapterHandle, block: int,
                               compiled: bool = False):
    """``compiled``: set by `lynx_ext.pipeline.speed.compile_dit` (use the compiled kernels)."""
    inputs = handle.inputs
    if inputs.capture is not None:
        inputs.capture[block] = x
    seg = inputs.segments
    options = current_options()
    q, q_rope, k_rope, v = _self_qkv(self, x, freqs, options, compiled)
    if seg is None:
        out = _attend(self, q_rope, k_rope, v, options)
    else:
        out = segment_attention(q_rope, k_rope, v, self.num_heads, seg.video_lens, seg.video_lens)
    layer = handle.adapters.ref_layers[str(block)] if str(block) in handle.adapters.ref_layers else None
    if layer is not None and inputs.ref_features is not None and inputs.ref_scale != 0 and inputs.block_active(block):
        feat = inputs.ref_features[block].to(dtype=branch_dtype(layer.to_k_ref, x), device=x.device)
        ref_k, ref_v = project(feat, (layer.to_k_ref, layer.to_v_ref), options)
        ref_k = self.norm_k(ref_k)
        out = _add_branch(out, inputs.ref_scale, _branch(q, ref_k, ref_v, self.num_heads, seg, inputs.ref_lens))
    return _out(self, out, options, compiled)


def id_cross_attention_forward(self, x: torch.Tensor, y: torch.Tensor, *, handle: AdapterHandle, block: int,
                               compiled: bool = False):
    inputs = handle.inputs
    seg = inputs.segments
    options = current_options()
    if self.has_image_input:
        img, ctx = y[:, :257], y[:, 257:]
    else:
        ctx = y
    if not (options.own_projections or compiled):
        q = self.norm_q(self.q(x))
        k = self.norm_k(self.k(ctx))
        v = self.v(ctx)
    else:  # (the norms through the kernel: compiled, or the host's arithmetic written out)
        q = rms_norm(self.norm_q, project(x, (self.q,), options, fp8=True, compiled=compiled)[0], compiled)
        k, v = project(ctx, (self.k, self.v), options)
        k = rms_norm(self.norm_k, k, compiled)
    if seg is None:
        out = _attend(self, q, k, v, options)
    else:
        out = segment_attention(q, k, v, self.num_heads, seg.video_lens, seg.text_lens)
    if self.has_image_input:
        k_img = self.norm_k_img(self.k_img(img))
        v_img = self.v_img(img)
        out = out + flash_attention(q, k_img, v_img, num_heads=self.num_heads)  # never packed (see packed_forward)
    adapters = handle.adapters
    layer = adapters.id_layers[str(block)] if str(block) in adapters.id_layers else None
    scale = effective_id_scale(inputs.id_scale, adapters.config.lite_zero_scale_quirk)
    if layer is not None and inputs.id_tokens is not None and scale != 0 and inputs.block_active(block):
        tokens = inputs.id_tokens.to(dtype=branch_dtype(layer.to_k_ip, x), device=x.device)
        tokens, lens = layer.tokens_with_registers(tokens, inputs.id_lens)
        id_k, id_v = project(tokens, (layer.to_k_ip, layer.to_v_ip), options)
        id_k = self.norm_k(id_k) if adapters.config.id_key_norm == "shared" else parameter_free_rms_norm(id_k)
        out = _add_branch(out, scale, _branch(q, id_k, id_v, self.num_heads, seg, lens))
    return _out(self, out, options, compiled)
