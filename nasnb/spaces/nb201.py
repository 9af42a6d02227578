"""The NAS-Bench-201 cell space (Dong & Yang, "NAS-Bench-201", ICLR 2020).

A cell is a DAG on 4 nodes: node 0 is the cell's input, node 3 its output, and every earlier node
feeds every later one, so there are 6 edges. Each edge carries one of 5 ops, giving 5^6 = 15,625
cells. A node is the sum of its incoming edges (Sec. 2.1 of the paper):

    node_i = sum_{j < i} op_ij(node_j)

An architecture (Arch) is a plain tuple of 6 op names in the order of ``EDGES``, the order of the
community string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (node 1's edges, then node 2's, then 3's).
The network stacks the same cell 3N times: 3 stages at C, 2C, 4C channels, joined by ResNet blocks.
"""
from __future__ import annotations

import functools
import itertools
from typing import Iterator, Sequence

import networkx as nx
import numpy as np
import torch
import torch.nn as nn

from nasnb.checks import check_positive_int, short
from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.spaces.base import Choice, SpaceValue, as_rng, check_name, enumerate_choices
from nasnb.spaces.ops import NB201_OP_NAMES, ResNetBasicBlock, UnknownOpError, make_nb201_op

Arch = tuple  # 6 op names, one per edge, in EDGES order

EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))  # (from_node, to_node), arch-string order
OPS = NB201_OP_NAMES  # none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3
EDGE_NAMES = tuple(f"{i}<-{j}" for j, i in EDGES)  # "1<-0": the edge into node 1 from node 0
SHAPE = "'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'"  # shown in every parse error
NODES = (("in", "input"), ("1", "intermediate"), ("2", "intermediate"), ("out", "output"))  # label, role
_OP_SET = frozenset(OPS)
RULES = ("nb201", "algebra")  # the two equivalences canonical() knows; see its docstring


def _key(arch: Arch, rule: str) -> str:
    """A string equal for two (valid) archs exactly when `rule` calls them equivalent."""
    rule = check_name("rule", rule, RULES, what="canonical rule")
    return _nb201_key(arch) if rule == "nb201" else _algebra_key(arch)


def _index(text: str) -> int | None:
    """The node index a token spells in ASCII digits, or None.

    str.isdigit() alone accepts '²' (which int() refuses) and '٣' (which int() reads as 3).
    A long run of digits is out of range anyway; it is not converted (int() of a megabyte is slow).
    """
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0") or "0"
    return int(digits) if len(digits) < 4 else 1000  # any index >= 1000 is as out of range as 1000


@functools.lru_cache(maxsize=2**14)  # a search parses the same few strings again and again; errors are not cached
def _parse(text: str) -> Arch:
    """NB201Space.parse of a str."""
    nodes = text.strip().split("+")
    if len(nodes) != 3:
        raise InvalidValueError(
            f"arch string has {len(nodes)} nodes ('+'-separated); NB201 cells have 3: {SHAPE}")
    for i, group in enumerate(nodes, start=1):
        if len(group) < 2 or group[0] != "|" or group[-1] != "|":
            raise InvalidValueError(f"node {i} is {short(group)}; write each node as |op~j|...|, as in {SHAPE}")
    groups = [group[1:-1].split("|") for group in nodes]  # node i's tokens 'op~j'
    num_edges = sum(len(tokens) for tokens in groups)
    if num_edges != len(EDGES):
        raise InvalidValueError(f"arch string has {num_edges} edges; NB201 cells have 6: {SHAPE}")
    arch = []
    for i, tokens in enumerate(groups, start=1):
        if len(tokens) != i:
            raise InvalidValueError(
                f"node {i} has {len(tokens)} inputs; it takes {i}, from nodes 0..{i - 1}: {SHAPE}"
            )
        for expected, token in enumerate(tokens):
            op, sep, index_text = token.partition("~")
            index = _index(index_text)
            if not op or not sep or index is None:
                raise InvalidValueError(
                    f"bad token {short(token)} in node {i}; expected 'op~index' with an index in "
                    f"ASCII digits, like 'nor_conv_3x3~0'"
                )
            if index >= i:
                raise InvalidValueError(
                    f"node {i} reads node {short(index_text)}, out of range: it reads nodes 0..{i - 1}")
            if index != expected:
                raise InvalidValueError(
                    f"node {i} lists input {index} in slot {expected}; list inputs in order: {SHAPE}"
                )
            if op not in OPS:
                raise UnknownOpError(f"unknown op {short(op)} in node {i}; choose from {list(OPS)}")
            arch.append(op)
    return tuple(arch)


@functools.lru_cache(maxsize=None)  # 15,625 cells at most
def _format(arch: Arch) -> str:
    """NB201Space.format of a valid arch."""
    nodes = []
    for i in (1, 2, 3):
        tokens = [f"{op}~{j}" for (j, to), op in zip(EDGES, arch) if to == i]
        nodes.append("|" + "|".join(tokens) + "|")
    return "+".join(nodes)


@functools.lru_cache(maxsize=None)
def _nb201_key(arch: Arch) -> str:
    """The benchmark's unique string (to_unique_str(consider_zero=True)); see NB201Space.canonical."""
    nodes = ["0"]  # nodes[j]: the string of node j
    for i in (1, 2, 3):
        terms = []
        for (j, to), op in zip(EDGES, arch):
            if to != i:
                continue
            if op == "none" or nodes[j] == "#":
                terms.append("#")
            elif op == "skip_connect":
                terms.append(nodes[j])  # the whole sum, as one string: not merged term by term
            else:
                terms.append(f"({nodes[j]})@{op}")
        nodes.append("+".join(sorted(terms)))
    return nodes[3]


@functools.lru_cache(maxsize=None)
def _algebra_key(arch: Arch) -> str:
    """The output as a sum of terms: x + 0 = x, op(0) = 0, a skip's sum merged term by term."""
    nodes = [["x"]]  # nodes[j]: node j as a list of terms; [] is the zero
    for i in (1, 2, 3):
        terms = []
        for (j, to), op in zip(EDGES, arch):
            if to != i or op == "none" or not nodes[j]:
                continue  # none, or an op applied to zero: contributes nothing
            if op == "skip_connect":
                terms += nodes[j]  # identity: node j's terms join this sum one by one
            else:
                terms.append(f"{op}({' + '.join(nodes[j])})")
        nodes.append(sorted(terms))  # a term's string is unambiguous, so sorting makes sums canonical
    return " + ".join(nodes[3]) or "0"


@functools.lru_cache(maxsize=None)
def _representatives(rule: str) -> dict:
    """key -> the first arch (in enumerate order, i.e. op order of OPS) having that key."""
    first = {}
    for arch in itertools.product(OPS, repeat=len(EDGES)):
        first.setdefault(_key(arch, rule), arch)
    return first


class NB201Space(SpaceValue):
    """The 15,625 cells of NAS-Bench-201 and the moves a search makes on them (no settings)."""

    name = "nb201"
    cell_names = ("cell",)
    EDGES = EDGES
    OPS = OPS

    def __len__(self) -> int:
        return len(OPS) ** len(EDGES)

    def __repr__(self) -> str:
        return "NB201Space()"

    @property
    def choices(self) -> list[Choice]:
        return [Choice(name, OPS) for name in EDGE_NAMES]

    # ------------------------------------------------------------------ values and strings

    def validate(self, arch: Sequence[str]) -> Arch:
        """`arch` as a tuple of 6 known op names, or an error that says what is wrong."""
        if type(arch) is tuple and len(arch) == len(EDGES) and all(type(op) is str and op in _OP_SET for op in arch):
            return arch  # already what the checks below return: the common case, at every trial of a search
        if isinstance(arch, str):
            raise InvalidValueError(f"got a string {short(arch)}; read arch strings with space.parse(text)")
        if not isinstance(arch, (Sequence, np.ndarray)):
            raise InvalidTypeError(f"an NB201 arch is a tuple of 6 op names, not {short(arch)} "
                                   f"({type(arch).__name__}); e.g. ('nor_conv_3x3',) * 6")
        if len(arch) != len(EDGES):
            raise InvalidValueError(
                f"arch has {len(arch)} ops; NB201 cells have 6, one per edge in the order "
                f"{list(EDGE_NAMES)}, e.g. ('nor_conv_3x3',) * 6"
            )
        for name, op in zip(EDGE_NAMES, arch):
            if not isinstance(op, str) or op not in OPS:
                raise UnknownOpError(f"unknown op {short(op)} on edge {name}; choose from {list(OPS)}")
        return tuple(str(op) for op in arch)  # plain str, even from numpy arrays of names

    def format(self, arch: Arch) -> str:
        """The community string, e.g. '|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|...|'."""
        return _format(self.validate(arch))

    def parse(self, text: str) -> Arch:
        """The inverse of format(); malformed strings raise a ValueError (a NasnbError) naming the problem.

        Every step is linear in the text and errors quote at most 80 characters of it, so a
        megabyte of junk is refused at once.
        """
        if not isinstance(text, str):
            raise InvalidTypeError(f"parse expects an arch string like {SHAPE}, not {short(text)} "
                                   f"({type(text).__name__}); format an arch tuple with space.format(arch)")
        text = str(text)
        return _parse(text) if len(text) <= 300 else _parse.__wrapped__(text)  # long (padded) strings: not kept

    # ------------------------------------------------------------------ equivalence

    def canonical(self, arch: Arch, rule: str = "nb201") -> Arch:
        """The first arch (in enumerate order) of the cells equivalent to `arch` under `rule`.

        Both rules read a cell as an expression in its input x: skip_connect is the identity,
        none is zero, sums are commutative, and an op applied to zero is zero (by convention:
        strictly, a conv's BatchNorm adds a learned bias even to a zero input).

        ``"algebra"``: x + 0 = x, and a skip's sum merges term by term into the sum it feeds.
        `expression(arch)` writes the result out, e.g. ``"avg_pool_3x3(x) + nor_conv_3x3(x)"``.
        The 15,625 cells form 4,930 classes.

        ``"nb201"`` (default): the benchmark's own rule, 6,466 classes, the figure NATS-Bench's
        Table 1 rounds to "6.5k". It is the string of D-X-Y's
        ``Structure.to_unique_str(consider_zero=True)``, which the API's ``get_unique_str`` returns
        (`expression(arch, "nb201")`): node 0 is ``0``; an edge gives ``#`` if its op is none or
        its source string is exactly ``#``, its source string if skip, else ``(source)@op``; a node
        joins its edges' strings, sorted, with ``+``. It merges less than the algebra (each nb201
        class lies inside one algebra class) in three ways: zeros stay as ``#`` terms, so x and
        x + 0 differ; a node is seen to be zero only if its string is exactly ``#`` (node 2 with two
        none inputs is ``#+#``, so a conv applied to it does not vanish); and a skip pastes its
        source's sum in as one string, sorted as a whole, so the same terms grouped differently
        between nodes 2 and 3 can give different strings. That last point makes the count depend
        on the spelling: written as ``nor_conv_3x3(x)`` instead of ``(0)@nor_conv_3x3``, the same
        rule gives 6,350 classes. We keep the benchmark's spelling, and so its count.

        Both rules treat an op name as one fixed function, not as weights: they merge
        ``|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|nor_conv_3x3~1|nor_conv_3x3~2|`` and
        ``|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|nor_conv_3x3~1|nor_conv_3x3~2|``, both
        conv(conv(x)) + conv(conv(x)), though the first shares its inner conv and has 3 convs to 4.
        """
        key = _key(self.validate(arch), rule)  # checks the rule before _representatives caches by it
        return _representatives(rule)[key]

    def expression(self, arch: Arch, rule: str = "algebra") -> str:
        """The cell's output as an expression in x, equal for equivalent cells (see `canonical`).

        With rule="nb201" it is the benchmark's unique string, e.g. ``#+#+((0)@nor_conv_3x3)@avg_pool_3x3``.
        """
        return _key(self.validate(arch), rule)

    # ------------------------------------------------------------------ moves of a search

    def enumerate(self) -> Iterator[Arch]:
        """Every arch, the first edge varying slowest (itertools.product over `choices`)."""
        return enumerate_choices(self.choices)

    def sample(self, rng: np.random.Generator | int | None = None) -> Arch:
        """A uniformly random arch."""
        picks = as_rng(rng).integers(len(OPS), size=len(EDGES))
        return tuple([OPS[k] for k in picks.tolist()])  # plain ints index faster than numpy's

    def mutate(self, arch: Arch, rng: np.random.Generator | int | None = None) -> Arch:
        """A copy of `arch` with one random edge changed to a different op (Hamming distance 1)."""
        arch, rng = self.validate(arch), as_rng(rng)
        edge = int(rng.integers(len(EDGES)))
        others = [op for op in OPS if op != arch[edge]]
        return arch[:edge] + (others[int(rng.integers(len(others)))],) + arch[edge + 1 :]

    def crossover(self, a: Arch, b: Arch, rng: np.random.Generator | int | None = None) -> Arch:
        """Uniform crossover: each edge's op comes from `a` or `b` with probability 1/2."""
        a, b, rng = self.validate(a), self.validate(b), as_rng(rng)
        from_a = rng.random(len(EDGES)) < 0.5
        return tuple(x if take_a else y for x, y, take_a in zip(a, b, from_a))

    def neighbors(self, arch: Arch) -> list[Arch]:
        """The 24 archs one edge away, edge by edge in EDGES order, ops in OPS order."""
        arch = self.validate(arch)
        return [arch[:e] + (op,) + arch[e + 1 :] for e in range(len(EDGES)) for op in OPS if op != arch[e]]

    def from_choices(self, values: Sequence[str]) -> Arch:
        """The arch that takes `values[k]` for choice k."""
        return self.validate(values)

    def to_choices(self, arch: Arch) -> list[str]:
        return list(self.validate(arch))

    # ------------------------------------------------------------------ graph and network

    def to_graph(self, arch: Arch, cell: str | None = None) -> nx.DiGraph:
        """The cell as a DiGraph: nodes 0..3 (attrs label, role), one edge (j, i, op=...) per non-none op."""
        arch = self.validate(arch)
        if cell is not None and not (isinstance(cell, str) and cell == "cell"):
            raise InvalidValueError(f"NB201 has one cell type; cell must be None or 'cell', not {short(cell)}")
        g = nx.DiGraph(space=self.name, cell="cell", arch=self.format(arch))
        for node, (label, role) in enumerate(NODES):
            g.add_node(node, label=label, role=role)
        g.add_edges_from((j, i, {"op": op}) for (j, i), op in zip(EDGES, arch) if op != "none")
        return g

    def build(self, arch: Arch, C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3):
        """The paper's macro network (Fig. 1): stem, 3 stages of N cells at C, 2C, 4C, classifier."""
        arch = self.validate(arch)
        C, N = check_positive_int("C", C, example=16), check_positive_int("N", N, example=5)
        num_classes = check_positive_int("num_classes", num_classes, example=10)
        in_channels = check_positive_int("in_channels", in_channels, example=3)
        return NB201Network(arch, C, N, num_classes, in_channels)

    def supernet(self, C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3,
                 partial_channels: int = 1, **options):
        """The one-shot network: build()'s skeleton with every cell edge a mixed op over the 5 ops
        and α of shape (6, 5) (see supernet.py; `partial_channels=K` is PC-DARTS' K; the other
        `options`, e.g. P-DARTS' keep= and skip_dropout=, go to NB201Supernet)."""
        from nasnb.spaces.supernet import NB201Supernet

        return NB201Supernet(C=C, N=N, num_classes=num_classes, in_channels=in_channels,
                             partial_channels=partial_channels, **options)


class NB201Cell(nn.Module):
    """One cell: node_i = sum_j op_ij(node_j); `edges["2<-1"]` is the op from node 1 to node 2."""

    def __init__(self, arch: Arch, C: int):
        super().__init__()
        self.arch = arch
        self.edges = nn.ModuleDict({name: make_nb201_op(op, C, C, 1) for name, op in zip(EDGE_NAMES, arch)})
        # Zero ops stay in `edges` so print(net) shows every edge, but forward skips them:
        # adding zeros changes nothing. node_inputs[i-1] lists (edge name, source node) of node i.
        self.node_inputs = [
            [(name, j) for (j, to), name, op in zip(EDGES, EDGE_NAMES, arch) if to == i and op != "none"]
            for i in (1, 2, 3)
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        nodes = [x]
        for inputs in self.node_inputs:
            if not inputs:  # every input edge is none: the node is zero
                nodes.append(torch.zeros_like(x))
                continue
            h = self.edges[inputs[0][0]](nodes[inputs[0][1]])
            for name, j in inputs[1:]:
                h = h + self.edges[name](nodes[j])
            nodes.append(h)
        return nodes[3]


class NB201Network(nn.Module):
    """NB201's macro skeleton: stem, N cells at C, ResNet block (stride 2) to 2C, N cells, ResNet
    block to 4C, N cells, then BN-ReLU, global average pooling and a linear classifier."""

    def __init__(self, arch: Arch, C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.arch = arch
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers = []
        for stage, width in enumerate((C, 2 * C, 4 * C)):
            if stage > 0:
                layers.append(ResNetBasicBlock(width // 2, width, stride=2))  # halves H and W
            layers += [NB201Cell(arch, width) for _ in range(N)]
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(4 * C), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(4 * C, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, in_channels, H, W) -> (B, num_classes)
        h = self.cells(self.stem(x))  # (B, 4C, H/4, W/4), rounded up
        h = self.pool(self.lastact(h)).flatten(1)  # (B, 4C)
        return self.classifier(h)
