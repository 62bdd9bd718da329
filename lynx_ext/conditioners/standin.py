"""Telling stand-in face models from real ones.

The tiny stand-in ONNX files (`lynx_ext.tiny.face_models`) carry the metadata key `STANDIN_KEY`. The insightface
wrappers read it when they load a file, set ``standin = True`` and name themselves ``stand-in ...``, so every
output that names a model (generation report, app preview, evaluation report) says it was a stand-in.
"""
from __future__ import annotations

from typing import Any, Optional

STANDIN_KEY = "lynx_ext.standin"  # ONNX metadata_props key; its value says what the stand-in does
STANDIN_WARNING = ("stand-in face models (tiny random ONNX files with insightface's interface, not face models): "
                   "their boxes, scores and embeddings only test the plumbing and are not metrics")


def onnx_standin_note(model: Any) -> Optional[str]:
    """The stand-in note in an insightface model's ONNX metadata (None for a real model file)."""
    session = getattr(model, "session", None)
    try:
        meta = session.get_modelmeta().custom_metadata_map if session is not None else {}
    except Exception:  # noqa: BLE001 - no metadata means a real file
        return None
    return meta.get(STANDIN_KEY) or None


def is_standin(component: Any) -> bool:
    """Whether a detector or embedder (or a `FaceAnalyzer`, either part) is a stand-in."""
    if component is None:
        return False
    if hasattr(component, "detector") and hasattr(component, "embedder"):
        return is_standin(component.detector) or is_standin(component.embedder)
    return bool(getattr(component, "standin", False))
