"""The DARTS evaluation network: a stack of cells built from one Genotype (NetworkCIFAR).

Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search", ICLR 2019, Section 3 and
Appendix A.2; the macro skeleton is NASNet's (Zoph et al., 2018, Figure 2). The search only
chooses two cells; this file turns them into a network you can train:

    image -> stem (3x3 conv to 3C channels) -> `layers` cells -> global average pool -> linear
                                                  |- cells at layers//3 and 2*layers//3 are reduction
                                                  |  cells: stride 2 and twice the channels
                                                  `- after cell 2*layers//3: an auxiliary head

Every cell k reads the outputs of the two cells before it, c_{k-2} and c_{k-1}. Its nodes add two
op outputs each, and the cell returns the channel-wise concatenation of its `concat` nodes.

Parameter counts follow the reference code's convention (parameters whose name contains
"auxiliary" are left out): DARTS_V2 at C=36, layers=20 has 3,349,342 parameters ("3.3M").
"""
from __future__ import annotations

import torch
import torch.nn as nn

from nasnb.spaces.ops import FactorizedReduce, Identity, ReLUConvBN, make_darts_op


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero a whole sample's op output with probability `drop_prob`, rescale the survivors.

    ScheduledDropPath (Zoph et al., 2018): each example in the batch drops the path on its own.
    Survivors are divided by the keep probability so the expected value is unchanged. Random
    numbers come from torch's global generator, which the trainer seeds.
    """
    keep_prob = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep_prob)  # (B, 1, 1, 1)
    return x / keep_prob * mask


class Cell(nn.Module):
    """One normal or reduction cell, fixed by a genotype (DARTS Section 2.1, Figure 1d)."""

    def __init__(self, genotype, C_prev_prev: int, C_prev: int, C: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        # c_{k-2} is twice as large as c_{k-1} when the previous cell reduced: halve it too.
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(C_prev_prev, C)
        else:
            self.preprocess0 = ReLUConvBN(C_prev_prev, C, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0)

        edges = genotype.reduce if reduction else genotype.normal
        self.concat = tuple(genotype.reduce_concat if reduction else genotype.normal_concat)
        self.indices = tuple(index for _, index in edges)
        self.steps = len(edges) // 2
        # In a reduction cell only the ops reading the two cell inputs stride; later nodes are already small.
        self.ops = nn.ModuleList(
            make_darts_op(op, C, stride=2 if reduction and index < 2 else 1) for op, index in edges
        )
        self.multiplier = len(self.concat)  # output channels = multiplier * C

    def forward(self, s0, s1, drop_prob: float = 0.0):
        states = [self.preprocess0(s0), self.preprocess1(s1)]  # each (B, C, H, W)
        for node in range(self.steps):
            total = 0
            for e in (2 * node, 2 * node + 1):
                h = self.ops[e](states[self.indices[e]])
                # Identity is left alone: dropping a skip connection would remove the cell's shortcut.
                if self.training and drop_prob > 0 and not isinstance(self.ops[e], Identity):
                    h = drop_path(h, drop_prob)
                total = total + h
            states.append(total)
        return torch.cat([states[i] for i in self.concat], dim=1)  # (B, multiplier * C, H', W')


class AuxiliaryHead(nn.Module):
    """Auxiliary classifier (Szegedy et al., 2015) in the form of DARTS' AuxiliaryHeadCIFAR.

    Designed for the 8x8 maps of CIFAR: a 5x5 average pool with stride 3 leaves 2x2, and a 2x2
    conv makes one 768-vector. For other sizes (a 7x7 map from 28x28 MNIST, 2x2 from 8x8 digits)
    an adaptive pool to 2x2 does the same job; it has no parameters, so the head is the same.
    """

    def __init__(self, C: int, num_classes: int):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.pool = nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False)
        self.small_pool = nn.AdaptiveAvgPool2d(2)
        self.features = nn.Sequential(
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x):
        x = self.relu(x)
        H, W = x.shape[-2:]
        paper_pool_fits = 8 <= H <= 10 and 8 <= W <= 10  # (size - 5) // 3 + 1 == 2
        x = self.pool(x) if paper_pool_fits else self.small_pool(x)  # (B, C, 2, 2)
        x = self.features(x)  # (B, 768, 1, 1)
        return self.classifier(x.flatten(1))  # (B, num_classes)


class DartsNetwork(nn.Module):
    """The evaluation network of DARTS (NetworkCIFAR in the reference code).

    `forward(x)` returns logits (B, num_classes) in eval mode, and `(logits, aux_logits)` in
    training mode when the network has an auxiliary head (the loss adds the auxiliary loss with a
    weight, 0.4 in DARTS). `drop_path_prob` is read on every forward pass: training loops ramp it
    from 0 to its final value over the epochs, as DARTS does.
    """

    def __init__(self, genotype, C: int = 36, layers: int = 20, num_classes: int = 10, in_channels: int = 3,
                 auxiliary: bool = True, drop_path_prob: float = 0.2, stem_multiplier: int = 3):
        super().__init__()
        for name, value in (("C", C), ("layers", layers), ("num_classes", num_classes),
                            ("in_channels", in_channels), ("stem_multiplier", stem_multiplier)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not 0.0 <= drop_path_prob < 1.0:
            raise ValueError(f"drop_path_prob must be in [0, 1), got {drop_path_prob!r}")
        self.genotype = genotype
        self.in_channels = in_channels
        self.drop_path_prob = drop_path_prob
        self.reduction_layers = (layers // 3, 2 * layers // 3)
        self.auxiliary_index = 2 * layers // 3  # the aux head reads the second reduction cell's output

        C_curr = stem_multiplier * C
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, C_curr, 3, padding=1, bias=False),
            nn.BatchNorm2d(C_curr),
        )
        C_prev_prev, C_prev, C_curr = C_curr, C_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in self.reduction_layers
            if reduction:
                C_curr *= 2  # halve the resolution, double the channels
            cell = Cell(genotype, C_prev_prev, C_prev, C_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            C_prev_prev, C_prev = C_prev, cell.multiplier * C_curr
            if i == self.auxiliary_index:
                C_auxiliary = C_prev
        self.auxiliary_head = AuxiliaryHead(C_auxiliary, num_classes) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)

    def forward(self, x):
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected a batch of images of shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}; "
                f"build the network with in_channels={x.shape[1] if x.dim() == 4 else '...'} for this data"
            )
        aux_logits = None
        s0 = s1 = self.stem(x)  # (B, 3C, H, W): both inputs of the first cell are the stem output
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.auxiliary_index and self.auxiliary_head is not None and self.training:
                aux_logits = self.auxiliary_head(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))  # (B, num_classes)
        if aux_logits is not None:
            return logits, aux_logits
        return logits
