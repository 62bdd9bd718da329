"""Strict, explained state-dict loading: the first wrong key is named with its expected and found shape."""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn


class LynxCheckpointError(ValueError):
    """A checkpoint does not fit the adapters it is loaded into."""


def check_state_dict(expected: Mapping[str, torch.Size], found: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise `LynxCheckpointError` naming the first key that is missing, unexpected or of the wrong shape."""
    for key, shape in expected.items():
        if key not in found:
            raise LynxCheckpointError(
                f"{source}: missing key '{key}' (expected shape {list(shape)}). "
                "Is this the right checkpoint for this variant and base model?"
            )
        got = tuple(found[key].shape)
        if got != tuple(shape):
            raise LynxCheckpointError(
                f"{source}: key '{key}' has shape {list(got)}, expected {list(shape)}. "
                "The checkpoint was made for a different model size or variant."
            )
    for key in found:
        if key not in expected:
            raise LynxCheckpointError(
                f"{source}: unexpected key '{key}' (shape {list(found[key].shape)}). "
                "The checkpoint holds weights these adapters do not have."
            )


def load_checked(module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """`module.load_state_dict(strict=True)` preceded by a readable check."""
    expected = {k: v.shape for k, v in module.state_dict().items()}
    check_state_dict(expected, state_dict, source)
    with torch.no_grad():
        module.load_state_dict(dict(state_dict), strict=True)
