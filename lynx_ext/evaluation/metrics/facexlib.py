"""``facexlib``: ArcFace IR-SE50 (``recognition_arcface_ir_se50.pth``), Lynx's own embedder; the paper's 0.779."""
from __future__ import annotations

from .base import MetricEnv
from .face_similarity import FaceSimilarityMetric
from .registry import register_metric


@register_metric
class FacexlibSimilarity(FaceSimilarityMetric):
    name = "facexlib"
    description = "facexlib ArcFace IR-SE50 (Lynx's conditioning embedder; the paper's facexlib score)"

    def build_embedder(self, env: MetricEnv):
        from ...conditioners.arcface_facexlib import load_facexlib_embedder

        return load_facexlib_embedder(env.model_files.get(self.name), device=env.device, offline_ok=True,
                                      search_dirs=env.search_dirs())
