"""Attention over whole batches or over packed samples that may only see their own tokens."""
from __future__ import annotations

from typing import Optional

import torch
from diffsynth.models.wan_video_dit import flash_attention


def segment_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    num_heads: int,
    q_lens: Optional[list[int]] = None,
    kv_lens: Optional[list[int]] = None,
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
    outs = [
        flash_attention(q=qs, k=ks, v=vs, num_heads=num_heads)
        for qs, ks, vs in zip(q.split(q_lens, dim=1), k.split(kv_lens, dim=1), v.split(kv_lens, dim=1))
    ]
    return torch.cat(outs, dim=1)
