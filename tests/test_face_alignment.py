"""Geometry of the 112-px ArcFace crop and Lynx's 256-px extended reference crop (synthetic landmarks)."""
from __future__ import annotations

import numpy as np
import pytest

from lynx_ext.conditioners.alignment import (
    ARCFACE_TEMPLATE_112,
    arcface_crop,
    ref_crop_template,
    reference_crop,
    similarity_matrix,
)


def dots_image(kps: np.ndarray, shape=(600, 500)) -> np.ndarray:
    """Black image with a 5x5 coloured square at each landmark (one colour per landmark)."""
    img = np.zeros(shape + (3,), np.uint8)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    for (x, y), c in zip(np.round(kps).astype(int), colours):
        img[y - 2 : y + 3, x - 2 : x + 3] = c
    return img


def centroid(img: np.ndarray, colour) -> np.ndarray:
    mask = np.all(np.abs(img.astype(int) - np.array(colour)) < 80, axis=-1) & (img.max(-1) > 100)
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def test_reference_template_matches_spec_numbers():
    dst = ref_crop_template(256)
    # spec §4.3: y += 10, (p - 56) * 0.8 + 56, then x2 and x += 16 (128-px convention)
    expected = ((ARCFACE_TEMPLATE_112.astype(np.float64) + [0, 10] - 56) * 0.8 + 56) * 2 + [16, 0]
    np.testing.assert_allclose(dst, expected, atol=1e-4)
    np.testing.assert_allclose(dst[0], [99.6714, 121.1141], atol=1e-3)  # left eye
    np.testing.assert_allclose(ref_crop_template(112, extend=False), ARCFACE_TEMPLATE_112)
    with pytest.raises(ValueError, match="multiple of 112 or 128"):
        ref_crop_template(200)


@pytest.mark.parametrize("angle,scale", [(0.0, 2.5), (17.0, 3.1), (-25.0, 1.7)])
def test_landmarks_land_on_the_templates(angle, scale):
    # Synthetic face: the ArcFace template rotated, scaled and moved into a 500x600 photo.
    t = np.deg2rad(angle)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) * scale
    kps = ((ARCFACE_TEMPLATE_112 - 56) @ rot.T + [250, 300]).astype(np.float32)
    img = dots_image(kps)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]

    matrix = similarity_matrix(kps, ref_crop_template(256))
    mapped = kps @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(mapped, ref_crop_template(256), atol=1e-3)  # exact similarity -> exact fit

    ref = reference_crop(img, kps)
    assert ref.shape == (256, 256, 3) and ref.dtype == np.uint8
    for i in (0, 1, 2):  # eyes and nose end where the extended template says
        np.testing.assert_allclose(centroid(ref, colours[i]), ref_crop_template(256)[i], atol=1.0)
    crop = arcface_crop(img, kps, 112)
    assert crop.shape == (112, 112, 3)
    for i in (0, 1):
        np.testing.assert_allclose(centroid(crop, colours[i]), ARCFACE_TEMPLATE_112[i], atol=1.0)


def test_reference_crop_border_is_black_and_channels_kept():
    img = np.zeros((120, 120, 3), np.uint8)
    img[..., 0] = 200  # a red photo
    kps = (ARCFACE_TEMPLATE_112 * 0.5).astype(np.float32)  # face in the top-left corner: crop reaches outside
    ref = reference_crop(img, kps)
    assert (ref[0, 0] == 0).all()  # outside the photo -> black (borderValue 0)
    assert ref[128, 128, 0] == 200 and ref[128, 128, 1:].max() == 0  # RGB stays RGB


def test_degenerate_landmarks_are_rejected():
    with pytest.raises(ValueError):
        reference_crop(np.zeros((10, 10, 3), np.uint8), np.zeros((5, 2), np.float32))
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        arcface_crop(np.zeros((10, 10, 3), np.uint8), np.zeros((4, 2)))
