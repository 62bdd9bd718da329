"""`LynxGenerator`: face photo + prompt -> video, the Python API behind ``diffsynth-ext generate``.

    gen = LynxGenerator.from_pretrained(variant="full", adapters="hub:full", device="cuda")
    result = gen.generate("face.jpg", "A woman walks through a sunlit market", seed=42)
    result.save("outputs/market.mp4")
"""
from __future__ import annotations

import hashlib
import platform
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
from PIL import Image

from .presets import BASE_MODELS, OFFICIAL_NEGATIVE_PROMPT, VARIANTS

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


@dataclass
class LoraSpec:
    path: str
    alpha: float = 1.0

    @classmethod
    def parse(cls, text: str) -> "LoraSpec":
        """``PATH`` or ``PATH:ALPHA``."""
        path, _, alpha = text.rpartition(":")
        if path and _is_float(alpha):
            return cls(path, float(alpha))
        return cls(text, 1.0)


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def file_fingerprint(path: str | Path, full: bool = False, chunk: int = 16 << 20) -> dict:
    """sha256 of a file (``full``) or of its size + first and last 16 MiB (fast, for multi-GB weights)."""
    path = Path(path)
    h = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as f:
        if full or size <= 2 * chunk:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
            kind = "sha256"
        else:
            h.update(str(size).encode())
            h.update(f.read(chunk))
            f.seek(size - chunk)
            h.update(f.read(chunk))
            kind = "sha256-head-tail-16MiB"
    return {"path": str(path), "bytes": size, kind: h.hexdigest()}


class StepTimer:
    """Progress bar over the denoising steps that also timestamps the loop's start and end.

    ``show``: True = a tqdm bar, False = nothing, or a callable ``(steps_done, steps_total)`` called before the
    first step and after each one (e.g. to feed a web UI's progress bar).
    """

    def __init__(self, show: bool | Callable[[int, int], Any] = True, desc: str = "denoising"):
        self.show, self.desc = show, desc
        self.start = self.end = None

    def __call__(self, iterable):
        from tqdm import tqdm

        self.start = time.perf_counter()
        if callable(self.show):
            total = len(iterable)
            self.show(0, total)
            for done, item in enumerate(iterable, 1):
                yield item
                self.show(done, total)
        else:
            for item in (tqdm(iterable, desc=self.desc) if self.show else iterable):
                yield item
        self.end = time.perf_counter()


def output_paths(output: str | Path, webp: bool = False) -> dict[str, Path]:
    """The files one generation writes: the video, ``<stem>_frames.png``, ``<stem>_report.json`` (and a webp)."""
    output = Path(output)
    stem = output.with_suffix("")
    paths = {"video": output if output.suffix else output.with_suffix(".mp4"),
             "contact_sheet": stem.with_name(stem.name + "_frames.png"),
             "report": stem.with_name(stem.name + "_report.json")}
    if webp:
        paths["webp"] = stem.with_suffix(".webp")
    return paths


@dataclass
class GenerationResult:
    """Frames plus everything needed to write them and the JSON report."""

    frames: list[Image.Image]
    fps: int
    report: dict
    face_crop: Optional[Image.Image] = None

    def save(self, output: str | Path, overwrite: bool = False, webp: bool = False) -> dict[str, Path]:
        """Write the video, the contact sheet and the report next to each other (atomically)."""
        from .outputs import check_free, contact_sheet, write_image, write_report, write_video

        paths = output_paths(output, webp)
        check_free(list(paths.values()), overwrite)
        write_video(self.frames, paths["video"], self.fps, overwrite=overwrite)
        if webp:
            write_video(self.frames, paths["webp"], self.fps, overwrite=overwrite)
        write_image(contact_sheet(self.frames, face=self.face_crop), paths["contact_sheet"], overwrite=overwrite)
        self.report["outputs"] = {k: str(v) for k, v in paths.items()}
        write_report(self.report, paths["report"], overwrite=overwrite)
        return paths


@dataclass
class LynxGenerator:
    """A DiffSynth `WanVideoPipeline` with Lynx installed, a face analyzer, and the variant's defaults."""

    pipe: Any
    variant: str
    face: Any = None
    model_files: list[str] = field(default_factory=list)
    adapter_source: str = ""
    loras: list[LoraSpec] = field(default_factory=list)
    load_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    default_overrides: dict = field(default_factory=dict)  # e.g. the tiny preset's small sizes

    # ------------------------------------------------------------ building
    @classmethod
    def from_pretrained(
        cls,
        variant: str = "full",
        base: str = "wan2.1-t2v-14b",
        adapters: Optional[str] = None,
        model_paths: Optional[Sequence[str]] = None,
        model_id_with_origin_paths: Optional[Sequence[str]] = None,
        tokenizer_path: Optional[str] = None,
        face_models: Optional[str] = None,
        embedder: str = "facexlib",
        detector: Optional[str] = None,
        loras: Sequence[str | LoraSpec] = (),
        device: Optional[str] = None,
        dtype: str = "bf16",
        vram_limit: Optional[float] = None,
        offload: bool = False,
        fp8: bool = False,
    ) -> "LynxGenerator":
        """Load Wan2.1 through DiffSynth's `ModelConfig`s (local paths, or model ids downloaded when online),
        the Lynx adapters (our file, an official folder, or ``hub:full``/``hub:lite``), LoRAs and face models."""
        from diffsynth.core import ModelConfig
        from diffsynth.pipelines.wan_video import WanVideoPipeline

        from ..compat import ensure_cpu_empty_cache
        from ..models.wan_diffusers import register_diffusers_wan_14b
        from ..pipeline.vram import enable_adapter_vram_management

        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}.")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}.")
        t0 = time.perf_counter()
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype = DTYPES[dtype]
        vram = {}
        if offload or fp8 or vram_limit is not None:
            store = torch.float8_e4m3fn if fp8 else torch_dtype
            vram = dict(offload_device="cpu", offload_dtype=store, onload_device="cpu", onload_dtype=store,
                        preparing_device=device, preparing_dtype=torch_dtype, computation_device=device,
                        computation_dtype=torch_dtype)
            if device == "cpu":
                ensure_cpu_empty_cache()
        register_diffusers_wan_14b()
        configs = [ModelConfig(path=p, **vram) for p in (model_paths or [])]
        id_paths = list(model_id_with_origin_paths or [])
        if not configs and not id_paths:
            if base not in BASE_MODELS or not BASE_MODELS[base].model_id_with_origin_paths:
                raise ValueError(f"Unknown base model preset {base!r}; pass model_paths or model_id_with_origin_paths.")
            id_paths = BASE_MODELS[base].model_id_with_origin_paths
        for spec in id_paths:
            model_id, _, pattern = spec.partition(":")
            configs.append(ModelConfig(model_id=model_id, origin_file_pattern=pattern, **vram))
        tok_id, _, tok_pattern = BASE_MODELS["wan2.1-t2v-14b"].tokenizer.partition(":")
        tokenizer = ModelConfig(path=tokenizer_path) if tokenizer_path else ModelConfig(model_id=tok_id,
                                                                                          origin_file_pattern=tok_pattern)
        pipe = WanVideoPipeline.from_pretrained(torch_dtype=torch_dtype, device=device, model_configs=configs,
                                                tokenizer_config=tokenizer, vram_limit=vram_limit)
        files = []
        for c in configs:
            files += c.path if isinstance(c.path, list) else [c.path]
        face = load_face_analyzer(face_models, embedder, device, detector)
        gen = cls._assemble(pipe, variant, adapters or f"hub:{variant}", loras, face_models, embedder, device,
                            [str(f) for f in files if f], face=face)
        if vram:
            enable_adapter_vram_management(pipe, offload_dtype=vram["offload_dtype"], vram_limit=vram_limit)
        gen.load_seconds = time.perf_counter() - t0
        return gen

    @classmethod
    def _assemble(cls, pipe, variant, adapters, loras, face_models, embedder, device, files, face=None):
        from ..adapters import LynxAdapters, load_lynx_adapters
        from ..pipeline import install

        defaults = VARIANTS[variant]
        if isinstance(adapters, LynxAdapters):
            weights, source = adapters, "in-memory"
        else:
            weights, source = load_lynx_adapters(adapters, pipe.dit, variant=variant), str(adapters)
        if face is None:
            face = load_face_analyzer(face_models, embedder, device)
        install(pipe, weights, id_scale=defaults.id_scale, ref_scale=defaults.ref_scale, face_embedder=face)
        specs = [s if isinstance(s, LoraSpec) else LoraSpec.parse(s) for s in loras]
        for spec in specs:
            if not Path(spec.path).is_file():
                raise FileNotFoundError(f"LoRA file {spec.path} does not exist.")
            pipe.load_lora(pipe.dit, spec.path, alpha=spec.alpha)
        return cls(pipe=pipe, variant=variant, face=face, model_files=files, adapter_source=source, loras=specs)

    # ----------------------------------------------------------- generating
    def generate(
        self,
        image,
        prompt: str,
        negative_prompt: Optional[str] = None,
        seed: Optional[int] = None,
        num_frames: Optional[int] = None,
        height: Optional[int] = None,
        width: Optional[int] = None,
        fps: Optional[int] = None,
        num_inference_steps: Optional[int] = None,
        cfg_scale: Optional[float] = None,
        cfg_scale_i: Optional[float] | str = "default",
        id_scale: Optional[float] = None,
        ref_scale: Optional[float] = None,
        step_window: Optional[Sequence[float]] = None,
        blocks: Optional[Sequence[int]] = None,
        sampler: Optional[str] = None,
        sigma_shift: Optional[float] = None,
        tiled: bool = True,
        face_similarity: bool = True,
        progress: bool | Callable[[int, int], Any] = True,
    ) -> GenerationResult:
        """Generate one video; unset options take the variant's official defaults. ``progress``: a tqdm bar
        (True), none (False), or a callable ``(steps_done, steps_total)`` fed by the denoising loop."""
        from ..conditioners import load_image

        from dataclasses import replace

        d = replace(VARIANTS[self.variant], **self.default_overrides)
        opts = dict(
            seed=d.seed if seed is None else seed, num_frames=num_frames or d.num_frames, height=height or d.height,
            width=width or d.width, fps=fps or d.fps, num_inference_steps=num_inference_steps or d.num_inference_steps,
            cfg_scale=d.cfg_scale if cfg_scale is None else cfg_scale,
            cfg_scale_i=d.cfg_scale_i if cfg_scale_i == "default" else cfg_scale_i,
            id_scale=d.id_scale if id_scale is None else id_scale, ref_scale=d.ref_scale if ref_scale is None else ref_scale,
            sampler=sampler or d.sampler, sigma_shift=d.sigma_shift if sigma_shift is None else sigma_shift,
            step_window=list(step_window) if step_window is not None else None,
            blocks=list(blocks) if blocks is not None else None,
        )
        check_shape(opts, self.pipe)
        negative_prompt = OFFICIAL_NEGATIVE_PROMPT if negative_prompt is None else negative_prompt
        times = {}
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        face_image = load_image(image)
        if self.face is None:
            raise RuntimeError("No face analyzer is loaded; pass face_models=... to from_pretrained.")
        face = self.face.analyze(face_image)
        times["face_analysis_s"] = time.perf_counter() - t0
        ref_image = face.ref_crop if self.pipe.lynx.config.has_ref else None
        timer = StepTimer(show=progress)
        t1 = time.perf_counter()
        frames = self.pipe(
            prompt=prompt, negative_prompt=negative_prompt, seed=opts["seed"], height=opts["height"],
            width=opts["width"], num_frames=opts["num_frames"], num_inference_steps=opts["num_inference_steps"],
            cfg_scale=opts["cfg_scale"], cfg_scale_i=opts["cfg_scale_i"], sigma_shift=opts["sigma_shift"],
            sampler=opts["sampler"], tiled=tiled, progress_bar_cmd=timer,
            lynx_id_embeds=torch.as_tensor(face.embedding)[None], lynx_ref_image=ref_image,
            lynx_id_scale=opts["id_scale"], lynx_ref_scale=opts["ref_scale"], lynx_step_window=opts["step_window"],
            lynx_blocks=opts["blocks"],
        )
        t2 = time.perf_counter()
        times["conditioning_s"] = (timer.start or t2) - t1
        times["denoising_s"] = (timer.end or t2) - (timer.start or t1)
        times["decode_s"] = t2 - (timer.end or t2)
        times["load_s"] = self.load_seconds
        report = {
            "lynx_ext_version": _version(), "variant": self.variant, "prompt": prompt,
            "negative_prompt": negative_prompt, "settings": opts, "face": face.report(),
            "models": {"files": [file_fingerprint(f) for f in self.model_files if Path(f).is_file()],
                       "adapters": self.adapter_source, "loras": [asdict(s) for s in self.loras]},
            "timings": times, "memory": peak_memory(), "machine": machine_info(self.pipe), "notes": list(self.notes),
        }
        if face_similarity:
            t3 = time.perf_counter()
            report["face_similarity"] = frame_similarity(self.face, frames, face.embedding)
            times["face_similarity_s"] = time.perf_counter() - t3
        return GenerationResult(frames=frames, fps=opts["fps"], report=report, face_crop=face.aligned_112)


def check_shape(opts: dict, pipe) -> None:
    """Round sizes the way the host does, but say so (and refuse nonsense)."""
    import warnings

    for key in ("height", "width", "num_frames", "num_inference_steps"):
        if int(opts[key]) <= 0:
            raise ValueError(f"{key} must be positive, got {opts[key]}.")
    h, w, f = pipe.check_resize_height_width(opts["height"], opts["width"], opts["num_frames"], verbose=0)
    for key, new in (("height", h), ("width", w), ("num_frames", f)):
        if new != opts[key]:
            rule = "a multiple of 16" if key != "num_frames" else "of the form 4n+1"
            warnings.warn(f"{key}={opts[key]} is not {rule}; using {new}.", stacklevel=3)
            opts[key] = new


def frame_similarity(face, frames: Sequence[Image.Image], reference) -> dict:
    """Cosine similarity of the largest face in every frame to the conditioning embedding (None: no face)."""
    import numpy as np

    from ..conditioners import NoFaceError

    values = []
    for frame in frames:
        try:
            emb = face.analyze(frame).embedding
            values.append(float(np.dot(emb, reference) / (np.linalg.norm(emb) * np.linalg.norm(reference))))
        except NoFaceError:
            values.append(None)
    found = [v for v in values if v is not None]
    return {"per_frame": values, "mean": float(np.mean(found)) if found else None,
            "frames_with_face": len(found), "frames": len(values)}


def peak_memory() -> dict:
    out = {"peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    if torch.cuda.is_available():
        out["peak_cuda_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
        out["peak_cuda_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
    return out


def machine_info(pipe) -> dict:
    info = {"device": str(pipe.device), "dtype": str(pipe.torch_dtype), "torch": torch.__version__,
            "python": platform.python_version(), "host": platform.node()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def load_face_analyzer(face_models: Optional[str], embedder: str, device: str, detector: Optional[str] = None):
    from ..conditioners import FaceAnalyzer

    return FaceAnalyzer.from_options(models=face_models, embedder=embedder, device=device,
                                     detector=detector or "insightface")


def _version() -> str:
    from .. import __version__

    return __version__
