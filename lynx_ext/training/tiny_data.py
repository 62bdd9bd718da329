"""A tiny training set built from scikit-image's public-domain ``astronaut`` photo (tests, docs, the CPU recipe).

    python -m lynx_ext.training.tiny_data outputs/tiny_data        # dataset/ + prepared/ (dlib face models)
                                                                   # + validation_pairs.yaml
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def clip(image: Image.Image, frames: int, size: int, dx: float, zoom: float) -> list[Image.Image]:
    """A short synthetic camera move over ``image``: pan by ``dx`` and zoom by ``zoom`` over the clip."""
    out = []
    w, h = image.size
    for t in np.linspace(0, 1, frames):
        s = 1 - zoom * t
        cw, ch = w * s, h * s
        x0 = (w - cw) / 2 + dx * t * w
        y0 = (h - ch) / 2
        out.append(image.crop((x0, y0, x0 + cw, y0 + ch)).resize((size, size), Image.BICUBIC))
    return out


def build_tiny_dataset(folder: str | Path, clips: int = 4, images: int = 2, frames: int = 9, size: int = 96) -> Path:
    """Write ``folder/metadata.csv`` plus mp4 clips and png images of the astronaut. Returns the folder."""
    import imageio
    from skimage import data

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    face = Image.fromarray(data.astronaut())
    face.save(folder / "astronaut.png")  # the identity image, at full size (the clips are too small to detect)
    rows = []
    rng = np.random.default_rng(0)
    for i in range(clips):
        path = folder / f"clip_{i}.mp4"
        with imageio.get_writer(str(path), fps=8, codec="libx264", macro_block_size=1, ffmpeg_log_level="error") as w:
            for frame in clip(face, frames, size, dx=float(rng.uniform(-0.05, 0.05)), zoom=float(rng.uniform(0, 0.1))):
                w.append_data(np.asarray(frame))
        rows.append({"video": path.name, "prompt": f"an astronaut smiling, shot {i}", "identity": "astronaut",
                     "id_image": "astronaut.png"})
    for i in range(images):
        path = folder / f"image_{i}.png"
        clip(face, 2, size, dx=0.02 * i, zoom=0.05)[1].save(path)
        rows.append({"video": path.name, "prompt": f"a portrait of an astronaut {i}", "identity": "astronaut",
                     "id_image": "astronaut.png"})
    with open(folder / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["video", "prompt", "identity", "id_image"])
        writer.writeheader()
        writer.writerows(rows)
    return folder


def write_validation_pairs(folder: str | Path, dataset: str | Path) -> Path:
    """``folder/validation_pairs.yaml``: the (face, prompt) pairs of the tiny recipe's sample and validation callbacks
    (the format of `lynx_ext.callbacks.validation_pairs.load_pairs`)."""
    from ..atomic_write import write_text_atomic

    import os

    folder = Path(folder)
    image = Path(os.path.relpath(Path(dataset).resolve() / "astronaut.png", folder.resolve()))
    text = ("# (face image, prompt) pairs for SampleVideos and FaceSimilarityValidation; image paths are relative to "
            "this file\n"
            f"- image: {image.as_posix()}\n  prompt: an astronaut smiling at the camera\n")
    return write_text_atomic(folder / "validation_pairs.yaml", text)


def main(out: str = "outputs/tiny_data") -> int:
    from .data.prepare import prepare_dataset

    dataset = build_tiny_dataset(Path(out) / "dataset")
    prepare_dataset(dataset, Path(out) / "prepared", embedder="dlib", detector="dlib", device="cpu", progress=False)
    pairs = write_validation_pairs(out, dataset)
    print(f"tiny dataset: {dataset}\nprepared cache: {Path(out) / 'prepared'}\nvalidation pairs: {pairs}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
