"""Self-attention forward with the Ref branch, set per instance on ``block.self_attn``.

Same computation as the host's `SelfAttention.forward`, plus, when reference features are present,
``ref_scale * Attn(norm_q(q), norm_k(to_k_ref(F)), to_v_ref(F))`` without RoPE, added before ``o``.
In capture mode it records the block's input (the adaLN-modulated norm1 output) instead.
"""
from __future__ import annotations

import torch
from diffsynth.models.wan_video_dit import rope_apply

from .handle import AdapterHandle
from .id_attention import branch_dtype
from .segment_attention import segment_attention


def ref_self_attention_forward(self, x: torch.Tensor, freqs: torch.Tensor, *, handle: AdapterHandle, block: int):
    state = handle.state
    if state.capture is not None:
        state.capture[block] = x
    seg = state.segments
    q = self.norm_q(self.q(x))
    k = self.norm_k(self.k(x))
    v = self.v(x)
    q_rope = rope_apply(q, freqs, self.num_heads)
    k_rope = rope_apply(k, freqs, self.num_heads)
    if seg is None:
        out = self.attn(q_rope, k_rope, v)
    else:
        out = segment_attention(q_rope, k_rope, v, self.num_heads, seg.video_lens, seg.video_lens)
    layer = handle.adapters.ref_layers[str(block)] if str(block) in handle.adapters.ref_layers else None
    if (
        layer is not None
        and state.capture is None
        and state.ref_features is not None
        and state.ref_scale != 0
        and state.block_active(block)
    ):
        feat = state.ref_features[block].to(dtype=branch_dtype(layer.to_k_ref, x), device=x.device)
        ref_v = layer.to_v_ref(feat)
        ref_k = self.norm_k(layer.to_k_ref(feat)).to(ref_v.dtype)
        q_b = q.to(ref_v.dtype)
        if seg is None:
            ref_out = segment_attention(q_b, ref_k, ref_v, self.num_heads)
        else:
            ref_out = segment_attention(q_b, ref_k, ref_v, self.num_heads, seg.video_lens, state.ref_lens)
        out = out + state.ref_scale * ref_out.to(out.dtype)
    return self.o(out)
