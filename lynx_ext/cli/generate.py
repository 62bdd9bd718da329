"""``diffsynth-ext generate --extension lynx --image FACE --prompt TEXT|FILE [options]``."""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Optional

from .common import add_alias_flag, parse_blocks, read_prompt, run_command

EPILOG = """examples:
  diffsynth-ext generate --extension lynx --image face.jpg --prompt "A woman reads in a cafe" --output out.mp4
  diffsynth-ext generate --extension lynx --variant lite --image face.jpg --prompt prompts.txt --vram-limit 20 --fp8
  diffsynth-ext generate --extension lynx --batch jobs.yaml --output-dir outputs/
  diffsynth-ext generate --extension lynx --preset tiny --image face.jpg --prompt "a person smiling"   # offline check
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="diffsynth-ext generate --extension lynx", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Identity-preserving video from one face photo with Lynx on Wan2.1.")
    job = p.add_argument_group("what to generate")
    job.add_argument("--image", help="face photo (jpg/png/webp/...; EXIF rotation, RGBA, grayscale, 16-bit handled)")
    job.add_argument("--prompt", help="the prompt, or a text file holding it")
    job.add_argument("--batch", help="YAML or CSV of jobs (columns/keys: image, prompt, optional seed, output, ...)")
    add_alias_flag(job, "--negative-prompt", default=None, help="default: the official Lynx negative prompt")
    job.add_argument("--seed", type=int, default=None, help="default 42 (official)")
    out = p.add_argument_group("outputs")
    out.add_argument("--output", help="video path (.mp4); the contact sheet and report go next to it")
    add_alias_flag(out, "--output-dir", default="outputs", help="folder for batch outputs / default names")
    out.add_argument("--webp", action="store_true", help="also write an animated .webp")
    out.add_argument("--overwrite", action="store_true", help="replace existing outputs (refused otherwise)")
    model = p.add_argument_group("models")
    model.add_argument("--variant", choices=("full", "lite"), default="full")
    model.add_argument("--preset", choices=("wan2.1-t2v-14b", "tiny"), default="wan2.1-t2v-14b",
                       help="base model; 'tiny' builds a tiny random Wan offline (installation check)")
    add_alias_flag(model, "--model-paths", action="append", default=None,
                   help="local base-model file(s), repeatable (DiffSynth ModelConfig(path=...))")
    add_alias_flag(model, "--model-id-with-origin-paths", default=None,
                   help='DiffSynth style "model_id:pattern,model_id:pattern" (downloaded when online)')
    add_alias_flag(model, "--tokenizer-path", default=None)
    model.add_argument("--adapters", default=None, help="lynx_ext .safetensors, official lynx_full/ or lynx_lite/ "
                       "folder, ComfyUI Lynx files (their folder, or FILE,FILE,...), or hub:full / hub:lite "
                       "(default: hub:<variant>)")
    add_alias_flag(model, "--face-models", default=None,
                   help="face model folder (insightface pack and/or recognition_arcface_ir_se50.pth)")
    model.add_argument("--embedder", choices=("facexlib", "insightface", "dlib"), default="facexlib",
                       help="identity embedder (facexlib = the official one; dlib = the offline 128-d check model)")
    model.add_argument("--detector", choices=("insightface", "dlib"), default=None,
                       help="face detector (default insightface SCRFD; dlib = offline HOG + 68 landmarks)")
    model.add_argument("--lora", action="append", default=[], metavar="PATH[:ALPHA]", help="LoRA, repeatable")
    run = p.add_argument_group("device and memory")
    run.add_argument("--device", default=None, help="cuda / cpu (default: cuda if available)")
    run.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), default="bf16")
    add_alias_flag(run, "--vram-limit", type=float, default=None, help="GB of VRAM DiffSynth may use (offloads beyond)")
    run.add_argument("--offload", action="store_true", help="keep weights on the CPU, onload per layer")
    run.add_argument("--fp8", action="store_true", help="store offloaded weights in float8 (computed in --dtype)")
    g = p.add_argument_group("sampling (unset = official defaults of the variant)")
    add_alias_flag(g, "--num-frames", type=int, default=None, help="full 81, lite 121; rounded to 4n+1")
    g.add_argument("--height", type=int, default=None, help="default 480; rounded up to a multiple of 16")
    g.add_argument("--width", type=int, default=None, help="default 832; rounded up to a multiple of 16")
    g.add_argument("--fps", type=int, default=None, help="full 16, lite 24")
    add_alias_flag(g, "--num-inference-steps", type=int, default=None, help="default 50")
    add_alias_flag(g, "--cfg-scale", type=float, default=None, help="text guidance g (default 5)")
    add_alias_flag(g, "--cfg-scale-i", default="default", help="identity guidance gi (full default 2; 'none' = two-branch)")
    add_alias_flag(g, "--id-scale", type=float, default=None, help="ID-adapter scale (default 1)")
    add_alias_flag(g, "--ref-scale", type=float, default=None, help="Ref-adapter scale (default 1, full only)")
    add_alias_flag(g, "--step-window", type=float, nargs=2, default=None, metavar=("START", "END"),
                   help="apply the adapters only between these fractions of the steps, e.g. 0 0.6")
    g.add_argument("--blocks", default=None, help="restrict the adapters to these DiT blocks, e.g. '0-19' or '0,2,4'")
    g.add_argument("--sampler", choices=("unipc", "euler"), default=None,
                   help="unipc = the official sampler (default); euler = DiffSynth's flow-match Euler")
    add_alias_flag(g, "--sigma-shift", type=float, default=None, help="flow shift (default 3.0)")
    add_alias_flag(g, "--no-tiled", action="store_true", help="decode without VAE tiling")
    add_alias_flag(g, "--no-face-similarity", action="store_true", help="skip per-frame face similarity")
    add_speed_args(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def add_speed_args(p: argparse.ArgumentParser) -> None:
    """Speed options (docs/speed.md): the exact path's, then the fast modes (not exact)."""
    from ..adapters.compute import ATTENTION_KERNELS
    from ..pipeline.fast_modes import GUIDANCE_REUSE

    sp = p.add_argument_group("speed (docs/speed.md)")
    sp.add_argument("--compile", action="store_true", help="regional torch.compile of the DiT blocks (exact)")
    sp.add_argument("--attention", choices=ATTENTION_KERNELS, default=None,
                    help="attention kernel: auto (default), flash/cudnn/efficient/math (exact), sage (8-bit, fast)")
    sp.add_argument("--fuse-projections", action="store_true", help="fused q/k/v and adapter k/v matmuls (exact)")
    sp.add_argument("--fp8-compute", action="store_true", help="float8 matmuls in the DiT's linear layers (fast)")
    sp.add_argument("--step-cache", type=float, default=None, metavar="THRESHOLD",
                    help="skip a step's blocks while the accumulated timestep change < THRESHOLD (fast; ~0.1-0.3)")
    sp.add_argument("--guidance-reuse", choices=GUIDANCE_REUSE, default=None,
                    help="reuse this guidance branch every other step (fast)")


def load_jobs(args) -> list[dict]:
    if args.batch:
        path = Path(args.batch)
        if not path.is_file():
            raise FileNotFoundError(f"Batch file {path} does not exist.")
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(path.read_text()) or []
            jobs = data.get("jobs", data) if isinstance(data, dict) else data
        elif path.suffix.lower() == ".csv":
            with open(path, newline="") as f:
                jobs = [dict(row) for row in csv.DictReader(f)]
        else:
            raise ValueError(f"Batch file {path} must be .yaml/.yml or .csv.")
        if not isinstance(jobs, list) or not jobs:
            raise ValueError(f"Batch file {path} holds no jobs (expected a list of {{image, prompt}} entries).")
        for i, job in enumerate(jobs):
            missing = [k for k in ("image", "prompt") if not job.get(k)]
            if missing:
                raise ValueError(f"Batch job {i} in {path} has no {' and no '.join(missing)}.")
        return jobs
    if not args.image or not args.prompt:
        raise ValueError("Give --image and --prompt (or --batch FILE).")
    return [{"image": args.image, "prompt": args.prompt, "output": args.output}]


def cli_settings(args):
    """The command line's generation options as a `GenerationSettings` (unset flags stay unset)."""
    from ..pipeline.generation_settings import VARIANT_DEFAULT, GenerationSettings

    cfg_i = args.cfg_scale_i
    cfg_i = None if str(cfg_i).lower() == "none" else (VARIANT_DEFAULT if cfg_i == "default" else float(cfg_i))
    blocks = parse_blocks(args.blocks)
    return GenerationSettings(
        seed=args.seed, num_frames=args.num_frames, height=args.height, width=args.width, fps=args.fps,
        num_inference_steps=args.num_inference_steps, cfg_scale=args.cfg_scale, cfg_scale_i=cfg_i,
        id_scale=args.id_scale, ref_scale=args.ref_scale,
        step_window=None if args.step_window is None else tuple(args.step_window),
        blocks=None if blocks is None else tuple(blocks), sampler=args.sampler, sigma_shift=args.sigma_shift,
        negative_prompt=args.negative_prompt, tiled=not args.no_tiled, attention=args.attention,
        fuse_projections=args.fuse_projections, fp8_compute=args.fp8_compute, step_cache=args.step_cache,
        guidance_reuse=args.guidance_reuse)


JOB_KEYS = ("image", "prompt", "output")


def job_settings(job: dict, source: str):
    """A batch job's own generation settings (seed, negative_prompt, ...); an unknown key is an error naming it."""
    from ..pipeline.generation_settings import GenerationSettings

    values = {k: v for k, v in job.items() if k not in JOB_KEYS and v not in (None, "")}
    if "seed" in values:
        try:
            values["seed"] = int(values["seed"])
        except (TypeError, ValueError):
            raise ValueError(f"{source}: seed {values['seed']!r} is not an integer.") from None
    return GenerationSettings.from_mapping(values, source)


def job_output(job: dict, index: int, args, multi: bool) -> Path:
    if job.get("output"):
        return Path(job["output"])
    stem = Path(job["image"]).stem
    seed = job["settings"].seed if job["settings"].seed is not None else args.seed
    name = f"{stem}_{index:03d}" if multi else f"{stem}_lynx_{args.variant}" + (f"_s{seed}" if seed is not None else "")
    return Path(args.output_dir) / f"{name}.mp4"


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: run(args))


def run(args) -> int:
    from ..inference.generator import LynxGenerator, output_paths
    from ..outputs import check_free

    jobs = load_jobs(args)
    for i, job in enumerate(jobs):
        job["settings"] = job_settings(job, f"batch job {i}" if args.batch else "generate")
        job["prompt_text"] = read_prompt(str(job["prompt"]))
        if not Path(str(job["image"])).exists():
            raise FileNotFoundError(f"Face image {job['image']} does not exist.")
    multi = len(jobs) > 1
    planned = []
    for i, job in enumerate(jobs):
        out = job_output(job, i, args, multi)
        check_free(list(output_paths(out, args.webp).values()), args.overwrite)  # refuse before loading any weights
        planned.append(out)
    base = cli_settings(args)
    if args.preset == "tiny":
        from ..inference.tiny_preset import tiny_generator

        embedder = args.embedder if (args.face_models or args.embedder == "dlib") else "insightface"
        gen = tiny_generator(variant=args.variant, loras=args.lora, face_models=args.face_models, embedder=embedder,
                             detector=args.detector, adapters=args.adapters)
        if args.compile:
            from ..pipeline.speed import compile_dit

            compile_dit(gen.pipe)
    else:
        id_paths = args.model_id_with_origin_paths.split(",") if args.model_id_with_origin_paths else None
        gen = LynxGenerator.from_pretrained(
            variant=args.variant, base=args.preset, adapters=args.adapters, model_paths=args.model_paths,
            model_id_with_origin_paths=id_paths, tokenizer_path=args.tokenizer_path, face_models=args.face_models,
            embedder=args.embedder, detector=args.detector, loras=args.lora, device=args.device, dtype=args.dtype,
            vram_limit=args.vram_limit, offload=args.offload, fp8=args.fp8, compile=args.compile)
    for job, out in zip(jobs, planned):
        t0 = time.perf_counter()
        result = gen.generate(job["image"], job["prompt_text"], settings=base.merged(job["settings"]),
                              face_similarity=not args.no_face_similarity, progress=not args.quiet)
        for warning in result.report["face"].get("warnings", []):
            print(f"note: {warning}")
        paths = result.save(out, overwrite=args.overwrite, webp=args.webp)
        sim = result.report.get("face_similarity", {}).get("mean")
        print(f"wrote {paths['video']} ({len(result.frames)} frames, {time.perf_counter() - t0:.1f} s)"
              + (f", mean face similarity {sim:.3f}" if sim is not None else ""))
        print(f"      {paths['contact_sheet']}\n      {paths['report']}")
    return 0
