"""The network of a MobileNetSpace architecture: a chain of inverted residual blocks (MBConv).

An inverted residual block (Sandler et al., "MobileNetV2", CVPR 2018, Table 1 and Fig. 3b) widens
the input by an expansion ratio e with a 1x1 conv, filters each channel on its own with a k x k
depthwise conv (the only spatial op, and the only one with a stride), then projects back down with
a linear 1x1 conv (no activation: a ReLU on the narrow output would destroy information):

    (B, C_in, H, W) -1x1 conv, BN, ReLU6-> (B, e*C_in, H, W) -kxk depthwise/s, BN, ReLU6->
    (B, e*C_in, H/s, W/s) -1x1 conv, BN-> (B, C_out, H/s, W/s)   (+ x when s == 1 and C_in == C_out)

With e = 1 the expansion conv is left out (the first block of MobileNetV2 and ProxylessNAS). The
module names (inverted_bottleneck, depth_conv, point_linear) are those of ProxylessNAS's
MBInvertedConvLayer (Cai, Zhu & Han, ICLR 2019). Its parameters, with m = e * C_in:

    params = [e > 1] * (C_in*m + 2m) + (k*k*m + 2m) + (m*C_out + 2*C_out)   (2 per BN channel: scale, shift)

A "Zero" layer is ProxylessNAS's ZeroLayer on a block with an identity shortcut: 0 + x = x, so the
layer passes its input through and has no parameters.
"""
from __future__ import annotations

import re
from collections import OrderedDict

import torch
import torch.nn as nn

ZERO = "Zero"  # ProxylessNAS's name for "skip this layer" (build_candidate_ops in search/modules/mix_op.py)
MBCONV_NAME = re.compile(r"([1-9][0-9]?)x\1_MBConv([1-9][0-9]?)")  # '5x5_MBConv6': kernel 5, expansion 6


def mbconv_name(kernel_size: int, expansion: int) -> str:
    """The op name ProxylessNAS gives a block: '%dx%d_MBConv%d' % (k, k, e), e.g. '3x3_MBConv6'."""
    return f"{kernel_size}x{kernel_size}_MBConv{expansion}"


def mbconv_params(name: str) -> tuple[int, int]:
    """(kernel_size, expansion) of an op name such as '7x7_MBConv3'; a ValueError for anything else."""
    match = MBCONV_NAME.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise ValueError(f"{name!r} is not an MBConv op name like '3x3_MBConv6'")
    return int(match.group(1)), int(match.group(2))


def conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1,
            act: bool = True) -> nn.Sequential:
    """Conv (no bias: the BN shifts) -> BN [-> ReLU6], 'same' padding for odd kernels."""
    layers = OrderedDict(conv=nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2,
                                        groups=groups, bias=False),
                         bn=nn.BatchNorm2d(out_channels))
    if act:
        layers["act"] = nn.ReLU6(inplace=False)
    return nn.Sequential(layers)


class MBConv(nn.Module):
    """An inverted residual block: 1x1 expand, k x k depthwise (stride), linear 1x1 project.

    The residual is added exactly when the shapes match (stride 1 and C_in == C_out), as in both
    papers; `self.residual` says whether it is.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, expansion: int):
        super().__init__()
        mid = in_channels * expansion
        self.kernel_size, self.stride, self.expansion = kernel_size, stride, expansion
        self.inverted_bottleneck = conv_bn(in_channels, mid, 1) if expansion != 1 else None
        self.depth_conv = conv_bn(mid, mid, kernel_size, stride, groups=mid)  # one k x k filter per channel
        self.point_linear = conv_bn(mid, out_channels, 1, act=False)  # linear bottleneck: no ReLU
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C_out, H/s, W/s)
        h = x if self.inverted_bottleneck is None else self.inverted_bottleneck(x)  # (B, e*C_in, H, W)
        h = self.point_linear(self.depth_conv(h))
        return x + h if self.residual else h

    def extra_repr(self) -> str:
        return f"{mbconv_name(self.kernel_size, self.expansion)}, stride={self.stride}, residual={self.residual}"


class ZeroLayer(nn.Identity):
    """ProxylessNAS's 'Zero' op in a block with an identity shortcut: x + 0 = x (no parameters)."""


class MobileNetNetwork(nn.Module):
    """Stem conv, a fixed 3x3_MBConv1 block, the searched layers, a 1x1 "feature mix" conv, global
    average pooling and a linear classifier: the skeleton of MobileNetV2 and of ProxylessNAS.

    `layers` lists one (op name, in_channels, out_channels, stride) per searched layer.
    """

    def __init__(self, arch: tuple, layers: list, *, stem_width: int, stem_stride: int, first_width: int,
                 head_width: int, num_classes: int, in_channels: int):
        super().__init__()
        self.arch = arch
        self.stem = conv_bn(in_channels, stem_width, 3, stem_stride)  # (B, stem_width, H/s, W/s)
        self.first = MBConv(stem_width, first_width, 3, 1, 1)  # 3x3_MBConv1, searched by neither paper
        blocks = []
        for op, c_in, c_out, stride in layers:
            if op == ZERO:
                blocks.append(ZeroLayer())
            else:
                kernel_size, expansion = mbconv_params(op)
                blocks.append(MBConv(c_in, c_out, kernel_size, stride, expansion))
        self.blocks = nn.Sequential(*blocks)
        last_width = layers[-1][2] if layers else first_width
        self.feature_mix = conv_bn(last_width, head_width, 1)  # ProxylessNAS's feature_mix_layer
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(head_width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, in_channels, H, W) -> (B, num_classes)
        h = self.blocks(self.first(self.stem(x)))  # (B, last_width, H/r, W/r), r the product of strides
        h = self.pool(self.feature_mix(h)).flatten(1)  # (B, head_width)
        return self.classifier(h)
