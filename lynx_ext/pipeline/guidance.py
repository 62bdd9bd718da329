"""The official Lynx guidance: three branches for full, two for lite."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch


@dataclass
class LynxGuidance:
    """Everything the extra guidance branches need, produced once per generation by `LynxUnit_Guidance`.

    Args:
        cfg_scale: ``g``; guidance runs only when ``g > 1`` (as in the official pipelines).
        cfg_scale_i: ``gi`` (identity guidance of the full model) or None for two-branch guidance.
        context_nega: negative-prompt text embedding ``[1, L, text_dim]``.
        id_tokens_nega: identity tokens of the zero face (``resampler(0)``).
        ref_features_nega: reference features of the grey (dropped) reference image.
    """

    cfg_scale: float
    cfg_scale_i: Optional[float]
    context_nega: torch.Tensor
    id_tokens_nega: Optional[torch.Tensor] = None
    ref_features_nega: Optional[dict[int, torch.Tensor]] = None

    @property
    def enabled(self) -> bool:
        return self.cfg_scale > 1


def combine_guidance(
    cond: torch.Tensor,
    uncond: torch.Tensor,
    cfg_scale: float,
    identity: Optional[torch.Tensor] = None,
    cfg_scale_i: Optional[float] = None,
) -> torch.Tensor:
    """``uncond + gi*(i - uncond) + g*(cond - i)`` with an identity branch, else ``uncond + g*(cond - uncond)``."""
    if cfg_scale_i is None:
        return uncond + cfg_scale * (cond - uncond)
    if identity is None:
        raise ValueError("Three-branch guidance (cfg_scale_i set) needs the identity-branch prediction.")
    return uncond + cfg_scale_i * (identity - uncond) + cfg_scale * (cond - identity)
