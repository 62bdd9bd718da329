"""``diffsynth-ext prepare --extension lynx --dataset DIR --output DIR [options]``: cache faces for training."""
from __future__ import annotations

import argparse
from typing import Optional

from .common import Parser, add_alias_flag, add_download_source_flag, add_version_flag, run_command

EPILOG = """examples:
  diffsynth-ext prepare --extension lynx --dataset data/clips --output cache/clips --face-models ~/models/buffalo_l
  diffsynth-ext prepare --extension lynx --dataset data/clips --metadata data/clips/train.jsonl --output cache/train
  diffsynth-ext prepare --extension lynx --dataset data/clips --output cache/check \\
      --detector dlib --embedder dlib --limit 20      # offline check, no downloads

The dataset folder holds metadata.csv or metadata.jsonl with the columns video|image|media, prompt|caption and the
optional id_image (one or more paths separated by '|') and identity. Running the same command again resumes: rows
already in OUTPUT/prepared.jsonl are skipped. See docs/training_data.md.
"""


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="diffsynth-ext prepare --extension lynx", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Detect, align and embed the identity image(s) of every dataset row "
                                            "once and cache embeddings, 256-px reference crops and media info.")
    data = p.add_argument_group("dataset and cache")
    data.add_argument("--dataset", required=True, help="dataset folder (media paths are relative to it)")
    data.add_argument("--metadata", default=None,
                      help="metadata .csv/.jsonl (default: the folder's metadata.csv or metadata.jsonl)")
    data.add_argument("--output", required=True, help="cache folder; an existing cache of the same setup is resumed")
    data.add_argument("--limit", type=int, default=None, help="only the first N metadata rows")
    data.add_argument("--overwrite", action="store_true", help="delete this folder's cache files and start fresh")
    data.add_argument("--recipe", default=None, help="training recipe: also cache its text encoder's prompt encodings "
                                                     "(docs/training_data.md, 'Encoder caches')")
    data.add_argument("--cache-latents", "--cache_latents", action="store_true",
                      help="with --recipe: also cache VAE latents at the recipe's frames and buckets")
    face = p.add_argument_group("face models")
    add_alias_flag(face, "--face-models", default=None,
                   help="face model folder (insightface pack and/or recognition_arcface_ir_se50.pth); "
                        "default ~/.insightface/models/buffalo_l and the facexlib cache")
    face.add_argument("--embedder", choices=("facexlib", "insightface", "dlib"), default="facexlib",
                      help="identity embedder: facexlib = the official one (default); dlib = offline 128-d check model")
    face.add_argument("--detector", choices=("insightface", "dlib"), default="insightface",
                      help="face detector: insightface SCRFD = official (default); dlib HOG needs no download")
    face.add_argument("--device", default=None, help="cpu / cuda / cuda:N (default: cuda if available)")
    add_download_source_flag(face)
    p.add_argument("--quiet", action="store_true", help="no progress bar (the summary is still printed)")
    add_version_flag(p)
    return p


def main(argv: Optional[list[str]] = None) -> int:
    return run_command(lambda: run(build_parser().parse_args(argv)),
                       "interrupted; the rows finished so far are in the cache. Run the same command again to resume.")


def run(args) -> int:
    from ..training.data.prepare import prepare_dataset
    from ..validation import check_device, check_input_folder, check_int

    check_input_folder(args.dataset, "Dataset folder (--dataset)")
    if args.limit is not None:
        check_int(args.limit, "--limit", 0)
    device = None if args.device is None else check_device(args.device, "--device")
    if args.cache_latents and not args.recipe:
        raise ValueError("--cache-latents needs --recipe (the recipe's base model VAE, frames and buckets).")
    prepare_dataset(args.dataset, args.output, metadata=args.metadata, face_models=args.face_models,
                    embedder=args.embedder, detector=args.detector, device=device, limit=args.limit,
                    overwrite=args.overwrite, progress=not args.quiet, verbose=True)
    if args.recipe:
        from ..training.data.encode import cache_encodings, recipe_inputs

        base, sample = recipe_inputs(args.recipe)
        cache_encodings(args.output, base, sample, latents=args.cache_latents, device=args.device,
                        progress=not args.quiet)
    return 0
