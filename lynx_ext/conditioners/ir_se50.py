"""IR-SE50: the ArcFace backbone behind facexlib's ``recognition_arcface_ir_se50.pth``.

Written for this package. Its ``state_dict`` has the same 397 keys and shapes as facexlib's
``Backbone(num_layers=50, drop_ratio=0.6, mode='ir_se')``, so that file loads with ``strict=True``; unlike
facexlib it builds on any device. Input ``[N, 3, 112, 112]`` BGR in [-1, 1]; output ``[N, 512]``, L2-normalised.

Layout: a 3x3 stem (64 ch) then 24 residual units in four stages (64/128/256/512 channels; 3, 4, 14, 3 units).
The first unit of every stage has stride 2 (112 -> 7 px). A unit is ``BN -> 3x3 conv -> PReLU -> 3x3 conv
(stride) -> BN -> squeeze-excitation`` plus a shortcut: a 1x1 strided conv + BN when the width changes, else
plain subsampling. The head is ``BN -> dropout -> flatten -> linear(512*7*7, 512) -> BN1d``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STAGES = ((64, 3), (128, 4), (256, 14), (512, 3))  # (channels, units) of IR-SE50
EMBEDDING_DIM = 512
NUM_STATE_KEYS = 397


class SqueezeExcite(nn.Module):
    """Channel gate: global average -> 1x1 conv down (/16) -> ReLU -> 1x1 conv up -> sigmoid."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True)))))
        return x * gate


class Subsample(nn.Module):
    """Identity shortcut that keeps every ``stride``-th pixel (a 1x1 max-pool without parameters)."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :: self.stride, :: self.stride]


class ResidualUnitSE(nn.Module):
    """One IR-SE unit; the attribute names and Sequential indices fix the checkpoint keys."""

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
            nn.PReLU(c_out),
            nn.Conv2d(c_out, c_out, kernel_size=3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            SqueezeExcite(c_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRBackbone(nn.Module):
    """The insightface-style IR backbone shared by IR-SE50 and IR-101: stem, residual stages, 512-d head.

    ``unit``: the residual unit class ``(c_in, c_out, stride)``; ``stages``: ``(channels, units)`` per stage;
    ``head_affine``: whether the head's final BatchNorm1d has affine parameters. The attribute names and
    Sequential indices fix the checkpoint keys.
    """

    def __init__(self, unit: type, stages, drop_ratio: float, head_affine: bool):
        super().__init__()
        self.input_layer = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64)
        )
        units, c_prev = [], 64
        for channels, count in stages:
            for i in range(count):
                units.append(unit(c_prev, channels, stride=2 if i == 0 else 1))
                c_prev = channels
        self.body = nn.Sequential(*units)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512),
            nn.Dropout(drop_ratio),
            nn.Flatten(),
            nn.Linear(512 * 7 * 7, EMBEDDING_DIM),
            nn.BatchNorm1d(EMBEDDING_DIM, affine=head_affine),
        )


class IRSE50(IRBackbone):
    """ArcFace IR-SE50 backbone (facexlib-compatible keys); ``forward`` returns unit-norm embeddings."""

    def __init__(self, drop_ratio: float = 0.6):
        super().__init__(ResidualUnitSE, STAGES, drop_ratio, head_affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (112, 112):
            raise ValueError(f"IR-SE50 takes 112x112 face crops, got {tuple(x.shape)}.")
        feats = self.output_layer(self.body(self.input_layer(x)))
        return F.normalize(feats, p=2, dim=1)
