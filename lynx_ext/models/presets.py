"""Official defaults per variant and where the base model comes from."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

# Official negative prompt (bytedance/lynx infer.py and infer_lite.py).
OFFICIAL_NEGATIVE_PROMPT = (
    "Bright tones, overexposed, blurred background, static, subtitles, style, works, paintings, images, overall gray, "
    "worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, poorly drawn hands, "
    "poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, messy background, "
    "three legs, many people in the background, walking backwards"
)


@dataclass(frozen=True)
class VariantDefaults:
    """The official inference defaults of a Lynx variant."""

    num_frames: int
    fps: int
    height: int = 480
    width: int = 832
    num_inference_steps: int = 50
    cfg_scale: float = 5.0
    cfg_scale_i: Optional[float] = None
    id_scale: float = 1.0
    ref_scale: float = 1.0
    seed: int = 42
    sampler: str = "unipc"  # the official sampler; "euler" is DiffSynth's flow-match Euler
    sigma_shift: float = 3.0  # flow shift of the Wan2.1 diffusers scheduler config used by the official code


VARIANTS = {
    "full": VariantDefaults(num_frames=81, fps=16, cfg_scale_i=2.0),
    "lite": VariantDefaults(num_frames=121, fps=24),
}

# Base-model presets whose sizes differ from the official ones (applied over the variant's defaults).
PRESET_OVERRIDES = {
    "tiny": dict(height=128, width=128, num_frames=9, fps=8, num_inference_steps=6),
}


def variant_defaults(variant: str, preset: Optional[str] = None) -> VariantDefaults:
    """The defaults of ``variant`` on base-model ``preset`` (a clear error for an unknown variant)."""
    from dataclasses import replace

    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}.")
    return replace(VARIANTS[variant], **PRESET_OVERRIDES.get(preset or "", {}))


@dataclass(frozen=True)
class BaseModelPreset:
    """Where to find a Wan2.1 base model (DiffSynth `ModelConfig` model ids and file patterns)."""

    name: str
    model_id_with_origin_paths: list[str] = field(default_factory=list)
    tokenizer: str = "Wan-AI/Wan2.1-T2V-1.3B:google/umt5-xxl/"
    description: str = ""


BASE_MODELS = {
    "wan2.1-t2v-14b": BaseModelPreset(
        name="wan2.1-t2v-14b",
        model_id_with_origin_paths=[
            "Wan-AI/Wan2.1-T2V-14B:diffusion_pytorch_model*.safetensors",
            "Wan-AI/Wan2.1-T2V-14B:models_t5_umt5-xxl-enc-bf16.pth",
            "Wan-AI/Wan2.1-T2V-14B:Wan2.1_VAE.pth",
        ],
        description="Wan2.1-T2V-14B (native layout, what DiffSynth registers); the Lynx base model.",
    ),
    "tiny": BaseModelPreset(name="tiny", description="A tiny random Wan built on the fly (proves the installation)."),
}

OFFICIAL_ADAPTER_REPO = "ByteDance/lynx"
