"""Work-arounds for host bugs, applied only where they bite."""
from __future__ import annotations

import os

import torch


def ensure_cpu_empty_cache() -> None:
    """DiffSynth's VRAM manager calls ``torch.cpu.empty_cache()`` and, with a VRAM limit, ``torch.cpu.mem_get_info()``,
    which torch does not define; make the first a no-op and the second report system memory.

    Only needed when a VRAM-managed pipeline runs with ``device="cpu"`` (tests, CPU demos).
    """
    if not hasattr(torch.cpu, "empty_cache"):
        torch.cpu.empty_cache = lambda: None
    if not hasattr(torch.cpu, "mem_get_info"):
        torch.cpu.mem_get_info = cpu_mem_get_info


def cpu_mem_get_info(device=None) -> tuple[int, int]:
    """``(free, total)`` bytes of system memory, like ``torch.cuda.mem_get_info`` (the CPU's "VRAM")."""
    try:
        import psutil

        memory = psutil.virtual_memory()
        return int(memory.available), int(memory.total)
    except ImportError:
        page = os.sysconf("SC_PAGE_SIZE")
        return page * os.sysconf("SC_AVPHYS_PAGES"), page * os.sysconf("SC_PHYS_PAGES")
