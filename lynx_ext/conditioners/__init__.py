"""Face conditioning for Lynx: photo -> ArcFace identity embedding + aligned crops (official preprocessing).

Importing this package is cheap: insightface, onnxruntime, cv2, dlib and torch load on first use.
See docs/faces.md for models, file locations and offline behaviour.
"""
from __future__ import annotations

from .errors import FaceModelsMissingError, LynxInputError, NoFaceError
from .face_analyzer import FaceAnalysisResult, FaceAnalyzer
from .images import load_image
from .protocols import DetectedFace, FaceDetector, FaceEmbedder

_LAZY = {
    "InsightFaceDetector": "lynx_ext.conditioners.detection",
    "DlibDetector": "lynx_ext.conditioners.dlib_detector",
    "FacexlibArcFaceEmbedder": "lynx_ext.conditioners.arcface_facexlib",
    "InsightFaceArcFaceEmbedder": "lynx_ext.conditioners.arcface_onnx",
    "DlibResNetEmbedder": "lynx_ext.conditioners.dlib_resnet",
    "IRSE50": "lynx_ext.conditioners.ir_se50",
}

__all__ = [
    "LynxInputError", "NoFaceError", "FaceModelsMissingError", "load_image", "FaceAnalysisResult", "FaceAnalyzer",
    "DetectedFace", "FaceDetector", "FaceEmbedder", *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lynx_ext.conditioners' has no attribute {name!r}")
