"""Everything `LynxGenerator.from_pretrained` (and ``diffsynth-ext generate``) is given, checked before any model
loads: the device, every file and folder, the LoRAs' formats, and whether the base model, the adapters and the
face embedder fit each other (read from file headers)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..errors import LynxFormatError, LynxMissingFileError, LynxValueError
from .device import check_device
from .files import check_input_file
from .loras import parse_loras
from .models import (
    AdapterFacts,
    adapter_facts,
    base_model_shape,
    check_adapters_fit,
    check_embedder_fits,
    embedder_dim,
)
from .values import check_choice, check_float

EMBEDDERS = ("facexlib", "insightface", "dlib")
DETECTORS = ("insightface", "dlib")


@dataclass(frozen=True)
class GeneratorPlan:
    """What the checks found: the device to use, the base DiT's (dim, blocks) and the adapters' facts."""

    device: str
    base_shape: Optional[tuple[int, int]]
    adapters: Optional[AdapterFacts]

    @property
    def num_blocks(self) -> Optional[int]:
        return None if self.base_shape is None else self.base_shape[1]


def _flag(name: str) -> str:
    return name


def check_lora(path, alpha: float = 1.0, name: Callable[[str], str] = _flag) -> Path:
    """A LoRA file the host can read without unpickling anything: safetensors (by content), or a torch archive
    (read with ``weights_only``); adapter weights or other files given as a LoRA are refused, saying what they are."""
    from ..adapters.formats.detect import LOADABLE, PARTIAL, FormatKind, detect_format

    path = check_input_file(path, "LoRA file")
    check_float(alpha, f"{name('lora')} alpha of {path}", -100.0, 100.0)
    found = detect_format(path)
    if found.kind in LOADABLE or found.kind in PARTIAL:
        raise LynxFormatError(f"LoRA {path} is {found.description}, not a LoRA. Pass Lynx adapters with "
                              f"{name('adapters')}.")
    if found.kind is FormatKind.OTHER_SAFETENSORS:
        if path.suffix.lower() != ".safetensors":
            raise LynxFormatError(f"LoRA {path} is a safetensors file named '{path.suffix}'; rename it to "
                                  ".safetensors so it is read as one.")
        return path
    if found.kind is FormatKind.TORCH_ARCHIVE and path.suffix.lower() != ".safetensors":
        return path
    raise LynxFormatError(f"LoRA {path} is {found.description}, not LoRA weights. {found.hint} LoRAs are read "
                          "from .safetensors files.".replace("  ", " "))


def check_generator_options(
    variant: str = "full",
    base: str = "wan2.1-t2v-14b",
    adapters=None,
    model_paths: Sequence[str] = (),
    tokenizer_path: Optional[str] = None,
    face_models: Optional[str] = None,
    embedder: str = "facexlib",
    detector: Optional[str] = None,
    loras: Sequence = (),
    device: Optional[str] = None,
    dtype: str = "bf16",
    vram_limit: Optional[float] = None,
    adapters_revision: Optional[str] = None,
    name: Callable[[str], str] = _flag,
    offload: bool = False,
    fp8: bool = False,
    compile: bool = False,
    block_streaming: Optional[bool] = None,
) -> GeneratorPlan:
    """Check the options of a generator (``name`` renders an option's name, e.g. as a CLI flag).

    Raises a `LynxUsageError` (value, file, format or compatibility) naming the option and what to do.
    """
    from ..models.dtypes import DTYPES
    from ..models.presets import BASE_MODELS, VARIANTS

    check_choice(variant, name("variant"), VARIANTS)
    if base not in BASE_MODELS and base != "custom":
        raise LynxValueError.of(name("preset"), f"must be one of {', '.join(BASE_MODELS)} or custom, got {base!r}.")
    check_choice(dtype, name("dtype"), DTYPES)
    if vram_limit is not None:
        check_float(vram_limit, name("vram_limit"), 0.0, 10_000.0,
                    todo="It is in GB, e.g. 20 on a 24 GB card (0 keeps no block resident).")
    offloaded = vram_limit is not None or offload or fp8
    if block_streaming and not offloaded:
        raise LynxValueError.of(name("block_streaming"), "streams weights kept in CPU memory, but every weight is on "
                                "the device. Add --vram-limit GB (or --offload / --fp8), or drop it.")
    if compile and offloaded:
        raise LynxValueError.of(name("compile"), "needs the DiT on the device; it does not combine with "
                                "--vram-limit / --offload / --fp8. Drop one of them.")
    if detector is not None:
        check_choice(detector, name("detector"), DETECTORS)
    text = str(embedder)
    if text.endswith((".pth", ".onnx")):
        check_input_file(text, "Face embedder file")
    else:
        check_choice(text, name("embedder"), EMBEDDERS)
    if face_models is not None:
        folder = str(face_models)
        looks_like_path = "/" in folder or "\\" in folder or folder.startswith((".", "~"))
        if looks_like_path and not Path(folder).expanduser().exists():
            raise LynxMissingFileError(f"Face model folder {folder} ({name('face_models')}) does not exist. Pass the folder "
                                "holding the face models (det_10g.onnx, w600k_r50.onnx and/or "
                                "recognition_arcface_ir_se50.pth).")
    if tokenizer_path is not None and not Path(tokenizer_path).expanduser().exists():
        raise LynxMissingFileError(f"Tokenizer {tokenizer_path} ({name('tokenizer_path')}) does not exist.")
    for spec in parse_loras(loras):  # PATH or PATH:ALPHA, as the app and the Python API read them
        check_lora(spec.path, spec.alpha, name)
    resolved = check_device(device, name("device"))
    shape = base_model_shape(base, model_paths)
    facts = adapter_facts(adapters, adapters_revision)
    check_adapters_fit(facts, variant, shape, f"{base}" + (f" ({', '.join(map(str, model_paths))})" if model_paths
                                                             else ""))
    if facts is not None:
        check_embedder_fits(text, embedder_dim(text), facts.embedding_dim, facts.label)
    return GeneratorPlan(device=resolved, base_shape=shape, adapters=facts)
