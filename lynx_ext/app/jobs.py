"""One app job: a face photo and checked `JobSettings` -> video, contact sheet and JSON report on disk.

The web layer queues jobs (one runs at a time); this module does the work and knows nothing about the web.
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from ..conditioners import LynxInputError
from ..inference.generator import output_paths
from .generators import GeneratorCache
from .settings import JobSettings, ModelKey

Progress = Callable[[int, int, str], Any]  # (done, total, what); total 0 = a phase without steps


@dataclass
class JobResult:
    """A finished job: the files written (`output_paths` keys), its report and notes for the user."""

    number: int
    paths: dict[str, Path]
    report: dict
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def describe_key(key: ModelKey) -> str:
    parts = [f"variant {key.variant}"]
    if key.loras:
        parts.append(f"{len(key.loras)} LoRA{'s' if len(key.loras) > 1 else ''}")
    if key.vram_limit is not None:
        parts.append(f"VRAM limit {key.vram_limit:g} GB")
    parts += [name for name, on in (("offload", key.offload), ("fp8", key.fp8)) if on]
    return ", ".join(parts)


class JobRunner:
    """Runs jobs on the generator of a `GeneratorCache`, writing each job's files under ``output_dir``
    with a new name (existing files are never replaced)."""

    def __init__(self, cache: GeneratorCache, output_dir: str | Path):
        self.cache = cache
        self.output_dir = Path(output_dir)
        self.history: list[JobResult] = []
        self._lock = threading.Lock()
        self._count = 0

    def check(self, image, settings: JobSettings) -> tuple[ModelKey, dict]:
        """Everything that can be refused without running: a photo is given, every setting is valid."""
        if image is None or (isinstance(image, str) and not image):
            raise LynxInputError("Upload a face photo first.")
        key = settings.model_key()
        return key, settings.generate_kwargs(num_blocks=self.cache.num_blocks)

    def run(self, image, settings: JobSettings, progress: Optional[Progress] = None) -> JobResult:
        """Check, (re)load the models if this job needs others, generate, and write the three files."""
        progress = progress or (lambda done, total, what: None)
        key, kwargs = self.check(image, settings)
        t0 = time.perf_counter()
        gen = self.cache.get(key, on_load=lambda k: progress(0, 0, f"loading models ({describe_key(k)})"))
        notes = _round_shape(gen.pipe, kwargs)
        number, output = self._reserve(image, key.variant, kwargs["seed"])
        progress(0, 0, "analysing the face, encoding the prompt")
        def steps(done: int, total: int):  # after the last step the host decodes the video
            progress(done, total, "denoising" if done < total else "decoding the video")

        result = gen.generate(image, **kwargs, progress=steps)
        progress(1, 1, "writing the video, contact sheet and report")
        paths = result.save(output)
        notes += list(result.report["face"].get("warnings", []))
        job = JobResult(number, paths, result.report, notes, time.perf_counter() - t0)
        with self._lock:
            self.history.append(job)
        return job

    def _reserve(self, image, variant: str, seed: int) -> tuple[int, Path]:
        """The next job number and an output path whose three files do not exist yet."""
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(str(image)).stem if isinstance(image, (str, Path)) else "face")
        stem = stem.strip("_")[:40] or "face"
        with self._lock:
            self._count += 1
            number = self._count
            base = f"{time.strftime('%Y%m%d-%H%M%S')}_{number:03d}_{stem}_{variant}_s{seed}"
            candidate, n = self.output_dir / f"{base}.mp4", 1
            while any(p.exists() for p in output_paths(candidate).values()):
                n += 1
                candidate = self.output_dir / f"{base}_{n}.mp4"
        return number, candidate


def _round_shape(pipe, kwargs: dict) -> list[str]:
    """Round height/width/frames as the host does, in ``kwargs``, and say so (the CLI warns instead)."""
    new = pipe.check_resize_height_width(kwargs["height"], kwargs["width"], kwargs["num_frames"], verbose=0)
    notes = []
    rules = ("a multiple of 16", "a multiple of 16", "of the form 4n+1")
    for key, value, rule in zip(("height", "width", "num_frames"), new, rules):
        if value != kwargs[key]:
            notes.append(f"{key} {kwargs[key]} is not {rule}; used {value}.")
            kwargs[key] = value
    return notes
