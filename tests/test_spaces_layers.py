"""LayerSpace against hand counts, a brute-force count under the rules written out here again, hand
parameter counts of its networks, and the strategies of nasnb run on it unchanged."""
import itertools

import numpy as np
import pytest
import torch

from nasnb.errors import InvalidTypeError, InvalidValueError
from nasnb.spaces.base import BuildableSpace, EnumerableSpace, SearchSpace
from nasnb.spaces.layers import LayerSpace
from nasnb.strategies import RandomSearch, RegularizedEvolution, Reinforce
from nasnb.strategies.qlearning import MetaQNN

SPACE = LayerSpace()  # 8x8 inputs, max_depth 4
DEEP = LayerSpace(max_depth=6)
CONVS = [f"C({f},{k},1)" for f in (8, 16, 32) for k in (1, 3, 5)]
POOLS = ["P(5,3)", "P(3,2)", "P(2,2)"]
FCS = ["FC(64)", "FC(32)"]


@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def legal(tokens, max_depth=4) -> bool:
    """The default space's rules, from the paper and the authors' code, with its bins written out:
    sizes 8-5 (windows up to 5), 4-3 (up to 3, FC allowed), 2-1 (up to 1, FC allowed)."""
    if not tokens or tokens[-1] not in ("SM", "GAP") or len(tokens) - 1 > max_depth:
        return False
    size, prev, fcs, units = 8, "start", 0, None
    for t in tokens[:-1]:
        window, fc_ok = (5, False) if size >= 5 else (3, True) if size >= 3 else (1, True)
        if t in CONVS:
            if prev.startswith("FC") or int(t[2:-1].split(",")[1]) > window:
                return False
        elif t in POOLS:
            k, s = map(int, t[2:-1].split(","))
            if not prev.startswith("C") or k > window:
                return False
            size = (size - k) // s + 1
        elif t in FCS:
            u = int(t[3:-1])
            if prev.startswith("FC"):
                if fcs >= 2 or u > units:
                    return False
            elif not fc_ok:
                return False
            fcs, units = fcs + 1, u
        else:
            return False
        prev = t
    return not (tokens[-1] == "GAP" and prev.startswith("FC"))


def test_protocol_and_counts_by_hand():
    assert isinstance(SPACE, SearchSpace) and isinstance(SPACE, BuildableSpace) and isinstance(SPACE, EnumerableSpace)
    # depth 0: SM, GAP. depth 1: those, and 9 convs (no pooling first, no FC at 8x8) each then SM or GAP.
    assert len(LayerSpace(max_depth=0)) == 2 and len(LayerSpace(max_depth=1)) == 2 + 9 * 2
    # depth 2: after a conv, 9 convs or 3 pools (windows up to 5 at size 8) or a terminal, each then a terminal
    assert len(LayerSpace(max_depth=2)) == 2 + 9 * (2 + 12 * 2)


def test_the_count_is_the_brute_force_count_under_the_rules():
    tokens = CONVS + POOLS + FCS
    brute = {seq + (t,) for depth in range(5) for seq in itertools.product(tokens, repeat=depth)
             for t in ("SM", "GAP") if legal(seq + (t,))}
    listed = list(SPACE.enumerate())
    assert len(SPACE) == len(brute) == len(listed) == len(set(listed)) and set(listed) == brute


def test_1000_samples_are_legal_and_sampling_is_uniform():
    rng = np.random.default_rng(0)
    samples = [DEEP.sample(rng) for _ in range(1000)]
    assert all(legal(s, max_depth=6) for s in samples) and len(set(samples)) > 900
    small = LayerSpace(max_depth=1)  # 20 archs: each about 1/20 of 2000 draws
    counts = {a: 0 for a in small.enumerate()}
    for _ in range(2000):
        counts[small.sample(rng)] += 1
    assert len(counts) == 20 and min(counts.values()) > 60 and max(counts.values()) < 140
    assert SPACE.sample(5) == SPACE.sample(5)


@pytest.mark.parametrize("bad, good, fragment", [
    ("[C(8,3,1), C(8,3,1), C(8,3,1), C(8,3,1), C(8,3,1), C(8,3,1), C(8,3,1), SM]",
     "[C(8,3,1), C(8,3,1), C(8,3,1), C(8,3,1), C(8,3,1), C(8,3,1), SM]", "at most 6"),  # depth limit
    ("[P(2,2), SM]", "[C(8,1,1), P(2,2), SM]", "never first"),
    ("[C(8,3,1), P(2,2), P(2,2), SM]", "[C(8,3,1), P(2,2), C(8,3,1), P(2,2), SM]", "never after pooling"),
    ("[C(8,3,1), P(5,3), C(8,3,1), SM]", "[C(8,3,1), P(5,3), C(8,1,1), SM]", "window"),  # 2x2 map: 1x1 only
    ("[C(8,3,1), P(2,2), C(8,5,1), SM]", "[C(8,3,1), P(2,2), C(8,3,1), SM]", "window"),  # 4x4: up to 3
    ("[C(8,3,1), FC(32), SM]", "[C(8,3,1), P(2,2), FC(32), SM]", "fc_max_size"),
    ("[C(8,3,1), P(2,2), FC(64), FC(32), FC(32), SM]", "[C(8,3,1), P(2,2), FC(64), FC(32), SM]", "max_fc"),
    ("[C(8,3,1), P(2,2), FC(32), FC(64), SM]", "[C(8,3,1), P(2,2), FC(64), FC(64), SM]", "never widen"),
    ("[C(8,3,1), P(2,2), FC(32), C(8,1,1), SM]", "[C(8,3,1), P(2,2), FC(32), SM]", "only FC or SM"),
    ("[C(8,3,1), P(2,2), FC(32), GAP]", "[C(8,3,1), P(2,2), GAP]", "global average pooling"),
    ("[C(8,3,1)]", "[C(8,3,1), SM]", "must end with a terminal"),
    ("[SM, C(8,3,1), SM]", "[C(8,3,1), SM]", "must come last"),
    ("[C(7,3,1), SM]", "[C(8,3,1), SM]", "unknown layer"),
    ("[C(8,3,1),, SM]", "[C(8,3,1), SM]", "cannot read"),
])
def test_each_rule_broken_by_parse_raises_and_the_mended_string_parses(bad, good, fragment):
    with pytest.raises(InvalidValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        DEEP.parse(bad)
    assert legal(DEEP.parse(good), max_depth=6) and DEEP.format(DEEP.parse(good)) == good


def test_format_parse_round_trip_and_bad_types():
    rng = np.random.default_rng(1)
    for _ in range(200):
        arch = DEEP.sample(rng)
        assert DEEP.parse(DEEP.format(arch)) == arch
    assert SPACE.parse(" C(16, 3, 1) ,P(2,2),SM ") == ("C(16,3,1)", "P(2,2)", "SM")
    with pytest.raises(InvalidTypeError):
        SPACE.parse(3)
    with pytest.raises(InvalidValueError, match="parse"):
        SPACE.validate("[C(8,3,1), SM]")
    with pytest.raises(InvalidValueError, match="size_bins"):
        LayerSpace(size_bins=(3, 5, 1))


def test_states_keys_and_sizes_by_hand():
    arch = SPACE.parse("[C(16,3,1), P(2,2), FC(32), SM]")
    states = SPACE.states(arch)
    assert [(s.depth, s.layer, s.size, s.fc) for s in states] == [
        (0, "start", 8, 0), (1, "C(16,3,1)", 8, 0), (2, "P(2,2)", 4, 0), (3, "FC(32)", 1, 1)]
    assert [SPACE.state_key(s) for s in states] == ["0 start [8-5]", "1 C(16,3,1) [8-5]", "2 P(2,2) [4-3]",
                                                   "3 FC(32) [1 FC]"]
    # floor((8 - 3) / 2) + 1 = 3 and floor((8 - 5) / 3) + 1 = 2: no padding
    assert SPACE.states(("C(8,1,1)", "P(3,2)", "SM"))[-1].size == 3
    assert SPACE.states(("C(8,1,1)", "P(5,3)", "SM"))[-1].size == 2
    assert SPACE.actions(states[0]) == tuple(CONVS) + ("SM", "GAP")
    assert SPACE.actions(states[3]) == ("FC(32)", "SM")  # at most as wide; no GAP after FC


def test_networks_against_hand_parameter_counts():
    x = torch.randn(3, 1, 8, 8)
    net = SPACE.build(SPACE.parse("[C(16,3,1), P(2,2), FC(32), SM]"), batch_norm=False)
    # conv 1*16*9 + 16; flatten 16 * 4 * 4 = 256 -> 32; 32 -> 10
    assert sum(p.numel() for p in net.parameters()) == 160 + (256 * 32 + 32) + (32 * 10 + 10)
    assert net(x).shape == (3, 10)
    net = SPACE.build(("C(8,3,1)", "GAP"), num_classes=4, in_channels=3)  # conv without bias, BN, 1x1 conv to 4
    assert sum(p.numel() for p in net.parameters()) == 3 * 8 * 9 + 2 * 8 + (8 * 4 + 4)
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, 4)
    assert sum(p.numel() for p in SPACE.build(("SM",)).parameters()) == 64 * 10 + 10  # logistic regression
    with pytest.raises(ValueError, match="8x8"):
        net(torch.randn(2, 3, 16, 16))


def test_neighbors_mutate_and_crossover_stay_legal():
    rng = np.random.default_rng(2)
    for _ in range(20):
        a, b = DEEP.sample(rng), DEEP.sample(rng)
        near = DEEP.neighbors(a)
        assert near and a not in near and all(legal(n, max_depth=6) for n in near)
        assert all(abs(len(n) - len(a)) <= 1 for n in near)
        assert DEEP.mutate(a, rng) in near
        child = DEEP.crossover(a, b, rng)
        assert legal(child, max_depth=6)
        assert any(child == a[:i] + b[j:] for i in range(len(a)) for j in range(len(b)))


def test_choices_decode_every_combination_to_a_legal_arch():
    choices = SPACE.choices
    assert [c.name for c in choices] == ["layer 1", "layer 2", "layer 3", "layer 4", "terminal"]
    rng = np.random.default_rng(3)
    for _ in range(200):
        values = [c.options[int(rng.integers(len(c.options)))] for c in choices]
        assert legal(SPACE.from_choices(values))
        arch = SPACE.sample(rng)
        assert SPACE.from_choices(SPACE.to_choices(arch)) == arch
    # P first: skipped; '-': no layer; FC at 8x8: skipped; GAP after a conv: kept
    assert SPACE.from_choices(["P(2,2)", "C(8,3,1)", "-", "FC(32)", "GAP"]) == ("C(8,3,1)", "GAP")
    assert SPACE.from_choices(["C(8,3,1)", "P(2,2)", "FC(32)", "-", "GAP"]) == ("C(8,3,1)", "P(2,2)", "FC(32)", "SM")


def test_to_graph_is_the_chain():
    g = SPACE.to_graph(SPACE.parse("[C(16,3,1), P(2,2), FC(32), SM]"))
    assert [g.nodes[k]["label"] for k in sorted(g)] == ["8×8", "16@8×8", "16@4×4", "32", "logits"]
    assert [g.edges[k, k + 1]["op"] for k in range(4)] == ["C(16,3,1)", "P(2,2)", "FC(32)", "SM"]
    assert g.nodes[0]["role"] == "input" and g.nodes[4]["role"] == "output"


@pytest.mark.parametrize("make", [
    lambda s, e: RandomSearch(s, e, seed=0),
    lambda s, e: RegularizedEvolution(s, e, population_size=4, sample_size=2, crossover_prob=0.5, seed=0),
    lambda s, e: Reinforce(s, e, seed=0),
    lambda s, e: MetaQNN(s, e, epsilon_schedule=((1.0, 6), (0.2, 6)), seed=0),
], ids=["random", "evolution", "reinforce", "metaqnn"])
def test_every_strategy_runs_on_the_layer_space(make):
    def score(arch):  # deeper is better, GAP a little worse: no training needed
        return {"val_accuracy": 0.2 + 0.15 * (len(arch) - 1) - 0.05 * (arch[-1] == "GAP")}

    history = make(DEEP, score).run(12, progress=False)
    assert len(history) == 12 and all(t.ok and legal(DEEP.parse(t.arch), max_depth=6) for t in history)


def test_a_network_trains_on_digits():
    from nasnb.data import load

    data = load("digits")
    x, y = data.train[0][:256], data.train[1][:256]
    torch.manual_seed(0)
    net = SPACE.build(SPACE.parse("[C(16,3,1), P(2,2), FC(32), SM]"), num_classes=10, in_channels=1)
    losses = []
    for step in range(40):  # plain SGD by hand: torch.optim's first use imports torch._dynamo (5 s)
        batch = slice(32 * (step % 8), 32 * (step % 8 + 1))
        loss = torch.nn.functional.cross_entropy(net(x[batch]), y[batch])
        net.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in net.parameters():
                p -= 0.1 * p.grad
        losses.append(loss.item())
    assert abs(np.mean(losses[:3]) - np.log(10)) < 0.3 * np.log(10)  # chance level at the start
    assert np.mean(losses[-8:]) < 0.5 * np.mean(losses[:3])
