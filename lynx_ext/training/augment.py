"""Identity-image augmentation and condition dropout (so that every guidance branch is trained)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageEnhance

from .args import AugmentArgs, DropoutArgs


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
