"""Tiny real models and offline stand-ins for tests, the demo and the CPU recipe: a tiny Wan (`wan`), random
adapters of the official layout (`adapters`) and stand-in face models with buffalo_l's I/O (`face_models`).
Nothing here is downloaded; everything is deterministic."""
from __future__ import annotations

import os
from pathlib import Path


def tiny_home() -> Path:
    """Where tiny models are built and cached (``$LYNX_EXT_HOME/tiny``, default ``~/.cache/lynx_ext/tiny``)."""
    return Path(os.environ.get("LYNX_EXT_HOME", Path.home() / ".cache" / "lynx_ext")) / "tiny"
