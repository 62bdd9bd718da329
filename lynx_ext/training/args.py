"""Typed argument groups of the training recipes (their attribute docstrings are the recipe documentation)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional


@dataclass
class BaseModelArgs:
    """Where the frozen Wan2.1 base model comes from."""

    preset: Literal["wan2.1-t2v-14b", "tiny", "custom"] = "wan2.1-t2v-14b"
    """``wan2.1-t2v-14b`` (DiffSynth model ids), ``tiny`` (a tiny random Wan built on the fly), ``custom``
    (``model_paths`` / ``model_id_with_origin_paths``)."""
    model_paths: list[str] = field(default_factory=list)
    """Local base-model files (DiffSynth ``ModelConfig(path=...)``)."""
    model_id_with_origin_paths: list[str] = field(default_factory=list)
    """DiffSynth spelling ``model_id:pattern`` (downloaded when online)."""
    tokenizer_path: Optional[str] = None
    dtype: Literal["bf16", "fp16", "fp32"] = "bf16"
    """dtype of the frozen base model (the trainable weights follow the Trainer's precision)."""
    fp8_storage: bool = False
    """Store the frozen DiT's linear weights in float8 e4m3 with per-row scales, computed in ``dtype`` (half the
    base's memory: 26.6 -> 13.4 GiB for the 14B DiT; `lynx_ext.training.fp8_base`)."""
    tiny_dit: dict = field(default_factory=dict)
    """``tiny`` only: WanModel keyword overrides (dim, num_layers, ...)."""
    tiny_text_dim: int = 32


@dataclass
class AdapterArgs:
    """The Lynx adapters being trained."""

    variant: Literal["full", "lite"] = "full"
    init_from: Optional[str] = None
    """Adapter weights to start from (a stage-1 export: our ``.safetensors`` or an official-layout folder)."""
    init: Literal["zero", "random"] = "zero"
    """Fresh adapters: zero-initialised branches (training starts from the base model exactly) or random."""
    num_registers: int = 16
    """Register tokens of the full ID branch (the official code reads the count from its checkpoint)."""
    embedding_dim: int = 512
    """Face-embedding size fed to the resampler (512 for ArcFace, 128 for dlib's ResNet)."""
    id_dim: Optional[int] = None
    """Identity-token width (default: DiT dim for full, 2048 for lite, as official)."""
    resampler_dim: int = 1280
    resampler_depth: int = 4
    resampler_heads: int = 20
    resampler_dim_head: int = 64
    num_queries: int = 16


@dataclass
class OptimArgs:
    """The optimiser (a class path, AdamW by default) with linear warm-up then a constant rate."""

    optimizer: str = "torch.optim.AdamW"
    """Class path of a ``torch.optim.Optimizer``: ``bitsandbytes.optim.AdamW8bit`` / ``torchao.optim.AdamW8bit``
    (8-bit states), ``torchao.optim.CPUOffloadOptimizer`` (states and step on the CPU), ...
    (`lynx_ext.training.optimizers`)."""
    optimizer_args: dict = field(default_factory=dict)
    """More keyword arguments for ``optimizer`` (``lr``, ``weight_decay`` and ``betas`` come from the keys below);
    a value under a key ending in ``_class`` is a class path, e.g. ``{optimizer_class: torch.optim.AdamW}``."""
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0


@dataclass
class LossArgs:
    """DiffSynth's flow-matching loss: timesteps drawn in ``[min, max] * 1000`` of the training schedule,
    MSE to ``noise - x0`` weighted by the schedule's training weight."""

    min_timestep_boundary: float = 0.0
    max_timestep_boundary: float = 1.0
    timestep_weighting: bool = True
    sigma_shift: float = 5.0


@dataclass
class AugmentArgs:
    """Augmentations of the identity conditioning."""

    cross_sample_identity: float = 0.8
    """Probability of taking the identity image from *another* sample of the same identity (when one exists)."""
    crop_scale: tuple[float, float] = (0.85, 1.0)
    """Random-resized-crop area range applied to the 256-px reference crop."""
    color_jitter: float = 0.1
    """Brightness/contrast/saturation jitter amplitude of the reference crop (0 disables)."""
    embed_noise: float = 0.0
    """Std of Gaussian noise added to the face embedding before re-normalising (0 disables)."""


@dataclass
class DropoutArgs:
    """Condition dropout rates; a dropped face is the zero embedding, a dropped reference the grey image,
    a dropped text the empty prompt — exactly the inputs of the unconditional guidance branch."""

    face: float = 0.05
    ref: float = 0.05
    text: float = 0.1
    all: float = 0.05
    """Probability of dropping face, reference and text together."""


@dataclass
class SampleSpec:
    """Frames, resolution buckets and stride of training samples."""

    num_frames: int = 81
    """Frames per video sample (4n+1; shorter videos use the longest 4n+1 prefix). Images are 1 frame."""
    buckets: list[tuple[int, int]] = field(default_factory=lambda: [(480, 832)])
    """(height, width) buckets (multiples of 16); each sample goes to the bucket nearest its aspect ratio."""
    frame_stride: int = 1
    images_only: bool = False
    """Treat every sample as a single frame (stage-1 image pre-training; videos give their middle frame)."""
    ref_size: int = 256
    """Side of the reference crop fed to the VAE (official: 256; smaller only for quick experiments)."""


@dataclass
class FacePair:
    image: str
    prompt: str
