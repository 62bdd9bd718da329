"""What identifies each adapter layout, below every reader and writer: the file names of the official folder, the
``format`` tag of our files, the header key holding our config, and the one-line description of a config.

`detect` sniffs with these; the layouts' readers and writers (``ours``, ``official``, ``comfyui``) use them too.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

from ..config import LynxAdapterConfig
from .errors import LynxCheckpointError

FORMAT_NAME = "lynx_ext.adapters/1"  # the ``format`` entry of our one-file layout's header
CONFIG_METADATA_KEY = "lynx_ext_config"  # our config, as JSON, in the header of every file we write
RESAMPLER_FILE = "resampler.safetensors"  # the official lynx_full/ and lynx_lite/ folders
IP_FILE = "ip_layers.safetensors"
REF_FILE = "ref_layers.safetensors"
RESAMPLER_CONFIG_FILE = "resampler_config.json"  # written beside them by us (the official code ignores it)


def is_official_folder(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / RESAMPLER_FILE).is_file() and (path / IP_FILE).is_file()


def describe_config(c: LynxAdapterConfig) -> str:
    """A short human description, e.g. ``lite (ID-adapter on 20 of 40 blocks, no biases; no Ref-adapter)``."""
    label = {("full", True): "full", ("lite", False): "lite", ("lite", True): "lite-ID + full-Ref",
             ("full", False): "full-ID-only"}[(c.variant, bool(c.ref_blocks))]
    ident = f"ID-adapter on {len(c.id_blocks)} of {c.num_blocks} blocks, "
    ident += "with biases" if c.id_bias else "no biases"
    if c.num_registers:
        ident += f", {c.num_registers} registers"
    ref = f"Ref-adapter on {len(c.ref_blocks)} blocks" if c.ref_blocks else "no Ref-adapter"
    return f"{label} ({ident}; {ref})"


def config_from_metadata(metadatas: list[Mapping[str, str]], source: str) -> Optional[LynxAdapterConfig]:
    """The config we wrote into the file headers, when every file carries the same one; else None."""
    values = {m.get(CONFIG_METADATA_KEY) for m in metadatas}
    if len(values) != 1 or None in values:
        return None
    try:
        return LynxAdapterConfig.from_json(values.pop())
    except (ValueError, TypeError) as err:
        raise LynxCheckpointError(f"{source}: its lynx-ext metadata holds an invalid adapter config ({err}).") from None
