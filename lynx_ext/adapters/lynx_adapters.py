"""`LynxAdapters`: the resampler plus the per-block ID and Ref projections (files: `lynx_ext.adapters.formats`)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Literal, Mapping, Optional

import torch
from torch import nn

from .config import LynxAdapterConfig
from .layers import IdLayer, RefLayer
from .resampler import PerceiverResampler

InitMethod = Literal["zero", "random"]


class LynxAdapters(nn.Module):
    """All trainable Lynx weights for one Wan DiT.

    State-dict keys: ``resampler.*`` (official Resampler names), ``id_layers.{block}.to_{k,v}_ip.*``,
    ``id_layers.{block}.registers``, ``ref_layers.{block}.to_{k,v}_ref.*``.
    """

    def __init__(self, config: LynxAdapterConfig, init: InitMethod = "zero"):
        super().__init__()
        self.config = config
        self.resampler = PerceiverResampler(config.resampler)
        self.id_layers = nn.ModuleDict(
            {str(b): IdLayer(config.id_dim, config.dim, config.id_bias, config.num_registers) for b in config.id_blocks}
        )
        self.ref_layers = nn.ModuleDict({str(b): RefLayer(config.dim) for b in config.ref_blocks})
        if init == "zero":
            self.zero_init_branches()
        elif init != "random":
            raise ValueError(f"init must be 'zero' or 'random', got {init!r}.")

    # ------------------------------------------------------------------ init
    @torch.no_grad()
    def zero_init_branches(self) -> None:
        """Zero the key/value projections so that installing the adapters changes nothing (official default)."""
        for layer in list(self.id_layers.values()) + list(self.ref_layers.values()):
            for lin in layer.children():
                if isinstance(lin, nn.Linear):
                    lin.weight.zero_()
                    if lin.bias is not None:
                        lin.bias.zero_()

    @torch.no_grad()
    def clone_init_from(self, dit: nn.Module) -> None:
        """Initialise the branch projections from the host attention's k/v (the official ``"clone"`` init)."""
        blocks = dit.blocks
        for b, layer in self.id_layers.items():
            attn = blocks[int(b)].cross_attn
            if layer.to_k_ip.weight.shape != attn.k.weight.shape:
                raise ValueError("clone init needs id_dim == dim (the full variant).")
            layer.to_k_ip.weight.copy_(attn.k.weight)
            layer.to_v_ip.weight.copy_(attn.v.weight)
            if layer.to_k_ip.bias is not None:
                layer.to_k_ip.bias.copy_(attn.k.bias)
                layer.to_v_ip.bias.copy_(attn.v.bias)
        for b, layer in self.ref_layers.items():
            attn = blocks[int(b)].self_attn
            for dst, src in ((layer.to_k_ref, attn.k), (layer.to_v_ref, attn.v)):
                dst.weight.copy_(src.weight)
                dst.bias.copy_(src.bias)

    # ------------------------------------------------------------- identity
    def encode_identity(self, embeds: torch.Tensor) -> torch.Tensor:
        """Face embeddings ``[B, 512]`` -> identity tokens ``[B, num_queries, id_dim]``."""
        return self.resampler(embeds)

    # ------------------------------------------------------------ save/load
    def save(self, path: str | os.PathLike, metadata: Optional[dict] = None, overwrite: bool = True) -> Path:
        """Write our one-file layout (atomically) with the config in its header (see `formats.ours`)."""
        from .formats.ours import write_ours

        return write_ours(self, path, metadata, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, device="cpu", dtype: Optional[torch.dtype] = None) -> "LynxAdapters":
        """Load a file written by `save`. For every layout (official, ComfyUI) use `load_lynx_adapters`."""
        from .formats.ours import read_ours_file

        config, state, metadata = read_ours_file(path)
        adapters = cls.from_state(config, state, str(path))
        adapters.metadata = metadata
        return adapters.to(device=device, dtype=dtype) if dtype is not None else adapters.to(device=device)

    @classmethod
    def from_state(cls, config: LynxAdapterConfig, state: Mapping[str, torch.Tensor], source: str,
                   name: Callable[[str], str] = str) -> "LynxAdapters":
        """Adapters of ``config`` holding exactly ``state`` (each tensor in its stored dtype), after a strict key and
        shape check whose errors name the file ``source`` and each key as ``name(key)`` (the file's own names)."""
        from .formats.errors import check_state_dict

        with torch.device("meta"):
            adapters = cls(config, init="random")
        check_state_dict({k: v.shape for k, v in adapters.state_dict().items()}, state, source, name)
        adapters.load_state_dict(dict(state), strict=True, assign=True)
        return adapters

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"variant={c.variant}, dim={c.dim}, id_blocks={len(c.id_blocks)}, ref_blocks={len(c.ref_blocks)}, "
            f"id_dim={c.id_dim}, registers={c.num_registers}"
        )
