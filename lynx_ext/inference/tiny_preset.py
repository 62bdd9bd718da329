"""The offline default: a tiny random Wan, random Lynx adapters and stand-in face models, built on the fly.

Everything is deterministic and nothing is downloaded. The output proves the installation and the whole code
path (face detection -> alignment -> embedding -> resampler -> reference pass -> guided sampling -> video);
the model is untrained, so the video is noise-like.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence


def tiny_embedder(embedder: str, face_models: str | None) -> str:
    """Without face models the stand-in pack (insightface layout) conditions the faces, unless ``dlib`` is asked."""
    return embedder if (face_models or embedder == "dlib") else "insightface"


def tiny_generator(variant: str = "full", loras: Sequence[str] = (), home: Path | None = None,
                   face_models: str | None = None, embedder: str = "insightface", detector: str | None = None,
                   adapters: str | None = None):
    """A `LynxGenerator` over tiny models (CPU, float32); ``face_models`` replaces the stand-in face pack.

    Without ``face_models`` the stand-in pack conditions the faces (insightface layout), unless ``embedder`` is
    ``dlib`` (offline from pip alone)."""
    from ..conditioners import FaceAnalyzer
    from ..models.build import build_wan_pipe
    from ..models.presets import variant_defaults
    from ..tiny import tiny_home
    from ..tiny.adapters import tiny_adapters
    from ..tiny.face_models import write_standin_pack
    from .generator import LynxGenerator

    variant_defaults(variant)
    home = home or tiny_home()
    embedder = tiny_embedder(embedder, face_models)
    detector = detector or ("dlib" if embedder == "dlib" and face_models is None else "insightface")
    faces = Path(face_models) if face_models else home / "faces"
    if face_models is None and detector == "insightface" and not (faces / "det_10g.onnx").is_file():
        write_standin_pack(faces)
    built = build_wan_pipe(preset="tiny", device="cpu", dtype="fp32", tiny_home=home)
    face = FaceAnalyzer.from_options(models=str(faces) if detector == "insightface" or face_models else None,
                                     embedder=embedder, detector=detector, device="cpu")
    weights = adapters if adapters is not None else tiny_adapters(built.pipe.dit, variant,
                                                                  embedding_dim=int(face.embedder.dim))
    gen = LynxGenerator.assemble(built.pipe, variant, weights, loras, face, built.files, preset="tiny")
    if adapters is None:
        gen.adapter_source = "tiny random adapters (untrained)"
    gen.notes.append("tiny untrained model and stand-in face models: proves the installation, not quality; a face "
                     "similarity measured on its frames means nothing")
    return gen
