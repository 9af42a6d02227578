"""The network of a LayerSpace architecture: MetaQNN's chain of conv, pool and FC layers.

As the authors' Caffe code builds them (bowenbaker/metaqnn, libs/caffe/string_to_model.py):

    C(filters,k,1)  (B, c, n, n) -k x k conv, padding k//2 [, BN], ReLU-> (B, filters, n, n)
    P(k,s)          (B, c, n, n) -max pool k, stride s-> (B, c, m, m),  m = floor((n - k) / s) + 1
    FC(units)       (B, c*n*n or u) -flatten, linear, ReLU-> (B, units)
    SM              (B, ...) -flatten, linear-> (B, num_classes)      the softmax is in the loss
    GAP             (B, c, n, n) -1x1 conv, average over n x n-> (B, num_classes)

The authors' GAP is a 1x1 conv to the classes, ReLU, average pooling and one more linear layer;
here it is Network-in-Network's global average pooling (Lin et al. 2014) that the paper's
termination type names: the averaged class maps are the logits. Dropout, which the authors'
code inserts every two layers, is left out: these networks train for a few epochs.
"""
from __future__ import annotations

import networkx as nx
import torch
from torch import nn


def layer_graph(space, arch: tuple, states: list, specs: list) -> nx.DiGraph:
    """LayerSpace.to_graph's chain: `states` after each token (None after the terminal), `specs` its Layers."""
    g = nx.DiGraph(space=space.name, cell="chain", arch=space.format(arch))
    g.add_node(0, label=f"{space.image_size}×{space.image_size}", role="input", size=space.image_size)
    channels = None
    for k, (state, token, spec) in enumerate(zip(states, arch, specs), start=1):
        last = state is None
        channels = spec.width if spec.kind in ("C", "FC") else channels
        label = "logits" if last else str(spec.width) if spec.kind == "FC" else f"{channels}@{state.size}×{state.size}"
        g.add_node(k, label=label, role="output" if last else "intermediate", size=None if last else state.size)
        g.add_edge(k - 1, k, op=token, kind=spec.kind)
    return g


class LayerNetwork(nn.Module):
    """A chain of layers; `specs` holds one `Layer` per token and `sizes` the representation size
    before each token (the start's first), as LayerSpace computed them."""

    def __init__(self, arch: tuple, specs: list, sizes: list, *, num_classes: int, in_channels: int,
                 batch_norm: bool = True):
        super().__init__()
        self.arch, self.image_size = arch, sizes[0]
        blocks, channels, features = [], in_channels, None  # features: the vector width after an FC
        for spec, size in zip(specs, sizes):
            flat = features if features is not None else channels * size * size
            if spec.kind == "C":
                conv = [nn.Conv2d(channels, spec.width, spec.kernel, padding=spec.kernel // 2, bias=not batch_norm)]
                blocks.append(nn.Sequential(*conv, *([nn.BatchNorm2d(spec.width)] if batch_norm else []), nn.ReLU()))
                channels = spec.width
            elif spec.kind == "P":
                blocks.append(nn.MaxPool2d(spec.kernel, spec.stride))
            elif spec.kind == "FC":
                blocks.append(nn.Sequential(nn.Flatten(), nn.Linear(flat, spec.width), nn.ReLU()))
                features = spec.width
            elif spec.kind == "SM":
                blocks.append(nn.Sequential(nn.Flatten(), nn.Linear(flat, num_classes)))
            else:  # GAP
                blocks.append(nn.Sequential(nn.Conv2d(channels, num_classes, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()))
        self.layers = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, in_channels, n, n) -> (B, num_classes)
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"this network was built for {self.image_size}x{self.image_size} inputs "
                             f"(LayerSpace(image_size={self.image_size})), got {tuple(x.shape[-2:])}")
        return self.layers(x)
