"""Official adapter weights from the Hugging Face hub (``ByteDance/lynx``), when the machine is online."""
from __future__ import annotations

import os
from pathlib import Path

from .presets import OFFICIAL_ADAPTER_REPO


def adapter_cache_dir() -> Path:
    return Path(os.environ.get("LYNX_EXT_HOME", Path.home() / ".cache" / "lynx_ext")) / "lynx"


def download_official_adapters(variant: str) -> Path:
    """Return the local ``lynx_{variant}/`` folder, downloading it (``ByteDance/lynx``) if it is not cached.

    Offline, the error says which folder to place where.
    """
    if variant not in ("full", "lite"):
        raise ValueError(f"hub:{variant} is not an official variant; use hub:full or hub:lite.")
    root = adapter_cache_dir()
    folder = root / f"lynx_{variant}"
    if (folder / "resampler.safetensors").is_file() and (folder / "ip_layers.safetensors").is_file():
        return folder
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(repo_id=OFFICIAL_ADAPTER_REPO, allow_patterns=[f"lynx_{variant}/*"], local_dir=str(root))
    except Exception as err:  # offline, blocked, or no such repo
        files = "resampler.safetensors, ip_layers.safetensors" + (", ref_layers.safetensors" if variant == "full" else "")
        raise FileNotFoundError(
            f"Could not download the official Lynx {variant} adapters from https://huggingface.co/"
            f"{OFFICIAL_ADAPTER_REPO} ({type(err).__name__}). Download the folder lynx_{variant}/ ({files}) on a "
            f"machine with internet and place it at {folder}, or pass --adapters /path/to/lynx_{variant}."
        ) from None
    if not (folder / "ip_layers.safetensors").is_file():
        raise FileNotFoundError(f"The download finished but {folder} holds no ip_layers.safetensors.")
    return folder
