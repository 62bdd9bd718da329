"""``insightface``: insightface's ArcFace ONNX (buffalo_l ``w600k_r50.onnx`` by default); the paper's 0.699 and
OpenS2V's FaceSim-Arc."""
from __future__ import annotations

from pathlib import Path

from .base import MetricEnv
from .face_similarity import FaceSimilarityMetric
from .registry import register_metric


@register_metric
class InsightFaceSimilarity(FaceSimilarityMetric):
    name = "insightface"
    description = "insightface ArcFace ONNX (the paper's insightface score; OpenS2V FaceSim-Arc)"

    def build_embedder(self, env: MetricEnv):
        from ...conditioners.arcface_onnx import InsightFaceArcFaceEmbedder
        from ...conditioners.errors import FaceModelsMissingError
        from ...conditioners.model_files import DEFAULT_PACK, INSIGHTFACE_ROOT, resolve_recognizer_file

        explicit = env.model_files.get(self.name)
        if explicit:
            path = Path(explicit).expanduser()
            if not path.is_file():
                raise FaceModelsMissingError("insightface ArcFace recognizer", path.name, path)
        else:
            dirs = env.search_dirs() or [Path(INSIGHTFACE_ROOT).expanduser() / "models" / DEFAULT_PACK]
            path = resolve_recognizer_file(dirs[0])
        return InsightFaceArcFaceEmbedder(path, providers=env.providers, ctx_id=env.ctx_id)
