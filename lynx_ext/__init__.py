"""lynx-ext: Lynx identity-preserving video generation as a DiffSynth-Studio extension.

Importing this package is cheap; the public API below loads torch/DiffSynth on first use.
"""
from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "LynxAdapters": "lynx_ext.adapters",
    "LynxAdapterConfig": "lynx_ext.adapters",
    "ResamplerConfig": "lynx_ext.adapters",
    "LynxCheckpointError": "lynx_ext.adapters",
    "load_lynx_adapters": "lynx_ext.adapters",
    "install": "lynx_ext.pipeline",
    "uninstall": "lynx_ext.pipeline",
    "set_scales": "lynx_ext.pipeline",
    "replace_adapters": "lynx_ext.pipeline",
    "LynxExtension": "lynx_ext.extension",
    "load_extensions": "lynx_ext.extension",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lynx_ext' has no attribute {name!r}")
