"""Shape description of a set of Lynx adapters (`LynxAdapterConfig`) and its official presets."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Literal, Optional

Variant = Literal["full", "lite"]


@dataclass
class ResamplerConfig:
    """Perceiver Resampler hyper-parameters (the official `Resampler` constructor arguments)."""

    dim: int = 1280
    depth: int = 4
    dim_head: int = 64
    heads: int = 20
    num_queries: int = 16
    embedding_dim: int = 512
    output_dim: int = 5120
    ff_mult: int = 4

    def __post_init__(self):
        for name in ("dim", "depth", "dim_head", "heads", "num_queries", "embedding_dim", "output_dim", "ff_mult"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"ResamplerConfig.{name} must be a positive integer, got {value!r}.")


@dataclass
class LynxAdapterConfig:
    """Everything needed to build `LynxAdapters` for a given Wan DiT.

    Args:
        variant: ``"full"`` (ID + Ref adapters, official full layout) or ``"lite"``.
        dim: the DiT hidden size (5120 for Wan2.1-14B).
        num_blocks: number of DiT blocks (40 for 14B).
        id_blocks: block indices that get an ID branch in their cross-attention.
        id_dim: width of the identity tokens (= resampler output_dim).
        id_bias: whether the ID key/value projections have a bias (full: yes, lite: no).
        num_registers: learned register tokens appended after the identity tokens (full only).
        id_key_norm: ``"shared"`` = the block's own cross-attention ``norm_k`` (full);
            ``"rms"`` = a parameter-free RMSNorm with eps 1e-5 (lite).
        ref_blocks: block indices that get a Ref branch in their self-attention (empty for lite).
        resampler: the Perceiver Resampler shape.
        lite_zero_scale_quirk: reproduce the official lite bug where ``id_scale=0`` behaves as 1.0.
    """

    variant: Variant = "full"
    dim: int = 5120
    num_blocks: int = 40
    id_blocks: list[int] = field(default_factory=list)
    id_dim: int = 5120
    id_bias: bool = True
    num_registers: int = 0
    id_key_norm: Literal["shared", "rms"] = "shared"
    ref_blocks: list[int] = field(default_factory=list)
    resampler: ResamplerConfig = field(default_factory=ResamplerConfig)
    lite_zero_scale_quirk: bool = False

    def __post_init__(self):
        if isinstance(self.resampler, dict):
            self.resampler = ResamplerConfig(**self.resampler)
        if self.variant not in ("full", "lite"):
            raise ValueError(f"variant must be 'full' or 'lite', got {self.variant!r}.")
        if self.id_key_norm not in ("shared", "rms"):
            raise ValueError(f"id_key_norm must be 'shared' or 'rms', got {self.id_key_norm!r}.")
        for name in ("id_blocks", "ref_blocks"):
            blocks = [int(b) for b in getattr(self, name)]
            bad = [b for b in blocks if not 0 <= b < self.num_blocks]
            if bad:
                raise ValueError(f"{name} contains block indices {bad} outside 0..{self.num_blocks - 1}.")
            setattr(self, name, sorted(set(blocks)))
        if self.resampler.output_dim != self.id_dim:
            raise ValueError(
                f"resampler.output_dim ({self.resampler.output_dim}) must equal id_dim ({self.id_dim}): "
                "the identity tokens feed the ID key/value projections directly."
            )
        if self.num_registers < 0:
            raise ValueError(f"num_registers must be >= 0, got {self.num_registers}.")

    @property
    def has_ref(self) -> bool:
        return len(self.ref_blocks) > 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "LynxAdapterConfig":
        return cls(**json.loads(text))

    @classmethod
    def official(
        cls,
        variant: Variant,
        dim: int = 5120,
        num_blocks: int = 40,
        num_registers: int = 0,
        resampler: Optional[ResamplerConfig] = None,
    ) -> "LynxAdapterConfig":
        """The official layout for a Wan DiT of the given size (defaults: Wan2.1-T2V-14B)."""
        if variant == "full":
            res = resampler or ResamplerConfig(output_dim=dim)
            return cls(
                variant="full", dim=dim, num_blocks=num_blocks, id_blocks=list(range(num_blocks)),
                id_dim=res.output_dim, id_bias=True, num_registers=num_registers, id_key_norm="shared",
                ref_blocks=list(range(num_blocks)), resampler=res,
            )
        if variant == "lite":
            res = resampler or ResamplerConfig(output_dim=2048)
            if num_registers:
                raise ValueError("The lite variant has no register tokens.")
            return cls(
                variant="lite", dim=dim, num_blocks=num_blocks, id_blocks=list(range(0, num_blocks, 2)),
                id_dim=res.output_dim, id_bias=False, num_registers=0, id_key_norm="rms",
                ref_blocks=[], resampler=res,
            )
        raise ValueError(f"variant must be 'full' or 'lite', got {variant!r}.")
