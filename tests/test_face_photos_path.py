"""The real-photo tests find the labelled photos in ``../shared`` beside the checkout, wherever it is cloned."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest_faces import FACES_DIR


def test_real_photos_are_found_beside_the_checkout():
    shared = Path(__file__).resolve().parents[1].parent / "shared"
    if "LYNX_FACES_DIR" in os.environ:
        pytest.skip("LYNX_FACES_DIR points the face tests elsewhere")
    if not shared.is_dir():
        pytest.skip(f"no shared/ folder beside this checkout ({shared})")
    assert FACES_DIR == shared / "data" / "faces"
    assert (FACES_DIR / "manifest.csv").is_file(), f"no manifest.csv in {FACES_DIR}"
