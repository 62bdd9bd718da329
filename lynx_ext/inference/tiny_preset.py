"""The offline default: a tiny random Wan, random Lynx adapters and real offline face models, built on the fly.

Everything is deterministic and nothing is downloaded. The output proves the installation and the whole code
path (face detection -> alignment -> embedding -> resampler -> reference pass -> guided sampling -> video);
the model is untrained, so the video is noise-like.

Faces: without ``face_models`` the tiny preset uses dlib's real detector (HOG + 68 landmarks) and its 128-d ResNet
embedder when dlib and ``face-recognition-models`` are installed (the README's install does that); the random
adapters' resampler is then built for 128-d embeddings. Only when dlib is missing, or when ``insightface`` is asked
for explicitly without a model folder, do the stand-in ONNX files stand in; everything they produce is labelled as
a stand-in (`lynx_ext.conditioners.standin`).
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Optional, Sequence

DLIB_MISSING = ("dlib is not installed, so stand-in face models (not face models) condition the faces; "
                "`pip install dlib-bin face-recognition-models` gives the tiny preset real offline face models")


class TinyFaceStack(NamedTuple):
    """The tiny preset's face models: ``embedder`` and ``detector`` names for `FaceAnalyzer.from_options`,
    ``standin``: the stand-in ONNX pack stands in for them; ``note``: why (None when real)."""

    embedder: str
    detector: str
    standin: bool
    note: Optional[str] = None


def dlib_available() -> bool:
    """dlib imports and the dlib model files of ``face-recognition-models`` are found."""
    try:
        import dlib  # noqa: F401

        from ..conditioners.model_files import DLIB_FILES, resolve_dlib_file

        for kind in DLIB_FILES:
            resolve_dlib_file(kind)
    except (ImportError, FileNotFoundError):
        return False
    return True


def tiny_face_stack(embedder: str = "facexlib", face_models: Optional[str] = None,
                    detector: Optional[str] = None, adapters=None) -> TinyFaceStack:
    """Which face models the tiny preset runs.

    With ``face_models`` the user's folder and choices apply (detector default insightface). Without it: dlib's
    detector and embedder when dlib is installed; the stand-in pack when insightface is asked for explicitly
    (``embedder`` or ``detector`` ``insightface``, there being no model folder), when given ``adapters`` take
    512-d embeddings (dlib's are 128-d) and dlib was not asked for, or when dlib is missing.
    """
    if face_models:
        return TinyFaceStack(embedder, detector or "insightface", False)
    if embedder == "insightface" or detector == "insightface":
        return TinyFaceStack("insightface", "insightface", True,
                             "insightface was asked for without --face-models: the stand-in pack (not face models) "
                             "stands in for buffalo_l")
    if embedder != "dlib" and _adapter_dim(adapters) not in (None, 128):
        return TinyFaceStack("insightface", "insightface", True,
                             "the given adapters take 512-d embeddings and dlib's are 128-d, so stand-in face models "
                             "(not face models) condition the faces; pass --face-models with real 512-d models")
    if embedder == "dlib" or dlib_available():
        return TinyFaceStack("dlib", detector or "dlib", False)
    return TinyFaceStack("insightface", "insightface", True, DLIB_MISSING)


def _adapter_dim(adapters) -> Optional[int]:
    """The embedding size the given adapters take (None: none given, or unreadable: checked elsewhere)."""
    if adapters is None:
        return None
    from ..errors import LynxError
    from ..validation.models import adapter_facts

    try:
        facts = adapter_facts(adapters)
    except (LynxError, OSError, ValueError):
        return None
    return None if facts is None else int(facts.embedding_dim)


def tiny_embedder(embedder: str, face_models: str | None, detector: Optional[str] = None, adapters=None) -> str:
    """The embedder the tiny preset conditions with (`tiny_face_stack`)."""
    return tiny_face_stack(embedder, face_models, detector, adapters).embedder


def tiny_generator(variant: str = "full", loras: Sequence[str] = (), home: Path | None = None,
                   face_models: str | None = None, embedder: str = "facexlib", detector: str | None = None,
                   adapters: str | None = None):
    """A `LynxGenerator` over tiny models (CPU, float32); the face models follow `tiny_face_stack`."""
    from ..conditioners import FaceAnalyzer
    from ..models.build import build_wan_pipe
    from ..models.presets import variant_defaults
    from ..tiny import tiny_home
    from ..tiny.adapters import tiny_adapters
    from ..tiny.face_models import standin_pack
    from .generator import LynxGenerator

    variant_defaults(variant)
    home = home or tiny_home()
    stack = tiny_face_stack(embedder, face_models, detector, adapters)
    if stack.standin:
        models: Optional[str] = str(standin_pack(home / "faces"))
    else:
        models = face_models
    built = build_wan_pipe(preset="tiny", device="cpu", dtype="fp32", tiny_home=home)
    face = FaceAnalyzer.from_options(models=models, embedder=stack.embedder, detector=stack.detector, device="cpu")
    weights = adapters if adapters is not None else tiny_adapters(built.pipe.dit, variant,
                                                                  embedding_dim=int(face.embedder.dim))
    gen = LynxGenerator.assemble(built.pipe, variant, weights, loras, face, built.files, preset="tiny")
    if adapters is None:
        gen.adapter_source = "tiny random adapters (untrained)"
    faces = ("stand-in face models (not face models)" if stack.standin
             else f"face models {face.detector.name} + {face.embedder.name}")
    gen.notes.append(f"tiny untrained model with {faces}: proves the installation, not quality; a face similarity "
                     "measured on its frames means nothing")
    if stack.note:
        gen.notes.append(stack.note)
    return gen
