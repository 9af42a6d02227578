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
import collections.abc
import itertools
import math
from typing import Sequence

import numpy as np

from nasnb.checks import check_bool, check_int, check_positive_int, check_probability, short
from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.spaces.base import Choice, SpaceValue, as_rng, check_name, checked_len, pick
from nasnb.spaces.genotypes import GENOTYPES, Genotype
from nasnb.spaces.ops import DARTS_OPS, DARTS_PRIMITIVES, UnknownOpError

CELL_NAMES = ("normal", "reduce")
CANDIDATE_OPS = tuple(op for op in DARTS_PRIMITIVES if op != "none")  # a derived cell never keeps "none"
MAX_STEPS = 64  # nodes per cell; published cells have 4 or 5, and choices grow as steps**3
# Characters of genotype text: a 64-node genotype prints in about 6,000, so this leaves room for
# pretty-printing while a megabyte of text is refused before the (slow) Python parser sees it.
MAX_TEXT = 20_000
MAX_INT_BITS = 10_000  # about 3,000 digits: below the 4,300 that Python refuses to print


def count_genotypes(steps: int = 4, num_ops: int = len(CANDIDATE_OPS)) -> int:
    """Distinct genotypes (two inputs per node unordered and distinct): the formula in the docstring."""
    steps, num_ops = check_positive_int("steps", steps, example=4), check_positive_int("num_ops", num_ops, example=7)
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
        # a cell's nodes, not 10**9 items (counted without len(), which overflows on huge ranges)
        if all(isinstance(a, int) for a in args) and args[-1] - (args[0] if len(args) == 2 else 0) <= MAX_STEPS:
            return list(range(*args))
    raise InvalidValueError(f"{where}: only literal lists/tuples of ('op', index) pairs, ints, strings and "
                            f"range(a, b) are allowed, found {short(ast.unparse(node))}")


def _syntax_tree(text: str) -> ast.Module:
    """Python's syntax tree of `text`, or an InvalidValueError for text that is no Python expression."""
    expected = "expected Genotype(normal=[...], normal_concat=[...], reduce=[...], reduce_concat=[...])"
    if len(text) > MAX_TEXT:
        raise InvalidValueError(f"genotype text has {len(text):,} characters, more than any genotype of up "
                                f"to {MAX_STEPS} nodes per cell ({MAX_TEXT:,}); {expected}")
    try:
        tree = ast.parse(text)
    except SyntaxError as err:
        raise InvalidValueError(f"not a genotype: {err.msg} in {short(text)}; {expected}") from None
    except ValueError:  # null bytes, in Python versions that do not call them a SyntaxError
        raise InvalidValueError(f"not a genotype: a null byte in {short(text)}; {expected}") from None
    except (RecursionError, MemoryError):  # the parser's stack ran out, e.g. on '-' * 19000 + '1'
        raise InvalidValueError(f"not a genotype: nested too deeply in {short(text)}; {expected}") from None
    _check_int_sizes(tree)
    return tree


def _check_int_sizes(tree: ast.AST) -> None:
    """Refuse int literals too long to print: Python will not write an int of over 4,300 digits
    (a 0x... literal of 4,000 hex digits is one), so no error message could show it. Smaller ones
    go on, to be refused as out of range in the order validate() checks things."""
    for node in ast.walk(tree):
        value = node.value if isinstance(node, ast.Constant) else None
        if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            raise InvalidValueError(f"genotype text has an int of {value.bit_length():,} bits; state indices "
                                    f"are small, e.g. ('sep_conv_3x3', 0)")


def _check_candidate_ops(candidate_ops) -> tuple:
    """`candidate_ops` as a tuple of distinct DARTS op names; an empty or repeated list is refused."""
    example = f"e.g. candidate_ops={CANDIDATE_OPS[:3]}"
    if isinstance(candidate_ops, (str, bytes)) or not isinstance(candidate_ops, collections.abc.Iterable):
        raise InvalidTypeError(f"candidate_ops must be a sequence of op names, got {short(candidate_ops)} "
                               f"({type(candidate_ops).__name__}); {example}")
    ops = tuple(candidate_ops)
    if not ops:
        raise InvalidValueError(f"candidate_ops is empty: a node needs at least one op to choose; {example}")
    for op in ops:
        if not isinstance(op, str) or op not in DARTS_OPS:
            raise UnknownOpError(f"unknown op {short(op)} for the DARTS space; choose from {sorted(DARTS_OPS)}")
    if len(set(ops)) != len(ops):  # a repeated op would count its genotypes twice
        repeated = sorted({op for op in ops if ops.count(op) > 1})
        raise InvalidValueError(f"candidate_ops repeats {repeated}; list each op once, {example}")
    return ops


def _as_genotype(genotype) -> Genotype:
    """A Genotype from a Genotype or any 4-field sequence (the DARTS code's own namedtuple)."""
    if isinstance(genotype, Genotype):
        return genotype
    if isinstance(genotype, str):
        raise InvalidValueError(f"got a string {short(genotype)}; read genotype text with space.parse(text)")
    if not isinstance(genotype, collections.abc.Sequence):
        raise InvalidTypeError(f"a DARTS genotype is a Genotype(normal, normal_concat, reduce, reduce_concat), "
                               f"not {short(genotype)} ({type(genotype).__name__}); e.g. GENOTYPES['DARTS_V2']")
    if len(genotype) != len(Genotype._fields):
        raise InvalidValueError(f"a genotype has the {len(Genotype._fields)} fields {list(Genotype._fields)}, "
                                f"got {len(genotype)} values: {short(genotype)}")
    return Genotype(*genotype)


def _sort_pairs(genotype: Genotype) -> Genotype:
    """DartsSpace.canonical of a valid genotype: each node's two edges sorted, concat sorted."""
    cells = {}
    for cell in CELL_NAMES:
        edges = getattr(genotype, cell)
        cells[cell] = []
        for e in range(0, len(edges), 2):  # by input index, then op name (a node may read one state twice)
            cells[cell] += sorted(edges[e:e + 2], key=lambda edge: (edge[1], edge[0]))
        cells[f"{cell}_concat"] = sorted(getattr(genotype, f"{cell}_concat"))
    return Genotype(**cells)


class DartsSpace(SpaceValue):
    """The DARTS cell search space (Liu et al., 2019, Section 2.1): 8 ops, 4 nodes, two cells.

    Args:
        steps: intermediate nodes per cell (1..64).
        candidate_ops: the ops a node may pick for each of its two inputs (distinct DARTS op names).
    """

    name = "darts"
    cell_names = CELL_NAMES
    GENOTYPES = GENOTYPES
    OPS = DARTS_PRIMITIVES
    CANDIDATE_OPS = CANDIDATE_OPS
    steps = 4

    def __init__(self, steps: int = 4, candidate_ops: Sequence[str] = CANDIDATE_OPS):
        self.steps = check_int("steps", steps, minimum=1, maximum=MAX_STEPS, example=4)
        self.candidate_ops = _check_candidate_ops(candidate_ops)
        self.concat = tuple(range(2, self.steps + 2))  # every node feeds the cell output
        self._choices = []
        for cell in CELL_NAMES:
            for i in range(self.steps):
                input_pairs = tuple(itertools.combinations(range(i + 2), 2))  # (j0, j1) with j0 < j1
                self._choices += [Choice(f"{cell}/node{i}/inputs", input_pairs),
                                  Choice(f"{cell}/node{i}/op0", self.candidate_ops),  # the op on j0
                                  Choice(f"{cell}/node{i}/op1", self.candidate_ops)]  # the op on j1

    def __len__(self) -> int:
        return checked_len(count_genotypes(self.steps, len(self.candidate_ops)), self,
                           "count_genotypes(space.steps, len(space.candidate_ops))")

    def __repr__(self) -> str:  # every setting: a resumed search compares it with its checkpoint's
        ops = "" if self.candidate_ops == CANDIDATE_OPS else f", candidate_ops={self.candidate_ops}"
        return f"DartsSpace(steps={self.steps}{ops})"

    # ------------------------------------------------------------------ reading and writing

    def format(self, genotype) -> str:
        """The DARTS code's repr: Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], ...).

        Validates as parse() does, so whatever format() writes, parse() reads back.
        """
        return repr(self.validate(genotype))

    def parse(self, text: str) -> Genotype:
        """Read a genotype as the DARTS code prints it (lists or tuples, range(2, 6) as concat), or a
        name from GENOTYPES. The text is walked as a syntax tree, never evaluated."""
        if not isinstance(text, str):
            raise InvalidTypeError(f"parse() reads a string of genotype text like \"Genotype(normal=[('sep_conv_3x3', "
                                   f"0), ...], ...)\" or a name such as 'DARTS_V2', got {short(text)} "
                                   f"({type(text).__name__}); use validate() for a Genotype")
        text = text.strip()
        if text in GENOTYPES:
            return GENOTYPES[text]
        tree = _syntax_tree(text)
        body = tree.body[0] if len(tree.body) == 1 else None
        call = body.value if isinstance(body, (ast.Expr, ast.Assign)) else None  # `DARTS = Genotype(...)` is fine
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "Genotype"):
            raise InvalidValueError(f"expected one call Genotype(normal=..., normal_concat=..., reduce=..., "
                                    f"reduce_concat=...), got {short(text)}")
        fields = list(Genotype._fields)
        if len(call.args) > len(fields):
            raise InvalidValueError(f"Genotype takes {len(fields)} fields {fields}, got {len(call.args)} "
                                    f"positional ones")
        values = {name: _literal(arg, name) for name, arg in zip(fields, call.args)}
        for kw in call.keywords:
            if kw.arg not in fields:
                raise InvalidValueError(f"unknown Genotype field {short(kw.arg)}; the fields are {fields}")
            if kw.arg in values:
                raise InvalidValueError(f"Genotype field {kw.arg!r} is given twice")
            values[kw.arg] = _literal(kw.value, kw.arg)
        missing = [name for name in fields if name not in values]
        if missing:
            raise InvalidValueError(f"Genotype is missing field(s) {missing}; all of {fields} are needed")
        return self.validate(Genotype(**values))

    def validate(self, genotype) -> Genotype:
        """Check a DARTS-style genotype of 1 to 64 nodes per cell; return it as a Genotype or say what is wrong."""
        genotype = _as_genotype(genotype)
        for cell in CELL_NAMES:
            edges, concat = getattr(genotype, cell), getattr(genotype, f"{cell}_concat")
            if len(edges) < 2 or len(edges) % 2 or len(edges) > 2 * MAX_STEPS:
                raise InvalidValueError(
                    f"{cell} cell has {len(edges)} (op, input) pairs; every node takes exactly two, so the count "
                    f"must be even, from 2 to {2 * MAX_STEPS} (DARTS cells have {2 * self.steps})")
            nodes = len(edges) // 2
            for e, (op, index) in enumerate(edges):
                node = e // 2
                if op not in DARTS_OPS:
                    raise UnknownOpError(f"{cell} cell, node {node}: unknown op {short(op)}; "
                                         f"choose from {sorted(DARTS_OPS)}")
                if not 0 <= index < node + 2:
                    raise InvalidValueError(
                        f"{cell} cell, node {node}: input index {short(index)} is out of range; node {node} "
                        f"may read states 0..{node + 1} (0, 1 = the cell inputs, 2 + n = node n)")
            if not concat or len(set(concat)) != len(concat) or not all(2 <= i < nodes + 2 for i in concat):
                raise InvalidValueError(
                    f"{cell}_concat {short(list(concat))} must list distinct intermediate nodes among "
                    f"{short(list(range(2, nodes + 2)))} (states 2..{nodes + 1} of this {nodes}-node cell)")
        return genotype

    def canonical(self, genotype) -> Genotype:
        """The two inputs of a node are added, so their order does not matter: sort each node's pair."""
        return _sort_pairs(self.validate(genotype))

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
        return _sort_pairs(Genotype(**cells))

    def neighbors(self, genotype) -> list[Genotype]:
        """Every genotype one change away: one op to another op, or one input to another state that
        neither edge of that node reads. Canonical, without duplicates, never `genotype` itself."""
        genotype = self.canonical(genotype)
        seen, result = {genotype}, []
        for cell in CELL_NAMES:
            edges = getattr(genotype, cell)
            for e, (op, index) in enumerate(edges):
                node, partner = e // 2, edges[e ^ 1]  # e ^ 1: the other edge of the same node
                changes = [(new_op, index) for new_op in self.candidate_ops if new_op != op]
                changes += [(op, j) for j in range(node + 2) if j not in (index, partner[1])]
                for new_edge in changes:
                    new_edges = edges[:e] + (new_edge,) + edges[e + 1:]
                    child = _sort_pairs(genotype._replace(**{cell: new_edges}))
                    if child not in seen:
                        seen.add(child)
                        result.append(child)
        return result

    def mutate(self, genotype, rng: np.random.Generator | int | None = None) -> Genotype:
        """One uniformly chosen neighbour: a single op or input changed in one cell (always different).

        Uniform over neighbours, so op changes (6 per edge) come up more often than input changes.
        """
        options, rng = self.neighbors(genotype), as_rng(rng)
        if not options:  # e.g. one candidate op and a 1-node cell: nothing can change
            raise InvalidValueError(f"{short(self.format(genotype))} has no neighbours in {self!r}; "
                                    f"give the space more candidate_ops or steps")
        return pick(rng, options)

    def crossover(self, a, b, rng: np.random.Generator | int | None = None) -> Genotype:
        """Uniform crossover per node: each node of each cell, with both its edges, comes from a or b."""
        rng = as_rng(rng)
        a, b = self.validate(a), self.validate(b)
        cells = {}
        for cell in CELL_NAMES:
            edges_a, edges_b = getattr(a, cell), getattr(b, cell)
            if len(edges_a) != len(edges_b):
                raise InvalidValueError(f"cannot cross a {len(edges_a) // 2}-node {cell} cell with a "
                                        f"{len(edges_b) // 2}-node one; both parents need the same number of nodes")
            edges = []
            for e in range(0, len(edges_a), 2):
                edges += (edges_a if rng.random() < 0.5 else edges_b)[e:e + 2]
            concat_a, concat_b = getattr(a, f"{cell}_concat"), getattr(b, f"{cell}_concat")
            cells[cell] = edges
            cells[f"{cell}_concat"] = concat_a if concat_a == concat_b or rng.random() < 0.5 else concat_b
        return _sort_pairs(Genotype(**cells))

    # ------------------------------------------------------------------ decisions for a controller

    @property
    def choices(self) -> list[Choice]:
        """Per cell, per node: the input pair (j0 < j1), the op on j0, the op on j1. Normal cell first."""
        return list(self._choices)

    def from_choices(self, values: Sequence) -> Genotype:
        """The canonical Genotype for one value per choice, in the order of `choices`."""
        if isinstance(values, (str, bytes)) or not isinstance(values, collections.abc.Iterable):
            raise InvalidTypeError(f"from_choices expects a list of {len(self._choices)} values, one per choice, "
                                   f"got {short(values)} ({type(values).__name__}); see space.choices")
        values = list(values)
        if len(values) != len(self._choices):
            raise InvalidValueError(f"expected {len(self._choices)} values, one per choice "
                                    f"({[c.name for c in self._choices[:3]]}, ...), got {len(values)}")
        # each value as the option it equals: (0.0, 1.0) becomes (0, 1), a numpy string a str; an
        # InvalidValueError names the choice and its options when a value is none of them
        values = [choice.options[choice.index(value)] for choice, value in zip(self._choices, values)]
        cells, per_cell = {}, 3 * self.steps
        for c, cell in enumerate(CELL_NAMES):
            edges = []
            for i in range(self.steps):
                (j0, j1), op0, op1 = values[c * per_cell + 3 * i: c * per_cell + 3 * i + 3]
                edges += [(op0, j0), (op1, j1)]
            cells[cell], cells[f"{cell}_concat"] = edges, self.concat
        return _sort_pairs(Genotype(**cells))

    def to_choices(self, genotype) -> list:
        """The inverse of from_choices (on the canonical form); only for cells of this space."""
        genotype = self.canonical(genotype)
        values = []
        for cell in CELL_NAMES:
            edges, concat = getattr(genotype, cell), getattr(genotype, f"{cell}_concat")
            if len(edges) != 2 * self.steps or concat != self.concat:
                raise InvalidValueError(
                    f"{cell} cell has {len(edges) // 2} nodes and concat {short(list(concat))}; choices describe "
                    f"{self.steps}-node cells with concat {short(list(self.concat))}")
            for (op0, j0), (op1, j1) in zip(edges[0::2], edges[1::2]):
                values += [(j0, j1), op0, op1]
        for choice, value in zip(self._choices, values):
            choice.index(value)  # same input twice, or an op outside candidate_ops, has no choice value
        return values

    # ------------------------------------------------------------------ graphs and networks

    def to_graph(self, genotype, cell: str | None = "normal"):
        """One cell (`cell`: "normal", "reduce", or None for normal) as a networkx.MultiDiGraph
        (a node may read one state twice, as in NASNet).

        Nodes: 0, 1 the inputs c_{k-2}, c_{k-1}; 2..n+1 the intermediate nodes "0".."n-1"; n+2 the
        output c_{k}. Edge (j, i+2, op=...) per genotype pair, and (node, n+2, op="concat").
        """
        import networkx as nx

        cell = "normal" if cell is None else check_name("cell", cell, CELL_NAMES, what="cell")
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
        sizes = {name: check_positive_int(name, value, example=example) for name, value, example in (
            ("C", C, 36), ("layers", layers, 20), ("num_classes", num_classes, 10),
            ("in_channels", in_channels, 3), ("stem_multiplier", stem_multiplier, 3))}
        drop_path_prob = check_probability("drop_path_prob", drop_path_prob)
        if drop_path_prob == 1.0:  # drop_path divides by the keep probability, which would be 0
            raise InvalidValueError("drop_path_prob must be < 1 (1 drops every path), got 1.0; "
                                    "e.g. drop_path_prob=0.2")
        return DartsNetwork(genotype, auxiliary=check_bool("auxiliary", auxiliary), drop_path_prob=drop_path_prob,
                            **sizes)

    def supernet(self, C: int = 16, layers: int = 8, num_classes: int = 10, in_channels: int = 3,
                 steps: int | None = None, multiplier: int | None = None, stem_multiplier: int = 3,
                 partial_channels: int = 1, edge_normalization: bool | None = None, **options):
        """The DARTS search network (see darts_supernet.py): every edge a mixed op over 'none' and the
        space's candidate ops, α of shape (14, 8) per cell type for 4 nodes. `steps` and `multiplier`
        (nodes concatenated into the output) default to the space's steps, 4 for DartsSpace().
        `partial_channels=K` and `edge_normalization` (β; None: on when K > 1) are PC-DARTS'; the
        other `options` (P-DARTS' keep= and skip_dropout=, ...) go to DartsSupernet."""
        from nasnb.spaces.darts_supernet import DartsSupernet

        steps = self.steps if steps is None else check_int("steps", steps, minimum=1, maximum=MAX_STEPS,
                                                           example=self.steps)
        multiplier = steps if multiplier is None else multiplier
        if steps != self.steps:  # derived() must give genotypes of this space
            raise InvalidValueError(f"steps={steps} differs from this space's {self.steps} nodes per cell; "
                                    f"use steps={self.steps}, or DartsSpace(steps={steps}).supernet(...)")
        return DartsSupernet(C=C, layers=layers, num_classes=num_classes, in_channels=in_channels, steps=steps,
                             multiplier=multiplier, stem_multiplier=stem_multiplier,
                             op_names=("none",) + tuple(op for op in self.candidate_ops if op != "none"),
                             partial_channels=partial_channels, edge_normalization=edge_normalization, **options)
