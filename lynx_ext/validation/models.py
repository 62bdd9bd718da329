"""What the models of a run are, read before they load (file headers only): the base DiT's width and depth, the
adapters' variant and sizes, the face embedder's output size; and the checks that they fit each other."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ..errors import LynxCompatibilityError, LynxMissingFileError

OFFICIAL_WAN_14B = (5120, 40)  # Wan2.1-T2V-14B: hidden size, blocks (the base of the official adapters)
EMBEDDER_DIMS = {"facexlib": 512, "insightface": 512, "onnx": 512, "dlib": 128}
DIT_KEY = re.compile(r"^(?:model\.)?blocks\.(\d+)\.(?:self_attn\.q|attn1\.to_q)\.weight$")


class EmbedderMismatchError(LynxCompatibilityError):
    """The face embedder's output size does not match the adapters' resampler input."""


@dataclass(frozen=True)
class AdapterFacts:
    """What a set of adapter weights is, from its headers (None: not known without loading)."""

    label: str
    variant: Optional[str] = None
    embedding_dim: Optional[int] = None
    dim: Optional[int] = None
    num_blocks: Optional[int] = None


def base_model_shape(preset: str, model_paths: Sequence = ()) -> Optional[tuple[int, int]]:
    """(hidden size, blocks) of the base DiT: from the headers of ``model_paths`` (safetensors), else the preset's;
    None when unknown (e.g. ``.pth`` files)."""
    from ..adapters.formats.safetensors_file import sniff_safetensors

    if model_paths:
        dim, blocks = None, -1
        files = [f for entry in model_paths for f in (entry if isinstance(entry, (list, tuple)) else [entry])]
        for path in files:  # an inner list = the shards of one model
            path = Path(path)
            if not path.is_file():
                raise LynxMissingFileError(f"Base model file {path} does not exist. Check --model-paths.")
            status, header, _ = sniff_safetensors(path)
            for key, info in (header.tensors.items() if status == "ok" else ()):
                match = DIT_KEY.match(key)
                if match:
                    blocks = max(blocks, int(match.group(1)))
                    dim = int(info["shape"][0])
        return (dim, blocks + 1) if dim is not None else None
    if preset == "tiny":
        from ..tiny.wan import DEFAULT_DIT

        return int(DEFAULT_DIT["dim"]), int(DEFAULT_DIT["num_layers"])
    if preset == "wan2.1-t2v-14b":
        return OFFICIAL_WAN_14B
    return None


def adapter_facts(source, revision: Optional[str] = None) -> Optional[AdapterFacts]:
    """The facts of ``source`` (a path, ComfyUI files, ``hub:full``/``hub:lite``, or `LynxAdapters`), read from
    headers only. A missing path, or a file that is not adapter weights, is an error saying what it is."""
    if source is None:
        return None
    config = getattr(source, "config", None)
    if config is not None:
        return _from_config("the given adapters", config)
    text = str(source)
    if text.startswith("hub:"):
        from ..models.hub import parse_hub

        variant, revision = parse_hub(text, revision)
        return AdapterFacts(f"the official lynx_{variant} adapters", variant, 512, *OFFICIAL_WAN_14B)
    from ..adapters.config import LynxAdapterConfig
    from ..adapters.formats.detect import FormatKind, detect_format, not_adapters_error
    from ..adapters.formats.signatures import CONFIG_METADATA_KEY
    from ..adapters.formats.safetensors_file import sniff_safetensors

    found = detect_format(source)
    if found.kind is FormatKind.MISSING:
        raise LynxMissingFileError(f"Adapter weights not found at {found.path}. Pass a lynx-ext .safetensors file, an "
                            "official lynx_full/ or lynx_lite/ folder, ComfyUI Lynx files (their folder), or "
                            "hub:full / hub:lite.")
    if not found.loadable:
        raise not_adapters_error(found)
    label = f"{text} ({found.description})"
    if found.kind is FormatKind.OURS:
        try:
            return _from_config(label, LynxAdapterConfig.from_json(found.header.metadata[CONFIG_METADATA_KEY]))
        except (KeyError, ValueError, TypeError):
            return AdapterFacts(label)
    resampler = found.comfy.resampler if found.comfy is not None else found.files[0]
    status, header, _ = sniff_safetensors(Path(resampler))
    shape = header.shape("proj_in.weight") if status == "ok" and "proj_in.weight" in header.tensors else None
    variant = None
    if found.kind is FormatKind.OFFICIAL:
        variant = "full" if len(found.files) == 3 else "lite"
    return AdapterFacts(label, variant, int(shape[1]) if shape else None)


def _from_config(label: str, config) -> AdapterFacts:
    return AdapterFacts(label, config.variant, int(config.resampler.embedding_dim), int(config.dim),
                        int(config.num_blocks))


def embedder_dim(embedder: str) -> Optional[int]:
    """Output size of a named embedder (a ``.pth`` file is facexlib's IR-SE50: 512); None when unknown."""
    text = str(embedder)
    return 512 if text.endswith(".pth") else EMBEDDER_DIMS.get(text)


def check_embedder_fits(embedder: str, got: Optional[int], want: Optional[int], adapters: str) -> None:
    """Refuse an embedder whose size is not the adapters' input size, naming both and what to use."""
    if got is None or want is None or got == want:
        return
    names = [n for n, d in EMBEDDER_DIMS.items() if d == want and n != "onnx"]
    use = (f"an embedder of {want}-d: {' or '.join(names)}" if names else f"an embedder of {want}-d")
    raise EmbedderMismatchError(
        f"The face embedder '{embedder}' gives {got}-d embeddings but {adapters} take {want}-d embeddings. "
        f"Use {use} (facexlib is the official one for the Lynx adapters), or adapters trained on {got}-d "
        "embeddings.")


def check_adapters_fit(facts: Optional[AdapterFacts], variant: Optional[str], shape: Optional[tuple[int, int]],
                       base: str) -> None:
    """Refuse adapters of another variant, or made for a DiT of another width or depth, before anything loads."""
    if facts is None:
        return
    if variant is not None and facts.variant is not None and facts.variant != variant:
        raise LynxCompatibilityError(f"{facts.label} are {facts.variant} adapters but the variant is '{variant}'. "
                                     f"Pass --variant {facts.variant}, or adapters of the {variant} variant.")
    if shape is not None and facts.dim is not None and (facts.dim, facts.num_blocks) != tuple(shape):
        raise LynxCompatibilityError(
            f"{facts.label} were made for a DiT with dim {facts.dim} and {facts.num_blocks} blocks, but the base "
            f"model {base} has dim {shape[0]} and {shape[1]} blocks. Use adapters trained on this base model.")
