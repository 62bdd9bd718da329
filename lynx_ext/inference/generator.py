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

from ..pipeline.generation_settings import GenerationSettings
from ..validation.loras import LoraSpec, parse_loras


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
        from ..outputs import check_free, contact_sheet, write_image, write_report, write_video

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
    preset: Optional[str] = None  # the base-model preset (its sizes may differ from the official ones)

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
        adapters_revision: Optional[str] = None,
        compile: bool = False,
        block_streaming: Optional[bool] = None,
    ) -> "LynxGenerator":
        """Load Wan2.1 through DiffSynth's `ModelConfig`s (local paths, or model ids downloaded when online),
        the Lynx adapters (our file, an official folder, or ``hub:full``/``hub:lite``, pinned to a repository
        revision with ``hub:full@REV`` or ``adapters_revision``), LoRAs and face models.

        Every option is checked before anything loads (`lynx_ext.validation.generator_options`): a device that
        is not there, a missing or foreign file, adapters that do not fit the base model or the embedder, and
        (offline) model files that would need a download are errors naming what to do. ``compile``: regional
        ``torch.compile`` of the DiT blocks (`lynx_ext.pipeline.speed.compile_dit`). ``block_streaming``: with
        ``vram_limit`` / ``offload`` / ``fp8``, stream the DiT blocks and their adapter layers from pinned memory,
        one block ahead of the compute (`lynx_ext.pipeline.block_streaming`); None = on CUDA devices.
        """
        from ..conditioners import FaceAnalyzer
        from ..models.build import build_wan_pipe
        from ..conditioners.model_files import missing_face_files
        from ..models.hub import base_model_specs, check_downloads, download_official_adapters
        from ..pipeline.vram import enable_adapter_vram_management
        from ..validation.generator_options import check_generator_options

        adapters = adapters or f"hub:{variant}"
        plan = check_generator_options(variant, base, adapters, model_paths or (), tokenizer_path, face_models,
                                       embedder, detector, loras, device, dtype, vram_limit, adapters_revision,
                                       offload=offload, fp8=fp8, compile=compile, block_streaming=block_streaming)
        specs, tok_spec = base_model_specs(base, model_paths or (), model_id_with_origin_paths or (), tokenizer_path)
        check_downloads(specs + ([tok_spec] if tok_spec else []), adapters, adapters_revision,
                        face_missing=missing_face_files(models=face_models, embedder=embedder,
                                                        detector=detector or "insightface"))
        if isinstance(adapters, str) and adapters.startswith("hub:"):
            adapters = str(download_official_adapters(adapters, adapters_revision))
        t0 = time.perf_counter()
        device = plan.device
        face = FaceAnalyzer.from_options(models=face_models, embedder=embedder, detector=detector or "insightface",
                                         device=device)  # small: a missing face model is named before the base loads
        built = build_wan_pipe(preset=base, model_paths=model_paths or (),
                               model_id_with_origin_paths=model_id_with_origin_paths or (),
                               tokenizer_path=tokenizer_path, device=device, dtype=dtype, vram_limit=vram_limit,
                               offload=offload, fp8=fp8)
        gen = cls.assemble(built.pipe, variant, adapters, loras, face, built.files, preset=base)
        if built.vram:
            enable_adapter_vram_management(built.pipe, offload_dtype=built.vram["offload_dtype"], vram_limit=vram_limit)
            if block_streaming or (block_streaming is None and torch.device(device).type == "cuda"):
                from ..pipeline.block_streaming import enable_block_streaming

                enable_block_streaming(built.pipe, vram_limit=vram_limit)
        if compile:
            from ..pipeline.speed import compile_dit

            compile_dit(built.pipe)
        gen.load_seconds = time.perf_counter() - t0
        return gen

    @classmethod
    def assemble(cls, pipe, variant: str, adapters, loras: Sequence[str | LoraSpec], face, files: Sequence[str],
                 preset: Optional[str] = None) -> "LynxGenerator":
        """Install ``adapters`` (a `LynxAdapters` or a source for `load_lynx_adapters`) and ``loras`` into ``pipe``."""
        from ..adapters import LynxAdapters, load_lynx_adapters
        from ..pipeline import install
        from ..validation.generator_options import check_lora
        from ..validation.models import check_embedder_fits

        specs = parse_loras(loras)
        for spec in specs:
            check_lora(spec.path, spec.alpha)
        if isinstance(adapters, LynxAdapters):
            weights, source = adapters, "in-memory"
        else:
            weights, source = load_lynx_adapters(adapters, pipe.dit, variant=variant), str(adapters)
        embedder = getattr(face, "embedder", None)
        if embedder is not None and hasattr(embedder, "dim"):
            check_embedder_fits(embedder.name, int(embedder.dim), int(weights.config.resampler.embedding_dim),
                                f"the given {weights.config.variant} adapters" if source == "in-memory"
                                else f"the adapters {source} ({weights.config.variant})")
        install(pipe, weights, face_analyzer=face)
        for spec in specs:
            pipe.load_lora(pipe.dit, spec.path, alpha=spec.alpha)
        return cls(pipe=pipe, variant=variant, face=face, model_files=list(files), adapter_source=source, loras=specs,
                   preset=preset)

    # ----------------------------------------------------------- generating
    def settings(self, settings: Optional[GenerationSettings] = None, **values) -> GenerationSettings:
        """``settings`` and/or keyword values over the variant's defaults, with the installed adapter settings
        filled in: exactly what a generation with them runs."""
        from ..models.presets import variant_defaults
        from ..pipeline import installation

        given = (settings or GenerationSettings()).merged(GenerationSettings.from_mapping(values, "generate()"))
        s = given.resolved(variant_defaults(self.variant, self.preset))
        installed = installation(self.pipe).settings
        from dataclasses import replace

        return replace(
            s, id_scale=installed.id_scale if s.id_scale is None else s.id_scale,
            ref_scale=installed.ref_scale if s.ref_scale is None else s.ref_scale,
            step_window=installed.step_window if s.step_window is None else tuple(s.step_window),
            blocks=installed.blocks if s.blocks is None else tuple(sorted(set(int(b) for b in s.blocks))))

    def generate(self, image, prompt: str, settings: Optional[GenerationSettings] = None,
                 face_similarity: bool = True, progress: bool | Callable[[int, int], Any] = True,
                 **values) -> GenerationResult:
        """Generate one video from a face photo and a prompt.

        ``progress``: a tqdm bar (True), none (False), or a callable ``(steps_done, steps_total)``.
        ``settings`` (a `GenerationSettings`) and/or its fields as keywords (``seed=``, ``num_frames=``,
        ``id_scale=``, ...); unset options take the variant's official defaults and the installed scales.
        """
        from ..conditioners import load_image
        from ..conditioners.similarity import frame_similarities, summarise_similarities
        from ..pipeline import condition_on_face, installation
        from ..validation.generation import check_blocks_fit
        from ..validation.values import check_text

        check_text(prompt, "prompt")
        s = self.settings(settings, **values)
        check_blocks_fit(s.blocks, installation(self.pipe).num_blocks, "blocks",
                         f"this DiT ({self.preset})" if self.preset else "this DiT")
        s = rounded(s, self.pipe)
        times = {}
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        face = condition_on_face(self.face, load_image(image), self.pipe.lynx)
        times["face_analysis_s"] = time.perf_counter() - t0
        timer = StepTimer(show=progress)
        t1 = time.perf_counter()
        frames = self.pipe(prompt=prompt, progress_bar_cmd=timer, **s.pipe_kwargs(), **face.pipe_inputs())
        t2 = time.perf_counter()
        times["conditioning_s"] = (timer.start or t2) - t1
        times["denoising_s"] = (timer.end or t2) - (timer.start or t1)
        times["decode_s"] = t2 - (timer.end or t2)
        times["load_s"] = self.load_seconds
        opts = s.to_dict()
        report = {
            "lynx_ext_version": _version(), "variant": self.variant, "prompt": prompt,
            "negative_prompt": opts.pop("negative_prompt"), "settings": opts, "face": face.analysis.report(),
            "models": {"files": [file_fingerprint(f) for f in self.model_files if Path(f).is_file()],
                       "adapters": self.adapter_source, "loras": [asdict(sp) for sp in self.loras]},
            "timings": times, "speed": getattr(self.pipe, "lynx_fast_stats", None), "memory": peak_memory(), "machine": machine_info(self.pipe), "notes": list(self.notes),
        }
        if face_similarity and face.analysis.standin:  # a stand-in's cosine is no face similarity: not reported
            report["face_similarity"] = {"mean": None, "not_measured": STANDIN_SIMILARITY}
        elif face_similarity:
            t3 = time.perf_counter()
            report["face_similarity"] = summarise_similarities(
                frame_similarities(self.face, frames, face.analysis.embedding))
            times["face_similarity_s"] = time.perf_counter() - t3
        return GenerationResult(frames=frames, fps=s.fps, report=report, face_crop=face.analysis.aligned_112)


STANDIN_SIMILARITY = ("not measured: the face models are stand-ins (not face models), so a cosine of their "
                      "embeddings would mean nothing")


def rounded(s: GenerationSettings, pipe) -> GenerationSettings:
    """Round sizes the way the host does, but say so."""
    import warnings
    from dataclasses import replace

    h, w, f = pipe.check_resize_height_width(s.height, s.width, s.num_frames, verbose=0)
    for key, new in (("height", h), ("width", w), ("num_frames", f)):
        if new != getattr(s, key):
            rule = "a multiple of 16" if key != "num_frames" else "of the form 4n+1"
            warnings.warn(f"{key}={getattr(s, key)} is not {rule}; using {new}.", stacklevel=3)
    return replace(s, height=h, width=w, num_frames=f)


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


def _version() -> str:
    from .. import __version__

    return __version__
