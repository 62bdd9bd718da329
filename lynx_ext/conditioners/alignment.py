"""5-point face alignment: the 112-px ArcFace crop and Lynx's 256-px extended reference crop.

Both warp the RGB image with a similarity transform that maps the detected landmarks (l-eye, r-eye, nose,
l-mouth, r-mouth; image left first) onto a template, with bilinear sampling and a black border.

- ArcFace crop: insightface's own ``face_align.norm_crop`` (the official code calls it).
- Reference crop (``lynx_spec.md`` §4.3): the ArcFace template moved down by 10 px and shrunk by 0.8 around the
  crop centre (so more hair and chin fit), then put into the 128-px convention at the requested size
  (256 = 2 x 128: scale 2, shifted 16 px right). The warp of the official code runs on a BGR copy and converts
  back, which is the same as warping the RGB image directly.
"""
from __future__ import annotations

import warnings

import numpy as np

# InsightFace's standard 5-point ArcFace template for a 112x112 crop.
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
REF_CROP_SIZE = 256
REF_CROP_SHIFT_Y = 10.0
REF_CROP_EXTEND_RATIO = 0.8


def check_kps(kps: np.ndarray) -> np.ndarray:
    kps = np.asarray(kps, dtype=np.float32)
    if kps.shape != (5, 2) or not np.isfinite(kps).all():
        raise ValueError(f"Face landmarks must be a finite (5, 2) array, got shape {kps.shape}.")
    return kps


def arcface_crop(rgb: np.ndarray, kps: np.ndarray, size: int = 112) -> np.ndarray:
    """``insightface.utils.face_align.norm_crop`` (size a multiple of 112 or 128), scikit-image's warning muted."""
    from insightface.utils import face_align

    with warnings.catch_warnings():
        # skimage >= 0.26: "SimilarityTransform.estimate is deprecated" on every call.
        warnings.simplefilter("ignore", FutureWarning)
        return face_align.norm_crop(rgb, landmark=check_kps(kps), image_size=size)


def ref_crop_template(size: int = REF_CROP_SIZE, extend: bool = True) -> np.ndarray:
    """Destination landmarks (5, 2) of the reference crop, float32 as in the official code."""
    dst = ARCFACE_TEMPLATE_112.copy()
    if extend:
        dst[:, 1] = dst[:, 1] + REF_CROP_SHIFT_Y
        dst = (dst - 112 / 2) * REF_CROP_EXTEND_RATIO + 112 / 2
    if size % 112 == 0:
        ratio, shift_x = size / 112.0, 0.0
    elif size % 128 == 0:
        ratio, shift_x = size / 128.0, 8.0 * (size / 128.0)
    else:
        raise ValueError(f"Aligned crop size must be a multiple of 112 or 128, got {size}.")
    dst = dst * ratio
    dst[:, 0] += shift_x
    return dst


def similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity transform (Umeyama, as scikit-image estimates it) mapping ``src`` to ``dst``."""
    from skimage.transform import SimilarityTransform

    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if hasattr(SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
        tform = SimilarityTransform.from_estimate(src, dst)
        if not tform:
            raise ValueError(f"Cannot align the face: degenerate landmarks {src.tolist()}.")
    else:
        tform = SimilarityTransform()
        if not tform.estimate(src, dst):
            raise ValueError(f"Cannot align the face: degenerate landmarks {src.tolist()}.")
    return tform.params[:2, :]


def reference_crop(rgb: np.ndarray, kps: np.ndarray, size: int = REF_CROP_SIZE, extend: bool = True) -> np.ndarray:
    """RGB ``(size, size, 3)`` face crop for Lynx's reference path (official ``align_face``, extended crop)."""
    import cv2

    matrix = similarity_matrix(check_kps(kps), ref_crop_template(size, extend))
    return cv2.warpAffine(np.ascontiguousarray(rgb), matrix, (size, size), borderValue=0.0)
