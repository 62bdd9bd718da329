"""Safetensors files read and written defensively: the header checked by hand, tensors read without raw errors.

A safetensors file is an 8-byte little-endian header length, a JSON header (tensor name -> dtype, shape and
byte range; optional ``__metadata__`` of strings), then the tensor bytes.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

import torch

from ...atomic_write import atomic_path
from .errors import LynxCheckpointError

MAX_HEADER_BYTES = 100 << 20
DTYPE_TAGS = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
HEADER_DTYPE_TAGS = {"F32": "fp32", "F16": "fp16", "BF16": "bf16"}


@dataclass(frozen=True)
class SafetensorsHeader:
    """The parsed header: ``tensors`` maps each key to ``{"dtype", "shape", "data_offsets"}``."""

    tensors: dict[str, dict] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)

    def shape(self, key: str) -> list[int]:
        return list(self.tensors[key]["shape"])

    def dtype_tag(self) -> str:
        """``fp32`` / ``fp16`` / ``bf16`` when every tensor has that dtype, else ``mixed`` (or the raw name)."""
        kinds = {t["dtype"] for t in self.tensors.values()}
        if len(kinds) != 1:
            return "mixed"
        kind = kinds.pop()
        return HEADER_DTYPE_TAGS.get(kind, kind)


def sniff_safetensors(path: Path) -> tuple[str, Optional[SafetensorsHeader], str]:
    """``("ok", header, "")``, ``("damaged", None, why)`` or ``("no", None, "")`` (not a safetensors file)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(9)
        if len(head) < 9 or head[8:9] != b"{":
            return "no", None, ""
        n = int.from_bytes(head[:8], "little")
        if n > MAX_HEADER_BYTES:
            return "no", None, ""
        if n > size - 8:
            return "damaged", None, (f"its header should be {n} bytes long but the file ends after {size - 8}: "
                                     "the file is truncated")
        f.seek(8)
        raw = f.read(n)
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "damaged", None, "its header is not valid JSON"
    if not isinstance(obj, dict):
        return "damaged", None, "its header is not a JSON object"
    meta = obj.pop("__metadata__", None) or {}
    end = 0
    for key, info in obj.items():
        ok = (isinstance(info, dict) and isinstance(info.get("dtype"), str) and isinstance(info.get("shape"), list)
              and isinstance(info.get("data_offsets"), list) and len(info["data_offsets"]) == 2)
        if not ok:
            return "damaged", None, f"its header entry for '{key}' is malformed"
        end = max(end, int(info["data_offsets"][1]))
    if 8 + n + end > size:
        return "damaged", None, (f"it is truncated: its header describes {end} bytes of tensor data but only "
                                 f"{size - 8 - n} follow")
    if not isinstance(meta, dict):
        return "damaged", None, "its metadata is not a JSON object"
    return "ok", SafetensorsHeader(tensors=obj, metadata={str(k): str(v) for k, v in meta.items()}), ""


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a checked safetensors file, on the CPU, in their stored dtype."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # noqa: BLE001 - the library's own error types never reach the user
        raise LynxCheckpointError(f"{path}: could not read its tensors ({type(err).__name__}: {err}). "
                                  "The file may be damaged; copy or download it again.") from None


def write_tensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str],
                  overwrite: bool = True) -> Path:
    """Write one safetensors file atomically (a reader never sees half of it)."""
    from safetensors.torch import save_file

    with atomic_path(path, overwrite=overwrite) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=dict(metadata))
    return Path(path)


def cast(tensors: Mapping[str, torch.Tensor], dtype: Optional[torch.dtype]) -> dict[str, torch.Tensor]:
    """Every tensor in ``dtype`` (None: unchanged). Refuses values the dtype cannot hold (they would become inf)."""
    if dtype is None:
        return dict(tensors)
    out = {k: v.to(dtype) for k, v in tensors.items()}
    bad = [k for k, v in tensors.items() if bool((torch.isfinite(v) & ~torch.isfinite(out[k])).any())]
    if bad:
        raise LynxCheckpointError(
            f"{len(bad)} tensors (e.g. '{bad[0]}') hold values beyond the range of {dtype} and would become inf; "
            "use bf16 or fp32."
        )
    return out


def cast_changes(tensors: Mapping[str, torch.Tensor], dtype: Optional[torch.dtype]) -> tuple[int, float]:
    """How many tensors a cast to ``dtype`` changes (compared exactly), and the largest absolute change."""
    changed, worst = 0, 0.0
    for v in ([] if dtype is None else tensors.values()):
        back = v.to(dtype).to(v.dtype)
        if not torch.equal(back, v):
            changed += 1
            worst = max(worst, float((back.float() - v.float()).abs().max()))
    return changed, worst


def tensor_dtype_tag(tensors: Mapping[str, torch.Tensor]) -> str:
    """``fp32`` / ``fp16`` / ``bf16`` for tensors of one dtype, else ``mixed``."""
    kinds = {t.dtype for t in tensors.values()}
    return DTYPE_TAGS.get(kinds.pop(), "mixed") if len(kinds) == 1 else "mixed"
