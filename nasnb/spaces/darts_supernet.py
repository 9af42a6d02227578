"""The DARTS search network: the one-shot supernet of the DARTS cell space.

Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search", ICLR 2019, Section 2 and
Appendix A.1 (the search network is smaller than the evaluation network of darts_network.py):

    image -> stem (3x3 conv to stem_multiplier*C) -> `layers` search cells -> global pool -> linear
                                                       `- cells layers//3 and 2*layers//3 reduce

A search cell has two inputs (the outputs of the two cells before it, preprocessed to C channels),
`steps` intermediate nodes, and an edge from every earlier state into every node: node i (state
i+2) reads states 0..i+1, so 2 + 3 + 4 + 5 = 14 edges for 4 nodes. Each edge is a MixedOp over the
space's ops ('none' included); its BatchNorms have no affine parameters (the α already scale each
op), and the pools get a BatchNorm too, as in the authors' code. The cell outputs the concatenation
of its last `multiplier` nodes. All normal cells share one α of shape (14, 8), all reduction cells
another.

With `partial_channels=K` (PC-DARTS, Xu et al., ICLR 2020, Sec. 3) each mixed op sees C/K channels
and the node inputs are weighted by edge normalisation β: node i adds softmax(β_i)_j · edge_ij(x_j)
over its inputs j, and the derived cell ranks edges by softmax(α) · softmax(β).

P-DARTS' `keep` (ops each edge holds) and `skip_dropout` are those of supernet.py.

The modes of `forward` (relaxation, one sub-network, GDAS' hard weights) are those of supernet.py;
β weights the node inputs in the relaxation (softmax(α) or given weights), never in a sub-network
chosen by `arch` or `ops`.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from nasnb.checks import check_bool, check_int, check_positive_int, short
from nasnb.errors import InvalidValueError
from nasnb.spaces.fast_ops import (SEARCH_CONVS, FastAvgPool2d, LeanBatchNorm2d, LeanMaxPool2d, SearchDilConv,
                                  check_fast, checkpointed, search_conv)
from nasnb.spaces.genotypes import Genotype
from nasnb.spaces.ops import DARTS_PRIMITIVES, FactorizedReduce, ReLUConvBN, Zero, make_darts_op
from nasnb.spaces.supernet import ALPHA_INIT_SCALE, MixedOp, Supernet, check_partial_channels

# fast_ops' `checkpoint` recomputes a mixed op only when its input has at least this many elements
# (2**17 floats, 512 KiB) *and* is as large as the first cell's edge inputs (the full-resolution
# stage, where half the step's activations live). Below it the recomputation's per-op Python work
# costs more than the memory is worth: at the notebooks' sizes (C=8, 8x8, batch 64; edge inputs of
# 32K-64K elements) checkpointing every edge doubled the weight step's time for 190 MB saved;
# at the paper's C=16, 32x32, batch 16 the first stage's edges have 262K-524K (benchmarks/README.md).
# The strided edges of the first reduction cell are left out by default (`checkpoint_strided`): their
# outputs are a quarter of their inputs, so they hold little memory (150 MB of the batch-16 weight
# step's 1000) and their recomputation at full resolution costs a tenth of the step.
CHECKPOINT_MIN_ELEMENTS = 2 ** 17
# fast_ops' `lean_saves` apply to the ops whose input has at least this many elements, for the
# same reason: at the notebooks' sizes their recomputations made the weight step 1.2x slower for
# 100 MB saved (benchmarks/README.md); at the paper's sizes every stage qualifies but the last at batch 16.
LEAN_MIN_ELEMENTS = 2 ** 17


def _search_op(name: str, C: int, stride: int, tricks: frozenset = frozenset()):
    """A DARTS op without affine BatchNorm; pools get a BatchNorm of their own (model_search.py).
    With `tricks` (fast_ops.py), the conv ops are the search versions (same weights and names)."""
    if name == "none":
        return None  # zero: MixedOp skips it
    lean = "lean_saves" in tricks
    if name in SEARCH_CONVS and tricks & {"depthwise_backward", "shared_relu", "lean_saves"}:
        return search_conv(name, C, stride, fast_backward="depthwise_backward" in tricks, lean=lean)
    op = make_darts_op(name, C, stride, affine=False)
    if name == "max_pool_3x3" and stride == 1 and tricks & {"lean_saves", "fast_pools"}:
        op = LeanMaxPool2d(3, stride=1, padding=1, separable="fast_pools" in tricks)  # the input is kept
        # anyway (the skip's term)
    if name == "avg_pool_3x3" and "fast_pools" in tricks:
        op = FastAvgPool2d(stride)
    if "pool" in name:
        op = nn.Sequential(op, (LeanBatchNorm2d if lean else nn.BatchNorm2d)(C, affine=False))
    return op


class DartsSearchCell(nn.Module):
    """A normal or reduction cell with a MixedOp on every edge (j -> node i, j < i + 2)."""

    def __init__(self, op_names, steps: int, multiplier: int, C_prev_prev: int, C_prev: int, C: int,
                 reduction: bool, reduction_prev: bool, partial_channels: int = 1, keep=None,
                 tricks: frozenset = frozenset()):
        """`keep`: an optional (num_edges, num_ops) bool mask; an op it drops gets no module (P-DARTS).
        `tricks`: the speed and memory tricks of fast_ops.py in use."""
        super().__init__()
        self.reduction, self.steps, self.multiplier, self.C = reduction, steps, multiplier, C
        # c_{k-2} is twice as large as c_{k-1} when the previous cell reduced: halve it too.
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(C_prev_prev, C, affine=False)
        else:
            self.preprocess0 = ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine=False)
        self.mixed = nn.ModuleList()
        for i in range(steps):
            for j in range(i + 2):
                stride = 2 if reduction and j < 2 else 1  # only the cell inputs are downsampled
                row = [True] * len(op_names) if keep is None else keep[len(self.mixed)].tolist()
                ops = {name: _search_op(name, C // partial_channels, stride, tricks) if kept else None
                       for name, kept in zip(op_names, row)}
                self.mixed.append(MixedOp(ops, stride, partial_channels, shared_relu="shared_relu" in tricks,
                                          fused_sum="fused_sum" in tricks))

    def forward(self, s0, s1, weights=None, ops=None, edge_weights=None, checkpoint_from: float = float("inf"),
                checkpoint_strided: bool = False):
        """(B, C_pp, H, W), (B, C_p, H, W) -> (B, multiplier * C, H', W'); per edge e: weights[e]
        (num_ops,), ops[e] (an op index), edge_weights[e] (PC-DARTS' β weight of the edge).
        `checkpoint_from`: in the relaxation, checkpoint (fast_ops.checkpointed) each mixed op whose
        input has at least this many elements (a stride-2 one only with `checkpoint_strided`)."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]  # each (B, C, H, W)
        offset = 0
        for i in range(self.steps):
            total = None
            for j, h in enumerate(states):
                e = offset + j
                if (ops is None and h.numel() >= checkpoint_from and torch.is_grad_enabled()  # the relaxation's memory
                        and (checkpoint_strided or self.mixed[e].stride == 1)):
                    out = checkpointed(self.mixed[e], h, weights[e])
                else:
                    out = self.mixed[e](h, None if weights is None else weights[e], None if ops is None else ops[e])
                if out is None:
                    continue  # only 'none' ran on this edge
                if edge_weights is not None:
                    out = edge_weights[e] * out
                total = out if total is None else total + out
            if total is None:  # every input of the node is 'none'
                total = Zero(self.C, self.C, 2 if self.reduction else 1)(states[0])
            offset += len(states)
            states.append(total)
        return torch.cat(states[-self.multiplier:], dim=1)


class DartsSupernet(Supernet):
    """The DARTS search network (`Network` of the authors' model_search.py), with the modes of
    supernet.py. `op_names` are the ops of every edge, in α's order (DARTS_PRIMITIVES by default).

    `edge_normalization` (PC-DARTS' β): None turns it on exactly when partial_channels > 1.
    `fast`: the speed and memory tricks of fast_ops.py, True (DEFAULT_TRICKS: all but `checkpoint`,
    the default), False (none, the plain network) or a collection of names from FAST_TRICKS
    (fast=FAST_TRICKS checkpoints too, for the least memory); outputs and gradients are the same.
    `checkpoint_min_elements`: with the `checkpoint` trick, only mixed ops whose input has at least
    this many elements and is as large as the first cell's are checkpointed (CHECKPOINT_MIN_ELEMENTS
    above; 0 checkpoints the first stage at any size). `checkpoint_strided`: checkpoint the stride-2
    edges of a reduction cell too when they qualify (off by default: they save little memory for
    their time). `lean_min_elements`: with `lean_saves`, the ops whose input has fewer elements
    keep PyTorch's saves (LEAN_MIN_ELEMENTS above; 0: lean at any size).
    """

    cell_names = ("normal", "reduce")

    def __init__(self, C: int = 16, layers: int = 8, num_classes: int = 10, in_channels: int = 3, steps: int = 4,
                 multiplier: int = 4, stem_multiplier: int = 3, op_names=DARTS_PRIMITIVES,
                 partial_channels: int = 1, edge_normalization: bool | None = None, keep: dict | None = None,
                 skip_dropout: float = 0.0, fast=True, checkpoint_min_elements: int = CHECKPOINT_MIN_ELEMENTS,
                 checkpoint_strided: bool = False, lean_min_elements: int = LEAN_MIN_ELEMENTS):
        super().__init__()
        self.fast = check_fast(fast)
        self.lean_min_elements = check_int("lean_min_elements", lean_min_elements, minimum=0,
                                           example=LEAN_MIN_ELEMENTS)
        self.checkpoint_min_elements = check_int("checkpoint_min_elements", checkpoint_min_elements, minimum=0,
                                                 example=CHECKPOINT_MIN_ELEMENTS)
        self.checkpoint_strided = check_bool("checkpoint_strided", checkpoint_strided)
        C = check_positive_int("C", C, example=16)
        layers = check_positive_int("layers", layers, example=8)
        num_classes = check_positive_int("num_classes", num_classes, example=10)
        self.in_channels = check_positive_int("in_channels", in_channels, example=3)
        self.steps = check_positive_int("steps", steps, example=4)
        self.multiplier = check_int("multiplier", multiplier, minimum=1, maximum=self.steps, example=self.steps)
        stem_multiplier = check_positive_int("stem_multiplier", stem_multiplier, example=3)
        if C % 2:  # FactorizedReduce splits the channels into two halves
            raise InvalidValueError(f"C must be even for the DARTS supernet (FactorizedReduce halves it), "
                                    f"got {C}; e.g. C=16")
        widths = [C * 2 ** k for k in range(3)]
        self.partial_channels = check_partial_channels(partial_channels, widths)
        if edge_normalization is None:
            edge_normalization = self.partial_channels > 1
        self.edge_normalization = check_bool("edge_normalization", edge_normalization)
        self.op_names = tuple(op_names)
        if "none" not in self.op_names:  # edges a sub-network leaves out run 'none'
            raise InvalidValueError(f"op_names must include 'none', got {short(self.op_names)}; "
                                    f"e.g. op_names={DARTS_PRIMITIVES}")
        self.reduction_layers = (layers // 3, 2 * layers // 3)
        self.concat = tuple(range(2 + self.steps - self.multiplier, self.steps + 2))
        num_edges = sum(i + 2 for i in range(self.steps))
        self._init_alpha(num_edges)
        self._init_keep(keep)
        if self.edge_normalization:
            self.beta = nn.ParameterDict(
                {cell: nn.Parameter(ALPHA_INIT_SCALE * torch.randn(num_edges)) for cell in self.cell_names})

        C_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C_curr, 3, padding=1, bias=False), nn.BatchNorm2d(C_curr))
        C_prev_prev, C_prev, C_curr = C_curr, C_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in self.reduction_layers
            if reduction:
                C_curr *= 2  # halve the resolution, double the channels
            self.cells.append(DartsSearchCell(self.op_names, self.steps, self.multiplier, C_prev_prev, C_prev,
                                              C_curr, reduction, reduction_prev, self.partial_channels,
                                              self.keep["reduce" if reduction else "normal"], self.fast))
            reduction_prev = reduction
            C_prev_prev, C_prev = C_prev, self.multiplier * C_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)
        self.skip_dropout = skip_dropout
        for m in self.modules():  # the lean-saves modules (fast_ops.lean_at) read their threshold
            if isinstance(m, (SearchDilConv, LeanBatchNorm2d, LeanMaxPool2d)):
                m.lean_min_elements = self.lean_min_elements

    def edge_weights(self) -> dict | None:
        """PC-DARTS' β as weights per edge: softmax over each node's inputs, per cell type (or None)."""
        if self.beta is None:
            return None
        result = {}
        for cell, beta in self.beta.items():
            parts, offset = [], 0
            for i in range(self.steps):
                parts.append(F.softmax(beta[offset:offset + i + 2], dim=-1))  # node i's i+2 inputs
                offset += i + 2
            result[cell] = torch.cat(parts)  # (num_edges,)
        return result

    def _forward(self, x, weights, ops):
        edge_weights = self.edge_weights() if ops is None else None  # one sub-network: no β
        if "channels_last" in self.fast and x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)  # NHWC: oneDNN's preferred layout
        s0 = s1 = self.stem(x)  # (B, stem_multiplier * C, H, W)
        checkpoint_from = float("inf")
        if "checkpoint" in self.fast:  # the first cell's edges see (B, C, H, W): checkpoint edges at least as large
            first_edge = s1.shape[0] * self.cells[0].C * s1.shape[2] * s1.shape[3]  # whole C: PC-DARTS splits inside
            checkpoint_from = max(self.checkpoint_min_elements, first_edge)
        for cell in self.cells:
            kind = "reduce" if cell.reduction else "normal"
            s0, s1 = s1, cell(s0, s1, None if weights is None else weights[kind], None if ops is None else ops[kind],
                              None if edge_weights is None else edge_weights[kind], checkpoint_from,
                              self.checkpoint_strided)
        logits = self.classifier(self.global_pooling(s1).flatten(1))  # (B, num_classes)
        return logits

    def arch_to_ops(self, genotype) -> dict:
        """A Genotype (or its text) as one op index per edge; edges the genotype does not use are 'none'."""
        from nasnb.spaces.darts import DartsSpace

        space = DartsSpace(steps=self.steps)
        genotype = space.parse(genotype) if isinstance(genotype, str) else space.validate(genotype)
        result = {}
        for cell in self.cell_names:
            edges, concat = getattr(genotype, cell), getattr(genotype, f"{cell}_concat")
            if len(edges) != 2 * self.steps or tuple(sorted(concat)) != self.concat:
                raise InvalidValueError(f"{cell} cell has {len(edges) // 2} nodes and concat {short(list(concat))}; "
                                        f"this supernet's cells have {self.steps} nodes and concat {list(self.concat)}")
            indices = [self.op_names.index("none")] * len(self.alpha[cell])
            used = set()
            for e, (op, j) in enumerate(edges):
                i = e // 2
                edge = sum(k + 2 for k in range(i)) + j  # edges of nodes before i, then input j
                if op not in self.op_names:
                    raise InvalidValueError(f"{cell} cell, node {i}: op {op!r} is not on this supernet's edges; "
                                            f"choose from {list(self.op_names)}")
                if edge in used:
                    raise InvalidValueError(f"{cell} cell, node {i} reads state {j} twice; a supernet has one edge "
                                            f"per pair of states, so each node needs two different inputs")
                used.add(edge)
                indices[edge] = self.op_names.index(op)
            result[cell] = tuple(indices)
        return result

    def derived(self) -> Genotype:
        """The discretised cells by the rule of the DARTS code (genotype()): per node, the two incoming
        edges whose strongest non-'none' op is strongest, each with that op (PC-DARTS: α weights times
        the edges' β weights). Only kept ops compete (P-DARTS' `keep`); an edge that keeps no op but
        'none' ranks below every other edge."""
        edge_weights = self.edge_weights()
        cells = {}
        with torch.no_grad():
            for cell, W in self.mixing_weights().items():  # (num_edges, num_ops), dropped ops 0
                if edge_weights is not None:
                    W = W * edge_weights[cell][:, None]
                W, keep = W.tolist(), self.keep[cell].tolist()
                real = [k for k, name in enumerate(self.op_names) if name != "none"]
                gene, start = [], 0
                for i in range(self.steps):
                    rows = W[start:start + i + 2]
                    ops = [[k for k in real if keep[start + j][k]] for j in range(i + 2)]  # kept, not 'none'
                    usable = [j for j in range(i + 2) if ops[j]]
                    if len(usable) < 2:
                        raise InvalidValueError(f"{cell} cell, node {i}: keep leaves {len(usable)} of its inputs an "
                                                f"op other than 'none', and a derived node needs two; keep an op on "
                                                f"at least two of its edges")
                    strongest = sorted(usable, key=lambda j: -max(rows[j][k] for k in ops[j]))[:2]  # stable
                    for j in strongest:
                        best = max(ops[j], key=lambda k: (rows[j][k], -k))  # first of equals, as the paper's loop
                        gene.append((self.op_names[best], j))
                    start += i + 2
                cells[cell], cells[f"{cell}_concat"] = gene, self.concat
        return Genotype(**cells)
