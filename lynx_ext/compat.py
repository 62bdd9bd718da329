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


def ffmpeg_spawn_without_preexec() -> None:
    """imageio-ffmpeg starts ffmpeg with ``preexec_fn=os.setpgrp`` (to keep Ctrl-C from the child). A ``preexec_fn``
    runs Python in the forked child, which deadlocks when another thread held a lock at the fork (torch's and
    gloo's threads in a DDP rank, a web server's: seen here as a DDP training rank hanging for good while its child
    waited on a futex). imageio-ffmpeg's own switch turns that off (its issue #58); the user's setting wins."""
    os.environ.setdefault("IMAGEIO_FFMPEG_NO_PREVENT_SIGINT", "1")
