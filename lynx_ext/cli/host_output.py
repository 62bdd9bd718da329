"""``--quiet``: drop what the host prints (DiffSynth's "Loading models from ..." banners, its download tips and
its own progress bars, e.g. "VAE decoding").

DiffSynth reports through ``print`` and ``tqdm``, not a logger, so a filter sits on ``sys.stdout`` and
``sys.stderr`` and drops each write made on behalf of a ``diffsynth`` module (directly, or through tqdm);
everything else (our own lines, warnings, other libraries) passes unchanged.
"""
from __future__ import annotations

import contextlib
import sys

HOST_PACKAGE = "diffsynth"
RELAYS = ("tqdm",)  # libraries that write on behalf of their caller


def _module(frame) -> str:
    return frame.f_globals.get("__name__", "") if frame is not None else ""


def written_by_host(frame) -> bool:
    """Whether the write whose caller is ``frame`` comes from the host (skipping tqdm's own frames)."""
    while frame is not None and _module(frame).split(".")[0] in RELAYS:
        frame = frame.f_back
    name = _module(frame)
    return name == HOST_PACKAGE or name.startswith(HOST_PACKAGE + ".")


class HostOutputFilter:
    """A ``sys.stdout`` / ``sys.stderr`` stand-in that drops the host's writes and forwards the rest."""

    def __init__(self, stream):
        self.stream = stream
        self.dropped = 0

    def write(self, text: str) -> int:
        if written_by_host(sys._getframe(1)):  # print() is C code: frame 1 is its caller
            self.dropped += 1
            return len(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name):  # encoding, isatty, fileno ... of the real stream
        return getattr(self.stream, name)


@contextlib.contextmanager
def host_output_silenced(enabled: bool = True):
    """Within the block the host's writes to stdout and stderr are dropped (nothing changes if not ``enabled``)."""
    if not enabled or isinstance(sys.stdout, HostOutputFilter):
        yield
        return
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = HostOutputFilter(out), HostOutputFilter(err)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err


def wants_quiet(argv: list) -> bool:
    """``--quiet`` among the options (before a ``--`` that ends them)."""
    options = argv[: argv.index("--")] if "--" in argv else argv
    return "--quiet" in options
