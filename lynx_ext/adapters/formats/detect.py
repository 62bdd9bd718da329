"""What is this file? Adapter layouts and common look-alikes recognised by content, never by name, never unpickled.

`detect_format` reads at most a safetensors header, a zip directory or the opcodes of a pickle (with
`pickletools`, which does not execute anything) and says what the path holds, so that an error can name what
the user gave and what was expected. It sits below the layouts' readers and writers (they import it, it imports
none of them): what it sniffs with lives in `signatures` and `comfyui_files`.
"""
from __future__ import annotations

import enum
import pickletools
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from ..config import LynxAdapterConfig
from .comfyui_files import (
    ComfyFiles,
    UnpairedFiles,
    comfyui_candidates,
    describe_layers,
    is_layer_header,
    is_resampler_header,
    layer_summary,
    pair_files,
)
from .errors import LynxCheckpointError
from .safetensors_file import SafetensorsHeader, sniff_safetensors
from .signatures import (
    CONFIG_METADATA_KEY,
    FORMAT_NAME,
    IP_FILE,
    REF_FILE,
    RESAMPLER_FILE,
    describe_config,
    is_official_folder,
)

EXPECTED = ("Lynx adapters are read from a lynx-ext .safetensors file, an official lynx_full/ or lynx_lite/ folder "
            "(resampler.safetensors, ip_layers.safetensors, ref_layers.safetensors for full), or "
            "ComfyUI-WanVideoWrapper "
            "Lynx files (a resampler file and ip/ref layer files: their folder, or the files separated by commas)")
LIGHTNING_MARKERS = {"pytorch-lightning_version", "optimizer_states", "lr_schedulers", "loops"}
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class FormatKind(enum.Enum):
    """What a path holds. The first three are adapter layouts `load_lynx_adapters` reads."""

    OURS = "lynx-ext"
    OFFICIAL = "official"
    COMFYUI = "comfyui"
    RESAMPLER = "resampler file alone"
    OFFICIAL_LAYERS = "official layer file alone"
    COMFYUI_LAYERS = "ComfyUI layer file alone"
    OTHER_SAFETENSORS = "other safetensors"
    DAMAGED_SAFETENSORS = "damaged safetensors"
    LIGHTNING = "Lightning checkpoint"
    TORCH_ARCHIVE = "torch.save archive"
    PICKLE = "pickle"
    GGUF = "gguf"
    EMPTY = "empty file"
    UNKNOWN = "unknown"
    FOLDER = "folder"
    MISSING = "missing"


LOADABLE = (FormatKind.OURS, FormatKind.OFFICIAL, FormatKind.COMFYUI)
PARTIAL = (FormatKind.RESAMPLER, FormatKind.OFFICIAL_LAYERS, FormatKind.COMFYUI_LAYERS, FormatKind.FOLDER)


@dataclass(frozen=True)
class DetectedFormat:
    """The answer of `detect_format`: the kind, a phrase saying what the path is, and what to do about it."""

    kind: FormatKind
    path: Path
    description: str
    hint: str = ""
    header: Optional[SafetensorsHeader] = None  # for a single safetensors file
    comfy: Optional[ComfyFiles] = None  # for a ComfyUI set
    files: tuple[Path, ...] = field(default_factory=tuple)

    @property
    def loadable(self) -> bool:
        return self.kind in LOADABLE


def split_source(source) -> list[Path]:
    """A path, a sequence of paths, or one string of comma-separated paths (an existing path is never split)."""
    if isinstance(source, (list, tuple)):
        return [Path(s) for s in source]
    text = str(source)
    if "," in text and not Path(text).exists():
        return [Path(p.strip()) for p in text.split(",") if p.strip()]
    return [Path(text)]


def detect_format(source) -> DetectedFormat:
    """Recognise adapter weights (ours, official folder, ComfyUI set) and look-alikes by their content."""
    paths = split_source(source)
    if len(paths) > 1:
        return _detect_list(paths)
    path = paths[0]
    if not path.exists():
        return DetectedFormat(FormatKind.MISSING, path, "a path that does not exist")
    if path.is_dir():
        return _detect_folder(path)
    return _detect_file(path)


def not_adapters_error(found: DetectedFormat, expected: str = "Lynx adapter weights") -> LynxCheckpointError:
    """`LynxCheckpointError` saying what ``found`` is and what was expected (one line)."""
    hint = f" {found.hint}" if found.hint else ""
    what = "a complete set of Lynx adapter weights" if found.kind in PARTIAL else expected
    return LynxCheckpointError(f"{found.path} is {found.description}, not {what}.{hint} {EXPECTED}.")


# ------------------------------------------------------------------------------------------ single files
def _detect_file(path: Path) -> DetectedFormat:
    size = path.stat().st_size
    if size == 0:
        return DetectedFormat(FormatKind.EMPTY, path, "an empty file (0 bytes)", "Copy or download it again.")
    status, header, why = sniff_safetensors(path)
    if status == "ok":
        return _classify_safetensors(path, header)
    if status == "damaged":
        return DetectedFormat(FormatKind.DAMAGED_SAFETENSORS, path, f"a damaged safetensors file: {why}",
                              "Copy or download it again.")
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:4] == b"PK\x03\x04":
        return _detect_zip(path)
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return _detect_pickle(path)
    if head[:4] == b"GGUF":
        return DetectedFormat(FormatKind.GGUF, path, "a GGUF quantized file",
                              "Lynx adapters are converted from their safetensors originals, not from GGUF.")
    return DetectedFormat(FormatKind.UNKNOWN, path,
                          f"not a format lynx-ext knows (not safetensors, a pickle or a torch archive; it starts "
                          f"with bytes {head.hex(' ')})")


def _classify_safetensors(path: Path, header: SafetensorsHeader) -> DetectedFormat:
    keys = list(header.tensors)
    meta = header.metadata
    dtype = header.dtype_tag()

    def found(kind, description, hint=""):
        return DetectedFormat(kind, path, description, hint, header=header)

    if meta.get("format") == FORMAT_NAME:
        detail = ""
        if CONFIG_METADATA_KEY in meta:
            try:
                detail = f" ({describe_config(LynxAdapterConfig.from_json(meta[CONFIG_METADATA_KEY]))}, {dtype})"
            except (ValueError, TypeError):
                detail = " (with an invalid adapter config in its header)"
        return found(FormatKind.OURS, f"a lynx-ext adapter file{detail}")
    pair_hint = ("The adapters need it together with their other files: pass the folder holding them all, or "
                 "list the files separated by commas.")
    if is_resampler_header(header):
        width = header.shape("proj_out.weight")[0]
        return found(FormatKind.RESAMPLER, f"a Lynx Resampler file alone (output width {width}, {dtype}; the official "
                     f"{RESAMPLER_FILE} or a ComfyUI lynx_*_resampler file)", pair_hint)
    if is_layer_header(header):
        return found(FormatKind.COMFYUI_LAYERS, f"a ComfyUI-WanVideoWrapper Lynx layer file "
                     f"({describe_layers(layer_summary(header))})", pair_hint.replace("it together", "the resampler "
                                                                                      "file together"))
    if keys and all(re.match(r"^\d+\.(to_k_ip|to_v_ip|registers)", k) for k in keys):
        bias = any(k.endswith("to_k_ip.bias") for k in keys)
        count = len({k.split(".")[0] for k in keys})
        return found(FormatKind.OFFICIAL_LAYERS, f"the official {IP_FILE} of a lynx_{'full' if bias else 'lite'}/ "
                     f"folder alone ({count} ID-adapter layers, {dtype})",
                     f"Pass the folder that holds it with {RESAMPLER_FILE}.")
    if keys and all(re.match(r"^\d+\.(to_k_ref|to_v_ref)", k) for k in keys):
        return found(FormatKind.OFFICIAL_LAYERS, f"the official {REF_FILE} of a lynx_full/ folder alone ({dtype})",
                     f"Pass the folder that holds it with {RESAMPLER_FILE} and {IP_FILE}.")
    if keys and all(k.split(".")[0] in ("resampler", "id_layers", "ref_layers") for k in keys):
        return found(FormatKind.OTHER_SAFETENSORS, "a safetensors file with lynx-ext adapter keys but without the "
                     "lynx-ext header (its adapter config is missing)",
                     "Save adapters with LynxAdapters.save or `diffsynth-ext convert`.")
    if any("lora_" in k or ".lora." in k for k in keys):
        return found(FormatKind.OTHER_SAFETENSORS, f"a LoRA ({len(keys)} tensors)", "Pass LoRAs with --lora.")
    if any("patch_embedding" in k for k in keys) or any(re.search(r"blocks\.\d+\.self_attn\.q\.", k) for k in keys):
        return found(FormatKind.OTHER_SAFETENSORS, f"Wan DiT (base model) weights ({len(keys)} tensors)",
                     "Pass base-model files with --model-paths.")
    shown = ", ".join(f"'{k}'" for k in keys[:3]) or "none"
    return found(FormatKind.OTHER_SAFETENSORS, f"a safetensors file of {len(keys)} tensor{'s' * (len(keys) != 1)} that "
                 f"are not Lynx adapter weights (keys such as {shown})")


def _pickle_strings(data: bytes, max_pickles: int = 6) -> tuple[set[str], list]:
    """String arguments and the first integer of each pickle in ``data``, read from the opcodes only."""
    strings, firsts, pos = set(), [], 0
    for _ in range(max_pickles):
        if pos >= len(data):
            break
        first, end = None, None
        try:
            for op, arg, at in pickletools.genops(data[pos:]):
                if isinstance(arg, str):
                    strings.add(arg)
                if first is None and isinstance(arg, int) and op.name in ("LONG1", "LONG4", "BININT", "LONG"):
                    first = arg
                if op.name == "STOP":
                    end = pos + at + 1
                    break
        except Exception:  # noqa: BLE001 - a cut or unusual stream: keep what was read
            break
        firsts.append(first)
        if end is None:
            break
        pos = end
    return strings, firsts


def _lightning(strings: set[str]) -> bool:
    return "pytorch-lightning_version" in strings or {"optimizer_states", "state_dict"} <= strings


LIGHTNING_HINT = ("It holds a training state, read by `diffsynth-ext fit --ckpt_path` to resume; the run's "
                  "adapters are exported in its version folder, beside checkpoints/, as "
                  "adapters/last/lynx_adapters.safetensors.")


def _detect_zip(path: Path) -> DetectedFormat:
    try:
        with zipfile.ZipFile(path) as z:
            pkl = [n for n in z.namelist() if n.endswith("data.pkl")]
            if not pkl:
                return DetectedFormat(FormatKind.UNKNOWN, path, "a zip archive (not a torch.save file)")
            data = z.read(pkl[0])
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        return DetectedFormat(FormatKind.UNKNOWN, path, f"a damaged zip archive ({err})")
    strings, _ = _pickle_strings(data, max_pickles=1)
    if _lightning(strings):
        return DetectedFormat(FormatKind.LIGHTNING, path, "a PyTorch Lightning checkpoint (a pickled training "
                              "state, which lynx-ext does not unpickle)", LIGHTNING_HINT)
    return DetectedFormat(FormatKind.TORCH_ARCHIVE, path, "a torch.save file (a pickle in a zip archive, which "
                          "lynx-ext does not unpickle)", "Adapter weights are read from safetensors only.")


def _detect_pickle(path: Path) -> DetectedFormat:
    with open(path, "rb") as f:
        data = f.read(64 << 20)
    strings, firsts = _pickle_strings(data)
    if _lightning(strings):
        return DetectedFormat(FormatKind.LIGHTNING, path, "a PyTorch Lightning checkpoint (a pickled training "
                              "state, which lynx-ext does not unpickle)", LIGHTNING_HINT)
    what = "a legacy torch.save file" if firsts[:1] == [TORCH_LEGACY_MAGIC] else "a Python pickle"
    return DetectedFormat(FormatKind.PICKLE, path, f"{what} (which lynx-ext does not unpickle)",
                          "Adapter weights are read from safetensors only.")


# ----------------------------------------------------------------------------------- folders and lists
def _safetensors_headers(paths: Sequence[Path]) -> dict[Path, SafetensorsHeader]:
    headers = {}
    for p in paths:
        if p.is_file() and p.stat().st_size:
            status, header, _ = sniff_safetensors(p)
            if status == "ok":
                headers[p] = header
    return headers


def _detect_folder(path: Path) -> DetectedFormat:
    if is_official_folder(path):
        names = [n for n in (RESAMPLER_FILE, IP_FILE, REF_FILE) if (path / n).is_file()]
        return DetectedFormat(FormatKind.OFFICIAL, path, f"an official Lynx adapter folder ({', '.join(names)})",
                              files=tuple(path / n for n in names))
    candidates = sorted(p for p in path.iterdir() if p.suffix == ".safetensors")
    headers = _safetensors_headers(candidates)
    resamplers, layers = comfyui_candidates(list(headers), headers)
    if layers:
        try:
            comfy = pair_files(resamplers, layers, str(path))
        except UnpairedFiles as err:
            return DetectedFormat(FormatKind.FOLDER, path, f"a folder of ComfyUI Lynx files that {err.problem}",
                                  err.todo)
        return DetectedFormat(FormatKind.COMFYUI, path, "ComfyUI-WanVideoWrapper Lynx files ("
                              + " + ".join(p.name for p in comfy.paths) + ")", comfy=comfy, files=comfy.paths)
    if (path / RESAMPLER_FILE).is_file() or (path / IP_FILE).is_file():
        missing = [n for n in (RESAMPLER_FILE, IP_FILE) if not (path / n).is_file()]
        return DetectedFormat(FormatKind.FOLDER, path, f"an incomplete official Lynx folder (no {', '.join(missing)})",
                              "Copy or download the whole lynx_full/ or lynx_lite/ folder.")
    ours = [p for p, h in headers.items() if h.metadata.get("format") == FORMAT_NAME]
    if ours:
        return DetectedFormat(FormatKind.FOLDER, path, "a folder holding lynx-ext adapter files",
                              f"Pass the file itself, e.g. {ours[0]}.")
    shown = ", ".join(p.name for p in sorted(path.iterdir())[:4]) or "nothing"
    return DetectedFormat(FormatKind.FOLDER, path, f"a folder without Lynx adapter files (it holds {shown})")


def _detect_list(paths: list[Path]) -> DetectedFormat:
    joined = Path(",".join(str(p) for p in paths))
    headers = {}
    for p in paths:
        found = detect_format(p)
        if found.loadable:
            return DetectedFormat(FormatKind.FOLDER, joined, f"a list that mixes {p} ({found.description}) with "
                                  "other files", "Pass it alone.")
        if found.kind not in (FormatKind.RESAMPLER, FormatKind.COMFYUI_LAYERS):
            return DetectedFormat(found.kind, p, f"{found.description}, listed as part of a ComfyUI Lynx set",
                                  found.hint)
        headers[p] = found.header
    resamplers, layers = comfyui_candidates(paths, headers)
    try:
        comfy = pair_files(resamplers, layers, "the listed files")
    except UnpairedFiles as err:
        return DetectedFormat(FormatKind.FOLDER, joined, f"a list of ComfyUI Lynx files that {err.problem}",
                              err.todo)
    unused = [p for p in resamplers if p != comfy.resampler]
    if unused:
        return DetectedFormat(FormatKind.FOLDER, joined, "ComfyUI Lynx files with more than one resampler",
                              f"Keep one of {', '.join(p.name for p in resamplers)}.")
    return DetectedFormat(FormatKind.COMFYUI, joined, "ComfyUI-WanVideoWrapper Lynx files ("
                          + " + ".join(p.name for p in comfy.paths) + ")", comfy=comfy, files=comfy.paths)
