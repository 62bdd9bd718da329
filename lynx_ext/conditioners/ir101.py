"""IR-101: the CurricularFace backbone behind OpenS2V's FaceSim-Cur (``glint360k_curricular_face_r101_backbone.bin``).

Written for this package from the published checkpoint's layout (Tencent TFace's ``IR_101([112, 112])``, which
OpenS2V-Eval loads with ``load_state_dict``): its ``state_dict`` has the same keys and shapes, so that file loads with
``strict=True``. Input ``[N, 3, 112, 112]`` RGB in [-1, 1]; output ``[N, 512]`` (not normalised, as in TFace).

Layout: a 3x3 stem (64 ch, BN, PReLU), then 49 residual units in four stages (64/128/256/512 channels; 3, 13, 30,
3 units); the first unit of every stage has stride 2 (112 -> 7 px). A unit is ``BN -> 3x3 conv -> BN -> PReLU ->
3x3 conv (stride) -> BN`` plus a shortcut: a 1x1 strided conv + BN when the width changes, else plain subsampling.
The head is ``BN2d -> dropout -> flatten -> linear(512*7*7, 512) -> BN1d without affine parameters``.
"""
from __future__ import annotations

import torch
from torch import nn

from .ir_se50 import EMBEDDING_DIM, IRBackbone, Subsample

STAGES = ((64, 3), (128, 13), (256, 30), (512, 3))  # (channels, units) of IR-101 (TFace's num_layers=100)


class ResidualUnitIR(nn.Module):
    """One IR unit; the attribute names and Sequential indices fix the checkpoint keys."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        if c_in == c_out:
            self.shortcut_layer = Subsample(stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(c_in),
            nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.PReLU(c_out),
            nn.Conv2d(c_out, c_out, kernel_size=3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IR101(IRBackbone):
    """CurricularFace IR-101 backbone (TFace-compatible keys); ``forward`` returns raw 512-d features."""

    def __init__(self, drop_ratio: float = 0.4):
        super().__init__(ResidualUnitIR, STAGES, drop_ratio, head_affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (112, 112):
            raise ValueError(f"IR-101 takes 112x112 face crops, got {tuple(x.shape)}.")
        return self.output_layer(self.body(self.input_layer(x)))
