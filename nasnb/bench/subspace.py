"""NB201 cells whose edges use only some of the five ops: the space a *partial* table covers.

A table need not train all 6,466 classes of NB201: a smaller one (nb201-shapes) trains every class
of a sub-space, the cells whose six edges take their op from a subset, e.g. {skip_connect,
nor_conv_1x1, nor_conv_3x3}: 3^6 = 729 cells in 496 classes. A search then runs on that sub-space
(`table.space`), so every arch it proposes has its training in the table, and its moves are NB201's
restricted to the subset: a mutation changes one edge to another op *of the subset*.

    space = NB201OpsSpace(("skip_connect", "nor_conv_1x1", "nor_conv_3x3"))
    len(space)          # 729
    space.mutate(arch, rng)
    NB201OpsSpace([("skip_connect",)] + [("skip_connect", "nor_conv_1x1", "nor_conv_3x3")] * 5)  # per edge

`ops` may also give each edge its own ops (a list of 6 lists, in EDGES order), e.g. the cells
whose edge 1<-0 is a skip (node 1 is the input itself) and whose other edges are skip, 1x1 or
3x3 convs: 3^5 = 243 cells in 90 classes (build.SHAPES_SHIPPED_OPS).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nasnb.checks import short
from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.spaces.base import Choice, as_rng
from nasnb.spaces.nb201 import EDGE_NAMES, EDGES, OPS, NB201Space


EXAMPLE = "e.g. ops=('skip_connect', 'nor_conv_1x1', 'nor_conv_3x3')"


def _op_set(what: str, ops) -> tuple:
    if isinstance(ops, str) or not isinstance(ops, Sequence) or not ops:
        raise InvalidTypeError(f"{what} must be a list of NB201 op names, got {short(ops)}; {EXAMPLE}")
    unknown = [op for op in ops if op not in OPS]
    if unknown or len(set(ops)) != len(ops):
        raise InvalidValueError(f"{what}={short(list(ops))} must be distinct ops of {list(OPS)}"
                                f"{f' (unknown: {unknown})' if unknown else ''}; {EXAMPLE}")
    return tuple(op for op in OPS if op in ops)  # NB201's order, so equal subsets are equal spaces


class NB201OpsSpace(NB201Space):
    """The NB201 cells whose every edge carries one of `ops`, or edge k one of `ops[k]` (6 lists)."""

    def __init__(self, ops: Sequence):
        per_edge = isinstance(ops, Sequence) and not isinstance(ops, str) and len(ops) == len(EDGES) and all(
            isinstance(o, Sequence) and not isinstance(o, str) for o in ops)
        edge_ops = [_op_set(f"ops[{k}]", o) for k, o in enumerate(ops)] if per_edge else \
            [_op_set("ops", ops)] * len(EDGES)
        if all(len(o) == 1 for o in edge_ops):
            raise InvalidValueError(f"ops={short(ops)} leaves one cell: a space needs a choice; {EXAMPLE}")
        self.edge_ops = tuple(edge_ops)
        self.ops = self.edge_ops[0] if len(set(self.edge_ops)) == 1 else self.edge_ops  # what repr shows

    def __len__(self) -> int:
        return int(np.prod([len(o) for o in self.edge_ops]))

    def __repr__(self) -> str:
        return f"NB201OpsSpace(ops={self.ops})"

    @property
    def choices(self) -> list[Choice]:
        return [Choice(name, ops) for name, ops in zip(EDGE_NAMES, self.edge_ops)]

    def validate(self, arch) -> tuple:
        """An NB201 arch (NB201Space.validate) whose every op is one its edge allows."""
        arch = super().validate(arch)
        for name, op, allowed in zip(EDGE_NAMES, arch, self.edge_ops):
            if op not in allowed:
                raise InvalidValueError(f"op {op!r} on edge {name} is not in this space's ops there {list(allowed)}; "
                                        f"e.g. {tuple(o[-1] for o in self.edge_ops)}")
        return arch

    def sample(self, rng: np.random.Generator | int | None = None) -> tuple:
        """A uniformly random arch of the sub-space."""
        rng = as_rng(rng)
        return tuple(ops[int(rng.integers(len(ops)))] for ops in self.edge_ops)

    def mutate(self, arch, rng: np.random.Generator | int | None = None) -> tuple:
        """A copy of `arch` with one random edge that has a choice changed to another of its ops."""
        arch, rng = self.validate(arch), as_rng(rng)
        free = [e for e, ops in enumerate(self.edge_ops) if len(ops) > 1]
        edge = free[int(rng.integers(len(free)))]
        others = [op for op in self.edge_ops[edge] if op != arch[edge]]
        return arch[:edge] + (others[int(rng.integers(len(others)))],) + arch[edge + 1:]

    def neighbors(self, arch) -> list:
        """The archs of the sub-space one edge away."""
        arch = self.validate(arch)
        return [arch[:e] + (op,) + arch[e + 1:] for e in range(len(EDGES)) for op in self.edge_ops[e]
                if op != arch[e]]


def space_for(meta: dict) -> NB201Space:
    """The space a table's cells cover: its protocol's `cells["ops"]` sub-space, else all of NB201."""
    cells = meta.get("cells") if isinstance(meta, dict) else None
    if isinstance(cells, dict) and "ops" in cells:
        return NB201OpsSpace(cells["ops"])  # a list of names, or 6 lists
    return NB201Space()
