"""The ProxylessNAS supernet of a MobileNetSpace: every searched layer holds all of its candidate blocks.

Cai, Zhu & Han, "ProxylessNAS: Direct Neural Architecture Search on Target Task and Hardware",
ICLR 2019 (Sec. 3.1-3.2). The skeleton is MobileNetNetwork's (stem, first 3x3_MBConv1 block, the
searched layers, feature mix, pooling, classifier); each searched layer is a `MixedLayer` holding
one block per option of the space's Layer (an MBConv, or 'Zero', the identity: skipping the layer).
The architecture parameters α are one row per layer, one column per op of `op_names` (the space's
MBConv names, then 'Zero' when some layer may skip); an option a layer does not have (Zero where the
shape changes) has no module and probability exactly 0, as a P-DARTS dropped op.

Three ways to run it, chosen by the arguments of `forward`:

* ``net(x, arch=a)`` or ``net(x, ops=indices)``: ONE path per layer, only that block runs (path
  binarisation, eq. 3 of the paper, with the binary gates g = one-hot at the sampled op). This is
  the weight step: the memory of one sub-network, and only its blocks' weights get gradients.
* ``net(x, ops=active, gates=g, others=inactive)``: the α step's two paths. Each layer outputs

      g_a · o_a(x) + g_b · o_b(x)        with g = one-hot at a (so the value is o_a(x))

  where a is the active path and b the other sampled one. o_b runs without autograd (no_grad, as
  the authors' ``oi.detach()``): it stores nothing for backward but its output, so the memory stays
  that of one sub-network plus one feature map per layer, while ∂L/∂g_b = <∂L/∂out, o_b(x)> is
  still exact. ∂L/∂g is what the BinaryConnect gradient of α is made of (`binary_connect_gradient`,
  used by strategies/proxyless.py, with `rescale_pair`).
* ``net(x)``: the DARTS-style relaxation Σ_i softmax(α)_i · o_i(x), every block running (all
  paths in memory). ProxylessNAS avoids it; it is here to compare against (benchmarks/).

Each MBConv adds its own residual (x + h when the shape allows), and 'Zero' is the identity: the
outputs are x + h_i and x, where the authors' code writes shortcut(x) + Σ g_i h_i with Zero's h = 0.
The two differ by the same x in every path's output, which changes every ∂L/∂g_j by the same
<∂L/∂out, x>, and the gradient of α, Σ_j ∂L/∂g_j p_j (δ_ij − p_i), is blind to such a shift
(Σ_j p_j (δ_ij − p_i) = 0): the α updates are the same.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from nasnb.checks import check_int, check_positive_int, short
from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.spaces.mobilenet_network import ZERO, MBConv, ZeroLayer, conv_bn, mbconv_params
from nasnb.spaces.supernet import ALPHA_INIT_SCALE

CELL = "chain"  # the one "cell type" of a chain space: α is {"chain": (num_layers, num_ops)}


# ------------------------------------------------------------------------- α from binary gates

def binary_connect_gradient(gate_grads: torch.Tensor, alpha: torch.Tensor, paths: torch.Tensor) -> torch.Tensor:
    """∂L/∂α_i = Σ_j ∂L/∂g_j · q_j (δ_ij − q_i) per row, q = softmax of α over the row's `paths`
    (a bool mask: the two sampled ops, or every option). Entries outside `paths` get 0.

    gate_grads, alpha, paths: (num_layers, num_ops). Uses Σ_j G_j q_j (δ_ij − q_i) = q_i (G_i − Σ_j q_j G_j):
    the gates stand in for the probabilities they are drawn with (BinaryConnect, Courbariaux et al. 2015).
    """
    q = F.softmax(alpha.masked_fill(~paths, float("-inf")), dim=-1)  # (L, N), 0 outside the paths
    g = gate_grads.masked_fill(~paths, 0.0)
    return q * (g - (q * g).sum(dim=-1, keepdim=True))


def rescale_pair(alpha: torch.Tensor, before: torch.Tensor, paths: torch.Tensor) -> torch.Tensor:
    """α with the `paths` entries of each row shifted by log(Σ_paths e^α / Σ_paths e^before):
    Σ_paths e^α is back to what it was, so softmax(α) of every other entry is that of `before`."""
    offset = (torch.logsumexp(alpha.masked_fill(~paths, float("-inf")), dim=-1, keepdim=True)
              - torch.logsumexp(before.masked_fill(~paths, float("-inf")), dim=-1, keepdim=True))  # (L, 1)
    return torch.where(paths, alpha - offset, alpha)


# ------------------------------------------------------------------------- the network

class MixedLayer(nn.Module):
    """ProxylessNAS's MixedEdge: one block per option of a layer, each with its own weights.

    `columns[k]` is the α column (index into the supernet's op_names) of `options[k]`; blocks are
    looked up by column in `blocks`.
    """

    def __init__(self, layer, op_names: Sequence[str]):
        super().__init__()
        self.name, self.options = layer.name, tuple(layer.options)
        self.columns = tuple(op_names.index(op) for op in self.options)
        blocks = {}
        for op in self.options:
            if op == ZERO:
                blocks[op] = ZeroLayer()
            else:
                kernel_size, expansion = mbconv_params(op)
                blocks[op] = MBConv(layer.in_channels, layer.out_channels, kernel_size, layer.stride, expansion)
        self.blocks = nn.ModuleDict(blocks)
        self.op_names = tuple(op_names)

    def block(self, column: int) -> nn.Module:
        return self.blocks[self.op_names[column]]

    def forward(self, x: torch.Tensor, active: int, gates: torch.Tensor | None = None,
                other: int | None = None) -> torch.Tensor:
        """The active block on x; with `gates` (this layer's row of g), g_a·o_a(x) + g_b·o_b(x),
        o_b (the `other` column) computed without autograd."""
        h = self.block(active)(x)  # (B, C_out, H/s, W/s)
        if gates is None:
            return h
        h = gates[active] * h
        if other is not None:
            with torch.no_grad():
                h_other = self.block(other)(x)
            h = h + gates[other] * h_other  # value unchanged (g_b = 0); d out / d g_b = o_b(x)
        return h

    def relaxed(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Σ_i weights_i · o_i(x) over the layer's options: every block runs (DARTS' eq. 2)."""
        h = None
        for column in self.columns:
            term = weights[column] * self.block(column)(x)
            h = term if h is None else h + term
        return h


class MobileNetSupernet(nn.Module):
    """Every architecture of a MobileNetSpace in one network, with α per layer (module docstring).

    Interface of the other supernets (spaces/supernet.py): `alpha` (an nn.ParameterDict, "chain" ->
    (num_layers, num_ops)), `op_names`, `cell_names`, `mixing_weights()`, `alphas()`,
    `arch_parameters()`, `weight_parameters()`, `arch_to_ops(arch)`, `derived()`.
    """

    cell_names = (CELL,)

    def __init__(self, space, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        if not hasattr(space, "layers") or not hasattr(space, "ops"):
            raise InvalidTypeError(f"MobileNetSupernet needs a MobileNetSpace, got {short(space)}")
        self.space = space
        num_classes = check_positive_int("num_classes", num_classes, example=10)
        self.in_channels = check_positive_int("in_channels", in_channels, example=1)
        zero = any(ZERO in layer.options for layer in space.layers)
        self.op_names = tuple(space.ops) + ((ZERO,) if zero else ())
        self.layers = nn.ModuleList(MixedLayer(layer, self.op_names) for layer in space.layers)
        available = torch.zeros(len(self.layers), len(self.op_names), dtype=torch.bool)
        for row, layer in enumerate(self.layers):
            available[row, list(layer.columns)] = True
        self.available = available  # (num_layers, num_ops): which α entries are real options (not saved)
        self.alpha = nn.ParameterDict({CELL: nn.Parameter(ALPHA_INIT_SCALE * torch.randn(available.shape))})
        self.stem = conv_bn(self.in_channels, space.stem_width, 3, space.stem_stride)
        self.first = MBConv(space.stem_width, space.first_width, 3, 1, 1)  # the fixed 3x3_MBConv1
        last_width = space.layers[-1].out_channels
        self.feature_mix = conv_bn(last_width, space.head_width, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(space.head_width, num_classes)

    # ------------------------------------------------------------------ α read out

    def masked_alpha(self, alpha: torch.Tensor | None = None) -> torch.Tensor:
        """α with −inf where a layer lacks the op, so that softmax gives it exactly 0."""
        alpha = self.alpha[CELL] if alpha is None else alpha
        return alpha.masked_fill(~self.available.to(alpha.device), float("-inf"))

    def mixing_weights(self) -> dict[str, torch.Tensor]:
        """p = softmax(α) per layer over its options (the probability of each path)."""
        return {CELL: F.softmax(self.masked_alpha(), dim=-1)}

    def alphas(self) -> dict[str, list[list[float]]]:
        """softmax(α) as plain lists, one row per layer, one entry per op of op_names (0 where absent)."""
        with torch.no_grad():
            return {cell: w.tolist() for cell, w in self.mixing_weights().items()}

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha[CELL]]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def arch_to_ops(self, arch) -> tuple:
        """An architecture of the space (tuple of op names, or its string) as one α column per layer."""
        arch = self.space.parse(arch) if isinstance(arch, str) else self.space.validate(arch)
        return tuple(self.op_names.index(op) for op in arch)

    def ops_to_arch(self, ops: Sequence[int]) -> tuple:
        return tuple(self.op_names[i] for i in ops)

    def derived(self) -> tuple:
        """The discretised architecture: the most likely op of each layer (argmax of α over its options)."""
        with torch.no_grad():
            return self.ops_to_arch(self.masked_alpha().argmax(dim=-1).tolist())

    # ------------------------------------------------------------------ forward

    def forward(self, x: torch.Tensor, arch=None, *, ops=None, gates: torch.Tensor | None = None,
                others=None, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, num_classes); see the module docstring for the three ways to run it.

        arch / ops: one path per layer (an arch of the space, or one α column per layer).
        gates: with ops, a (num_layers, num_ops) tensor g (one-hot rows at ops); others: the
            second sampled column per layer (None where there is none).
        weights: without ops, the relaxation's mixing weights (default softmax(α)).
        """
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InvalidValueError(f"x must be a batch of images of shape (B, {self.in_channels}, H, W), got {got}")
        if arch is not None:
            if ops is not None:
                raise InvalidValueError("give arch= or ops=, not both: arch is turned into one op per layer")
            ops = self.arch_to_ops(arch)
        h = self.first(self.stem(x))  # (B, first_width, H/s, W/s)
        if ops is None:
            if gates is not None or others is not None:
                raise InvalidValueError("gates= and others= need ops= (the active op of each layer)")
            weights = self.mixing_weights()[CELL] if weights is None else weights
            for row, layer in enumerate(self.layers):
                h = layer.relaxed(h, weights[row])
        else:
            ops = self._check_ops("ops", ops)
            others = [None] * len(ops) if others is None else self._check_ops("others", others, allow_none=True)
            if gates is not None and tuple(gates.shape) != tuple(self.available.shape):
                raise InvalidValueError(f"gates has shape {tuple(gates.shape)}; it needs "
                                        f"{tuple(self.available.shape)} (layers x ops)")
            for row, layer in enumerate(self.layers):
                h = layer(h, ops[row], None if gates is None else gates[row], others[row])
        h = self.pool(self.feature_mix(h)).flatten(1)  # (B, head_width)
        return self.classifier(h)

    def _check_ops(self, name: str, ops, allow_none: bool = False) -> tuple:
        if isinstance(ops, torch.Tensor):
            ops = ops.tolist()
        if isinstance(ops, (str, bytes)) or not isinstance(ops, Sequence) or len(ops) != len(self.layers):
            raise InvalidValueError(f"{name} must list one op index per layer ({len(self.layers)}), got "
                                    f"{short(ops)}; e.g. {name}={[layer.columns[0] for layer in self.layers]}")
        checked = []
        for row, (layer, column) in enumerate(zip(self.layers, ops)):
            if column is None and allow_none:
                checked.append(None)
                continue
            column = check_int(f"{name}[{row}]", column, minimum=0, maximum=len(self.op_names) - 1)
            if column not in layer.columns:
                raise InvalidValueError(f"{name}[{row}] = {column} ({self.op_names[column]!r}) is not an option of "
                                        f"layer {layer.name}; choose from {list(layer.columns)} "
                                        f"({list(layer.options)})")
            checked.append(column)
        return tuple(checked)
