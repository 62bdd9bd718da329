"""Per-block adapter projections: the ID branch (cross-attention) and the Ref branch (self-attention)."""
from __future__ import annotations

import torch
from torch import nn


class IdLayer(nn.Module):
    """Key/value projections of identity tokens for one block, plus optional register tokens.

    Official names: ``to_k_ip`` / ``to_v_ip`` / ``registers``.
    """

    def __init__(self, id_dim: int, dim: int, bias: bool, num_registers: int):
        super().__init__()
        self.to_k_ip = nn.Linear(id_dim, dim, bias=bias)
        self.to_v_ip = nn.Linear(id_dim, dim, bias=bias)
        if num_registers > 0:
            self.registers = nn.Parameter(torch.randn(1, num_registers, id_dim) / dim**0.5)
        else:
            self.registers = None

    def tokens_with_registers(self, tokens: torch.Tensor, lens: list[int] | None = None):
        """Append the registers after each sample's identity tokens.

        ``tokens`` is ``[B, N, C]``; with ``lens`` (packed samples in one row) it is ``[1, sum(lens), C]``.
        Returns the tokens and the new per-sample lengths (or None).
        """
        if self.registers is None:
            return tokens, lens
        reg = self.registers.to(dtype=tokens.dtype, device=tokens.device)
        if lens is None:
            return torch.cat([tokens, reg.expand(tokens.shape[0], -1, -1)], dim=1), None
        pieces = []
        for seg in torch.split(tokens, lens, dim=1):
            pieces += [seg, reg]
        return torch.cat(pieces, dim=1), [n + reg.shape[1] for n in lens]


class RefLayer(nn.Module):
    """Key/value projections of one block's reference features. Official names: ``to_k_ref`` / ``to_v_ref``."""

    def __init__(self, dim: int):
        super().__init__()
        self.to_k_ref = nn.Linear(dim, dim, bias=True)
        self.to_v_ref = nn.Linear(dim, dim, bias=True)
