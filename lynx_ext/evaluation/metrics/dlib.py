"""``dlib``: dlib's ResNet face descriptor (128-d, CC0 weights from pip): runs anywhere, no download."""
from __future__ import annotations

from .base import MetricEnv, MetricUnavailable
from .face_similarity import FaceSimilarityMetric
from .registry import register_metric


@register_metric
class DlibSimilarity(FaceSimilarityMetric):
    name = "dlib"
    description = "dlib ResNet-34 descriptor (offline from pip: dlib-bin + face-recognition-models)"

    def build_embedder(self, env: MetricEnv):
        try:
            import dlib  # noqa: F401
        except ImportError as err:
            raise MetricUnavailable("dlib is not installed: pip install dlib-bin face-recognition-models") from err
        from ...conditioners.dlib_resnet import DlibResNetEmbedder

        return DlibResNetEmbedder(model_dir=env.model_files.get(self.name))
