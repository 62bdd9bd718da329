"""Our one-file layout: one ``.safetensors`` with our keys and the adapter config in its header.

Keys: ``resampler.*`` (official Resampler names), ``id_layers.{block}.to_{k,v}_ip.*``, ``id_layers.{block}.registers``,
``ref_layers.{block}.to_{k,v}_ref.*``. Header metadata: ``format`` = ``lynx_ext.adapters/1``, ``lynx_ext_config``
(the `LynxAdapterConfig` as JSON) and any run metadata (stage, step, ...).

`LynxAdapters.save` / `LynxAdapters.load` call this module, so it never imports `LynxAdapters` (it takes and returns
tensors, configs and metadata).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional

import torch

from ..config import LynxAdapterConfig
from .detect import FormatKind, detect_format, not_adapters_error
from .errors import LynxCheckpointError
from .safetensors_file import cast, read_tensors, write_tensors
from .signatures import CONFIG_METADATA_KEY, FORMAT_NAME, config_from_metadata

if TYPE_CHECKING:
    from ..lynx_adapters import LynxAdapters

RESERVED_METADATA = ("format", CONFIG_METADATA_KEY, "lynx_ext_layout")


def header_metadata(adapters: LynxAdapters, metadata: Optional[Mapping] = None) -> dict[str, str]:
    """The run metadata to write: the adapters' own (from the file they came from), updated by ``metadata``."""
    meta = {k: v for k, v in (getattr(adapters, "metadata", None) or {}).items() if k not in RESERVED_METADATA}
    for k, v in (metadata or {}).items():
        meta[str(k)] = v if isinstance(v, str) else json.dumps(v)
    meta[CONFIG_METADATA_KEY] = adapters.config.to_json()
    return meta


def user_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in metadata.items() if k not in RESERVED_METADATA}


def write_ours(adapters: LynxAdapters, path: str | os.PathLike, metadata: Optional[Mapping] = None,
               overwrite: bool = True, dtype: Optional[torch.dtype] = None) -> Path:
    """Write our one-file layout atomically (``dtype``: cast every tensor, else keep each tensor's dtype)."""
    meta = {"format": FORMAT_NAME, **header_metadata(adapters, metadata)}
    return write_tensors(path, cast(adapters.state_dict(), dtype), meta, overwrite=overwrite)


def read_ours_file(path: str | os.PathLike) -> tuple[LynxAdapterConfig, dict[str, torch.Tensor], dict[str, str]]:
    """The config, tensors (in their stored dtype) and run metadata of a file written by `write_ours`;
    `LynxAdapters.load` builds the adapters from them (strictly: every key, every shape)."""
    path = Path(path)
    found = detect_format(path)
    if found.kind is not FormatKind.OURS:
        if found.kind is FormatKind.MISSING:
            raise FileNotFoundError(f"Adapter file {path} does not exist.")
        raise not_adapters_error(found, expected="a lynx-ext adapter file")
    meta = found.header.metadata
    config = config_from_metadata([meta], str(path))
    if config is None:
        raise LynxCheckpointError(f"{path}: its header has no lynx-ext adapter config ('{CONFIG_METADATA_KEY}').")
    return config, read_tensors(path), user_metadata(meta)
