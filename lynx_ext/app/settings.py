"""What one app job asks for (`JobSettings`), checked before any model loads or any job is queued.

Every value comes from a web form (or the Gradio API), so nothing is trusted: numbers must be finite and in a
sensible range, the step window in order, block indices inside the model, LoRA files present. A bad value
raises `LynxInputError` naming the control and what to enter instead; the UI shows that sentence.
"""
from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, replace
from pathlib import Path
from typing import Any, Optional

from ..cli.common import parse_blocks
from ..conditioners import LynxInputError
from ..validation.loras import LoraSpec
from ..models.presets import OFFICIAL_NEGATIVE_PROMPT, VARIANTS, variant_defaults

SAMPLERS = ("unipc", "euler")
# control -> (lowest, highest) accepted; the official values are well inside (scales 1, g 5, gi 2, shift 3).
RANGES = {
    "id_scale": (0.0, 10.0), "ref_scale": (0.0, 10.0), "cfg_scale": (0.0, 30.0), "cfg_scale_i": (0.0, 30.0),
    "sigma_shift": (0.1, 100.0), "num_inference_steps": (1, 1000), "height": (16, 4096), "width": (16, 4096),
    "num_frames": (1, 1001), "fps": (1, 120), "seed": (0, 2**32 - 1), "vram_limit": (0.5, 10_000.0),
}
LABELS = {
    "id_scale": "ID scale", "ref_scale": "Ref scale", "cfg_scale": "Text guidance g",
    "cfg_scale_i": "Identity guidance gi",
    "sigma_shift": "Sigma shift", "num_inference_steps": "Steps", "height": "Height", "width": "Width",
    "num_frames": "Frames", "fps": "FPS", "seed": "Seed", "vram_limit": "VRAM limit (GB)",
}
INTEGERS = ("num_inference_steps", "height", "width", "num_frames", "fps", "seed")


@dataclass(frozen=True)
class ModelKey:
    """The settings that change which models are loaded; a job with another key reloads the generator."""

    variant: str
    loras: tuple[str, ...] = ()
    vram_limit: Optional[float] = None
    offload: bool = False
    fp8: bool = False


@dataclass
class JobSettings:
    """The form's values for one generation (field names are `LynxGenerator.generate`'s where they match).
    `JobSettings.defaults` fills in the variant's official values (`lynx_ext.inference.VARIANTS`)."""

    prompt: str
    negative_prompt: str
    variant: str
    id_scale: float
    ref_scale: float
    sampler: str
    sigma_shift: float
    num_inference_steps: int
    seed: int
    cfg_scale: float
    identity_guidance: bool  # False = two-branch guidance (cfg_scale_i None)
    cfg_scale_i: float
    height: int
    width: int
    num_frames: int
    fps: int
    step_window_start: float = 0.0
    step_window_end: float = 1.0
    blocks: str = ""  # empty = all blocks
    face_similarity: bool = True
    loras: str = ""  # one PATH[:ALPHA] per line
    vram_limit: Optional[float] = None  # None / 0 = no limit
    offload: bool = False
    fp8: bool = False

    @classmethod
    def defaults(cls, variant: str = "full", preset: Optional[str] = None, **values) -> "JobSettings":
        """The variant's defaults on base-model ``preset`` (e.g. the tiny preset's sizes), then ``values``."""
        d = variant_defaults(variant, preset)
        base = dict(prompt="", negative_prompt=OFFICIAL_NEGATIVE_PROMPT, variant=variant, id_scale=d.id_scale,
                    ref_scale=d.ref_scale, sampler=d.sampler, sigma_shift=d.sigma_shift,
                    num_inference_steps=d.num_inference_steps, seed=d.seed, cfg_scale=d.cfg_scale,
                    identity_guidance=d.cfg_scale_i is not None,
                    cfg_scale_i=d.cfg_scale_i if d.cfg_scale_i is not None else VARIANTS["full"].cfg_scale_i,
                    height=d.height, width=d.width, num_frames=d.num_frames, fps=d.fps)
        return cls(**{**base, **values})

    @classmethod
    def from_form(cls, values: dict[str, Any]) -> "JobSettings":
        """Build from a ``{field: value}`` dict; unknown or missing keys are refused by name."""
        fields = cls.__dataclass_fields__
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise LynxInputError(f"Unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}.")
        missing = [k for k, f in fields.items() if k not in values and f.default is MISSING]
        if missing:
            raise LynxInputError(f"Missing setting(s): {', '.join(missing)}.")
        return cls(**values)

    # -------------------------------------------------------------------------------------------- checks
    def lora_specs(self) -> list[LoraSpec]:
        """The LoRA lines as `LoraSpec`s; a missing file or a non-finite alpha is refused."""
        specs = []
        for line in str(self.loras or "").splitlines():
            line = line.strip()
            if not line:
                continue
            spec = LoraSpec.parse(line)
            if not math.isfinite(spec.alpha):
                raise LynxInputError(f"LoRA {line!r}: the alpha after ':' must be a finite number.")
            path = Path(spec.path).expanduser()
            if not path.is_file():
                raise LynxInputError(f"LoRA file {spec.path} does not exist (one PATH or PATH:ALPHA per line).")
            if path.suffix == ".safetensors":
                _check_safetensors_header(path)
            specs.append(LoraSpec(str(path), spec.alpha))
        return specs

    def model_key(self) -> ModelKey:
        """Which models this job needs (checked: variant, LoRA files, memory options)."""
        if self.variant not in VARIANTS:
            raise LynxInputError(f"Variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}.")
        limit = None if self.vram_limit in (None, "", 0) else _number("vram_limit", self.vram_limit)
        loras = tuple(f"{s.path}:{s.alpha}" for s in self.lora_specs())
        return ModelKey(self.variant, loras, limit, bool(self.offload), bool(self.fp8))

    def generate_kwargs(self, num_blocks: Optional[int] = None) -> dict[str, Any]:
        """Checked keyword arguments for `LynxGenerator.generate` (``num_blocks``: the DiT's, to check blocks)."""
        prompt = str(self.prompt or "").strip()
        if not prompt:
            raise LynxInputError("The prompt is empty; describe the video to generate.")
        if self.sampler not in SAMPLERS:
            raise LynxInputError(f"Sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}.")
        values = {key: _number(key, getattr(self, key)) for key in RANGES if key not in ("vram_limit", "cfg_scale_i")}
        values["cfg_scale_i"] = _number("cfg_scale_i", self.cfg_scale_i) if self.identity_guidance else None
        window = [_unit("Step window start", self.step_window_start), _unit("Step window end", self.step_window_end)]
        if window[0] >= window[1]:
            raise LynxInputError(f"The step window is empty or reversed (start {window[0]:g} >= end {window[1]:g}); "
                                 "the start must be below the end, e.g. 0 and 0.6.")
        return dict(prompt=prompt, negative_prompt=str(self.negative_prompt or ""), **values,
                    step_window=None if window == [0.0, 1.0] else window,
                    blocks=self.block_list(num_blocks), face_similarity=bool(self.face_similarity))

    def block_list(self, num_blocks: Optional[int] = None) -> Optional[list[int]]:
        """The block selection as indices (None = all), checked against ``num_blocks``."""
        text = str(self.blocks or "").strip()
        if not text or text.lower() == "all":
            return None
        try:
            blocks = parse_blocks(text)
        except ValueError as err:
            reason = str(err).replace("--blocks ", "", 1)
            raise LynxInputError(f"Blocks {text!r}: {reason} Use indices and ranges such as '0-19' or '0,2,4' "
                                 "(empty = all blocks).") from None
        if not blocks:
            raise LynxInputError(f"Blocks {text!r} selects no block; write ranges low-high, e.g. '0-19'.")
        if num_blocks is not None and blocks[-1] >= num_blocks:
            raise LynxInputError(f"Blocks {text!r}: this model has blocks 0-{num_blocks - 1}; "
                                 f"{blocks[-1]} does not exist.")
        return blocks


def _number(key: str, value: Any) -> float | int:
    label, (low, high) = LABELS[key], RANGES[key]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise LynxInputError(f"{label} must be a number, got {value!r}.") from None
    if not math.isfinite(number):
        raise LynxInputError(f"{label} must be a finite number, got {value!r}.")
    if key in INTEGERS:
        if number != int(number):
            raise LynxInputError(f"{label} must be a whole number, got {value!r}.")
        number = int(number)
    if not low <= number <= high:
        raise LynxInputError(f"{label} must be between {low:g} and {high:g}, got {value!r}.")
    return number


def _unit(label: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise LynxInputError(f"{label} must be a number between 0 and 1, got {value!r}.") from None
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise LynxInputError(f"{label} must be a fraction of the steps between 0 and 1, got {value!r}.")
    return number


def _check_safetensors_header(path: Path) -> None:
    """Read only the header, so a truncated or foreign file is refused before the models reload."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            f.keys()
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
        raise LynxInputError(f"LoRA file {path} is not a readable .safetensors file ({err}); check that it was "
                             "copied completely.") from None
