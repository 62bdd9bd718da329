"""``diffsynth-ext generate --extension lynx --image FACE --prompt TEXT|FILE [options]``."""
from __future__ import annotations

import argparse
import csv
import io
import time
from pathlib import Path
from typing import Optional

from ..errors import LynxFormatError, LynxValueError
from .common import (Parser, add_alias_flag, add_download_source_flag, add_version_flag, flag_of, is_file,
                     parse_model_paths, read_prompt, run_command)

EPILOG = """examples:
  diffsynth-ext generate --extension lynx --image face.jpg --prompt "A woman reads in a cafe" --output out.mp4
  diffsynth-ext generate --extension lynx --variant lite --image face.jpg --prompt prompts.txt --vram-limit 20 --fp8
  diffsynth-ext generate --extension lynx --batch jobs.yaml --output-dir outputs/
  diffsynth-ext generate --extension lynx --preset tiny --image face.jpg --prompt "a person smiling"   # offline check
"""


def add_model_arguments(p: argparse.ArgumentParser, preset_default: Optional[str] = "wan2.1-t2v-14b") -> None:
    """The "models" and "device and memory" options (shared with ``diffsynth-ext app``); see `load_generator`."""
    model = p.add_argument_group("models")
    model.add_argument("--variant", choices=("full", "lite"), default="full")
    model.add_argument("--preset", choices=("wan2.1-t2v-14b", "tiny"), default=preset_default,
                       help="base model; 'tiny' builds a tiny random Wan offline (installation check)")
    add_alias_flag(model, "--model-paths", action="extend", type=parse_model_paths, default=None,
                   help='local base-model file(s): repeatable, or DiffSynth\'s JSON list \'["a.safetensors", '
                        '["shard1", "shard2"]]\' (an inner list = one model\'s shards)')
    add_download_source_flag(model)
    add_alias_flag(model, "--model-id-with-origin-paths", default=None,
                   help='DiffSynth style "model_id:pattern,model_id:pattern" (downloaded when online)')
    add_alias_flag(model, "--tokenizer-path", default=None)
    model.add_argument("--adapters", default=None, help="lynx_ext .safetensors, official lynx_full/ or lynx_lite/ "
                       "folder, ComfyUI Lynx files (their folder, or FILE,FILE,...), or hub:full / hub:lite "
                       "(default: hub:<variant>; hub:full@REV pins a revision)")
    add_alias_flag(model, "--adapters-revision", default=None, metavar="REV",
                   help="pin hub:full / hub:lite to this commit, tag or branch of ByteDance/lynx")
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
    add_alias_flag(run, "--block-streaming", choices=("auto", "on", "off"), default="auto",
                   help="with --vram-limit/--offload/--fp8: copy the DiT blocks from pinned memory one block ahead of "
                        "the compute (auto: on CUDA; off: the host's per-layer onloading)")


STREAMING = {"auto": None, "on": True, "off": False}  # --block-streaming -> from_pretrained(block_streaming=)


def load_generator(args, **overrides):
    """The `LynxGenerator` the options of `add_model_arguments` describe (``overrides`` replace option values)."""
    from ..inference.generator import LynxGenerator

    args = argparse.Namespace(**{**vars(args), **overrides})
    if args.preset == "tiny":
        from ..inference.tiny_preset import tiny_generator

        gen = tiny_generator(variant=args.variant, loras=args.lora, face_models=args.face_models,
                             embedder=args.embedder, detector=args.detector, adapters=args.adapters)
        if getattr(args, "compile", False):
            from ..pipeline.speed import compile_dit

            compile_dit(gen.pipe)
        return gen
    id_paths = args.model_id_with_origin_paths.split(",") if args.model_id_with_origin_paths else None
    return LynxGenerator.from_pretrained(
        variant=args.variant, base=args.preset, adapters=args.adapters, model_paths=args.model_paths,
        model_id_with_origin_paths=id_paths, tokenizer_path=args.tokenizer_path, face_models=args.face_models,
        embedder=args.embedder, detector=args.detector, loras=args.lora, device=args.device, dtype=args.dtype,
        vram_limit=args.vram_limit, offload=args.offload, fp8=args.fp8,
        adapters_revision=getattr(args, "adapters_revision", None), compile=getattr(args, "compile", False),
        block_streaming=STREAMING[getattr(args, "block_streaming", "auto")])


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="diffsynth-ext generate --extension lynx", epilog=EPILOG,
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
    add_model_arguments(p)
    g = p.add_argument_group("sampling (unset = official defaults of the variant)")
    add_alias_flag(g, "--num-frames", type=int, default=None, help="full 81, lite 121; rounded to 4n+1")
    g.add_argument("--height", type=int, default=None, help="default 480; rounded up to a multiple of 16")
    g.add_argument("--width", type=int, default=None, help="default 832; rounded up to a multiple of 16")
    g.add_argument("--fps", type=int, default=None, help="full 16, lite 24")
    add_alias_flag(g, "--num-inference-steps", type=int, default=None, help="default 50")
    add_alias_flag(g, "--cfg-scale", type=float, default=None, help="text guidance g (default 5)")
    add_alias_flag(g, "--cfg-scale-i", default=None, help="identity guidance gi (full default 2; 'none' = two-branch)")
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
    p.add_argument("--quiet", action="store_true", help="no progress bar, no DiffSynth loader messages")
    add_version_flag(p)
    return p


def add_speed_args(p: argparse.ArgumentParser) -> None:
    """Speed options (docs/speed.md): the exact path's, then the fast modes (not exact)."""
    from ..adapters.compute import ATTENTION_KERNELS
    from ..pipeline.fast_modes import GUIDANCE_REUSE

    sp = p.add_argument_group("speed (docs/speed.md)")
    sp.add_argument("--compile", action="store_true", help="regional torch.compile of the DiT blocks (exact)")
    sp.add_argument("--attention", choices=ATTENTION_KERNELS, default=None,
                    help="attention kernel: auto (default), flash/cudnn/efficient/math (exact), sage (8-bit, fast)")
    add_alias_flag(sp, "--fuse-projections", action="store_true", help="fused q/k/v and adapter k/v matmuls (exact)")
    add_alias_flag(sp, "--fp8-compute", action="store_true", help="float8 matmuls in the DiT's linear layers (fast)")
    add_alias_flag(sp, "--step-cache", type=float, default=None, metavar="THRESHOLD",
                    help="skip a step's blocks while the accumulated timestep change < THRESHOLD (fast; ~0.1-0.3)")
    add_alias_flag(sp, "--guidance-reuse", choices=GUIDANCE_REUSE, default=None,
                    help="reuse this guidance branch every other step (fast)")


def load_jobs(args) -> list[dict]:
    """The jobs to run: the batch file's (paths relative to the batch file's folder; outputs relative to
    ``--output-dir``) or the one given by ``--image``/``--prompt``. Each job gets a ``label`` for messages."""
    if args.batch:
        return read_batch(Path(args.batch))
    if args.image is None and args.prompt is None:
        raise LynxValueError("Give --image and --prompt (or --batch FILE).")
    if args.image is None:
        raise LynxValueError("Give --image FACE: the face photo to condition on.")
    if args.prompt is None:
        raise LynxValueError("Give --prompt TEXT (or a text file holding the prompt).")
    return [{"image": args.image, "prompt": args.prompt, "output": args.output, "label": "generate"}]


def read_batch(path: Path) -> list[dict]:
    """A YAML (a list, or ``{jobs: [...]}``) or CSV batch file, checked and with its relative paths resolved."""
    from ..validation.files import read_text_file

    text = read_text_file(path, "Batch file")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text) or []
        except yaml.YAMLError as err:
            raise LynxFormatError(f"Batch file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
        jobs = data.get("jobs", data) if isinstance(data, dict) else data
    elif path.suffix.lower() == ".csv":
        jobs = [dict(row) for row in csv.DictReader(io.StringIO(text))]
    else:
        raise LynxValueError(f"Batch file {path} must be .yaml/.yml or .csv.")
    if not isinstance(jobs, list) or not jobs:
        raise LynxFormatError(f"Batch file {path} holds no jobs (expected a list of {{image, prompt}} entries).")
    out = []
    for i, job in enumerate(jobs):
        label = f"batch job {i} ({path.name})"
        if not isinstance(job, dict):
            raise LynxFormatError(f"{label} is {job!r}; each job is a mapping with image, prompt and optional seed, "
                                  "output, ...")
        missing = [k for k in ("image", "prompt") if job.get(k) in (None, "")]
        if missing:
            raise LynxValueError(f"Batch job {i} in {path} has no {' and no '.join(missing)}.")
        job = {str(k).strip(): v for k, v in job.items()}
        job["image"] = str(_beside(path, job["image"]))
        if isinstance(job["prompt"], str) and is_file(path.parent / job["prompt"]):
            job["prompt"] = str(path.parent / job["prompt"])
        out.append({**job, "label": label})
    return out


def _beside(batch: Path, value) -> Path:
    """A path from a batch file: relative ones are relative to the batch file's folder."""
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else batch.parent / path


def cli_settings(args):
    """The command line's generation options as a `GenerationSettings` (unset flags stay unset); a bad value
    is an error naming its flag."""
    from ..pipeline.generation_settings import GenerationSettings
    from ..validation.generation import VARIANT_DEFAULT, parse_setting

    try:
        return GenerationSettings(
            seed=args.seed, num_frames=args.num_frames, height=args.height, width=args.width, fps=args.fps,
            num_inference_steps=args.num_inference_steps, cfg_scale=args.cfg_scale,
            cfg_scale_i=VARIANT_DEFAULT if args.cfg_scale_i is None else parse_setting("cfg_scale_i", args.cfg_scale_i),
            id_scale=args.id_scale, ref_scale=args.ref_scale,
            step_window=None if args.step_window is None else tuple(args.step_window),
            blocks=None if args.blocks is None else parse_setting("blocks", args.blocks), sampler=args.sampler,
            sigma_shift=args.sigma_shift, negative_prompt=args.negative_prompt, tiled=not args.no_tiled,
            attention=args.attention, fuse_projections=args.fuse_projections, fp8_compute=args.fp8_compute,
            step_cache=args.step_cache, guidance_reuse=args.guidance_reuse)
    except LynxValueError as err:
        raise err.renamed(flag_of(err.field), flag_of) from None


JOB_KEYS = ("image", "prompt", "output", "label")


def job_settings(job: dict, source: str):
    """A batch job's own generation settings (seed, negative_prompt, ...); an unknown key or a bad value is an
    error naming it and the job."""
    from ..pipeline.generation_settings import GenerationSettings

    values = {k: v for k, v in job.items() if k not in JOB_KEYS and v not in (None, "")}
    return GenerationSettings.from_mapping(values, source, text=True)


def job_output(job: dict, index: int, args, multi: bool) -> Path:
    if job.get("output"):
        path = Path(str(job["output"])).expanduser()
        return path if path.is_absolute() or not args.batch else Path(args.output_dir) / path
    if multi:
        return Path(args.output_dir) / f"{Path(job['image']).stem}_{index:03d}.mp4"
    from ..models.presets import variant_defaults
    from ..outputs import default_video_name

    seed = next(s for s in (job["settings"].seed, args.seed, variant_defaults(args.variant).seed) if s is not None)
    return Path(args.output_dir) / default_video_name(job["image"], args.variant, args.preset, seed)


def main(argv: Optional[list[str]] = None) -> int:
    return run_command(lambda: run(build_parser().parse_args(argv)))


def check_jobs(args) -> tuple[list[dict], list[Path], object]:
    """Every input of the run checked before any model loads: options, prompts, images, models, outputs.

    Returns the jobs (with ``settings`` and ``prompt_text``), their outputs and the `GeneratorPlan`.
    """
    from ..conditioners import load_image
    from ..inference.generator import output_paths
    from ..models.presets import variant_defaults
    from ..outputs import check_targets, check_video_format
    from ..validation.files import is_inside
    from ..validation.generation import check_blocks_fit

    if args.batch and args.output:
        raise LynxValueError("--output names one video; with --batch give each job an output in the batch file, "
                             "or use --output-dir.")
    if args.adapters_revision and not str(args.adapters or "hub:").startswith("hub:"):
        raise LynxValueError("--adapters-revision pins the official weights (hub:full / hub:lite); it does not "
                             f"apply to --adapters {args.adapters}.")
    jobs = load_jobs(args)
    base = cli_settings(args)
    defaults = variant_defaults(args.variant, args.preset)
    for job in jobs:
        job["settings"] = base.merged(job_settings(job, job["label"]))
        try:  # the rules between settings (e.g. identity guidance needs text guidance), with the defaults filled in
            job["settings"].resolved(defaults)
        except LynxValueError as err:
            raise (err.renamed(f"{job['label']}: {err.field}") if args.batch
                   else err.renamed(flag_of(err.field), flag_of)) from None
        try:
            job["prompt_text"] = read_prompt(str(job["prompt"]))
        except LynxValueError as err:
            raise LynxValueError(f"{job['label']}: {err}" if args.batch else str(err)) from None
        load_image(str(job["image"]))  # missing, unreadable or not an image: named now, not after loading
    plan = check_model_options(args)
    multi = len(jobs) > 1
    planned, files = [], []
    for i, job in enumerate(jobs):
        if plan.num_blocks is not None:
            check_blocks_fit(job["settings"].blocks, plan.num_blocks, "--blocks" if not args.batch
                             else f"{job['label']}: blocks", f"the {args.preset} DiT")
        out = job_output(job, i, args, multi)
        paths = output_paths(out, args.webp)
        check_video_format(paths["video"])
        planned.append(out)
        files.append(list(paths.values()))
        if args.batch and not is_inside(out, args.output_dir):
            print(f"note: {job['label']} writes outside --output-dir {args.output_dir}: {out}")
    check_targets(files, args.overwrite, [job["label"] for job in jobs])  # before any weights load
    return jobs, planned, plan


def check_model_options(args):
    """The "models" and "device and memory" options (`add_model_arguments`) checked before any model loads, every
    message naming the flags as typed; returns the `GeneratorPlan` (shared with ``diffsynth-ext app``)."""
    from ..validation.generator_options import check_generator_options

    tiny = args.preset == "tiny"
    if tiny and args.device not in (None, "cpu"):
        raise LynxValueError(f"--preset tiny runs on the CPU; leave out --device (got {args.device}).")
    streaming = STREAMING[getattr(args, "block_streaming", "auto")]
    if tiny and (args.vram_limit is not None or args.offload or args.fp8 or streaming):
        raise LynxValueError("--preset tiny keeps its few weights in memory; leave out --vram-limit, --offload, --fp8 "
                             "and --block-streaming (they apply to the 14B model).")
    return check_generator_options(
        args.variant, args.preset, args.adapters if (args.adapters or tiny) else f"hub:{args.variant}",
        args.model_paths or (), args.tokenizer_path, args.face_models, tiny_embedder(args) if tiny else args.embedder,
        args.detector, args.lora, "cpu" if tiny else args.device, args.dtype, args.vram_limit, args.adapters_revision,
        name=flag_of, offload=args.offload, fp8=args.fp8, compile=getattr(args, "compile", False),
        block_streaming=streaming)


def tiny_embedder(args) -> str:
    """The embedder the tiny preset conditions with (`lynx_ext.inference.tiny_preset.tiny_embedder`)."""
    from ..inference.tiny_preset import tiny_embedder as rule

    return rule(args.embedder, args.face_models, args.detector, args.adapters)


def run(args) -> int:
    jobs, planned, plan = check_jobs(args)
    gen = load_generator(args, device=plan.device)
    for job, out in zip(jobs, planned):
        t0 = time.perf_counter()
        result = gen.generate(job["image"], job["prompt_text"], settings=job["settings"],
                              face_similarity=not args.no_face_similarity, progress=not args.quiet)
        for warning in result.report["face"].get("warnings", []):
            print(f"note: {warning}")
        paths = result.save(out, overwrite=args.overwrite, webp=args.webp)
        similarity = result.report.get("face_similarity", {})
        sim = similarity.get("mean")
        print(f"wrote {paths['video']} ({len(result.frames)} frames, {time.perf_counter() - t0:.1f} s)"
              + (f", mean face similarity {sim:.3f} ({result.report['face']['embedder']})" if sim is not None
                 else f", face similarity {similarity['not_measured']}" if similarity.get("not_measured") else ""))
        print(f"      {paths['contact_sheet']}\n      {paths['report']}")
    return 0
