"""`LynxCheckpointError` and the strict, explained state-dict check: the first wrong key named with both shapes."""
from __future__ import annotations

from typing import Callable, Mapping

import torch

from ...errors import LynxFormatError

KeyNamer = Callable[[str], str]


class LynxCheckpointError(LynxFormatError):
    """Adapter weights that cannot be used: not adapter weights, damaged, or not fitting the adapters or DiT."""


def check_state_dict(expected: Mapping[str, torch.Size], found: Mapping[str, torch.Tensor], source: str,
                     name: KeyNamer = str) -> None:
    """Raise `LynxCheckpointError` naming the first key that is missing, unexpected or of the wrong shape.

    ``name`` renders one of our keys as the file spells it (e.g. ``ip_layers.safetensors:3.to_k_ip.weight``).
    """
    for key, shape in expected.items():
        if key not in found:
            raise LynxCheckpointError(
                f"{source}: missing key '{name(key)}' (expected shape {list(shape)}). "
                "Is this the right checkpoint for this variant and base model?"
            )
        got = tuple(found[key].shape)
        if got != tuple(shape):
            raise LynxCheckpointError(
                f"{source}: key '{name(key)}' has shape {list(got)}, expected {list(shape)}. "
                "The checkpoint was made for a different model size or variant."
            )
    for key in found:
        if key not in expected:
            raise LynxCheckpointError(
                f"{source}: unexpected key '{name(key)}' (shape {list(found[key].shape)}). "
                "The checkpoint holds weights these adapters do not have."
            )

