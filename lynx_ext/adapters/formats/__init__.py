"""Adapter checkpoint formats: detection by content, one reader and one writer for every layout.

Layouts: ours (one ``.safetensors``, `ours`), the official ``lynx_full/`` / ``lynx_lite/`` folders (`official`) and
ComfyUI-WanVideoWrapper's resampler + DiT-namespaced layer files (`comfyui`). `detect_format` says what any path
holds; `load_lynx_adapters` / `read_adapters` read every layout; `write_adapters` writes every layout.
"""
from .comfyui import save_comfyui, wrapper_compatibility
from .detect import DetectedFormat, FormatKind, detect_format
from .errors import LynxCheckpointError
from .loader import Layout, check_fits, dit_shape, load_lynx_adapters, read_adapters, write_adapters
from .official import load_official_folder, load_official_states, save_official_folder
from .ours import write_ours
from .signatures import describe_config

__all__ = [
    "DetectedFormat", "FormatKind", "Layout", "LynxCheckpointError", "check_fits", "describe_config", "detect_format",
    "dit_shape", "load_lynx_adapters", "load_official_folder", "load_official_states", "read_adapters",
    "save_comfyui", "save_official_folder", "wrapper_compatibility", "write_adapters", "write_ours",
]
