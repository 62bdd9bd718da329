"""load_image: every way a user may hand us a face photo."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lynx_ext.conditioners import LynxInputError, load_image


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:4] = (255, 0, 0, 255)  # opaque red
    rgba[4:] = (0, 0, 0, 0)  # fully transparent black
    path = tmp_path / "cutout.png"
    Image.fromarray(rgba, "RGBA").save(path)
    img = load_image(path)
    assert img.mode == "RGB" and img.size == (8, 8)
    a = np.asarray(img)
    assert (a[0, 0] == (255, 0, 0)).all() and (a[7, 7] == (255, 255, 255)).all()
    half = load_image(np.dstack([np.zeros((2, 2, 3), np.uint8), np.full((2, 2), 128, np.uint8)]))
    assert abs(int(np.asarray(half)[0, 0, 0]) - 127) <= 1  # 50 % black over white


def test_grayscale_palette_and_float_array(tmp_path):
    Image.fromarray(np.full((5, 6), 77, np.uint8), "L").save(tmp_path / "g.png")
    a = np.asarray(load_image(tmp_path / "g.png"))
    assert a.shape == (5, 6, 3) and (a == 77).all()
    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([10, 20, 30] + [0, 0, 0] * 255)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "p.png", transparency=0)
    assert (np.asarray(load_image(tmp_path / "p.png")) == 255).all()  # transparent palette entry -> white
    assert (np.asarray(load_image(np.full((3, 3, 3), 0.5, np.float32))) == 128).all()


def test_16_bit_png_and_tiff_keep_their_range(tmp_path):
    import cv2
    import tifffile

    grey = np.full((6, 7), 32768, np.uint16)  # mid grey in 16 bit, not white
    cv2.imwrite(str(tmp_path / "g16.png"), grey)
    a = np.asarray(load_image(tmp_path / "g16.png"))
    assert a.shape == (6, 7, 3) and (a == 128).all()
    rgb = np.stack([np.full((6, 7), v, np.uint16) for v in (65535, 32768, 0)], -1)
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb)
    assert tuple(np.asarray(load_image(tmp_path / "rgb16.tif"))[0, 0]) == (255, 128, 0)
    tifffile.imwrite(tmp_path / "g16.tif", grey)
    assert (np.asarray(load_image(tmp_path / "g16.tif")) == 128).all()
    assert tuple(np.asarray(load_image(rgb))[0, 0]) == (255, 128, 0)  # uint16 numpy array


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)  # left half red
    stored[:, 20:] = (0, 0, 255)  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    a = np.asarray(load_image(path))
    assert a.shape == (40, 20, 3)
    assert a[2, 10, 0] > 200 and a[2, 10, 2] < 60  # the stored left (red) is now on top
    assert a[37, 10, 2] > 200 and a[37, 10, 0] < 60


def test_very_large_jpeg_is_decoded_reduced_and_other_formats_refused(tmp_path):
    big = np.random.default_rng(0).integers(0, 255, (900, 1200, 3), dtype=np.uint8)
    Image.fromarray(big).save(tmp_path / "big.jpg")
    img = load_image(tmp_path / "big.jpg", max_pixels=300_000)  # 1.08 MP -> JPEG draft at 1/2
    assert img.size == (600, 450)
    assert load_image(tmp_path / "big.jpg").size == (1200, 900)  # under the default limit: untouched
    Image.fromarray(big).save(tmp_path / "big.png")
    with pytest.raises(LynxInputError, match="big.png.*max_pixels"):
        load_image(tmp_path / "big.png", max_pixels=300_000)


def test_corrupt_unsupported_and_missing_files_name_the_file(tmp_path):
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "ok.jpg")
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(LynxInputError, match="truncated.jpg"):
        load_image(tmp_path / "truncated.jpg")
    (tmp_path / "notes.txt").write_text("not a photo")
    with pytest.raises(LynxInputError, match=r"notes.txt.*not an image format"):
        load_image(tmp_path / "notes.txt")
    (tmp_path / "face.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    with pytest.raises(LynxInputError, match="face.svg"):
        load_image(tmp_path / "face.svg")
    with pytest.raises(LynxInputError, match="missing.png.*does not exist"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(LynxInputError, match="shape"):
        load_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(LynxInputError, match="file path"):
        load_image(12345)
