"""A benchmark definition: subjects x prompts x seeds x arms, how to generate, how to score (one YAML file).

Everything is checked when the file is read, before any model loads: unknown keys, wrong types, duplicate
prompts, bad arm names. See docs/evaluation.md for every key.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, Optional, Union

from ..pipeline.generation_settings import GenerationSettings
from .strict_fields import DefinitionError, build, check_keys, check_value, construct

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=,+-]*$")


@dataclass
class ModelSettings:
    """Which Lynx generator to load (the options of ``diffsynth-ext generate``)."""

    preset: Literal["wan2.1-t2v-14b", "tiny"] = "wan2.1-t2v-14b"
    """``wan2.1-t2v-14b`` (DiffSynth model ids / ``model_paths``) or ``tiny`` (a tiny random Wan, CPU)."""
    variant: Literal["full", "lite"] = "full"
    adapters: Optional[str] = None
    """Our ``.safetensors``, an official ``lynx_full/`` / ``lynx_lite/`` folder, or ``hub:full`` / ``hub:lite``."""
    model_paths: list[str] = field(default_factory=list)
    model_id_with_origin_paths: list[str] = field(default_factory=list)
    tokenizer_path: Optional[str] = None
    face_models: Optional[str] = None
    """Face models of the conditioning path (insightface pack and/or ``recognition_arcface_ir_se50.pth``)."""
    embedder: Literal["facexlib", "insightface", "dlib"] = "facexlib"
    detector: Optional[Literal["insightface", "dlib"]] = None
    loras: list[str] = field(default_factory=list)
    """``PATH`` or ``PATH:ALPHA`` entries."""
    device: Optional[str] = None
    dtype: Literal["bf16", "fp16", "fp32"] = "bf16"
    vram_limit: Optional[float] = None
    offload: bool = False
    fp8: bool = False


@dataclass
class Arm:
    """One named run of the sweep: overrides of the model and generation settings."""

    name: str
    description: str = ""
    model: dict = field(default_factory=dict)
    generation: dict = field(default_factory=dict)


@dataclass
class ScoringSettings:
    """How videos are scored (see docs/evaluation.md for the metrics)."""

    metrics: Optional[list[str]] = None
    """Metric names to run; a missing model file is then an error. Default: every default metric whose files are
    present (the others are listed as unavailable in the report)."""
    face_models: Optional[str] = None
    """Folder with the scoring models (``det_10g.onnx``, ``w600k_r50.onnx``, ``recognition_arcface_ir_se50.pth``,
    ``glint360k_curricular_face_r101_backbone.bin``); ``standin`` = tiny stand-in ONNX models (tests, no meaning)."""
    model_files: dict[str, str] = field(default_factory=dict)
    """Explicit weight file per metric, e.g. ``{insightface: ~/models/antelopev2/glintr100.onnx}``."""
    detector: Literal["auto", "insightface", "dlib"] = "auto"
    """``auto``: insightface SCRFD if ``det_10g.onnx`` is found, else dlib's HOG detector."""
    det_size: int = 640
    frames: Optional[int] = 32
    """Frames scored per video, evenly spaced (OpenS2V: 32); null = every frame."""
    device: Optional[str] = None
    bootstrap_samples: int = 1000
    confidence: float = 0.95
    min_effect: float = 0.01
    """The smallest mean paired difference (cosine units) that counts as "larger than noise", besides the interval
    excluding 0."""
    baseline: Optional[str] = None
    """Arm the others are compared with (default: the first)."""
    primary: Optional[str] = None
    """Metric that ranks the best/worst contact sheet (default: the first available face-similarity metric)."""
    contact_sheet_cases: int = 4
    judge: Optional[str] = None
    """``module:function`` of a judge model (see docs); off by default, nothing phones home."""
    judge_options: dict = field(default_factory=dict)
    plugins: list[str] = field(default_factory=list)
    """Modules imported before scoring; a module that calls ``register_metric`` adds a metric."""


@dataclass
class Prompt:
    id: str
    text: str


@dataclass
class ResolvedArm:
    """An arm with its final model and generation settings."""

    name: str
    description: str
    model: ModelSettings
    generation: GenerationSettings

    def fingerprint(self) -> str:
        return digest({"model": asdict(self.model), "generation": asdict(self.generation)})


@dataclass
class BenchmarkDefinition:
    """The whole benchmark: what to generate and how to score it."""

    name: str
    description: str = ""
    subjects: Optional[str] = None
    """Folder of subject photos (one image per subject; its stem is the subject id). ``--subjects`` overrides."""
    prompts: Union[str, list[Any]] = field(default_factory=list)
    """A list of prompts (strings or ``{id, text}``), or a YAML file holding that list."""
    seeds: list[int] = field(default_factory=lambda: [42])
    model: ModelSettings = field(default_factory=ModelSettings)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    arms: list[Arm] = field(default_factory=list)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    """Generation settings crossed with every arm, e.g. ``{id_scale: [0.5, 1.0], ref_scale: [0.5, 1.0]}``."""
    scoring: ScoringSettings = field(default_factory=ScoringSettings)
    output: Optional[str] = None
    source: Optional[str] = None  # the file it was read from (set by `load_definition`)

    def prompt_list(self) -> list[Prompt]:
        return self.prompts  # normalised to `Prompt`s by `load_definition`

    def resolved_arms(self) -> list[ResolvedArm]:
        """Arms (or one ``default`` arm) crossed with the grid, each with merged and checked settings."""
        arms = self.arms or [Arm(name="default")]
        grid = list(self.grid.items())
        combos = list(itertools.product(*[values for _, values in grid])) if grid else [()]
        resolved = []
        for arm in arms:
            model = _override(self.model, arm.model, f"arms[{arm.name}].model")
            generation = _override(self.generation, arm.generation, f"arms[{arm.name}].generation")
            for combo in combos:
                setting = dict(zip([k for k, _ in grid], combo))
                label = ",".join(f"{k}={_short(v)}" for k, v in setting.items())
                name = arm.name if not label else (label if not self.arms else f"{arm.name}.{label}")
                resolved.append(ResolvedArm(name=name, description=arm.description, model=model,
                                            generation=_override(generation, setting, f"grid ({label})")))
        names = [a.name for a in resolved]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise DefinitionError(f"arms: the name {dupes[0]!r} is used twice; give every arm its own name.")
        return resolved

    def fingerprint(self) -> str:
        return digest({k: v for k, v in asdict(self).items() if k not in ("source", "output", "subjects")})


def load_definition(path: str | Path) -> BenchmarkDefinition:
    """Read and fully check a benchmark YAML (nothing heavy is imported or loaded).

    Raises:
        DefinitionError: unknown keys, wrong types, duplicate prompts or arm names, bad grid keys, no prompts.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise DefinitionError(f"Benchmark definition {path} does not exist.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise DefinitionError(f"{path} is not valid YAML: {err}".splitlines()[0]) from err
    definition = build(BenchmarkDefinition, data, path.name)
    definition.source = str(path)
    definition.prompts = parse_prompts(definition.prompts, path.parent, f"{path.name}: prompts")
    _check(definition, path.name)
    return definition


def parse_prompts(value: Union[str, list], base: Path, where: str) -> list[Prompt]:
    """Prompts from a list (strings or ``{id, text}``) or a YAML file of one; duplicates are an error."""
    import yaml

    if isinstance(value, str):
        file = (base / value).expanduser()
        if not file.is_file():
            raise DefinitionError(f"{where}: prompt file {file} does not exist.")
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
        value = data.get("prompts") if isinstance(data, dict) else data
        where = f"{file.name}"
        if not isinstance(value, list):
            raise DefinitionError(f"{where} must hold a list of prompts (or a mapping with a 'prompts' list).")
    prompts = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            item = {"id": f"p{i + 1:02d}", "text": item}
        prompt = build(Prompt, item, f"{where}[{i}]")
        if not isinstance(prompt.text, str) or not prompt.text.strip():
            raise DefinitionError(f"{where}[{i}] is empty; write the prompt text.")
        if not NAME_RE.match(str(prompt.id)):
            raise DefinitionError(f"{where}[{i}]: prompt id {prompt.id!r} may use only letters, digits and . _ = , + -")
        prompts.append(prompt)
    if not prompts:
        raise DefinitionError(f"{where}: no prompts; list at least one.")
    seen_text: dict[str, int] = {}
    seen_id: dict[str, int] = {}
    for i, prompt in enumerate(prompts):
        norm = " ".join(prompt.text.lower().split())
        if norm in seen_text:
            raise DefinitionError(f"{where}: prompt {i} ({prompt.id}) duplicates prompt {seen_text[norm]} "
                                  f"({prompts[seen_text[norm]].id}): {prompt.text[:60]!r}. Remove one of them.")
        if prompt.id in seen_id:
            raise DefinitionError(f"{where}: the prompt id {prompt.id!r} is used twice (prompts {seen_id[prompt.id]} "
                                  f"and {i}).")
        seen_text[norm], seen_id[prompt.id] = i, i
    return prompts


def _check(definition: BenchmarkDefinition, where: str) -> None:
    if not NAME_RE.match(definition.name):
        raise DefinitionError(f"{where}: name {definition.name!r} may use only letters, digits and . _ = , + -")
    if not definition.seeds:
        raise DefinitionError(f"{where}: seeds is empty; list at least one seed.")
    if len(set(definition.seeds)) != len(definition.seeds):
        raise DefinitionError(f"{where}: seeds {definition.seeds} lists a seed twice.")
    generation_keys = {f.name for f in fields(GenerationSettings)}
    for key, values in definition.grid.items():
        if key not in generation_keys:
            raise DefinitionError(f"{where}: grid key {key!r} is not a generation setting "
                                  f"({', '.join(sorted(generation_keys))}).")
        if not values or len(set(map(repr, values))) != len(values):
            raise DefinitionError(f"{where}: grid.{key} must list distinct values, got {values}.")
    for i, arm in enumerate(definition.arms):
        if not NAME_RE.match(arm.name):
            raise DefinitionError(f"{where}: arms[{i}].name {arm.name!r} may use only letters, digits and . _ = , + -")
    for arm in definition.resolved_arms():  # checks every override now, not after hours of generation
        value = arm.generation.cfg_scale_i
        if isinstance(value, str) and value != "default":
            raise DefinitionError(f"{where}: arm {arm.name}: cfg_scale_i must be a number, 'default' or null "
                                  f"(two-branch guidance), got {value!r}.")
    scoring = definition.scoring
    if scoring.frames is not None and scoring.frames < 1:
        raise DefinitionError(f"{where}: scoring.frames must be >= 1 or null (every frame), got {scoring.frames}.")
    if not 0.5 <= scoring.confidence < 1:
        raise DefinitionError(f"{where}: scoring.confidence must be in [0.5, 1), got {scoring.confidence}.")
    if not (math.isfinite(scoring.min_effect) and scoring.min_effect >= 0):
        raise DefinitionError(f"{where}: scoring.min_effect must be a number >= 0 (a difference in the metric's "
                              f"units, e.g. 0.01 cosine), got {scoring.min_effect}.")
    if scoring.bootstrap_samples < 100:
        raise DefinitionError(f"{where}: scoring.bootstrap_samples must be >= 100, got {scoring.bootstrap_samples}.")
    names = [a.name for a in definition.resolved_arms()]
    if scoring.baseline is not None and scoring.baseline not in names:
        raise DefinitionError(f"{where}: scoring.baseline {scoring.baseline!r} is not an arm ({', '.join(names)}).")


def _override(base: Any, overrides: dict, where: str) -> Any:
    if not overrides:
        return base
    check_keys(type(base), overrides, where)
    hints = __import__("typing").get_type_hints(type(base))
    return construct(lambda **values: replace(base, **values), {k: check_value(v, hints[k], f"{where}.{k}")
                                                                 for k, v in overrides.items()}, where)


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def digest(data: Any) -> str:
    """Short sha256 of ``data`` as sorted JSON (identifies settings)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]
