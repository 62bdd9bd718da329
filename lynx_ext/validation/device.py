"""The device a command runs on: a requested device that is not on this machine is an error, never a fallback."""
from __future__ import annotations

import re
from typing import Optional

from ..errors import DeviceUnavailableError, LynxValueError

DEVICE_RE = re.compile(r"^(cpu|mps|cuda(?::(\d+))?)$")


def check_device(device: Optional[str], field: str = "device") -> str:
    """``device`` checked against this machine (``None``/``"auto"``: ``cuda`` when torch sees a GPU, else ``cpu``).

    Raises:
        LynxValueError: not a device name. DeviceUnavailableError: the device is not on this machine.
    """
    import torch

    if device is None or str(device).strip().lower() in ("", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    text = str(device).strip().lower()
    match = DEVICE_RE.match(text)
    if match is None:
        raise LynxValueError.of(field, f"{device!r} is not a device; use cpu, cuda or cuda:N.")
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise DeviceUnavailableError(
                f"{field} {device}: torch sees no CUDA GPU on this machine (torch {torch.__version__}, {build}). "
                f"Use {field} cpu, or check the GPU driver, CUDA_VISIBLE_DEVICES and that a CUDA build of torch "
                "is installed.")
        count = torch.cuda.device_count()
        index = int(match.group(2) or 0)
        if index >= count:
            raise DeviceUnavailableError(f"{field} {device}: this machine has {count} CUDA GPU(s), "
                                         f"cuda:0 to cuda:{count - 1}. Choose one of them.")
    if text == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceUnavailableError(f"{field} mps: Apple's Metal backend is not available here. Use {field} cpu.")
    return text
