"""`LynxTrainingDataset`: samples from a prepared cache (``diffsynth-ext prepare``) for adapter training."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image

from ..errors import LynxFormatError
from ..validation.files import check_input_file, resolve_inside
from .args import AugmentArgs, DropoutArgs, SampleSpec
from .augment import draw_dropout, jitter_crop, perturb_embedding
from .packing import latent_tokens


def usable_rows(cache: str | Path) -> list[dict]:
    """The ``status == "ok"`` rows of a prepared cache, in row order (a clear error if there are none)."""
    from .data.prepare import read_prepared

    cache = Path(cache)
    if not (cache / "prepared.jsonl").is_file():
        raise FileNotFoundError(f"{cache} is not a prepared dataset (no prepared.jsonl). Run `diffsynth-ext prepare "
                                f"--extension lynx --dataset DIR --output {cache}` first.")
    ok = sorted(read_prepared(cache), key=lambda r: r["row"])
    if not ok:
        raise ValueError(f"{cache}/prepared.jsonl has no usable rows; see bad_rows.jsonl for why.")
    for row in ok:  # the manifest's files: present, and inside the cache (a path may not lead elsewhere)
        for key, path in [("embedding", row.get("embedding"))] + [("ref_crops", c) for c in row.get("ref_crops") or []]:
            if not isinstance(path, str):
                raise LynxFormatError(f"{cache}/prepared.jsonl: row {row.get('id')} has no {key} path.{REDO}")
            check_input_file(resolve_inside(path, cache, f"{cache}/prepared.jsonl: row {row.get('id')}'s {key}",
                                            REDO.strip()), f"Cached {key} of row {row.get('id')}")
    return ok


REDO = (" Prepare the dataset again: `diffsynth-ext prepare ... --overwrite`, or delete the row's line from "
        "prepared.jsonl and run the same prepare command to redo only it.")


def nearest_bucket(width: int, height: int, buckets) -> tuple[int, int]:
    aspect = width / max(height, 1)
    return min(buckets, key=lambda hw: abs(np.log((hw[1] / hw[0]) / aspect)))


def resize_cover(image: Image.Image, height: int, width: int) -> Image.Image:
    scale = max(width / image.width, height / image.height)
    w, h = max(width, round(image.width * scale)), max(height, round(image.height * scale))
    image = image.convert("RGB").resize((w, h), Image.BICUBIC)
    x0, y0 = (w - width) // 2, (h - height) // 2
    return image.crop((x0, y0, x0 + width, y0 + height))


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    arr = np.stack([np.asarray(im, dtype=np.float32) for im in images])  # [F, H, W, 3]
    return torch.from_numpy(arr).permute(3, 0, 1, 2) / 127.5 - 1.0  # [3, F, H, W]


class LynxTrainingDataset(torch.utils.data.Dataset):
    """Each item: the target clip, its prompt and the identity conditioning (with augmentation and dropout).

    Randomness is a pure function of ``(seed, epoch, index)``, so an interrupted run resumes exactly.

    When the prepared folder holds VAE latents for this sample spec (``prepare --cache-latents``), every video row
    trains on one fixed window (the middle one, as cached: the host's data-process split) and an item carries
    ``latents`` instead of ``video``; a row whose latents are missing is decoded and encoded as usual.
    """

    def __init__(self, cache: str | Path, spec: Optional[SampleSpec] = None, augment: Optional[AugmentArgs] = None,
                 dropout: Optional[DropoutArgs] = None, seed: int = 0, rows: Optional[list[dict]] = None):
        self.cache = Path(cache)
        self.rows = rows if rows is not None else usable_rows(self.cache)
        self.spec = spec or SampleSpec()
        self.augment = augment or AugmentArgs()
        self.dropout = dropout or DropoutArgs()
        self.seed, self.epoch = int(seed), 0
        from .encoding_cache import read_index

        self.encodings = read_index(self.cache)
        self._spec_warned = False
        by_identity: dict[str, list[int]] = {}
        for i, r in enumerate(self.rows):
            if r.get("identity"):
                by_identity.setdefault(str(r["identity"]), []).append(i)
        self.by_identity = by_identity
        for spec_bucket in self.spec.buckets:
            if spec_bucket[0] % 16 or spec_bucket[1] % 16:
                raise ValueError(f"Bucket {spec_bucket} is not a multiple of 16 in height and width.")
        if (self.spec.num_frames - 1) % 4:
            raise ValueError(f"num_frames must be 4n+1, got {self.spec.num_frames}.")

    def __len__(self) -> int:
        return len(self.rows)

    # ----------------------------------------------------------- geometry
    def frames_of(self, row: dict) -> int:
        if self.spec.images_only or row["media_type"] == "image":
            return 1
        avail = (int(row["num_frames"]) - 1) // self.spec.frame_stride + 1
        n = min(self.spec.num_frames, avail)
        return (n - 1) // 4 * 4 + 1

    def size_of(self, row: dict) -> tuple[int, int]:
        return nearest_bucket(int(row["width"]), int(row["height"]), self.spec.buckets)

    @property
    def latent_fingerprint(self) -> Optional[str]:
        """The VAE fingerprint of the cached latents when they match the current sample spec, else None."""
        if not self.encodings.get("latents"):
            return None
        if self.encodings.get("sample") != latent_spec(self.spec):
            if not self._spec_warned:
                import warnings

                self._spec_warned = True
                warnings.warn(f"The latents cached in {self.cache} are for another sample spec "
                              f"({self.encodings.get('sample')}, now {latent_spec(self.spec)}); encoding on the fly.",
                              stacklevel=2)
            return None
        return self.encodings.get("vae")

    def window(self, row: dict, rng: np.random.Generator, fixed: bool) -> list[int]:
        """The frame indices of a row's sample: random per epoch, or the middle window when ``fixed``."""
        f = self.frames_of(row)
        if row["media_type"] == "image":
            return [0]
        if f == 1:
            return [int(row["num_frames"]) // 2]
        span = (f - 1) * self.spec.frame_stride + 1
        start = int(rng.integers(0, int(row["num_frames"]) - span + 1))
        if fixed:
            start = (int(row["num_frames"]) - span) // 2
        return list(range(start, start + span, self.spec.frame_stride))

    def token_counts(self) -> list[int]:
        return [latent_tokens(self.frames_of(r), *self.size_of(r)) for r in self.rows]

    # -------------------------------------------------------------- items
    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])

    def __getitem__(self, index: int) -> dict:
        from ..conditioners import LynxInputError, load_image
        from ..conditioners.media import load_frames
        from ..validation.files import load_cached_array

        row = self.rows[index]
        rng = self.rng(index)
        h, w = self.size_of(row)
        fingerprint = self.latent_fingerprint
        indices = self.window(row, rng, fixed=fingerprint is not None)
        target = {"video": None, "latents": None}
        if fingerprint is not None:
            from .encoding_cache import LATENTS_DIR, latent_key, load_tensor

            path = self.cache / LATENTS_DIR / f"{latent_key(fingerprint, row['id'], indices, h, w)}.safetensors"
            if path.is_file():
                target["latents"] = load_tensor(path, "latents")
        if target["latents"] is None:
            target["video"] = self.clip(row, indices, h, w)
        source = row
        others = [j for j in self.by_identity.get(str(row.get("identity")), []) if j != index]
        if others and rng.random() < self.augment.cross_sample_identity:
            source = self.rows[int(rng.choice(others))]
        embeds = load_cached_array(self.cache / source["embedding"], f"Cached embedding of row {source['id']}",
                                   rows=len(source["ref_crops"]), todo=REDO.strip()).astype(np.float32)
        k = int(rng.integers(0, embeds.shape[0]))
        embedding = perturb_embedding(embeds[k], rng, self.augment.embed_noise)
        try:
            crop = load_image(self.cache / source["ref_crops"][k])
        except LynxInputError as err:
            raise LynxFormatError(f"Cached reference crop of row {source['id']}: {err}{REDO}") from None
        crop = jitter_crop(crop, rng, self.augment)
        if crop.size != (self.spec.ref_size, self.spec.ref_size):
            crop = crop.resize((self.spec.ref_size, self.spec.ref_size), Image.BICUBIC)
        drop = draw_dropout(rng, self.dropout)
        return {
            "id": row["id"], **target, "prompt": "" if drop["text"] else row["prompt"],
            "id_embed": torch.zeros_like(torch.from_numpy(embedding)) if drop["face"] else torch.from_numpy(embedding),
            "ref_crop": crop, "drop_ref": drop["ref"], "identity": row.get("identity"),
        }


    def clip(self, row: dict, indices: list[int], height: int, width: int) -> torch.Tensor:
        """The row's frames ``indices`` resized to the bucket, as ``[3, F, H, W]`` in [-1, 1]."""
        from ..conditioners.media import load_frames

        return to_tensor([resize_cover(im, height, width) for im in load_frames(row["media"], indices)])


def latent_spec(spec: SampleSpec) -> dict:
    """The sample-spec fields that decide a row's cached latents (JSON-normalised)."""
    import json

    keep = {"num_frames": spec.num_frames, "buckets": [list(b) for b in spec.buckets],
            "frame_stride": spec.frame_stride, "images_only": spec.images_only}
    return json.loads(json.dumps(keep))


def collate_pack(items: list[dict]) -> list[dict]:
    """A pack stays a list of samples of different sizes."""
    return items
