"""``curricularface``: CurricularFace IR-101 (``glint360k_curricular_face_r101_backbone.bin``); OpenS2V's
FaceSim-Cur, its leaderboard's identity number."""
from __future__ import annotations

from .base import MetricEnv
from .face_similarity import FaceSimilarityMetric
from .registry import register_metric


@register_metric
class CurricularFaceSimilarity(FaceSimilarityMetric):
    name = "curricularface"
    description = "CurricularFace IR-101 (OpenS2V FaceSim-Cur)"

    def build_embedder(self, env: MetricEnv):
        from ...conditioners.curricularface import load_curricularface_embedder

        return load_curricularface_embedder(env.model_files.get(self.name), device=env.device,
                                            search_dirs=env.search_dirs())
