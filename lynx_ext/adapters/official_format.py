"""The official ``lynx_full/`` / ``lynx_lite/`` checkpoint layout: read, infer the shape, convert, write.

Official files: ``resampler.safetensors`` (Resampler keys), ``ip_layers.safetensors`` (``{j}.to_k_ip.*``,
``{j}.to_v_ip.*``, optional ``{j}.registers``) and, for full, ``ref_layers.safetensors`` (``{i}.to_k_ref.*``,
``{i}.to_v_ref.*``). Full: ``j`` is the block index; lite: ``j`` maps to block ``2j``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import load_file, save_file

from ..atomic_write import atomic_path
from .checkpoint_check import LynxCheckpointError, check_state_dict
from .config import LynxAdapterConfig, ResamplerConfig, Variant
from .lynx_adapters import LynxAdapters

RESAMPLER_FILE = "resampler.safetensors"
IP_FILE = "ip_layers.safetensors"
REF_FILE = "ref_layers.safetensors"
RESAMPLER_CONFIG_FILE = "resampler_config.json"
OFFICIAL_DIM_HEAD = 64  # every official Resampler uses dim_head=64


def is_official_folder(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / RESAMPLER_FILE).is_file() and (path / IP_FILE).is_file()


def read_official_folder(folder: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Adapter folder {folder} does not exist.")
    states = {}
    for name in (RESAMPLER_FILE, IP_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(
                f"{folder} has no {name}. An official Lynx adapter folder (lynx_full/ or lynx_lite/) holds "
                f"{RESAMPLER_FILE}, {IP_FILE} and, for the full model, {REF_FILE}."
            )
        states[name] = load_file(str(folder / name))
    if (folder / REF_FILE).is_file():
        states[REF_FILE] = load_file(str(folder / REF_FILE))
    return states


def _entries(state: dict[str, torch.Tensor], source: str) -> list[int]:
    idx = set()
    for key in state:
        m = re.match(r"^(\d+)\.", key)
        if not m:
            raise LynxCheckpointError(f"{source}: unexpected key '{key}' (keys start with a layer index, e.g. '0.').")
        idx.add(int(m.group(1)))
    entries = sorted(idx)
    if entries != list(range(len(entries))):
        raise LynxCheckpointError(f"{source}: layer indices {entries} are not contiguous from 0.")
    return entries


def infer_resampler_config(state: dict[str, torch.Tensor], json_path: Optional[Path] = None) -> ResamplerConfig:
    """Read the Resampler shape from its tensors (heads from ``resampler_config.json`` if present)."""
    for key in ("latents", "proj_in.weight", "proj_out.weight", "layers.0.0.to_q.weight", "layers.0.1.1.weight"):
        if key not in state:
            raise LynxCheckpointError(f"{RESAMPLER_FILE}: missing key '{key}'.")
    if json_path is not None and json_path.is_file():
        cfg = json.loads(json_path.read_text())
        known = {k: cfg[k] for k in ResamplerConfig.__dataclass_fields__ if k in cfg}
        return ResamplerConfig(**known)
    _, num_queries, dim = state["latents"].shape
    inner = state["layers.0.0.to_q.weight"].shape[0]
    depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"^layers\.(\d+)\.", k)))
    if inner % OFFICIAL_DIM_HEAD:
        raise LynxCheckpointError(
            f"{RESAMPLER_FILE}: attention width {inner} is not a multiple of {OFFICIAL_DIM_HEAD}; put a "
            f"{RESAMPLER_CONFIG_FILE} with 'heads' and 'dim_head' next to it."
        )
    return ResamplerConfig(
        dim=dim, depth=depth, dim_head=OFFICIAL_DIM_HEAD, heads=inner // OFFICIAL_DIM_HEAD,
        num_queries=num_queries, embedding_dim=state["proj_in.weight"].shape[1],
        output_dim=state["proj_out.weight"].shape[0], ff_mult=state["layers.0.1.1.weight"].shape[0] // dim,
    )


def detect_variant(states: dict[str, dict[str, torch.Tensor]]) -> Variant:
    has_bias = "0.to_k_ip.bias" in states[IP_FILE]
    return "full" if (REF_FILE in states or has_bias) else "lite"


def infer_official_config(
    states: dict[str, dict[str, torch.Tensor]],
    dim: int,
    num_blocks: int,
    variant: Optional[Variant] = None,
    resampler: Optional[ResamplerConfig] = None,
) -> tuple[LynxAdapterConfig, list[int]]:
    """Work out the adapter layout from the files and the DiT it goes into.

    Returns the config and the block index of each ``ip_layers`` entry.
    """
    found = detect_variant(states)
    if variant is not None and variant != found:
        what = "lite (no ref_layers, no ID biases)" if found == "lite" else "full (ref_layers and/or ID biases)"
        raise LynxCheckpointError(
            f"The adapter checkpoint is a {what} checkpoint, but variant '{variant}' was requested. "
            f"Use --variant {found} (Python: variant='{found}') or point at the lynx_{variant}/ folder."
        )
    variant = found
    ip = states[IP_FILE]
    entries = _entries(ip, IP_FILE)
    if "0.to_k_ip.weight" not in ip:
        raise LynxCheckpointError(f"{IP_FILE}: missing key '0.to_k_ip.weight'.")
    out_dim, id_dim = ip["0.to_k_ip.weight"].shape
    if out_dim != dim:
        raise LynxCheckpointError(
            f"{IP_FILE}: key '0.to_k_ip.weight' has shape {list(ip['0.to_k_ip.weight'].shape)}, expected "
            f"[{dim}, C] for a DiT of dim {dim}. The adapters were made for another base model size."
        )
    if len(entries) == num_blocks:
        id_blocks = list(range(num_blocks))
    elif variant == "lite" and len(entries) == len(range(0, num_blocks, 2)):
        id_blocks = list(range(0, num_blocks, 2))
    else:
        raise LynxCheckpointError(
            f"{IP_FILE} has {len(entries)} layers, which fits neither every block ({num_blocks}) nor every "
            f"second block ({len(range(0, num_blocks, 2))}) of this {num_blocks}-block DiT."
        )
    num_registers = ip["0.registers"].shape[1] if "0.registers" in ip else 0
    if resampler is None:
        resampler = infer_resampler_config(states[RESAMPLER_FILE])
    ref_blocks: list[int] = []
    if REF_FILE in states:
        ref_entries = _entries(states[REF_FILE], REF_FILE)
        if len(ref_entries) != num_blocks:
            raise LynxCheckpointError(
                f"{REF_FILE} has {len(ref_entries)} layers but the DiT has {num_blocks} blocks."
            )
        ref_blocks = list(range(num_blocks))
    config = LynxAdapterConfig(
        variant=variant, dim=dim, num_blocks=num_blocks, id_blocks=id_blocks, id_dim=id_dim,
        id_bias="0.to_k_ip.bias" in ip, num_registers=num_registers,
        id_key_norm="shared" if variant == "full" else "rms", ref_blocks=ref_blocks, resampler=resampler,
    )
    return config, id_blocks


def official_to_ours(states: dict[str, dict[str, torch.Tensor]], id_blocks: list[int]) -> dict[str, torch.Tensor]:
    out = {f"resampler.{k}": v for k, v in states[RESAMPLER_FILE].items()}
    for key, v in states[IP_FILE].items():
        j, rest = key.split(".", 1)
        out[f"id_layers.{id_blocks[int(j)]}.{rest}"] = v
    for key, v in states.get(REF_FILE, {}).items():
        i, rest = key.split(".", 1)
        out[f"ref_layers.{i}.{rest}"] = v
    return out


def load_official_folder(
    folder: str | Path,
    dim: int,
    num_blocks: int,
    variant: Optional[Variant] = None,
    resampler: Optional[ResamplerConfig] = None,
) -> LynxAdapters:
    """Load an official ``lynx_full/`` or ``lynx_lite/`` folder unchanged into `LynxAdapters`."""
    folder = Path(folder)
    states = read_official_folder(folder)
    if resampler is None:
        resampler = infer_resampler_config(states[RESAMPLER_FILE], folder / RESAMPLER_CONFIG_FILE)
    return load_official_states(states, dim, num_blocks, variant, resampler, source=str(folder))


def load_official_states(
    states: dict[str, dict[str, torch.Tensor]],
    dim: int,
    num_blocks: int,
    variant: Optional[Variant] = None,
    resampler: Optional[ResamplerConfig] = None,
    source: str = "official state dicts",
) -> LynxAdapters:
    """The official state dicts (``{file name: state dict}``) -> `LynxAdapters`, strictly checked."""
    config, id_blocks = infer_official_config(states, dim, num_blocks, variant, resampler)
    with torch.device("meta"):
        adapters = LynxAdapters(config, init="random")
    ours = official_to_ours(states, id_blocks)
    try:
        check_state_dict({k: v.shape for k, v in adapters.state_dict().items()}, ours, source)
    except LynxCheckpointError as err:
        raise LynxCheckpointError(_official_key_message(str(err), id_blocks)) from None
    adapters.load_state_dict(ours, strict=True, assign=True)
    return adapters


def _official_key_message(message: str, id_blocks: list[int]) -> str:
    """Translate our key names in an error back into the official file/key names."""
    def repl(m: re.Match) -> str:
        kind, block, rest = m.group(1), int(m.group(2)), m.group(3)
        if kind == "id_layers":
            return f"{IP_FILE}:{id_blocks.index(block) if block in id_blocks else block}.{rest}"
        return f"{REF_FILE}:{block}.{rest}"

    message = re.sub(r"'(id_layers|ref_layers)\.(\d+)\.([\w.]+)'", lambda m: "'" + repl(m) + "'", message)
    return re.sub(r"'resampler\.([\w.]+)'", lambda m: f"'{RESAMPLER_FILE}:{m.group(1)}'", message)


def save_official_folder(adapters: LynxAdapters, folder: str | Path, overwrite: bool = True) -> Path:
    """Write the official layout (for use with the official code or other tools), each file atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().contiguous().cpu() for k, v in adapters.state_dict().items()}
    files = {RESAMPLER_FILE: {k[len("resampler."):]: v for k, v in sd.items() if k.startswith("resampler.")}}
    id_blocks = adapters.config.id_blocks
    files[IP_FILE] = {}
    for k, v in sd.items():
        if k.startswith("id_layers."):
            _, b, rest = k.split(".", 2)
            files[IP_FILE][f"{id_blocks.index(int(b))}.{rest}"] = v
    if adapters.config.ref_blocks:
        files[REF_FILE] = {k[len("ref_layers."):]: v for k, v in sd.items() if k.startswith("ref_layers.")}
    for name, tensors in files.items():
        with atomic_path(folder / name, overwrite=overwrite) as tmp:
            save_file(tensors, str(tmp))
    from dataclasses import asdict

    with atomic_path(folder / RESAMPLER_CONFIG_FILE, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(asdict(adapters.config.resampler), indent=2))
    return folder
