"""``diffsynth-ext convert --extension lynx SRC --to comfyui|official|lynx-ext --output DST [--dtype ...]``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from .common import add_download_source_flag, add_version_flag, run_command

EPILOG = """examples:
  diffsynth-ext convert --extension lynx runs/x/adapters/latest/lynx_adapters.safetensors --to comfyui \\
      --output ComfyUI/models/diffusion_models/lynx_mine --dtype fp16
  diffsynth-ext convert --extension lynx ComfyUI/models/diffusion_models/lynx_mine --to lynx-ext \\
      --output mine.safetensors
  diffsynth-ext convert --extension lynx lynx_full/ --to comfyui --output comfy_lynx_full/

SRC is recognised by content: a lynx-ext .safetensors, an official lynx_full/ or lynx_lite/ folder, ComfyUI
Lynx files (their folder, or the files separated by commas), or hub:full / hub:lite. Without --dtype every
tensor keeps its dtype and the conversion is lossless (bit-exact).
"""
DESTINATIONS = {"lynx-ext": "a .safetensors file", "official": "a folder (lynx_full/ style)",
                "comfyui": "a folder (e.g. under ComfyUI/models/diffusion_models/)"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="diffsynth-ext convert --extension lynx", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Convert Lynx adapter weights between the lynx-ext, official and "
                                            "ComfyUI-WanVideoWrapper layouts.")
    p.add_argument("source", metavar="SRC", help="adapter weights in any layout")
    p.add_argument("--to", required=True, choices=tuple(DESTINATIONS), help="the layout to write")
    p.add_argument("--output", required=True, metavar="DST",
                   help="; ".join(f"{k}: {v}" for k, v in DESTINATIONS.items()))
    p.add_argument("--dtype", choices=("fp16", "bf16", "fp32"), default=None,
                   help="cast every tensor (default: keep each tensor's dtype, lossless)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files (refused otherwise)")
    add_download_source_flag(p)
    p.add_argument("--quiet", action="store_true", help="print only warnings and errors")
    add_version_flag(p)
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: run(args))



def check_output(output: Path, to: str, overwrite: bool) -> None:
    """Refuse an output that cannot be right before reading any weights."""
    if to == "lynx-ext":
        if output.suffix != ".safetensors":
            raise ValueError(f"--output {output}: --to lynx-ext writes one .safetensors file; give a name ending in "
                             ".safetensors.")
        if output.is_dir():
            raise FileExistsError(f"--output {output} is a folder; --to lynx-ext writes one .safetensors file.")
        if output.exists() and not overwrite:
            raise FileExistsError(f"{output} already exists; pass --overwrite to replace it.")
    elif output.exists() and not output.is_dir():
        raise FileExistsError(f"--output {output} is a file; --to {to} writes a folder.")
    elif to == "official" and not overwrite:
        from ..adapters.formats.signatures import IP_FILE, REF_FILE, RESAMPLER_CONFIG_FILE, RESAMPLER_FILE

        clashes = [n for n in (RESAMPLER_FILE, IP_FILE, REF_FILE, RESAMPLER_CONFIG_FILE) if (output / n).exists()]
        if clashes:
            raise FileExistsError(f"{output} already holds {', '.join(clashes)}; pass --overwrite to replace them.")


def run(args) -> int:
    from ..adapters.formats import describe_config, read_adapters, wrapper_compatibility, write_adapters
    from ..adapters.formats.safetensors_file import cast_changes
    from ..models.dtypes import DTYPES

    say = (lambda *a, **k: None) if args.quiet else print
    output = Path(args.output)
    check_output(output, args.to, args.overwrite)
    adapters = read_adapters(args.source)
    found = adapters.source_format
    say(f"read {found.kind.value} adapters from {found.path}: {describe_config(adapters.config)}")
    dtype = DTYPES[args.dtype] if args.dtype else None
    changed, worst = cast_changes(adapters.state_dict(), dtype)
    if changed:
        print(f"note: casting to {args.dtype} changes {changed} of {len(adapters.state_dict())} tensors (largest "
              f"change {worst:.3g}); the output is not bit-exact.")
    files = write_adapters(adapters, output, args.to, overwrite=args.overwrite, dtype=dtype)
    for f in files:
        say(f"wrote {f}")
    if args.to == "comfyui":
        problems = wrapper_compatibility(adapters.config)
        if problems:
            print("warning: ComfyUI-WanVideoWrapper will not load these adapters as they are: " + "; ".join(problems)
                  + ".", file=sys.stderr)
        say("ComfyUI: keep these files under ComfyUI/models/diffusion_models/; pick the resampler in 'Load Lynx "
              "Resampler' and the layer files in chained 'WanVideo Extra Model Select' nodes.")
    return 0
