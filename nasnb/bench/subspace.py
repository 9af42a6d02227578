"""NB201 cells whose edges use only some of the five ops: the space a *partial* table covers.

A table need not train all 6,466 classes of NB201: a smaller one (nb201-shapes) trains every class
of a sub-space, the cells whose six edges take their op from a subset, e.g. {skip_connect,
nor_conv_1x1, nor_conv_3x3}: 3^6 = 729 cells in 496 classes. A search then runs on that sub-space
(`table.space`), so every arch it proposes has its training in the table, and its moves are NB201's
restricted to the subset: a mutation changes one edge to another op *of the subset*.

    space = NB201OpsSpace(("skip_connect", "nor_conv_1x1", "nor_conv_3x3"))
    len(space)          # 729
    space.mutate(arch, rng)
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nasnb.checks import short
from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.spaces.base import Choice, as_rng
from nasnb.spaces.nb201 import EDGE_NAMES, EDGES, OPS, NB201Space


class NB201OpsSpace(NB201Space):
    """The NB201 cells whose every edge carries one of `ops` (at least two of NB201's five ops)."""

    def __init__(self, ops: Sequence[str]):
        if isinstance(ops, str) or not isinstance(ops, Sequence):
            raise InvalidTypeError(f"ops must be a list of NB201 op names, got {short(ops)}; "
                                   "e.g. ops=('skip_connect', 'nor_conv_1x1', 'nor_conv_3x3')")
        unknown = [op for op in ops if op not in OPS]
        if unknown or len(set(ops)) != len(ops) or len(ops) < 2:
            raise InvalidValueError(f"ops={short(list(ops))} must be at least two distinct ops of {list(OPS)}"
                                    f"{f' (unknown: {unknown})' if unknown else ''}; "
                                    "e.g. ops=('skip_connect', 'nor_conv_1x1', 'nor_conv_3x3')")
        self.ops = tuple(op for op in OPS if op in ops)  # NB201's order, so equal subsets are equal spaces

    def __len__(self) -> int:
        return len(self.ops) ** len(EDGES)

    def __repr__(self) -> str:
        return f"NB201OpsSpace(ops={self.ops})"

    @property
    def choices(self) -> list[Choice]:
        return [Choice(name, self.ops) for name in EDGE_NAMES]

    def validate(self, arch) -> tuple:
        """An NB201 arch (NB201Space.validate) whose every op is one of `self.ops`."""
        arch = super().validate(arch)
        for name, op in zip(EDGE_NAMES, arch):
            if op not in self.ops:
                raise InvalidValueError(f"op {op!r} on edge {name} is not in this space's ops {list(self.ops)}; "
                                        f"e.g. {(self.ops[-1],) * 6}")
        return arch

    def sample(self, rng: np.random.Generator | int | None = None) -> tuple:
        """A uniformly random arch of the sub-space."""
        picks = as_rng(rng).integers(len(self.ops), size=len(EDGES))
        return tuple([self.ops[k] for k in picks.tolist()])

    def mutate(self, arch, rng: np.random.Generator | int | None = None) -> tuple:
        """A copy of `arch` with one random edge changed to another op of the subset."""
        arch, rng = self.validate(arch), as_rng(rng)
        edge = int(rng.integers(len(EDGES)))
        others = [op for op in self.ops if op != arch[edge]]
        return arch[:edge] + (others[int(rng.integers(len(others)))],) + arch[edge + 1:]

    def neighbors(self, arch) -> list:
        """The 6 * (len(ops) - 1) archs of the sub-space one edge away."""
        arch = self.validate(arch)
        return [arch[:e] + (op,) + arch[e + 1:] for e in range(len(EDGES)) for op in self.ops if op != arch[e]]


def space_for(meta: dict) -> NB201Space:
    """The space a table's cells cover: its protocol's `cells["ops"]` sub-space, else all of NB201."""
    cells = meta.get("cells") if isinstance(meta, dict) else None
    if isinstance(cells, dict) and "ops" in cells:
        return NB201OpsSpace(cells["ops"])
    return NB201Space()
