"""The one face road: a face photo -> what the pipeline's Lynx units take (identity embedding, reference crop)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from PIL import Image

from ..errors import LynxValueError
from ..validation.models import EmbedderMismatchError, check_embedder_fits

__all__ = ["FaceConditioning", "condition_on_face", "EmbedderMismatchError"]


@dataclass(frozen=True)
class FaceConditioning:
    """One analysed face photo, ready for the pipeline.

    Attributes:
        analysis: the `FaceAnalysisResult` (landmarks, crops, report).
        id_embeds: ``[1, D]`` identity embedding (``lynx_id_embeds``).
        ref_image: the 256-px aligned crop for the Ref branch (``lynx_ref_image``), None for adapters without one.
    """

    analysis: Any
    id_embeds: torch.Tensor
    ref_image: Optional[Image.Image]

    def pipe_inputs(self) -> dict:
        """The ``lynx_*`` keyword arguments of the installed pipeline's ``__call__``."""
        return {"lynx_id_embeds": self.id_embeds, "lynx_ref_image": self.ref_image}


def condition_on_face(analyzer, image, adapters) -> FaceConditioning:
    """Detect, align and embed the largest face of ``image`` for ``adapters`` (a `LynxAdapters`).

    Raises `NoFaceError` when no face is found and `EmbedderMismatchError` when the embedder's size is not
    the size the adapters were trained on.
    """
    if analyzer is None:
        raise LynxValueError("No face analyzer is loaded: pass face models (CLI: --face-models) or identity "
                             "embeddings.")
    analysis = analyzer.analyze(image)
    found = getattr(adapters, "source_format", None)
    label = (f"the adapters {found.path} ({adapters.config.variant})" if found is not None
             else f"these {adapters.config.variant} adapters")
    check_embedder_fits(analysis.embedder, int(analysis.embedding.shape[0]),
                        int(adapters.config.resampler.embedding_dim), label)
    ref = analysis.ref_crop if adapters.config.has_ref else None
    return FaceConditioning(analysis=analysis, id_embeds=torch.as_tensor(analysis.embedding)[None], ref_image=ref)
