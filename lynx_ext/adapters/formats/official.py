"""The official ``lynx_full/`` / ``lynx_lite/`` folder layout (HF ``ByteDance/lynx``): read and write.

Files: ``resampler.safetensors`` (Resampler keys), ``ip_layers.safetensors`` (``{j}.to_k_ip.*``, ``{j}.to_v_ip.*``,
optional ``{j}.registers``) and, for full, ``ref_layers.safetensors`` (``{i}.to_k_ref.*``, ``{i}.to_v_ref.*``).
Entry ``j`` of ``ip_layers`` is block ``j`` when there is one entry per block, block ``2j`` otherwise (lite).
We also write ``resampler_config.json`` and our config in each file's header; the official code ignores both.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Mapping, Optional

import torch

from ...atomic_write import atomic_folder
from ..config import LynxAdapterConfig, ResamplerConfig, Variant
from ..lynx_adapters import LynxAdapters
from .errors import LynxCheckpointError
from .layout import check_id_width, check_variant, infer_config, infer_resampler_config
from .ours import header_metadata, user_metadata
from .safetensors_file import cast, read_tensors, sniff_safetensors, write_tensors
from .signatures import (
    IP_FILE,
    REF_FILE,
    RESAMPLER_CONFIG_FILE,
    RESAMPLER_FILE,
    config_from_metadata,
)

LAYOUT_TAG = "official"


def read_official_states(folder: Path) -> tuple[dict[str, dict[str, torch.Tensor]], list[dict[str, str]]]:
    """``{file name: state dict}`` and the files' header metadata; damaged files are named."""
    states, metas = {}, []
    for name in (RESAMPLER_FILE, IP_FILE, REF_FILE):
        path = folder / name
        if not path.is_file():
            if name == REF_FILE:
                continue
            raise FileNotFoundError(
                f"{folder} has no {name}. An official Lynx adapter folder (lynx_full/ or lynx_lite/) holds "
                f"{RESAMPLER_FILE}, {IP_FILE} and, for the full model, {REF_FILE}."
            )
        status, header, why = sniff_safetensors(path)
        if status != "ok":
            raise LynxCheckpointError(f"{path}: " + (why if status == "damaged" else "is not a safetensors file") +
                                      "; copy or download the folder again.")
        states[name] = read_tensors(path)
        metas.append(header.metadata)
    return states, metas


def _entries(state: Mapping[str, torch.Tensor], source: str) -> int:
    """Number of layer entries (keys ``{j}.…`` with j contiguous from 0)."""
    idx = set()
    for key in state:
        m = re.match(r"^(\d+)\.", key)
        if not m:
            raise LynxCheckpointError(f"{source}: unexpected key '{key}' (keys start with a layer index, e.g. '0.').")
        idx.add(int(m.group(1)))
    entries = sorted(idx)
    if entries != list(range(len(entries))):
        raise LynxCheckpointError(f"{source}: layer indices {entries} are not contiguous from 0.")
    return len(entries)


def ip_blocks(states: Mapping[str, Mapping[str, torch.Tensor]], num_blocks: Optional[int],
              config: Optional[LynxAdapterConfig]) -> list[int]:
    """The block of each ``ip_layers`` entry: from our config when the files carry it, else from the counts."""
    count = _entries(states[IP_FILE], IP_FILE)
    if config is not None:
        if len(config.id_blocks) != count:
            raise LynxCheckpointError(f"{IP_FILE} has {count} layers but its lynx-ext metadata lists "
                                      f"{len(config.id_blocks)} ID blocks.")
        return list(config.id_blocks)
    lite = "0.to_k_ip.bias" not in states[IP_FILE]
    if num_blocks is None:
        return list(range(0, 2 * count, 2)) if lite else list(range(count))
    if count == num_blocks:
        return list(range(num_blocks))
    if lite and count == len(range(0, num_blocks, 2)):
        return list(range(0, num_blocks, 2))
    raise LynxCheckpointError(
        f"{IP_FILE} has {count} layers, which fits neither every block ({num_blocks}) nor every second block "
        f"({len(range(0, num_blocks, 2))}) of this {num_blocks}-block DiT."
    )


def official_to_ours(states: Mapping[str, Mapping[str, torch.Tensor]], id_blocks: list[int],
                     num_blocks: Optional[int]) -> dict[str, torch.Tensor]:
    out = {f"resampler.{k}": v for k, v in states[RESAMPLER_FILE].items()}
    for key, v in states[IP_FILE].items():
        j, rest = key.split(".", 1)
        out[f"id_layers.{id_blocks[int(j)]}.{rest}"] = v
    if REF_FILE in states:
        count = _entries(states[REF_FILE], REF_FILE)
        if num_blocks is not None and count != num_blocks:
            raise LynxCheckpointError(f"{REF_FILE} has {count} layers but the DiT has {num_blocks} blocks.")
        for key, v in states[REF_FILE].items():
            i, rest = key.split(".", 1)
            out[f"ref_layers.{i}.{rest}"] = v
    return out


def official_key_namer(id_blocks: list[int]):
    """Our key -> the official file and key, for error messages."""
    def name(key: str) -> str:
        m = re.match(r"^(id_layers|ref_layers)\.(\d+)\.(.+)$", key)
        if m and m.group(1) == "id_layers":
            block = int(m.group(2))
            return f"{IP_FILE}:{id_blocks.index(block) if block in id_blocks else block}.{m.group(3)}"
        if m:
            return f"{REF_FILE}:{m.group(2)}.{m.group(3)}"
        return f"{RESAMPLER_FILE}:{key[len('resampler.'):]}" if key.startswith("resampler.") else key

    return name


def load_official_states(
    states: Mapping[str, Mapping[str, torch.Tensor]],
    dim: Optional[int] = None,
    num_blocks: Optional[int] = None,
    variant: Optional[Variant] = None,
    resampler: Optional[ResamplerConfig] = None,
    source: str = "official state dicts",
    metadatas: Optional[list[Mapping[str, str]]] = None,
) -> LynxAdapters:
    """The official state dicts (``{file name: state dict}``) -> `LynxAdapters`, strictly checked.

    ``dim`` / ``num_blocks`` (the DiT's) are checked when given, else read off the tensors.
    """
    if "0.to_k_ip.weight" in states[IP_FILE]:
        check_id_width(states[IP_FILE]["0.to_k_ip.weight"], dim, source, f"{IP_FILE}:0.to_k_ip.weight")
    config = config_from_metadata(list(metadatas or []), source)
    if config is not None and (dim not in (None, config.dim) or num_blocks not in (None, config.num_blocks)):
        config = None  # made for another DiT: infer, so the error names the offending key
    id_blocks = ip_blocks(states, num_blocks, config)
    ours = official_to_ours(states, id_blocks, num_blocks)
    name = official_key_namer(id_blocks)
    if config is None:
        config = infer_config(ours, source, name, dim=dim, num_blocks=num_blocks, resampler=resampler)
    check_variant(config, variant, source)
    return LynxAdapters.from_state(config, ours, source, name)


def load_official_folder(
    folder: str | Path,
    dim: Optional[int] = None,
    num_blocks: Optional[int] = None,
    variant: Optional[Variant] = None,
    resampler: Optional[ResamplerConfig] = None,
) -> LynxAdapters:
    """Load an official ``lynx_full/`` or ``lynx_lite/`` folder unchanged into `LynxAdapters`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Adapter folder {folder} does not exist.")
    states, metas = read_official_states(folder)
    json_path = folder / RESAMPLER_CONFIG_FILE
    if resampler is None and json_path.is_file():
        try:
            heads = json.loads(json_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise LynxCheckpointError(f"{json_path} is not valid JSON ({err}).") from None
        resampler = infer_resampler_config(states[RESAMPLER_FILE], str(json_path), heads=heads)
    adapters = load_official_states(states, dim, num_blocks, variant, resampler, str(folder), metas)
    adapters.metadata = user_metadata(metas[0])
    return adapters


def official_representable(config: LynxAdapterConfig) -> None:
    """The official layout stores layer counts, not block indices: refuse what it cannot say."""
    n = config.num_blocks
    if config.id_blocks not in (list(range(n)), list(range(0, n, 2))):
        raise LynxCheckpointError(
            f"The official layout holds ID layers on every block or every second block; these adapters have them "
            f"on blocks {config.id_blocks} of {n}. Save them in the lynx-ext format (or the ComfyUI layout) instead."
        )
    if config.ref_blocks not in ([], list(range(n))):
        raise LynxCheckpointError(
            f"The official layout holds Ref layers on every block; these adapters have them on blocks "
            f"{config.ref_blocks} of {n}. Save them in the lynx-ext format (or the ComfyUI layout) instead."
        )


def official_files(adapters: LynxAdapters, dtype: Optional[torch.dtype] = None) -> dict[str, dict[str, torch.Tensor]]:
    """``{file name: tensors}`` of the official layout."""
    official_representable(adapters.config)
    sd = cast(adapters.state_dict(), dtype)
    id_blocks = adapters.config.id_blocks
    files = {RESAMPLER_FILE: {k[len("resampler."):]: v for k, v in sd.items() if k.startswith("resampler.")},
             IP_FILE: {}}
    for k, v in sd.items():
        if k.startswith("id_layers."):
            _, b, rest = k.split(".", 2)
            files[IP_FILE][f"{id_blocks.index(int(b))}.{rest}"] = v
    if adapters.config.ref_blocks:
        files[REF_FILE] = {k[len("ref_layers."):]: v for k, v in sd.items() if k.startswith("ref_layers.")}
    return files


def save_official_folder(adapters: LynxAdapters, folder: str | Path, overwrite: bool = True,
                         dtype: Optional[torch.dtype] = None, metadata: Optional[Mapping] = None) -> Path:
    """Write the official layout (for the official code or other tools); the files appear together.

    Without ``overwrite`` a folder that already holds any official file is refused. With it, a
    ``ref_layers.safetensors`` left from other adapters is removed, so the folder never mixes two sets.
    """
    folder = Path(folder)
    files = official_files(adapters, dtype)
    meta = {**header_metadata(adapters, metadata), "lynx_ext_layout": LAYOUT_TAG}
    names = list(files) + [RESAMPLER_CONFIG_FILE]
    stale = [] if REF_FILE in files else [REF_FILE]
    with atomic_folder(folder, names, overwrite=overwrite, remove=stale) as tmp:
        for name, tensors in files.items():
            write_tensors(tmp / name, tensors, meta)
        (tmp / RESAMPLER_CONFIG_FILE).write_text(json.dumps(asdict(adapters.config.resampler), indent=2))
    return folder
