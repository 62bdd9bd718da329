"""Loading the Lynx generator of an arm (the same choices as ``diffsynth-ext generate``), one at a time."""
from __future__ import annotations

import gc
from dataclasses import asdict
from typing import Any, Optional

from .definition import ModelSettings


def build_generator(model: ModelSettings):
    """A `LynxGenerator` for ``model`` (``preset: tiny`` builds the tiny random Wan offline)."""
    if model.preset == "tiny":
        from ..inference.tiny_preset import tiny_generator

        return tiny_generator(variant=model.variant, loras=model.loras, face_models=model.face_models,
                              embedder=model.embedder, detector=model.detector, adapters=model.adapters)
    from ..inference import LynxGenerator

    return LynxGenerator.from_pretrained(
        variant=model.variant, base=model.preset, adapters=model.adapters, model_paths=model.model_paths or None,
        model_id_with_origin_paths=model.model_id_with_origin_paths or None, tokenizer_path=model.tokenizer_path,
        face_models=model.face_models, embedder=model.embedder, detector=model.detector, loras=model.loras,
        device=model.device, dtype=model.dtype, vram_limit=model.vram_limit, offload=model.offload, fp8=model.fp8)


class GeneratorSlot:
    """Holds the generator of the arm being run; a different model setting frees it before loading the next."""

    def __init__(self, factory=build_generator):
        self.factory = factory
        self.key: Optional[str] = None
        self.generator: Any = None

    def get(self, model: ModelSettings):
        key = repr(sorted(asdict(model).items()))
        if key != self.key:
            self.release()
            self.generator = self.factory(model)
            self.key = key
        return self.generator

    def release(self) -> None:
        self.generator, self.key = None, None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass
