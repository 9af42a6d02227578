"""Genotype: a pair of DARTS/NASNet cells written down, and the published ones.

A Genotype has the fields and op names of the DARTS code (Liu et al., 2019, cnn/genotypes.py):
each cell is a list of (op_name, input_index) pairs, two per intermediate node, and `*_concat`
lists the nodes the cell's output concatenates. Genotypes copied from papers or repositories paste
in unchanged (lists, `range(2, 6)`); they are converted to tuples so that a Genotype is immutable
and hashable, a value a search can store and compare.
"""
from __future__ import annotations

import collections
import collections.abc

import numpy as np

from nasnb.checks import short
from nasnb.errors import InvalidValueError


def _is_index(value) -> bool:
    """An int (or numpy int) but not a bool: True is an int to Python, not a state number."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_edge(item) -> bool:
    return isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str) and _is_index(item[1])


def _as_edges(cell, field: str) -> tuple:
    """Edges as a tuple of (op, index) tuples; also flattens the per-node nested form [[e, e], ...]."""
    if isinstance(cell, (str, bytes)) or not isinstance(cell, collections.abc.Iterable):
        raise InvalidValueError(f"{field} must be a list of (op_name, input_index) pairs like "
                                f"[('sep_conv_3x3', 0), ('skip_connect', 1)], got {short(cell)}")
    edges = []
    for item in cell:
        if _is_edge(item):
            edges.append((item[0], int(item[1])))
        elif isinstance(item, (list, tuple)) and item and all(_is_edge(e) for e in item):
            edges.extend((e[0], int(e[1])) for e in item)  # per-node form used by some DARTS forks
        else:
            raise InvalidValueError(f"{field}: {short(item)} is not an (op_name, input_index) pair "
                                    f"like ('sep_conv_3x3', 0)")
    return tuple(edges)


def _as_concat(concat, field: str) -> tuple:
    if isinstance(concat, (str, bytes)) or not isinstance(concat, collections.abc.Iterable):
        raise InvalidValueError(f"{field} must be a list of node indices like [2, 3, 4, 5] or range(2, 6), "
                                f"got {short(concat)}")
    items = list(concat)
    if not all(_is_index(i) for i in items):
        raise InvalidValueError(f"{field} must hold ints (state indices) like [2, 3, 4, 5], got {short(items)}")
    return tuple(int(i) for i in items)


class Genotype(collections.namedtuple("Genotype", "normal normal_concat reduce reduce_concat")):
    """Two cells in the DARTS code's format, made immutable: lists become tuples, range a tuple.

    `Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6), ...)` pasted from a
    paper's repository works unchanged and equals the same genotype written with tuples. A
    genotype made by the DARTS code itself converts with `Genotype(*theirs)`.
    """

    __slots__ = ()

    def __new__(cls, normal, normal_concat, reduce, reduce_concat):
        return super().__new__(cls, _as_edges(normal, "normal"), _as_concat(normal_concat, "normal_concat"),
                               _as_edges(reduce, "reduce"), _as_concat(reduce_concat, "reduce_concat"))

    @classmethod
    def _make(cls, iterable):  # namedtuple's _make/_replace would bypass __new__'s conversion
        return cls(*iterable)

    def __repr__(self) -> str:  # the DARTS code's format, so logs and papers read the same
        return (f"Genotype(normal={list(self.normal)!r}, normal_concat={list(self.normal_concat)!r}, "
                f"reduce={list(self.reduce)!r}, reduce_concat={list(self.reduce_concat)!r})")


# Published cells, copied from the reference code: NASNet, AmoebaNet and DARTS_V1 (first-order
# DARTS) from quark0/darts cnn/genotypes.py; DARTS_V2 (second-order DARTS, the cell of the paper's
# Figures 4-5) and PDARTS from chenxin061/pdarts genotypes.py; ENAS from ianwhale/nsga-net
# models/micro_genotypes.py (ENAS's own code writes cells in another format). NASNet, AmoebaNet and
# ENAS have 5 nodes; NASNet and AmoebaNet feed one input twice into some nodes.
GENOTYPES = {
    "DARTS_V1": Genotype(
        normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1),
                ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)],
        normal_concat=[2, 3, 4, 5],
        reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0),
                ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)],
        reduce_concat=[2, 3, 4, 5]),
    "DARTS_V2": Genotype(
        normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1),
                ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)],
        normal_concat=[2, 3, 4, 5],
        reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1),
                ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)],
        reduce_concat=[2, 3, 4, 5]),
    "PDARTS": Genotype(
        normal=[('skip_connect', 0), ('dil_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1),
                ('sep_conv_3x3', 1), ('sep_conv_3x3', 3), ('sep_conv_3x3', 0), ('dil_conv_5x5', 4)],
        normal_concat=range(2, 6),
        reduce=[('avg_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('dil_conv_5x5', 2),
                ('max_pool_3x3', 0), ('dil_conv_3x3', 1), ('dil_conv_3x3', 1), ('dil_conv_5x5', 3)],
        reduce_concat=range(2, 6)),
    "ENAS": Genotype(
        normal=[('sep_conv_3x3', 1), ('skip_connect', 1), ('sep_conv_5x5', 1), ('skip_connect', 0),
                ('avg_pool_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('avg_pool_3x3', 0),
                ('sep_conv_5x5', 1), ('avg_pool_3x3', 0)],
        normal_concat=[2, 3, 4, 5, 6],
        reduce=[('sep_conv_5x5', 0), ('avg_pool_3x3', 1), ('sep_conv_3x3', 1), ('avg_pool_3x3', 1),
                ('avg_pool_3x3', 1), ('sep_conv_3x3', 1), ('sep_conv_5x5', 4), ('avg_pool_3x3', 1),
                ('sep_conv_3x3', 5), ('sep_conv_5x5', 0)],
        reduce_concat=[2, 3, 6]),
    "NASNet": Genotype(
        normal=[('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 0), ('sep_conv_3x3', 0),
                ('avg_pool_3x3', 1), ('skip_connect', 0), ('avg_pool_3x3', 0), ('avg_pool_3x3', 0),
                ('sep_conv_3x3', 1), ('skip_connect', 1)],
        normal_concat=[2, 3, 4, 5, 6],
        reduce=[('sep_conv_5x5', 1), ('sep_conv_7x7', 0), ('max_pool_3x3', 1), ('sep_conv_7x7', 0),
                ('avg_pool_3x3', 1), ('sep_conv_5x5', 0), ('skip_connect', 3), ('avg_pool_3x3', 2),
                ('sep_conv_3x3', 2), ('max_pool_3x3', 1)],
        reduce_concat=[4, 5, 6]),
    "AmoebaNet": Genotype(
        normal=[('avg_pool_3x3', 0), ('max_pool_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 2),
                ('sep_conv_3x3', 0), ('avg_pool_3x3', 3), ('sep_conv_3x3', 1), ('skip_connect', 1),
                ('skip_connect', 0), ('avg_pool_3x3', 1)],
        normal_concat=[4, 5, 6],
        reduce=[('avg_pool_3x3', 0), ('sep_conv_3x3', 1), ('max_pool_3x3', 0), ('sep_conv_7x7', 2),
                ('sep_conv_7x7', 0), ('avg_pool_3x3', 1), ('max_pool_3x3', 0), ('max_pool_3x3', 1),
                ('conv_7x1_1x7', 0), ('sep_conv_3x3', 5)],
        reduce_concat=[3, 4, 6]),
}
