"""Work-arounds for host bugs, applied only where they bite."""
from __future__ import annotations

import torch


def ensure_cpu_empty_cache() -> None:
    """DiffSynth's VRAM manager calls ``torch.cpu.empty_cache()``, which torch does not define; make it a no-op.

    Only needed when a VRAM-managed pipeline runs with ``device="cpu"`` (tests, CPU demos).
    """
    if not hasattr(torch.cpu, "empty_cache"):
        torch.cpu.empty_cache = lambda: None
