"""NB201Space against the paper, the benchmark's published figures, and plain math."""
import itertools
import time
from collections import defaultdict

import numpy as np
import pytest
import torch

from nasnb.errors import InvalidTypeError, InvalidValueError, NasnbError
from nasnb.spaces.base import BuildableSpace, EnumerableSpace, SearchSpace
from nasnb.spaces.darts import DartsSpace
from nasnb.spaces.nb201 import EDGES, NB201Cell, NB201Space
from nasnb.spaces.ops import Identity, Pool, ReLUConvBN, UnknownOpError, Zero

SPACE = NB201Space()
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NONE, SKIP, C1, C3, POOL = OPS
# The example of the NAS-Bench-201 README / our DESIGN.md, and its edges read off by hand.
PAPER_STR = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
PAPER_ARCH = (C3, C3, POOL, SKIP, C3, SKIP)
BAD_ARCH = (C3, C3, "conv", SKIP, C3, SKIP)  # an unknown op on edge 2<-1


def hamming(a, b):
    return sum(x != y for x, y in zip(a, b))


# ----------------------------------------------------------------------------- the space itself


def test_constants_and_protocol():
    assert SPACE.name == "nb201" and SPACE.cell_names == ("cell",)
    assert SPACE.EDGES == ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
    assert tuple(SPACE.OPS) == OPS
    assert [c.name for c in SPACE.choices] == ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"]
    assert all(c.options == OPS for c in SPACE.choices)
    assert isinstance(SPACE, SearchSpace)


def test_len_and_enumerate():
    archs = list(SPACE.enumerate())
    assert len(SPACE) == 5**6 == 15625 == len(archs) == len(set(archs))
    assert archs == list(itertools.product(OPS, repeat=6))
    assert all(type(a) is tuple for a in archs[:10])


def test_sample_is_uniform_and_reproducible():
    rng = np.random.default_rng(0)
    archs = [SPACE.sample(rng) for _ in range(6000)]
    for edge in range(6):  # each op 1200 times per edge in expectation; sd about 31
        counts = {op: sum(a[edge] == op for a in archs) for op in OPS}
        assert all(1050 < n < 1350 for n in counts.values()), counts
    assert SPACE.sample(7) == SPACE.sample(7)
    g1, g2 = np.random.default_rng(3), np.random.default_rng(3)
    assert [SPACE.sample(g1) for _ in range(20)] == [SPACE.sample(g2) for _ in range(20)]
    assert len({SPACE.sample(seed) for seed in range(20)}) > 15


# ----------------------------------------------------------------------------- strings


def test_published_string_parses_and_formats():
    assert SPACE.parse(PAPER_STR) == PAPER_ARCH
    assert SPACE.format(PAPER_ARCH) == PAPER_STR
    assert SPACE.parse("  \n" + PAPER_STR + " \t") == PAPER_ARCH
    assert SPACE.format((NONE,) * 6) == "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


@pytest.mark.parametrize("edge", range(6))
def test_each_edge_lands_in_its_node_and_slot(edge):
    j, i = EDGES[edge]
    arch = tuple(C3 if e == edge else NONE for e in range(6))
    groups = SPACE.format(arch).split("+")
    tokens = groups[i - 1].strip("|").split("|")
    assert tokens[j] == f"nor_conv_3x3~{j}"
    assert sum(t.startswith("nor_conv_3x3") for g in groups for t in g.strip("|").split("|")) == 1


def test_round_trip_many_samples():
    rng = np.random.default_rng(1)
    for _ in range(300):
        arch = SPACE.sample(rng)
        assert SPACE.parse(SPACE.format(arch)) == arch


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|", "has 5 edges"),
        (PAPER_STR[:-1] + "|none~2|", "has 7 edges"),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|", "has 2 nodes"),
        ("", "has 1 nodes"),
        (PAPER_STR.replace("avg_pool_3x3~1", "avg_pool_3x3-1"), "bad token 'avg_pool_3x3-1'"),
        (PAPER_STR.replace("avg_pool_3x3~1", "avg_pool_3x3~"), "bad token"),
        (PAPER_STR.replace("|+|skip", "+|skip"), "node 2"),
        (PAPER_STR.replace("|nor_conv_3x3~0|+", "|nor_conv_3x3~1|+", 1), "out of range"),
        (PAPER_STR.replace("skip_connect~2", "skip_connect~3"), "out of range"),
        ("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|", "in order"),
        ("|none~0|none~0|+|none~0|+|none~0|none~1|none~2|", "node 1 has 2 inputs"),
    ],
)
def test_malformed_strings_name_the_problem(text, fragment):
    with pytest.raises(ValueError) as info:
        SPACE.parse(text)
    assert fragment in str(info.value)
    if "edges" in fragment or "nodes" in fragment:
        assert "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|" in str(info.value)  # shows the expected shape


def test_unknown_op_lists_the_allowed_ones():
    with pytest.raises(UnknownOpError) as info:
        SPACE.parse(PAPER_STR.replace("avg_pool_3x3", "sep_conv_3x3"))
    assert isinstance(info.value, KeyError)
    assert "sep_conv_3x3" in str(info.value) and all(op in str(info.value) for op in OPS)
    with pytest.raises(TypeError):
        SPACE.parse(PAPER_ARCH)


def test_validate():
    assert SPACE.validate(list(PAPER_ARCH)) == PAPER_ARCH
    assert SPACE.validate(np.array(PAPER_ARCH)) == PAPER_ARCH
    assert all(type(op) is str for op in SPACE.validate(np.array(PAPER_ARCH)))
    with pytest.raises(ValueError, match="has 5 ops; NB201 cells have 6"):
        SPACE.validate(PAPER_ARCH[:5])
    with pytest.raises(ValueError, match="space.parse"):
        SPACE.validate(PAPER_STR)
    with pytest.raises(UnknownOpError, match="'conv' on edge 2<-1"):
        SPACE.validate((C3, C3, "conv", SKIP, C3, SKIP))


# superscript 2, Arabic-Indic 3, fullwidth 0, Arabic-Indic 0
@pytest.mark.parametrize("digit", ["\u00b2", "\u0663", "\uff10", "\u0660"])
def test_indices_are_ascii_digits_only(digit):
    # str.isdigit() is True for all four; int() refuses the first and reads the others as 3 and 0
    text = PAPER_STR.replace("nor_conv_3x3~0|+", f"nor_conv_3x3~{digit}|+", 1)
    with pytest.raises(InvalidValueError, match="ASCII digits"):
        SPACE.parse(text)


def test_errors_echo_at_most_80_characters_of_the_input():
    long_op = "x" * 5000
    for text in (PAPER_STR.replace("avg_pool_3x3", long_op), PAPER_STR.replace("~2|", "~" + "9" * 5000 + "|"),
                 PAPER_STR.replace("avg_pool_3x3~1", long_op), "|" + long_op + "+|a|+|b|"):
        with pytest.raises(NasnbError) as info:
            SPACE.parse(text)
        assert "xxxxx" in str(info.value) or "99999" in str(info.value)  # the bad part is quoted...
        assert len(str(info.value)) < 300  # ...but cut short


@pytest.mark.parametrize("text", [
    "+" * 1_000_000, "|" * 1_000_000, "x" * 1_000_000, PAPER_STR + "|none~0" * 100_000,
    PAPER_STR.replace("~2|", "~" + "7" * 1_000_000 + "|"),  # int() of a million digits would take seconds
])
def test_a_megabyte_of_junk_is_refused_at_once(text):
    start = time.thread_time()  # CPU time: a busy machine (tests in parallel) must not fail it
    with pytest.raises(InvalidValueError):
        SPACE.parse(text)
    assert time.thread_time() - start < 0.5  # well under 0.1 s here; a pathological parse takes seconds


def test_format_validates_as_parse_does():
    with pytest.raises(UnknownOpError):  # the string with this op fails to parse the same way
        SPACE.format(BAD_ARCH)
    with pytest.raises(UnknownOpError):
        SPACE.parse(PAPER_STR.replace("avg_pool_3x3", "conv"))
    with pytest.raises(InvalidValueError, match="has 5 ops"):
        SPACE.format(PAPER_ARCH[:5])
    with pytest.raises(InvalidTypeError, match="not 42 \\(int\\)"):
        SPACE.format(42)
    with pytest.raises(InvalidTypeError, match="arch string"):
        SPACE.parse(42)
    with pytest.raises(InvalidValueError, match="space.parse"):
        SPACE.format(PAPER_STR)


def test_arguments_are_checked_by_name():
    with pytest.raises(InvalidTypeError, match="rng must be a numpy Generator.*True"):
        SPACE.sample(True)
    with pytest.raises(InvalidValueError, match="rng must be an int >= 0, got -1"):
        SPACE.mutate(PAPER_ARCH, -1)
    with pytest.raises(InvalidTypeError, match="rng.*2.5"):
        SPACE.crossover(PAPER_ARCH, PAPER_ARCH, 2.5)
    with pytest.raises(InvalidValueError, match="unknown canonical rule \\['nb201'\\]"):
        SPACE.canonical(PAPER_ARCH, rule=["nb201"])  # unhashable: must not reach the cache
    with pytest.raises(InvalidValueError, match="cell must be None or 'cell'"):
        SPACE.to_graph(PAPER_ARCH, cell=np.array(["cell", "cell"]))
    with pytest.raises(InvalidValueError, match="has 5 ops"):
        SPACE.from_choices(list(PAPER_ARCH[:5]))


def test_protocols_and_equality():
    assert isinstance(SPACE, SearchSpace) and isinstance(SPACE, BuildableSpace)
    assert isinstance(SPACE, EnumerableSpace)
    assert NB201Space() == SPACE and hash(NB201Space()) == hash(SPACE) and repr(SPACE) == "NB201Space()"
    assert SPACE != DartsSpace() and SPACE != "NB201Space()"



@pytest.mark.parametrize(
    "call",
    [
        lambda a: SPACE.format(a), lambda a: SPACE.canonical(a), lambda a: SPACE.expression(a),
        lambda a: SPACE.mutate(a, 0), lambda a: SPACE.crossover(a, PAPER_ARCH, 0),
        lambda a: SPACE.crossover(PAPER_ARCH, a, 0), lambda a: SPACE.neighbors(a),
        lambda a: SPACE.to_choices(a), lambda a: SPACE.from_choices(a), lambda a: SPACE.to_graph(a),
        lambda a: SPACE.build(a, C=4, N=1),
    ],
)
def test_every_public_method_validates(call):
    with pytest.raises(UnknownOpError):
        call(BAD_ARCH)
    with pytest.raises(ValueError):
        call(BAD_ARCH[:4])


# ----------------------------------------------------------------------------- moves


def test_neighbors_are_exactly_hamming_distance_one():
    arch = PAPER_ARCH
    neighbors = SPACE.neighbors(arch)
    assert len(neighbors) == len(set(neighbors)) == 24 == 6 * (5 - 1)
    assert set(neighbors) == {b for b in SPACE.enumerate() if hamming(arch, b) == 1}


def test_mutate_changes_exactly_one_edge_and_reaches_every_neighbor():
    rng = np.random.default_rng(2)
    children = [SPACE.mutate(PAPER_ARCH, rng) for _ in range(2000)]
    assert all(hamming(PAPER_ARCH, c) == 1 and type(c) is tuple for c in children)
    assert set(children) == set(SPACE.neighbors(PAPER_ARCH))
    assert SPACE.mutate(PAPER_ARCH, 5) == SPACE.mutate(PAPER_ARCH, 5)


def test_crossover_takes_each_edge_from_a_parent():
    rng = np.random.default_rng(3)
    a, b = (NONE, SKIP, C1, C3, POOL, NONE), (SKIP, C1, C3, POOL, NONE, SKIP)  # differ everywhere
    children = [SPACE.crossover(a, b, rng) for _ in range(2000)]
    for c in children:
        assert all(c[e] in (a[e], b[e]) for e in range(6))
        assert hamming(a, c) + hamming(c, b) == hamming(a, b) == 6
    for e in range(6):  # uniform crossover: each parent half the time (sd about 22)
        assert 900 < sum(c[e] == a[e] for c in children) < 1100
    assert SPACE.crossover(a, a, rng) == a
    assert SPACE.crossover(a, b, 9) == SPACE.crossover(a, b, 9)


def test_choices_round_trip():
    assert SPACE.from_choices(list(PAPER_ARCH)) == PAPER_ARCH
    assert SPACE.to_choices(PAPER_ARCH) == list(PAPER_ARCH)
    idx = [c.index(v) for c, v in zip(SPACE.choices, PAPER_ARCH)]
    assert SPACE.from_choices([c.options[k] for c, k in zip(SPACE.choices, idx)]) == PAPER_ARCH


# ----------------------------------------------------------------------------- graph


def test_to_graph_structure():
    g = SPACE.to_graph(PAPER_ARCH)
    assert sorted(g.nodes) == [0, 1, 2, 3]
    assert [g.nodes[n]["label"] for n in range(4)] == ["in", "1", "2", "out"]
    assert [g.nodes[n]["role"] for n in range(4)] == ["input", "intermediate", "intermediate", "output"]
    assert g.graph["space"] == "nb201" and g.graph["cell"] == "cell"
    assert {(j, i): d["op"] for j, i, d in g.edges(data=True)} == {
        (0, 1): C3, (0, 2): C3, (1, 2): POOL, (0, 3): SKIP, (1, 3): C3, (2, 3): SKIP,
    }
    sparse = SPACE.to_graph((C1, NONE, NONE, NONE, NONE, POOL))
    assert sorted(sparse.nodes) == [0, 1, 2, 3] and set(sparse.edges) == {(0, 1), (2, 3)}
    assert SPACE.to_graph((NONE,) * 6).number_of_edges() == 0
    assert SPACE.to_graph(PAPER_ARCH, cell="cell").number_of_edges() == 6
    with pytest.raises(ValueError, match="one cell type"):
        SPACE.to_graph(PAPER_ARCH, cell="normal")


# ----------------------------------------------------------------------------- equivalence


def random_function_outputs(arch, weights, x):
    """The cell's output when each op name is one fixed random function with f(0) = 0."""
    nodes = [x]
    for i in (1, 2, 3):
        total = np.zeros_like(x)
        for (j, to), op in zip(EDGES, arch):
            if to == i and op == SKIP:
                total = total + nodes[j]
            elif to == i and op != NONE:
                total = total + np.tanh(weights[op] @ nodes[j])
        nodes.append(total)
    return tuple(np.round(nodes[3], 9))


def test_unique_counts_published_and_algebraic():
    archs = list(SPACE.enumerate())
    # 6,466: the benchmark's figure (NATS-Bench Table 1 "6.5k"; D-X-Y/NATS-Bench notebooks/issue-12).
    assert len({SPACE.canonical(a) for a in archs}) == 6466
    # The algebra (x + 0 = x, op(0) = 0, sums merged) must agree with evaluating every cell with
    # generic random functions in place of the ops: equal outputs exactly for equal expressions.
    rng = np.random.default_rng(0)
    weights = {op: rng.normal(size=(6, 6)) for op in (C1, C3, POOL)}
    x = rng.normal(size=6)
    by_value = defaultdict(set)
    for a in archs:
        by_value[random_function_outputs(a, weights, x)].add(SPACE.canonical(a, rule="algebra"))
    assert all(len(reps) == 1 for reps in by_value.values())
    assert len(by_value) == len({SPACE.canonical(a, rule="algebra") for a in archs}) == 4930


def test_nb201_classes_lie_inside_algebra_classes():
    algebra_of = defaultdict(set)
    for a in SPACE.enumerate():
        algebra_of[SPACE.canonical(a)].add(SPACE.canonical(a, rule="algebra"))
    assert all(len(s) == 1 for s in algebra_of.values())


@pytest.mark.parametrize("rule", ["nb201", "algebra"])
def test_canonical_is_a_member_idempotent_and_first(rule):
    rng = np.random.default_rng(4)
    order = {a: k for k, a in enumerate(SPACE.enumerate())}
    for _ in range(200):
        a = SPACE.sample(rng)
        c = SPACE.canonical(a, rule=rule)
        assert type(c) is tuple and SPACE.canonical(c, rule=rule) == c
        assert SPACE.expression(c, rule=rule) == SPACE.expression(a, rule=rule)
        assert order[c] <= order[a]


@pytest.mark.parametrize("rule", ["nb201", "algebra"])
def test_node_3_ignoring_node_2_makes_node_2_irrelevant(rule):
    for e01, e03, e13 in [(C3, SKIP, C1), (POOL, NONE, C3), (SKIP, C1, SKIP)]:
        cells = {SPACE.canonical((e01, e02, e12, e03, e13, NONE), rule=rule) for e02 in OPS for e12 in OPS}
        assert len(cells) == 1


@pytest.mark.parametrize("rule", ["nb201", "algebra"])
def test_equal_paths_can_swap(rule):
    # node 1 = skip(x) = x, so conv on 0->3 and pool on 1->3 is pool on 0->3 and conv on 1->3.
    conv_first, pool_first = (SKIP, C1, NONE, C3, POOL, NONE), (SKIP, C1, NONE, POOL, C3, NONE)
    assert SPACE.canonical(conv_first, rule) == SPACE.canonical(pool_first, rule)
    # pool(conv(x)) through node 1 or through node 2; the benchmark's rule keeps node 2's zero
    # input ('#+(0)@nor_conv_3x3') and so tells the two apart.
    through_1, through_2 = (C3, NONE, NONE, NONE, POOL, NONE), (NONE, C3, NONE, NONE, NONE, POOL)
    assert (SPACE.canonical(through_1, rule) == SPACE.canonical(through_2, rule)) == (rule == "algebra")
    # but conv(pool(x)) is not pool(conv(x))
    assert SPACE.canonical(through_1, rule) != SPACE.canonical((POOL, NONE, NONE, NONE, C3, NONE), rule)


def test_where_the_benchmark_rule_merges_less_than_the_algebra():
    def same(a, b, rule):
        return SPACE.canonical(a, rule) == SPACE.canonical(b, rule)

    # 1. zeros are kept as terms: x (through skips 0->1->2->3) vs x (skip 0->3) plus nothing.
    a, b = (SKIP, NONE, SKIP, NONE, NONE, SKIP), (NONE, NONE, NONE, SKIP, NONE, NONE)
    assert same(a, b, "algebra") and not same(a, b, "nb201")
    # 2. node 2 has two none inputs, so it is zero and conv(node 2) vanishes, but only in the algebra.
    a, b = (C3, NONE, NONE, C3, NONE, C3), (C3, NONE, NONE, C3, NONE, NONE)
    assert same(a, b, "algebra") and not same(a, b, "nb201")
    # 3. pool(x) + conv1(x) + conv3(x), the terms grouped differently between node 2 and node 3:
    a, b = (SKIP, POOL, C3, C1, NONE, SKIP), (SKIP, POOL, C1, C3, NONE, SKIP)
    c = (SKIP, C1, C3, POOL, NONE, SKIP)
    assert same(a, b, "algebra") and same(b, c, "algebra")
    assert same(b, c, "nb201") and not same(a, b, "nb201")
    assert SPACE.expression(a) == "avg_pool_3x3(x) + nor_conv_1x1(x) + nor_conv_3x3(x)"


def test_expressions_derived_by_hand():
    assert SPACE.expression((NONE,) * 6) == "0"
    assert SPACE.expression((NONE, NONE, NONE, SKIP, NONE, NONE)) == "x"
    # node1 = c3(x); node2 = c3(x) + pool(c3(x)); node3 = x + c3(node1) + node2
    assert SPACE.expression(PAPER_ARCH) == (
        "avg_pool_3x3(nor_conv_3x3(x)) + nor_conv_3x3(nor_conv_3x3(x)) + nor_conv_3x3(x) + x"
    )
    # the benchmark's string: '#' for zero, '0' for the input, '(...)@op' for an op
    assert SPACE.expression((NONE,) * 6, rule="nb201") == "#+#+#"
    pool_of_conv = (C3, NONE, NONE, NONE, POOL, NONE)
    assert SPACE.expression(pool_of_conv, rule="nb201") == "#+#+((0)@nor_conv_3x3)@avg_pool_3x3"
    with pytest.raises(ValueError, match="choose from"):
        SPACE.canonical(PAPER_ARCH, rule="graph")


def test_equivalence_is_symbolic_not_about_weights():
    # conv(conv(x)) + conv(conv(x)) either way; one cell shares the inner conv, the other does not.
    shared, separate = (C3, NONE, SKIP, NONE, C3, C3), (C3, C3, NONE, NONE, C3, C3)
    assert SPACE.canonical(shared) == SPACE.canonical(separate)
    assert SPACE.canonical(shared, "algebra") == SPACE.canonical(separate, "algebra")
    count = lambda a: sum(p.numel() for p in SPACE.build(a, C=4, N=1).parameters())  # noqa: E731
    one_conv3x3_per_cell = sum(9 * c * c + 2 * c for c in (4, 8, 16))
    assert count(separate) - count(shared) == one_conv3x3_per_cell


# ----------------------------------------------------------------------------- network


def num_params(net):
    return sum(p.numel() for p in net.parameters())


def expected_params(arch, C, N, num_classes=10, in_channels=3):
    """Counted by hand: convs have no bias, every BatchNorm is affine (2 per channel)."""
    per_edge = {NONE: lambda c: 0, SKIP: lambda c: 0, POOL: lambda c: 0,
                C1: lambda c: c * c + 2 * c, C3: lambda c: 9 * c * c + 2 * c}
    cells = sum(N * sum(per_edge[op](c) for op in arch) for c in (C, 2 * C, 4 * C))
    resblock = lambda c: 9 * c * 2 * c + 2 * 2 * c + 9 * (2 * c) ** 2 + 2 * 2 * c + c * 2 * c  # noqa: E731
    stem = 9 * in_channels * C + 2 * C
    head = 2 * 4 * C + 4 * C * num_classes + num_classes
    return stem + cells + resblock(C) + resblock(2 * C) + head


def test_params_match_the_benchmark():
    # NB201 CIFAR-10 at C=16, N=5: params from 0.073306 M (no conv on any edge) to 1.531546 M
    # (all nor_conv_3x3), as in the benchmark's cost tables; CIFAR-100 and ImageNet16-120 add the
    # wider classifier: 0.079156 M and 0.080456 M for the cheapest cell, 1.537396 M for CIFAR-100's largest.
    assert num_params(SPACE.build((NONE,) * 6)) == 73306
    assert num_params(SPACE.build((SKIP, POOL, SKIP, POOL, NONE, SKIP))) == 73306
    assert num_params(SPACE.build((C3,) * 6)) == 1531546
    assert num_params(SPACE.build((NONE,) * 6, num_classes=100)) == 79156
    assert num_params(SPACE.build((NONE,) * 6, num_classes=120)) == 80456
    assert num_params(SPACE.build((C3,) * 6, num_classes=100)) == 1537396
    # a cell queried in NATS-Bench issue #36 (its 12-epoch cost info): 0.802426 M
    arch = SPACE.parse(
        "|skip_connect~0|+|none~0|nor_conv_3x3~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    )
    assert num_params(SPACE.build(arch)) == 802426


SMALL = (C1, NONE, C3, SKIP, POOL, NONE)


@pytest.mark.parametrize("arch, C, N", [(SMALL, 4, 1), (SMALL, 6, 2), (PAPER_ARCH, 8, 1)])
def test_params_match_a_hand_count(arch, C, N):
    assert num_params(SPACE.build(arch, C=C, N=N)) == expected_params(arch, C, N)
    net = SPACE.build(arch, C=C, N=N, num_classes=7, in_channels=1)
    assert num_params(net) == expected_params(arch, C, N, num_classes=7, in_channels=1)


@pytest.mark.parametrize(
    "shape, in_channels, kwargs",
    [((2, 3, 32, 32), 3, {}), ((3, 1, 8, 8), 1, {"C": 8, "N": 2}), ((2, 1, 28, 28), 1, {"C": 4, "N": 1})],
)
def test_output_shapes_cifar_digits_mnist(shape, in_channels, kwargs):
    net = SPACE.build(PAPER_ARCH, in_channels=in_channels, **kwargs)
    logits = net(torch.randn(*shape))
    assert logits.shape == (shape[0], 10) and torch.isfinite(logits).all()


@pytest.mark.parametrize("arch", [(NONE,) * 6, (C3, C3, C3, NONE, NONE, NONE), (NONE,) * 4 + (C1, POOL)])
def test_disconnected_cells_build_and_run(arch):
    net = SPACE.build(arch, C=4, N=2)
    logits = net(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    logits.sum().backward()  # the classifier still learns even when the cells pass nothing on
    assert net.classifier.weight.grad is not None


def test_network_keeps_arch_and_names_edges():
    net = SPACE.build(PAPER_ARCH, C=4, N=2)
    assert net.arch == PAPER_ARCH
    cells = [m for m in net.modules() if isinstance(m, NB201Cell)]
    assert len(cells) == 3 * 2
    assert list(cells[0].edges) == ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"]
    kinds = {NONE: Zero, SKIP: Identity, C1: ReLUConvBN, C3: ReLUConvBN, POOL: Pool}
    cell = NB201Cell((NONE, SKIP, C1, C3, POOL, NONE), C=4)
    assert [type(m) for m in cell.edges.values()] == [kinds[op] for op in cell.arch]
    assert cell.edges["2<-1"][1].kernel_size == (1, 1) and cell.edges["3<-0"][1].kernel_size == (3, 3)
    assert [c.edges["1<-0"][1].in_channels for c in cells] == [4, 4, 8, 8, 16, 16]  # C, 2C, 4C


@pytest.mark.parametrize("arch", [PAPER_ARCH, (C1, NONE, C3, POOL, SKIP, C3), (NONE, C3) + (NONE,) * 3 + (SKIP,)])
def test_cell_computes_the_sum_of_its_edges(arch):
    torch.manual_seed(0)
    cell = NB201Cell(arch, C=4).eval()
    x = torch.randn(2, 4, 6, 6)
    e = cell.edges
    n1 = e["1<-0"](x)
    n2 = e["2<-0"](x) + e["2<-1"](n1)
    n3 = e["3<-0"](x) + e["3<-1"](n1) + e["3<-2"](n2)
    torch.testing.assert_close(cell(x), n3)


def test_build_rejects_bad_sizes():
    with pytest.raises(ValueError, match=r"C must be an int >= 1, got 0; e.g. C=16"):
        SPACE.build(PAPER_ARCH, C=0)
    with pytest.raises(ValueError, match="num_classes"):
        SPACE.build(PAPER_ARCH, num_classes=-1)
    with pytest.raises(InvalidTypeError, match=r"N must be an int >= 1, got 2.5 \(float\)"):
        SPACE.build(PAPER_ARCH, N=2.5)  # not truncated to 2
    with pytest.raises(InvalidTypeError, match="in_channels.*True"):
        SPACE.build(PAPER_ARCH, in_channels=True)


def test_supernet_passes_the_p_darts_options_to_the_supernet():
    keep = torch.ones(6, 5, dtype=torch.bool)
    keep[:, 1] = False  # drop skip_connect everywhere
    net = NB201Space().supernet(C=4, N=1, keep={"cell": keep}, skip_dropout=0.3)
    assert net.skip_dropout == 0.3 and torch.equal(net.keep["cell"], keep)
    assert all(row[1] == 0.0 for row in net.alphas()["cell"])
