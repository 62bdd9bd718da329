"""`GenerationSettings`: the one type for the options of a Lynx generation (CLI, Python API, batch files,
training samples, evaluation sweeps). Unset values take the variant's defaults (`lynx_ext.models.presets`);
unset adapter scales, window and blocks take the pipeline's installed values (`set_scales`).

Every value is checked when the settings are made (`lynx_ext.validation.generation`): a zero step count, a NaN
guidance, a reversed window or a non-numeric seed is a `LynxValueError` naming the option, before any model
loads."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Optional, Union

from ..errors import LynxValueError
from ..models.presets import OFFICIAL_NEGATIVE_PROMPT, VariantDefaults
from ..validation.generation import VARIANT_DEFAULT, check_guidance_pair, check_setting, parse_setting


@dataclass(frozen=True)
class GenerationSettings:
    """Options of one generation; ``None`` = the default (see the module docstring)."""

    seed: Optional[int] = None
    num_frames: Optional[int] = None
    height: Optional[int] = None
    width: Optional[int] = None
    fps: Optional[int] = None
    num_inference_steps: Optional[int] = None
    cfg_scale: Optional[float] = None
    cfg_scale_i: Union[float, None, str] = VARIANT_DEFAULT
    id_scale: Optional[float] = None
    ref_scale: Optional[float] = None
    step_window: Optional[tuple[float, float]] = None
    blocks: Optional[tuple[int, ...]] = None
    sampler: Optional[str] = None
    sigma_shift: Optional[float] = None
    negative_prompt: Optional[str] = None
    tiled: bool = True
    # speed (docs/speed.md): exact-path options, then the fast modes
    attention: Optional[str] = None
    fuse_projections: bool = False
    fp8_compute: bool = False
    step_cache: Optional[float] = None
    guidance_reuse: Optional[str] = None

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name, check_setting(f.name, getattr(self, f.name)))

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_mapping(cls, values: dict, source: str = "settings", text: bool = False) -> "GenerationSettings":
        """Build from a mapping (a batch row, a sweep arm); an unknown key or a bad value is an error naming it
        and ``source``. ``text``: values may be strings to parse (CSV cells, command-line values)."""
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise LynxValueError(f"{source}: unknown setting(s) {', '.join(unknown)}; known: "
                                 f"{', '.join(cls.field_names())}.")
        try:
            return cls(**({k: parse_setting(k, v) for k, v in values.items()} if text else values))
        except LynxValueError as err:
            raise err.renamed(f"{source}: {err.field}") from None

    def merged(self, other: "GenerationSettings") -> "GenerationSettings":
        """``other``'s set values over these."""
        changes = {f.name: getattr(other, f.name) for f in fields(other)
                   if getattr(other, f.name) != getattr(GenerationSettings, f.name, None)}
        return replace(self, **changes)

    def resolved(self, defaults: VariantDefaults) -> "GenerationSettings":
        """Unset sampling options filled from ``defaults`` (scales, window and blocks stay as given)."""
        changes = {}
        for name in ("seed", "num_frames", "height", "width", "fps", "num_inference_steps", "cfg_scale", "sampler",
                     "sigma_shift"):
            if getattr(self, name) is None:
                changes[name] = getattr(defaults, name)
        if self.cfg_scale_i == VARIANT_DEFAULT:  # guidance off (cfg_scale <= 1) is off for identity too
            cfg = changes.get("cfg_scale", self.cfg_scale)
            changes["cfg_scale_i"] = defaults.cfg_scale_i if cfg is None or cfg > 1 else None
        if self.negative_prompt is None:
            changes["negative_prompt"] = OFFICIAL_NEGATIVE_PROMPT
        resolved = replace(self, **changes)
        check_guidance_pair(resolved.cfg_scale, resolved.cfg_scale_i)  # rules between settings, once all are known
        return resolved

    def pipe_kwargs(self) -> dict:
        """Keyword arguments of the installed pipeline's ``__call__`` (call `resolved` first)."""
        return dict(
            negative_prompt=self.negative_prompt, seed=self.seed, height=self.height, width=self.width,
            num_frames=self.num_frames, num_inference_steps=self.num_inference_steps, cfg_scale=self.cfg_scale,
            cfg_scale_i=self.cfg_scale_i, sigma_shift=self.sigma_shift, sampler=self.sampler, tiled=self.tiled,
            lynx_id_scale=self.id_scale, lynx_ref_scale=self.ref_scale,
            lynx_step_window=None if self.step_window is None else list(self.step_window),
            lynx_blocks=None if self.blocks is None else list(self.blocks),
            lynx_fast=self.fast_options(),
        )

    def fast_options(self):
        """The speed fields as the pipeline's `FastOptions` (a clear error for an unknown kernel or mode)."""
        from ..adapters.compute import ComputeOptions
        from .fast_modes import FastOptions

        compute = ComputeOptions(attention=self.attention or "auto", fuse_projections=bool(self.fuse_projections),
                                 fp8=bool(self.fp8_compute))
        return FastOptions(compute=compute, step_cache=None if self.step_cache is None else float(self.step_cache),
                           guidance_reuse=self.guidance_reuse)

    def to_dict(self) -> dict:
        return asdict(self)
