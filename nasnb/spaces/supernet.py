"""One-shot supernets: every candidate op on every edge, sharing one set of weights.

A supernet holds all architectures of a cell space at once. Each edge is a `MixedOp` holding every
candidate op; architecture parameters α (one vector per edge, one op entry each) say how much each
op counts. One class, three ways to run it, chosen by the arguments of `forward`:

* ``net(x)``: DARTS' continuous relaxation (Liu et al., 2019, eq. 1-2). Edge (i, j) outputs

      o_ij(x) = sum_o softmax(α_ij)_o · o(x)

* ``net(x, arch=a)`` or ``net(x, ops=indices)``: one sub-network on the shared weights (ENAS, Pham
  et al., 2018): each edge runs only its chosen op. ``net(x, weights=w, ops=w.argmax(-1))`` scales
  the chosen op by its (hard, one-hot) weight, so a straight-through estimate reaches α (GDAS,
  Dong & Yang, 2019, eq. 5-7); ``net(x, weights=w)`` alone is the weighted sum with given weights.
* ``partial_channels=K`` at construction (PC-DARTS, Xu et al., 2020): only C/K channels go through
  the mixed op, the other channels bypass it, and a channel shuffle mixes the two.

Two hooks for P-DARTS (Chen et al., ICCV 2019): ``keep`` at construction (the "switches" of Sec.
3.2: per cell type a (num_edges, num_ops) bool mask; a dropped op has no module, and its softmax
weight is exactly 0, the softmax running over the kept ops only; α keeps its full shape), and
``skip_dropout`` (Sec. 3.3, dropout after every skip connection of the mixed ops, in training mode;
the authors' CIFAR-10 script starts its three stages at 0.1, 0.4 and 0.7 and decays the rate
within each stage), a constructor argument and an attribute to set between epochs.

The 'none' op costs nothing: its output is zero, so it is skipped (its softmax weight still counts
in the denominator, so the other weights are exactly DARTS').

This file holds the mixed op, the shared supernet base and the NAS-Bench-201 supernet (the macro
skeleton of nb201.py); darts_supernet.py holds the DARTS search network.
"""
from __future__ import annotations

import contextlib

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from nasnb.checks import check_float, check_int, check_positive_int, short
from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.spaces.fast_ops import SearchDilConv, SearchReLUConvBN, SearchSepConv, lean_at, weighted_sum
from nasnb.spaces.ops import Identity, Pool, ReLUConvBN, ResNetBasicBlock, Zero

ALPHA_INIT_SCALE = 1e-3  # α starts near zero (all ops equally weighted), as in the DARTS code


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave `groups` channel groups (ShuffleNet, Zhang et al., 2018): (B, g*c, H, W) -> same shape."""
    B, C, H, W = x.shape
    return x.view(B, groups, C // groups, H, W).transpose(1, 2).reshape(B, C, H, W)


class MixedOp(nn.Module):
    """One supernet edge: every candidate op, applied to the same input.

    `ops` maps op name -> module, in the order of α's entries; the 'none' op needs no module and is
    given as None, and so is an op P-DARTS' `keep` dropped. With `partial_channels=K`, the ops see
    C/K channels (build them for C/K) and the rest bypass them (max-pooled when the edge has
    stride 2), as in PC-DARTS. `shared_relu`: compute ReLU(x) once for the conv ops (fast_ops.py).
    """

    def __init__(self, ops: dict, stride: int = 1, partial_channels: int = 1, shared_relu: bool = False,
                 fused_sum: bool = False):
        super().__init__()
        self.names = tuple(ops)
        self.ops = nn.ModuleDict({name: op for name, op in ops.items() if op is not None})
        self.stride, self.partial_channels = stride, partial_channels
        self.skip_dropout = 0.0  # P-DARTS' dropout rate after skip_connect; the supernet sets it
        # one ReLU(x) for every conv op of the edge (fast_ops.py), when more than one would compute it
        self.shared_relu = shared_relu and sum(map(_takes_relu, self.ops.values())) > 1
        self.fused_sum = fused_sum  # the weighted sum as one autograd node (fast_ops.weighted_sum)
        self.relu_takers = [op for op in self.ops.values() if _takes_relu(op)]

    def run_op(self, name: str, x: torch.Tensor, relu_x: torch.Tensor | None = None) -> torch.Tensor:
        """One candidate op on x (`relu_x`: ReLU(x), computed once for the edge's conv ops); a
        parameter-free skip connection goes through P-DARTS' dropout (as in the authors'
        model_search.py: Identity followed by nn.Dropout(p), training mode only)."""
        op = self.ops[name]
        h = op(x, relu_x) if relu_x is not None and _takes_relu(op) else op(x)
        if self.skip_dropout > 0 and self.training and isinstance(self.ops[name], Identity):
            h = F.dropout(h, self.skip_dropout, training=True)
        return h

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None, op: int | None = None):
        """Weighted sum of all ops (`weights`), or the one op `op` (scaled by weights[op] if given).

        Returns None when the result is all zeros (only 'none' ops ran, no channels bypass): the
        cell then has nothing to add.
        """
        if weights is None and op is None:
            raise InvalidValueError("a MixedOp needs weights= (one per op) or op= (the index of the op to run)")
        K = self.partial_channels
        if K > 1:
            k = x.shape[1] // K
            x, bypass = x[:, :k], x[:, k:]  # (B, C/K, H, W) through the ops, (B, C - C/K, H, W) around them
        if op is not None:
            name = self.names[op]
            h = None if name not in self.ops else self.run_op(name, x)
            if h is not None and weights is not None:
                h = weights[op] * h  # GDAS: the value of the one-hot weight is 1, its gradient reaches α
        else:
            h = None
            relu_x = None
            if self.shared_relu:
                # lean conv ops take ReLU(x) as a value only (their backward goes through x): no graph for it
                without_graph = all(lean_at(op, x) for op in self.relu_takers)
                with torch.no_grad() if without_graph else contextlib.nullcontext():
                    relu_x = F.relu(x)
            if self.fused_sum and self.ops:
                kept = [i for i, name in enumerate(self.names) if name in self.ops]
                outputs = [self.run_op(self.names[i], x, relu_x) for i in kept]
                h = weighted_sum(weights[kept], outputs)  # eq. (2) of DARTS
            for i, name in enumerate(self.names if h is None else ()):
                if name in self.ops:  # 'none' and dropped ops are skipped: w * 0 adds nothing
                    term = weights[i] * self.run_op(name, x, relu_x)  # eq. (2) of DARTS
                    h = term if h is None else h + term
        if K == 1:
            return h
        if h is None:
            h = Zero(k, k, self.stride)(x)
        if bypass.shape[-1] != h.shape[-1]:  # a stride-2 edge: the bypass shrinks too
            bypass = F.max_pool2d(bypass, 2, 2, ceil_mode=True)  # ceil: 7x7 -> 4x4 like the strided ops
        return channel_shuffle(torch.cat([h, bypass], dim=1), K)


def _takes_relu(op: nn.Module) -> bool:
    """A search op that can take ReLU(x) instead of x (fast_ops.py)."""
    return isinstance(op, (SearchReLUConvBN, SearchDilConv, SearchSepConv))


def check_partial_channels(partial_channels, widths: Sequence[int]) -> int:
    """PC-DARTS' K: an int >= 1 dividing every width the mixed ops see."""
    K = check_positive_int("partial_channels", partial_channels, example=4)
    bad = [w for w in widths if w % K]
    if bad:
        valid = max(k for k in range(1, K + 1) if all(w % k == 0 for w in widths))
        raise InvalidValueError(f"partial_channels={K} must divide the channels of every mixed op, but "
                                f"{bad[0]} channels do not split into {K} groups; e.g. partial_channels={valid} "
                                f"(or choose C as a multiple of {K})")
    return K


class Supernet(nn.Module):
    """What every supernet shares: α per cell type, the parameter split, α read out, P-DARTS' op
    mask and skip dropout, and the translation of `forward`'s arguments into per-edge weights or op
    indices.

    Subclasses set `self.alpha` (an nn.ParameterDict, cell name -> (num_edges, num_ops)),
    `self.op_names`, and implement `_forward(x, weights, ops)` and `derived()`.
    """

    cell_names: tuple = ("cell",)

    def __init__(self):
        super().__init__()
        self.beta = None  # PC-DARTS' edge normalisation, when a subclass uses it
        self.keep = None  # P-DARTS' op mask, set by _init_keep
        self._skip_dropout = 0.0

    def _init_alpha(self, num_edges: int) -> None:
        shape = (num_edges, len(self.op_names))
        self.alpha = nn.ParameterDict(
            {cell: nn.Parameter(ALPHA_INIT_SCALE * torch.randn(shape)) for cell in self.cell_names})

    def _init_keep(self, keep) -> None:
        """P-DARTS' switches: None keeps every op; else per cell type a (num_edges, num_ops) bool mask."""
        if keep is None:
            self.keep = {cell: torch.ones(a.shape, dtype=torch.bool) for cell, a in self.alpha.items()}
        else:
            self.keep = self._check_per_cell("keep", keep, self._check_keep)

    def _check_keep(self, name: str, cell: str, mask) -> torch.Tensor:
        shape = tuple(self.alpha[cell].shape)
        example = f"e.g. {name}={{{cell!r}: torch.ones{shape}, dtype=torch.bool), ...}}"
        if not isinstance(mask, torch.Tensor):
            try:
                mask = torch.tensor(mask)
            except (TypeError, ValueError, RuntimeError):
                raise InvalidTypeError(f"{name}[{cell!r}] must be a bool tensor of shape {shape} (edges x ops), "
                                       f"got {short(mask)}; {example}") from None
        if mask.dtype != torch.bool:
            raise InvalidTypeError(f"{name}[{cell!r}] must hold bools (True keeps the op), got dtype {mask.dtype}; "
                                   f"{example}")
        if tuple(mask.shape) != shape:
            raise InvalidValueError(f"{name}[{cell!r}] has shape {tuple(mask.shape)}; it needs {shape} "
                                    f"(one row per edge, one column per op of {list(self.op_names)}); {example}")
        empty = (~mask.any(dim=-1)).nonzero().flatten().tolist()
        if empty:
            raise InvalidValueError(f"{name}[{cell!r}] drops every op of edge {empty[0]}; each edge must keep at "
                                    f"least one op (a row with a True)")
        return mask.detach().cpu().clone()

    def _kept(self, cell: str, edge: int) -> tuple:
        """The names of the ops edge `edge` of cell type `cell` keeps."""
        row = self.keep[cell][edge].tolist()
        return tuple(name for name, kept in zip(self.op_names, row) if kept)

    @property
    def skip_dropout(self) -> float:
        """P-DARTS' dropout rate after each skip connection of the mixed ops (training mode only)."""
        return self._skip_dropout

    @skip_dropout.setter
    def skip_dropout(self, p) -> None:
        p = check_float("skip_dropout", p, minimum=0.0, example=0.4)
        if p >= 1.0:
            raise InvalidValueError(f"skip_dropout must be in [0, 1) (1 drops every skip connection), got {p}; "
                                    f"e.g. skip_dropout=0.4")
        self._skip_dropout = p
        for module in self.modules():
            if isinstance(module, MixedOp):
                module.skip_dropout = p

    def mixing_weights(self) -> dict[str, torch.Tensor]:
        """softmax(α) per cell type over each edge's kept ops; a dropped op's weight is exactly 0."""
        return {cell: F.softmax(a.masked_fill(~self.keep[cell].to(a.device), float("-inf")), dim=-1)
                for cell, a in self.alpha.items()}

    def arch_parameters(self) -> list[nn.Parameter]:
        """The architecture parameters: α per cell type (then β when edge normalisation is on)."""
        params = list(self.alpha.values())
        return params + (list(self.beta.values()) if self.beta is not None else [])

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every other parameter (the shared op weights); with arch_parameters, all of parameters()."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def alphas(self) -> dict[str, list[list[float]]]:
        """softmax(α) per cell type, per edge, as plain lists (rows in edge order, entries in op order;
        an op dropped by `keep` has weight 0)."""
        with torch.no_grad():
            return {cell: w.tolist() for cell, w in self.mixing_weights().items()}

    def forward(self, x: torch.Tensor, arch=None, *, weights=None, ops=None) -> torch.Tensor:
        """Logits (B, num_classes). No arguments: the DARTS relaxation with softmax(α). `arch` (an
        architecture of the space) or `ops` (an op index per edge, per cell type): that sub-network
        only. `weights` (a (num_edges, num_ops) tensor per cell type): those mixing weights instead
        of softmax(α); with `ops` too, only the chosen ops run, scaled by their weight (GDAS)."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            hint = f"in_channels={x.shape[1]}" if isinstance(x, torch.Tensor) and x.dim() == 4 else "a 4-d tensor"
            raise InvalidValueError(f"x must be a batch of images of shape (B, {self.in_channels}, H, W), got "
                                    f"{got}; e.g. build the supernet with {hint} for this data")
        if arch is not None:
            if ops is not None:
                raise InvalidValueError("give arch= or ops=, not both: arch is turned into one op per edge")
            ops = self.arch_to_ops(arch)
            for cell, indices in ops.items():
                self._check_kept("arch", cell, indices)
        elif ops is not None:
            ops = self._check_per_cell("ops", ops, self._check_ops)
        if weights is not None:
            weights = self._check_per_cell("weights", weights, self._check_weights)
        elif ops is None:
            weights = self.mixing_weights()  # softmax(α), eq. (2) of DARTS
        return self._forward(x, weights, ops)

    # ------------------------------------------------------------------ argument checks

    def _check_per_cell(self, name: str, value, check) -> dict:
        """A dict cell name -> value (one value is fine for a one-cell-type supernet), each checked."""
        if not isinstance(value, dict):
            if len(self.cell_names) > 1:
                raise InvalidTypeError(f"{name} must be a dict with one entry per cell type {list(self.cell_names)}, "
                                       f"got {type(value).__name__}; e.g. {name}={{'normal': ..., 'reduce': ...}}")
            value = {self.cell_names[0]: value}
        if set(value) != set(self.cell_names):
            raise InvalidValueError(f"{name} has entries for {short(sorted(value))}; it needs exactly "
                                    f"{list(self.cell_names)}")
        return {cell: check(name, cell, value[cell]) for cell in self.cell_names}

    def _check_weights(self, name: str, cell: str, w) -> torch.Tensor:
        shape = tuple(self.alpha[cell].shape)
        if not isinstance(w, torch.Tensor):
            raise InvalidTypeError(f"{name}[{cell!r}] must be a tensor of shape {shape} (one weight per edge and "
                                   f"op), got {type(w).__name__}; e.g. torch.softmax(net.alpha[{cell!r}], -1)")
        if tuple(w.shape) != shape:
            raise InvalidValueError(f"{name}[{cell!r}] has shape {tuple(w.shape)}; it needs {shape} "
                                    f"(edges x ops), e.g. torch.softmax(net.alpha[{cell!r}], -1)")
        return w

    def _check_ops(self, name: str, cell: str, indices) -> tuple:
        num_edges, num_ops = self.alpha[cell].shape
        if isinstance(indices, torch.Tensor):
            indices = indices.tolist()
        if isinstance(indices, (str, bytes)) or not isinstance(indices, Sequence) or len(indices) != num_edges:
            raise InvalidValueError(f"{name}[{cell!r}] must list one op index per edge ({num_edges}), got "
                                    f"{short(indices)}; e.g. {[0] * num_edges}")
        indices = tuple(check_int(f"{name}[{cell!r}][{e}]", i, minimum=0, maximum=num_ops - 1)
                        for e, i in enumerate(indices))
        return self._check_kept(name, cell, indices)

    def _check_kept(self, name: str, cell: str, indices: tuple) -> tuple:
        """A sub-network may only use kept ops; 'none' (no edge, no module) is always allowed."""
        for e, i in enumerate(indices):
            if not self.keep[cell][e, i] and self.op_names[i] != "none":
                raise InvalidValueError(f"{name} chooses {self.op_names[i]!r} on edge {e} of the {cell} cell, but "
                                        f"keep dropped it there; choose one of {list(self._kept(cell, e))}")
        return indices


class NB201Supernet(Supernet):
    """The NAS-Bench-201 macro skeleton (nb201.py) with every cell edge a MixedOp over the 5 ops.

    As in the benchmark's search models (Dong & Yang, 2020, Sec. 5), BatchNorm inside the cells has
    no affine parameters, while the stem and the ResNet blocks between stages keep theirs. All 3N
    cells share one α of shape (6, 5): a NB201 architecture is one cell.
    """

    def __init__(self, C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3,
                 partial_channels: int = 1, keep: dict | None = None, skip_dropout: float = 0.0):
        from nasnb.spaces.nb201 import EDGES, OPS

        super().__init__()
        C, N = check_positive_int("C", C, example=16), check_positive_int("N", N, example=5)
        num_classes = check_positive_int("num_classes", num_classes, example=10)
        self.in_channels = check_positive_int("in_channels", in_channels, example=3)
        self.partial_channels = check_partial_channels(partial_channels, (C, 2 * C, 4 * C))
        self.op_names, self.edges = OPS, EDGES
        self._init_alpha(len(EDGES))
        self._init_keep(keep)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers = []
        for stage, width in enumerate((C, 2 * C, 4 * C)):
            if stage > 0:
                layers.append(ResNetBasicBlock(width // 2, width, stride=2))  # halves H and W
            layers += [NB201SearchCell(width, self.partial_channels, self.keep["cell"]) for _ in range(N)]
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(4 * C), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(4 * C, num_classes)
        self.skip_dropout = skip_dropout

    def _forward(self, x, weights, ops):
        h = self.stem(x)
        for layer in self.cells:
            if isinstance(layer, NB201SearchCell):
                h = layer(h, None if weights is None else weights["cell"], None if ops is None else ops["cell"])
            else:
                h = layer(h)
        h = self.pool(self.lastact(h)).flatten(1)  # (B, 4C)
        return self.classifier(h)

    def arch_to_ops(self, arch) -> dict:
        """An NB201 arch (tuple of 6 op names, or its string) as op indices per edge."""
        from nasnb.spaces.nb201 import NB201Space

        space = NB201Space()
        arch = space.parse(arch) if isinstance(arch, str) else space.validate(arch)
        return {"cell": tuple(self.op_names.index(op) for op in arch)}

    def derived(self) -> tuple:
        """The discretised cell: the strongest kept op (largest α, 'none' included) on each edge."""
        with torch.no_grad():
            strongest = self.mixing_weights()["cell"].argmax(dim=-1).tolist()
        return tuple(self.op_names[i] for i in strongest)


def _nb201_search_op(name: str, C: int):
    """NB201's ops at C -> C, stride 1, without affine BatchNorm (the ops.py registry has no affine switch)."""
    return {
        "none": lambda: None,
        "skip_connect": lambda: Identity(),
        "nor_conv_1x1": lambda: ReLUConvBN(C, C, 1, 1, 0, affine=False),
        "nor_conv_3x3": lambda: ReLUConvBN(C, C, 3, 1, 1, affine=False),
        "avg_pool_3x3": lambda: Pool(C, C, 1, "avg", affine=False),
    }[name]()


class NB201SearchCell(nn.Module):
    """A NB201 cell whose 6 edges are mixed ops: node_i = sum_{j<i} mixed_ij(node_j). `keep`: an
    optional (6, 5) bool mask of the ops each edge holds (P-DARTS); a dropped op gets no module."""

    def __init__(self, C: int, partial_channels: int = 1, keep: torch.Tensor | None = None):
        from nasnb.spaces.nb201 import EDGES, OPS

        super().__init__()
        self.C, self.edges = C, EDGES
        C_op = C // partial_channels
        keep = torch.ones(len(EDGES), len(OPS), dtype=torch.bool) if keep is None else keep
        self.mixed = nn.ModuleList(
            MixedOp({op: _nb201_search_op(op, C_op) if keep[e, k] else None for k, op in enumerate(OPS)},
                    1, partial_channels)
            for e in range(len(EDGES)))

    def forward(self, x, weights=None, ops=None):  # (B, C, H, W) -> (B, C, H, W)
        nodes = [x]
        for i in (1, 2, 3):
            total = None
            for e, (j, to) in enumerate(self.edges):
                if to != i:
                    continue
                h = self.mixed[e](nodes[j], None if weights is None else weights[e], None if ops is None else ops[e])
                if h is not None:
                    total = h if total is None else total + h
            nodes.append(torch.zeros_like(x) if total is None else total)
        return nodes[3]
