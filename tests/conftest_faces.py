"""Shared face-test helpers (import them explicitly: ``from conftest_faces import ...``)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CPU = ["CPUExecutionProvider"]
# The labelled real photos live in ``shared/`` beside the checkout (``../shared``), never in the repository.
SHARED_FACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces"
FACES_DIR = Path(os.environ.get("LYNX_FACES_DIR", SHARED_FACES))
HAVE_FACE_PHOTOS = (FACES_DIR / "manifest.csv").is_file()
MISSING_FACE_PHOTOS = (f"the labelled face photos are missing: no {FACES_DIR / 'manifest.csv'} (a clean clone has no "
                       "../shared/data/faces beside it; CI has it, or set LYNX_FACES_DIR)")
#: Marks a test (or, as ``pytestmark``, a module) that needs the real photos; skipped with a reason naming the folder.
needs_face_photos = pytest.mark.skipif(not HAVE_FACE_PHOTOS, reason=MISSING_FACE_PHOTOS)


def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="module")
def standin_pack(tmp_path_factory) -> Path:
    """A buffalo_l-shaped folder of stand-in ONNX files (one face on any photo)."""
    from lynx_ext.tiny.face_models import write_standin_pack

    return write_standin_pack(tmp_path_factory.mktemp("buffalo_l"))


@pytest.fixture(scope="module")
def astronaut_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "astronaut.png"
    Image.fromarray(astronaut()).save(path)
    return path


def standin_analyzer(folder: Path, faces=None):
    """`FaceAnalyzer` on stand-in models; ``faces`` replaces the detector's default single face."""
    from lynx_ext.conditioners import FaceAnalyzer
    from lynx_ext.tiny.face_models import build_standin_detector, write_standin_pack

    write_standin_pack(folder)
    if faces is not None:
        build_standin_detector(folder / "det_10g.onnx", faces)
    return FaceAnalyzer.from_options(folder, embedder="insightface", providers=CPU, offline_ok=True)
