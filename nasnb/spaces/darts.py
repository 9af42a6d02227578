"""The DARTS / NASNet cell space: the moves a search makes on Genotypes (defined in genotypes.py).

Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search", ICLR 2019 (Section 2.1), on
the cell design of NASNet (Zoph et al., 2018). A network stacks two kinds of cell, *normal* and
*reduce* (stride 2). A cell is a DAG: two inputs (the outputs of the two previous cells, states
0 and 1), then `steps` intermediate nodes. Node i (state i+2) adds two op outputs, each op
applied to an earlier state j < i+2. The cell's output concatenates the nodes in `concat`.

A Genotype writes one cell as a list of (op_name, input_index) pairs, two per node, exactly as
the DARTS code prints it. Counting (per cell, node i picks 2 of its i+2 inputs and an op for
each of the 7 non-zero ops):

    |space| = ( prod_{i=0}^{steps-1} C(i+2, 2) * 7^2 )^2  =  (180 * 7^8)^2  ~  1.08e18
"""
from __future__ import annotations

import ast
import itertools
import math
from typing import Sequence

import numpy as np

from nasnb.spaces.base import Choice, as_rng, pick
from nasnb.spaces.genotypes import GENOTYPES, Genotype
from nasnb.spaces.ops import DARTS_OPS, DARTS_PRIMITIVES, UnknownOpError

CELL_NAMES = ("normal", "reduce")
CANDIDATE_OPS = tuple(op for op in DARTS_PRIMITIVES if op != "none")  # a derived cell never keeps "none"


def count_genotypes(steps: int = 4, num_ops: int = len(CANDIDATE_OPS)) -> int:
    """Distinct genotypes (two inputs per node unordered and distinct): the formula in the docstring."""
    per_cell = math.prod(math.comb(i + 2, 2) * num_ops ** 2 for i in range(steps))
    return per_cell ** 2


def _literal(node: ast.AST, where: str):
    """The value of a literal: str, int, list/tuple of literals, or range(a[, b]) of ints. Never eval."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        value = _literal(node.operand, where)
        if isinstance(value, int):
            return -value  # kept so validate() can say *which* index is negative
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(item, where) for item in node.elts]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"
            and not node.keywords and 1 <= len(node.args) <= 2):
        args = [_literal(a, where) for a in node.args]
        if all(isinstance(a, int) for a in args) and len(range(*args)) <= 64:  # a cell's nodes, not 10**9 items
            return list(range(*args))
    raise ValueError(f"{where}: only literal lists/tuples of ('op', index) pairs, ints, strings and "
                     f"range(a, b) are allowed, found {ast.unparse(node)!r}")


class DartsSpace:
    """The DARTS cell search space (Liu et al., 2019, Section 2.1): 8 ops, 4 nodes, two cells."""

    name = "darts"
    cell_names = CELL_NAMES
    GENOTYPES = GENOTYPES
    OPS = DARTS_PRIMITIVES
    CANDIDATE_OPS = CANDIDATE_OPS
    steps = 4

    def __init__(self, steps: int = 4, candidate_ops: Sequence[str] = CANDIDATE_OPS):
        for op in candidate_ops:
            if op not in DARTS_OPS:
                raise UnknownOpError(f"unknown op {op!r} for the DARTS space; choose from {sorted(DARTS_OPS)}")
        self.steps = steps
        self.candidate_ops = tuple(candidate_ops)
        self.concat = tuple(range(2, steps + 2))  # every node feeds the cell output
        self._choices = []
        for cell in CELL_NAMES:
            for i in range(steps):
                input_pairs = tuple(itertools.combinations(range(i + 2), 2))  # (j0, j1) with j0 < j1
                self._choices += [Choice(f"{cell}/node{i}/inputs", input_pairs),
                                  Choice(f"{cell}/node{i}/op0", self.candidate_ops),  # the op on j0
                                  Choice(f"{cell}/node{i}/op1", self.candidate_ops)]  # the op on j1

    def __len__(self) -> int:
        return count_genotypes(self.steps, len(self.candidate_ops))

    def __repr__(self) -> str:
        return f"DartsSpace(steps={self.steps}, {len(self.candidate_ops)} ops, {len(self):.3g} genotypes)"

    # ------------------------------------------------------------------ reading and writing

    def format(self, genotype) -> str:
        """The DARTS code's repr: Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], ...)."""
        return repr(Genotype(*genotype))

    def parse(self, text: str) -> Genotype:
        """Read a genotype as the DARTS code prints it (lists or tuples, range(2, 6) as concat), or a
        name from GENOTYPES. The text is walked as a syntax tree, never evaluated."""
        if not isinstance(text, str):
            raise TypeError(f"parse() reads a string; got {type(text).__name__} (use validate() for a Genotype)")
        text = text.strip()
        if text in GENOTYPES:
            return GENOTYPES[text]
        try:
            tree = ast.parse(text)
        except SyntaxError as err:
            raise ValueError(f"not a genotype: {err.msg} in {text[:80]!r}; expected Genotype(normal=[...], "
                             f"normal_concat=[...], reduce=[...], reduce_concat=[...])") from None
        body = tree.body[0] if len(tree.body) == 1 else None
        call = body.value if isinstance(body, (ast.Expr, ast.Assign)) else None  # `DARTS = Genotype(...)` is fine
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "Genotype"):
            raise ValueError(f"expected one call Genotype(normal=..., normal_concat=..., reduce=..., "
                             f"reduce_concat=...), got {text[:80]!r}")
        fields = list(Genotype._fields)
        if len(call.args) > len(fields):
            raise ValueError(f"Genotype takes {len(fields)} fields {fields}, got {len(call.args)} positional ones")
        values = {name: _literal(arg, name) for name, arg in zip(fields, call.args)}
        for kw in call.keywords:
            if kw.arg not in fields:
                raise ValueError(f"unknown Genotype field {kw.arg!r}; the fields are {fields}")
            if kw.arg in values:
                raise ValueError(f"Genotype field {kw.arg!r} is given twice")
            values[kw.arg] = _literal(kw.value, kw.arg)
        missing = [name for name in fields if name not in values]
        if missing:
            raise ValueError(f"Genotype is missing field(s) {missing}; all of {fields} are needed")
        return self.validate(Genotype(**values))

    def validate(self, genotype) -> Genotype:
        """Check a DARTS-style genotype of any node count; return it as a Genotype or say what is wrong."""
        genotype = Genotype(*genotype)
        for cell in CELL_NAMES:
            edges, concat = getattr(genotype, cell), getattr(genotype, f"{cell}_concat")
            if len(edges) < 2 or len(edges) % 2:
                raise ValueError(f"{cell} cell has {len(edges)} (op, input) pairs; every node takes exactly two, "
                                 f"so the count must be even and at least 2 (DARTS cells have {2 * self.steps})")
            nodes = len(edges) // 2
            for e, (op, index) in enumerate(edges):
                node = e // 2
                if op not in DARTS_OPS:
                    raise UnknownOpError(f"{cell} cell, node {node}: unknown op {op!r}; "
                                         f"choose from {sorted(DARTS_OPS)}")
                if not 0 <= index < node + 2:
                    raise ValueError(f"{cell} cell, node {node}: input index {index} is out of range; node {node} "
                                     f"may read states 0..{node + 1} (0, 1 = the cell inputs, 2 + n = node n)")
            if not concat or len(set(concat)) != len(concat) or not all(2 <= i < nodes + 2 for i in concat):
                raise ValueError(f"{cell}_concat {list(concat)} must list distinct intermediate nodes among "
                                 f"{list(range(2, nodes + 2))} (states 2..{nodes + 1} of this {nodes}-node cell)")
        return genotype

    def canonical(self, genotype) -> Genotype:
        """The two inputs of a node are added, so their order does not matter: sort each node's pair."""
        genotype = Genotype(*genotype)
        cells = {}
        for cell in CELL_NAMES:
            edges = getattr(genotype, cell)
            cells[cell] = []
            for e in range(0, len(edges), 2):  # by input index, then op name (a node may read one state twice)
                cells[cell] += sorted(edges[e:e + 2], key=lambda edge: (edge[1], edge[0]))
            cells[f"{cell}_concat"] = sorted(getattr(genotype, f"{cell}_concat"))
        return Genotype(**cells)

    # ------------------------------------------------------------------ search moves

    def sample(self, rng: np.random.Generator | int | None = None) -> Genotype:
        """Uniform over the space: per cell, node i picks 2 distinct inputs of 0..i+1 and an op for each."""
        rng = as_rng(rng)
        cells = {}
        for cell in CELL_NAMES:
            edges = []
            for i in range(self.steps):
                inputs = rng.choice(i + 2, size=2, replace=False)
                edges += [(pick(rng, self.candidate_ops), int(j)) for j in inputs]
            cells[cell], cells[f"{cell}_concat"] = edges, self.concat
        return self.canonical(Genotype(**cells))

    def neighbors(self, genotype) -> list[Genotype]:
        """Every genotype one change away: one op to another op, or one input to another state that
        neither edge of that node reads. Canonical, without duplicates, never `genotype` itself."""
        genotype = self.canonical(self.validate(genotype))
        seen, result = {genotype}, []
        for cell in CELL_NAMES:
            edges = getattr(genotype, cell)
            for e, (op, index) in enumerate(edges):
                node, partner = e // 2, edges[e ^ 1]  # e ^ 1: the other edge of the same node
                changes = [(new_op, index) for new_op in self.candidate_ops if new_op != op]
                changes += [(op, j) for j in range(node + 2) if j not in (index, partner[1])]
                for new_edge in changes:
                    new_edges = edges[:e] + (new_edge,) + edges[e + 1:]
                    child = self.canonical(genotype._replace(**{cell: new_edges}))
                    if child not in seen:
                        seen.add(child)
                        result.append(child)
        return result

    def mutate(self, genotype, rng: np.random.Generator | int | None = None) -> Genotype:
        """One uniformly chosen neighbour: a single op or input changed in one cell (always different).

        Uniform over neighbours, so op changes (6 per edge) come up more often than input changes.
        """
        options = self.neighbors(genotype)
        if not options:
            raise ValueError(f"{self.format(genotype)} has no neighbours with ops {self.candidate_ops}")
        return pick(as_rng(rng), options)

    def crossover(self, a, b, rng: np.random.Generator | int | None = None) -> Genotype:
        """Uniform crossover per node: each node of each cell, with both its edges, comes from a or b."""
        rng = as_rng(rng)
        a, b = self.validate(a), self.validate(b)
        cells = {}
        for cell in CELL_NAMES:
            edges_a, edges_b = getattr(a, cell), getattr(b, cell)
            if len(edges_a) != len(edges_b):
                raise ValueError(f"cannot cross a {len(edges_a) // 2}-node {cell} cell with a "
                                 f"{len(edges_b) // 2}-node one; both parents need the same number of nodes")
            edges = []
            for e in range(0, len(edges_a), 2):
                edges += (edges_a if rng.random() < 0.5 else edges_b)[e:e + 2]
            concat_a, concat_b = getattr(a, f"{cell}_concat"), getattr(b, f"{cell}_concat")
            cells[cell] = edges
            cells[f"{cell}_concat"] = concat_a if concat_a == concat_b or rng.random() < 0.5 else concat_b
        return self.canonical(Genotype(**cells))

    # ------------------------------------------------------------------ decisions for a controller

    @property
    def choices(self) -> list[Choice]:
        """Per cell, per node: the input pair (j0 < j1), the op on j0, the op on j1. Normal cell first."""
        return list(self._choices)

    def from_choices(self, values: Sequence) -> Genotype:
        """The canonical Genotype for one value per choice, in the order of `choices`."""
        values = list(values)
        if len(values) != len(self._choices):
            raise ValueError(f"expected {len(self._choices)} values, one per choice "
                             f"({[c.name for c in self._choices[:3]]}, ...), got {len(values)}")
        for choice, value in zip(self._choices, values):
            choice.index(value)  # raises a ValueError naming the choice and its options
        cells, per_cell = {}, 3 * self.steps
        for c, cell in enumerate(CELL_NAMES):
            edges = []
            for i in range(self.steps):
                (j0, j1), op0, op1 = values[c * per_cell + 3 * i: c * per_cell + 3 * i + 3]
                edges += [(op0, j0), (op1, j1)]
            cells[cell], cells[f"{cell}_concat"] = edges, self.concat
        return self.canonical(Genotype(**cells))

    def to_choices(self, genotype) -> list:
        """The inverse of from_choices (on the canonical form); only for cells of this space."""
        genotype = self.canonical(self.validate(genotype))
        values = []
        for cell in CELL_NAMES:
            edges, concat = getattr(genotype, cell), getattr(genotype, f"{cell}_concat")
            if len(edges) != 2 * self.steps or concat != self.concat:
                raise ValueError(f"{cell} cell has {len(edges) // 2} nodes and concat {list(concat)}; choices "
                                 f"describe {self.steps}-node cells with concat {list(self.concat)}")
            for (op0, j0), (op1, j1) in zip(edges[0::2], edges[1::2]):
                values += [(j0, j1), op0, op1]
        for choice, value in zip(self._choices, values):
            choice.index(value)  # same input twice, or an op outside candidate_ops, has no choice value
        return values

    # ------------------------------------------------------------------ graphs and networks

    def to_graph(self, genotype, cell: str = "normal"):
        """One cell as a networkx.MultiDiGraph (a node may read one state twice, as in NASNet).

        Nodes: 0, 1 the inputs c_{k-2}, c_{k-1}; 2..n+1 the intermediate nodes "0".."n-1"; n+2 the
        output c_{k}. Edge (j, i+2, op=...) per genotype pair, and (node, n+2, op="concat").
        """
        import networkx as nx

        if cell not in CELL_NAMES:
            raise ValueError(f"unknown cell {cell!r}; choose from {list(CELL_NAMES)}")
        genotype = self.validate(genotype)
        edges, concat = getattr(genotype, cell), getattr(genotype, f"{cell}_concat")
        n = len(edges) // 2
        G = nx.MultiDiGraph(space="darts", cell=cell)
        G.add_node(0, label="c_{k-2}", role="input")
        G.add_node(1, label="c_{k-1}", role="input")
        for i in range(n):
            G.add_node(i + 2, label=str(i), role="intermediate")
        G.add_node(n + 2, label="c_{k}", role="output")
        for e, (op, j) in enumerate(edges):
            G.add_edge(j, e // 2 + 2, op=op)
        for node in concat:
            G.add_edge(node, n + 2, op="concat")
        return G

    def build(self, genotype, C: int = 36, layers: int = 20, num_classes: int = 10, in_channels: int = 3,
              auxiliary: bool = True, drop_path_prob: float = 0.2, stem_multiplier: int = 3):
        """The DARTS CIFAR evaluation network (see darts_network.py); `genotype` may be a string."""
        from nasnb.spaces.darts_network import DartsNetwork

        genotype = self.parse(genotype) if isinstance(genotype, str) else self.validate(genotype)
        return DartsNetwork(genotype, C=C, layers=layers, num_classes=num_classes, in_channels=in_channels,
                            auxiliary=auxiliary, drop_path_prob=drop_path_prob, stem_multiplier=stem_multiplier)
