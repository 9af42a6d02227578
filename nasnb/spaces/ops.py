"""Primitive operations of the cell spaces, and their registries (op name -> constructor).

Two registries, because the two papers built their ops slightly differently and parameter counts
must match the papers' tables:

* ``NB201_OPS`` (Dong & Yang, 2020): ops map ``C_in -> C_out``; convolutions are ReLU-Conv-BN.
* ``DARTS_OPS`` (Liu et al., 2019, and the NASNet/AmoebaNet ops its genotypes use): ops keep ``C``
  channels; separable convolutions are applied twice, as in NASNet.

A "cell" op always sees a feature map ``(B, C, H, W)``; with ``stride=2`` it returns ``(B, C, H/2, W/2)``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from nasnb.checks import short
from nasnb.errors import InvalidValueError, UnknownNameError


class UnknownOpError(UnknownNameError):
    """An op name that is not in the registry (a KeyError whose message reads cleanly)."""


def check_op(name: str, registry: dict, space: str) -> str:
    if not isinstance(name, str) or name not in registry:  # isinstance first: a list is unhashable
        raise UnknownOpError(f"unknown op {short(name)} for the {space} space; choose from {sorted(registry)}")
    return name


# ----------------------------------------------------------------------------- building blocks


class Zero(nn.Module):
    """The 'none' op: no connection. Outputs zeros of the right shape (so cells stay well formed)."""

    def __init__(self, C_in: int, C_out: int, stride: int):
        super().__init__()
        self.C_out, self.stride = C_out, stride

    def forward(self, x):
        B, _, H, W = x.shape
        H, W = -(-H // self.stride), -(-W // self.stride)  # ceil division, like a padded stride-2 op
        return x.new_zeros(B, self.C_out, H, W)


class Identity(nn.Module):
    def forward(self, x):
        return x


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv -> BatchNorm, the pre-activation conv of NASNet, DARTS and NB201."""

    def __init__(self, C_in, C_out, kernel_size, stride, padding, dilation=1, affine=True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride, padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU -> dilated depthwise conv -> pointwise conv -> BN (DARTS' dil_conv_*)."""

    def __init__(self, C_in, C_out, kernel_size, stride, padding, dilation, affine=True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride, padding, dilation=dilation, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Depthwise-separable conv applied twice (NASNet's sep_conv_*); stride only in the first."""

    def __init__(self, C_in, C_out, kernel_size, stride, padding, affine=True):
        super().__init__(
            DilConv(C_in, C_in, kernel_size, stride, padding, dilation=1, affine=affine),
            DilConv(C_in, C_out, kernel_size, 1, padding, dilation=1, affine=affine),
        )


class FactorizedReduce(nn.Module):
    """Halve H and W with two offset stride-2 1x1 convs, concatenated (a skip that downsamples).

    The second conv sees the input shifted by one pixel, so together they cover every position.
    Odd sizes are padded on the bottom/right, so 7x7 -> 4x4 like every other stride-2 op.
    """

    def __init__(self, C_in: int, C_out: int, affine: bool = True):
        super().__init__()
        if C_out % 2:
            raise InvalidValueError(f"FactorizedReduce needs an even C_out, got {short(C_out)}; e.g. C_out=16")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x):
        x = self.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]  # same size as x, moved up-left by one pixel
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


class Pool(nn.Module):
    """3x3 avg/max pooling; a 1x1 ReLUConvBN first when channels change (NB201's POOLING)."""

    def __init__(self, C_in, C_out, stride, mode="avg", affine=True):
        super().__init__()
        self.preprocess = None if C_in == C_out else ReLUConvBN(C_in, C_out, 1, 1, 0, affine=affine)
        if mode == "avg":
            self.pool = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
        else:
            self.pool = nn.MaxPool2d(3, stride=stride, padding=1)

    def forward(self, x):
        return self.pool(x if self.preprocess is None else self.preprocess(x))


class ResNetBasicBlock(nn.Module):
    """The residual block NB201 puts between stages: two ReLUConvBN 3x3 + an avg-pool/1x1 shortcut."""

    def __init__(self, C_in: int, C_out: int, stride: int = 2, affine: bool = True):
        super().__init__()
        self.conv_a = ReLUConvBN(C_in, C_out, 3, stride, 1, affine=affine)
        self.conv_b = ReLUConvBN(C_out, C_out, 3, 1, 1, affine=affine)
        if stride == 2:
            self.shortcut = nn.Sequential(
                nn.AvgPool2d(2, stride=2, ceil_mode=True, count_include_pad=False),
                nn.Conv2d(C_in, C_out, 1, bias=False),
            )
        elif C_in != C_out:
            self.shortcut = ReLUConvBN(C_in, C_out, 1, 1, 0, affine=affine)
        else:
            self.shortcut = Identity()

    def forward(self, x):
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


# ----------------------------------------------------------------------------- registries

NB201_OPS = {
    "none": lambda C_in, C_out, stride: Zero(C_in, C_out, stride),
    "skip_connect": lambda C_in, C_out, stride: (
        Identity() if stride == 1 and C_in == C_out else FactorizedReduce(C_in, C_out)
    ),
    "nor_conv_1x1": lambda C_in, C_out, stride: ReLUConvBN(C_in, C_out, 1, stride, 0),
    "nor_conv_3x3": lambda C_in, C_out, stride: ReLUConvBN(C_in, C_out, 3, stride, 1),
    "avg_pool_3x3": lambda C_in, C_out, stride: Pool(C_in, C_out, stride, "avg"),
}
NB201_OP_NAMES = tuple(NB201_OPS)  # order of the NB201 paper and benchmark


def make_nb201_op(name: str, C_in: int, C_out: int, stride: int = 1) -> nn.Module:
    return NB201_OPS[check_op(name, NB201_OPS, "NB201")](C_in, C_out, stride)


DARTS_OPS = {
    "none": lambda C, stride, affine: Zero(C, C, stride),
    "max_pool_3x3": lambda C, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1),
    "avg_pool_3x3": lambda C, stride, affine: nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False),
    "skip_connect": lambda C, stride, affine: Identity() if stride == 1 else FactorizedReduce(C, C, affine),
    "sep_conv_3x3": lambda C, stride, affine: SepConv(C, C, 3, stride, 1, affine),
    "sep_conv_5x5": lambda C, stride, affine: SepConv(C, C, 5, stride, 2, affine),
    "dil_conv_3x3": lambda C, stride, affine: DilConv(C, C, 3, stride, 2, 2, affine),
    "dil_conv_5x5": lambda C, stride, affine: DilConv(C, C, 5, stride, 4, 2, affine),
    # Only in the NASNet / AmoebaNet genotypes, not in the DARTS search space:
    "sep_conv_7x7": lambda C, stride, affine: SepConv(C, C, 7, stride, 3, affine),
    "conv_7x1_1x7": lambda C, stride, affine: nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(C, C, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
        nn.Conv2d(C, C, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
        nn.BatchNorm2d(C, affine=affine),
    ),
}
# The 8 candidate ops of the DARTS search space, in the order of the DARTS code (PRIMITIVES).
DARTS_PRIMITIVES = (
    "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
    "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
)


def make_darts_op(name: str, C: int, stride: int = 1, affine: bool = True) -> nn.Module:
    return DARTS_OPS[check_op(name, DARTS_OPS, "DARTS")](C, stride, affine)
