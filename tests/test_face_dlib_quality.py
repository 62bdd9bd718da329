"""Real-model check on real photos: dlib HOG + 68 landmarks -> ArcFace alignment -> dlib ResNet.

Every same-person pair must be more similar than every different-person pair. Uses the labelled photos of
``../shared/data/faces`` beside the checkout (or ``$LYNX_FACES_DIR``); skipped when they or dlib are absent. The
photos are test fixtures only (see their README); nothing from them is stored.
"""
from __future__ import annotations

import csv
import itertools

import numpy as np
import pytest
from conftest_faces import FACES_DIR, needs_face_photos

pytestmark = needs_face_photos


@pytest.fixture(scope="module")
def dlib_analyzer():
    pytest.importorskip("dlib")
    from lynx_ext.conditioners import FaceAnalyzer, FaceModelsMissingError

    try:
        return FaceAnalyzer.from_options(detector="dlib", embedder="dlib")
    except FaceModelsMissingError as err:
        pytest.skip(str(err))


def single_identity_photos() -> list[tuple[str, str]]:
    with open(FACES_DIR / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [(r["file"], r["identity"]) for r in rows
            if r["identity"] and not r["file"].startswith(("group_", "partial_"))]


def test_same_person_beats_different_person_for_every_pair(dlib_analyzer):
    photos = single_identity_photos()
    assert len(photos) >= 10
    emb = {}
    for name, identity in photos:
        result = dlib_analyzer.analyze(FACES_DIR / name)
        assert result.embedding.shape == (128,) and result.ref_crop.size == (256, 256)
        emb[name] = (identity, result.embedding)
    same, diff = [], []
    for (_, (ia, ea)), (_, (ib, eb)) in itertools.combinations(sorted(emb.items()), 2):
        (same if ia == ib else diff).append(float(ea @ eb))
    print(f"\ndlib cosine: same n={len(same)} mean {np.mean(same):.3f} min {np.min(same):.3f}; "
          f"different n={len(diff)} mean {np.mean(diff):.3f} max {np.max(diff):.3f}")
    assert min(same) > max(diff)


def test_group_photo_picks_the_largest_and_warns(dlib_analyzer):
    result = dlib_analyzer.analyze(FACES_DIR / "group_obama_and_biden.jpg")
    assert result.num_faces >= 2
    assert any("faces found; using the largest" in w for w in result.warnings)
