"""The dtype names every command and recipe accepts."""
from __future__ import annotations

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def torch_dtype(name: str) -> torch.dtype:
    """``bf16`` / ``fp16`` / ``fp32`` -> the torch dtype (a clear error otherwise)."""
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {name!r}.")
    return DTYPES[name]
