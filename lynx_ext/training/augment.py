"""Identity-image augmentation and condition dropout (so that every guidance branch is trained)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance


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


def jitter_crop(crop: Image.Image, rng: np.random.Generator, args: AugmentArgs) -> Image.Image:
    w, h = crop.size
    lo, hi = args.crop_scale
    if hi < 1.0 or lo < 1.0:
        scale = rng.uniform(lo, hi)
        cw, ch = int(round(w * scale ** 0.5)), int(round(h * scale ** 0.5))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = crop.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.BILINEAR)
    if args.color_jitter > 0:
        for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            crop = enhancer(crop).enhance(1 + rng.uniform(-args.color_jitter, args.color_jitter))
    return crop


def perturb_embedding(embedding: np.ndarray, rng: np.random.Generator, std: float) -> np.ndarray:
    if std <= 0:
        return embedding
    e = embedding + rng.normal(0, std, size=embedding.shape).astype(np.float32)
    return (e / max(np.linalg.norm(e), 1e-8)).astype(np.float32)


def draw_dropout(rng: np.random.Generator, args: DropoutArgs) -> dict[str, bool]:
    if rng.random() < args.all:
        return {"face": True, "ref": True, "text": True}
    return {"face": bool(rng.random() < args.face), "ref": bool(rng.random() < args.ref),
            "text": bool(rng.random() < args.text)}
