"""From tensors in our key names to `LynxAdapters`: the adapter layout read off the tensors, strictly checked.

Every layout (ours, official, ComfyUI) is first renamed to our keys (``resampler.*``, ``id_layers.{block}.*``,
``ref_layers.{block}.*``); this module works out the `LynxAdapterConfig` they describe, and
`LynxAdapters.from_state` builds the adapters.
"""
from __future__ import annotations

import re
from typing import Mapping, Optional

import torch

from ..config import LynxAdapterConfig, ResamplerConfig, Variant
from .errors import KeyNamer, LynxCheckpointError
from .signatures import describe_config

OFFICIAL_DIM_HEAD = 64  # every official Resampler (and the ComfyUI wrapper's) uses dim_head=64
RESAMPLER_KEYS = ("latents", "proj_in.weight", "proj_out.weight", "layers.0.0.to_q.weight", "layers.0.1.1.weight")


def blocks_of(state: Mapping[str, torch.Tensor], branch: str) -> list[int]:
    """Sorted block indices of ``id_layers`` or ``ref_layers`` keys."""
    pattern = re.compile(rf"^{branch}\.(\d+)\.")
    return sorted({int(m.group(1)) for k in state if (m := pattern.match(k))})


def check_variant(config: LynxAdapterConfig, variant: Optional[Variant], source: str) -> None:
    """Refuse adapters whose ID-adapter variant is not the requested one."""
    if variant is not None and variant != config.variant:
        raise LynxCheckpointError(
            f"{source}: the adapter checkpoint is a {describe_config(config)} checkpoint, but variant '{variant}' "
            f"was requested. Use --variant {config.variant} (Python: variant='{config.variant}') or point at "
            f"{variant} adapters."
        )


def infer_resampler_config(state: Mapping[str, torch.Tensor], source: str, name: KeyNamer = str,
                           heads: Optional[dict] = None) -> ResamplerConfig:
    """The Resampler shape from its tensors (keys without ``resampler.``); ``heads`` may give heads/dim_head."""
    for key in RESAMPLER_KEYS:
        if key not in state:
            raise LynxCheckpointError(f"{source}: missing Resampler key '{name('resampler.' + key)}'.")
    if heads:
        known = {k: heads[k] for k in ResamplerConfig.__dataclass_fields__ if k in heads}
        try:
            return ResamplerConfig(**known)
        except (TypeError, ValueError) as err:
            raise LynxCheckpointError(f"{source}: invalid Resampler config {heads} ({err}).") from None
    _, num_queries, dim = state["latents"].shape
    inner = state["layers.0.0.to_q.weight"].shape[0]
    depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"^layers\.(\d+)\.", k)))
    if inner % OFFICIAL_DIM_HEAD:
        raise LynxCheckpointError(
            f"{source}: the Resampler's attention width {inner} is not a multiple of {OFFICIAL_DIM_HEAD}; its "
            "number of heads cannot be read off the tensors. Put a resampler_config.json with 'heads' and "
            "'dim_head' next to it."
        )
    return ResamplerConfig(
        dim=dim, depth=depth, dim_head=OFFICIAL_DIM_HEAD, heads=inner // OFFICIAL_DIM_HEAD,
        num_queries=num_queries, embedding_dim=state["proj_in.weight"].shape[1],
        output_dim=state["proj_out.weight"].shape[0], ff_mult=state["layers.0.1.1.weight"].shape[0] // dim,
    )


def check_id_width(weight: torch.Tensor, dim: Optional[int], source: str, key: str) -> None:
    """The ID key projection ``[dim, C]`` must output the DiT's width."""
    if dim is not None and weight.shape[0] != dim:
        raise LynxCheckpointError(
            f"{source}: key '{key}' has shape {list(weight.shape)}, expected [{dim}, C] for a DiT of dim {dim}. "
            "The adapters were made for another base model size."
        )


def infer_config(
    state: Mapping[str, torch.Tensor],
    source: str,
    name: KeyNamer = str,
    dim: Optional[int] = None,
    num_blocks: Optional[int] = None,
    resampler: Optional[ResamplerConfig] = None,
) -> LynxAdapterConfig:
    """The layout the tensors describe. ``dim`` / ``num_blocks`` (from the DiT) are checked when given.

    The ID-adapter decides the variant: biases mean full (the block's own key norm), none mean lite (RMS key
    norm). Without ``num_blocks``, a lite ID-adapter alone on blocks 0, 2, ..., 2k spans 2k + 2 blocks.
    """
    id_blocks, ref_blocks = blocks_of(state, "id_layers"), blocks_of(state, "ref_layers")
    if not id_blocks:
        raise LynxCheckpointError(f"{source}: no ID-adapter layers (to_k_ip / to_v_ip) found; Lynx adapters always "
                                  "have them.")
    weight = f"id_layers.{id_blocks[0]}.to_k_ip.weight"
    if weight not in state or state[weight].dim() != 2:
        raise LynxCheckpointError(f"{source}: missing key '{name(weight)}' (a 2-D [dim, C] matrix).")
    check_id_width(state[weight], dim, source, name(weight))
    out_dim, id_dim = state[weight].shape
    id_bias = f"id_layers.{id_blocks[0]}.to_k_ip.bias" in state
    registers = state.get(f"id_layers.{id_blocks[0]}.registers")
    highest = max(id_blocks + ref_blocks)
    if num_blocks is None:
        num_blocks = highest + 1
        if not id_bias and not ref_blocks and id_blocks == list(range(0, num_blocks, 2)) and num_blocks % 2:
            num_blocks += 1
    elif highest >= num_blocks:
        raise LynxCheckpointError(
            f"{source}: the checkpoint has layers for block {highest} but the DiT has {num_blocks} blocks "
            f"(0..{num_blocks - 1}). The adapters were made for another base model."
        )
    if resampler is None:
        resampler = infer_resampler_config(
            {k[len("resampler."):]: v for k, v in state.items() if k.startswith("resampler.")}, source, name)
    try:
        return LynxAdapterConfig(
            variant="full" if id_bias else "lite", dim=int(out_dim), num_blocks=num_blocks, id_blocks=id_blocks,
            id_dim=int(id_dim), id_bias=id_bias, num_registers=int(registers.shape[1]) if registers is not None else 0,
            id_key_norm="shared" if id_bias else "rms", ref_blocks=ref_blocks, resampler=resampler,
        )
    except ValueError as err:
        raise LynxCheckpointError(f"{source}: the tensors do not describe valid Lynx adapters ({err}).") from None
