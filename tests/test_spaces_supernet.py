"""Supernets of the NB201 and DARTS spaces (nasnb/spaces/supernet.py, darts_supernet.py).

Checked against hand counts, the DARTS authors' logged parameter count, the stand-alone NB201
network, and benchmarks/darts_baseline.py (the authors' straightforward search network): same
outputs and gradients on the same weights.
"""
import importlib.util
import math
import pathlib

import pytest
import torch
import torch.nn.functional as F

from nasnb.errors import NasnbError
from nasnb.spaces import DartsSpace, GENOTYPES, Genotype, NB201Space
from nasnb.spaces.nb201 import NB201Cell
from nasnb.spaces.ops import DARTS_PRIMITIVES
from nasnb.spaces.supernet import NB201SearchCell
from nasnb.strategies.reinforce import one_thread

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("darts_baseline", ROOT / "benchmarks" / "darts_baseline.py")
baseline = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(baseline)

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


@pytest.fixture(autouse=True)
def single_thread():
    """Small convolutions on a loaded 2-core machine are much faster and steadier on one thread."""
    with one_thread():
        yield


def count(params) -> int:
    return sum(p.numel() for p in params)


# ----------------------------------------------------------------------------- counts


def darts_search_params_by_hand(C=16, layers=8, num_classes=10, in_channels=3, stem_multiplier=3) -> int:
    """The DARTS search network's weights, op by op (no affine BatchNorm inside the cells).

    Per edge at c channels, stride 1: sep_conv_3x3 2(9c + c^2), sep_conv_5x5 2(25c + c^2),
    dil_conv_3x3 9c + c^2, dil_conv_5x5 25c + c^2; pools, skip and none have none: 102c + 6c^2.
    A stride-2 edge adds the skip's FactorizedReduce, 2 * c * c/2 = c^2. preprocess0 and
    preprocess1 are 1x1 convs (or a FactorizedReduce, the same count) from c_pp and c_p to c.
    """
    def edge(c, stride):
        return 102 * c + 6 * c * c + (c * c if stride == 2 else 0)

    stem = in_channels * stem_multiplier * C * 9 + 2 * stem_multiplier * C  # conv + affine BN
    total, c_pp, c_p, c = stem, stem_multiplier * C, stem_multiplier * C, C
    for i in range(layers):
        reduction = i in (layers // 3, 2 * layers // 3)
        c = 2 * c if reduction else c
        edges = 8 * edge(c, 2) + 6 * edge(c, 1) if reduction else 14 * edge(c, 1)  # 8 edges read the inputs
        total += c_pp * c + c_p * c + edges
        c_pp, c_p = c_p, 4 * c
    return total + c_p * num_classes + num_classes


def test_darts_supernet_has_the_authors_parameter_count():
    # train_search.py of quark0/darts logs "param size = 1.930618MB" (utils.count_parameters_in_MB,
    # which leaves out 'auxiliary' parameters; the search network has none) at C=16, layers=8.
    assert darts_search_params_by_hand() == 1_930_618
    net = DartsSpace().supernet(C=16, layers=8, num_classes=10)
    assert count(net.weight_parameters()) == 1_930_618
    assert baseline.count_parameters(baseline.Network(16, 10, 8)) == 1_930_618
    assert [tuple(a.shape) for a in net.arch_parameters()] == [(14, 8), (14, 8)]
    assert count(net.arch_parameters()) == 2 * 14 * 8


def test_darts_supernet_follows_the_spaces_nodes():
    net = DartsSpace(steps=2).supernet(C=2, layers=3)
    assert [tuple(a.shape) for a in net.arch_parameters()] == [(5, 8), (5, 8)]  # 2 + 3 edges
    assert net.concat == (2, 3) and DartsSpace(steps=2).validate(net.derived())


def test_darts_supernet_count_by_hand_at_other_sizes():
    net = DartsSpace().supernet(C=4, layers=5, num_classes=7, in_channels=1)
    assert count(net.weight_parameters()) == darts_search_params_by_hand(C=4, layers=5, num_classes=7, in_channels=1)


def nb201_supernet_params_by_hand(C, N, num_classes=10, in_channels=3) -> int:
    """Stem conv + BN; per cell at width w, 6 edges of a 1x1 and a 3x3 conv (10 w^2, no affine BN);
    a ResNet block w/2 -> w: 3x3 conv, BN, 3x3 conv, BN, 1x1 shortcut; BN; linear."""
    stem = in_channels * C * 9 + 2 * C
    cells = sum(N * 6 * 10 * w * w for w in (C, 2 * C, 4 * C))
    blocks = sum(9 * (w // 2) * w + 2 * w + 9 * w * w + 2 * w + (w // 2) * w for w in (2 * C, 4 * C))
    return stem + cells + blocks + 2 * 4 * C + 4 * C * num_classes + num_classes


@pytest.mark.parametrize("C, N", [(4, 1), (2, 2)])
def test_nb201_supernet_counts_by_hand(C, N):
    if (C, N) == (4, 1):
        # 44 + 60 * (16 + 64 + 256) + (288 + 16 + 576 + 16 + 32) + (1152 + 32 + 2304 + 32 + 128) + 32 + 170
        assert nb201_supernet_params_by_hand(4, 1, in_channels=1) == 24_982
    net = NB201Space().supernet(C=C, N=N, num_classes=10, in_channels=1)
    assert count(net.weight_parameters()) == nb201_supernet_params_by_hand(C, N, in_channels=1)
    assert [tuple(a.shape) for a in net.arch_parameters()] == [(6, 5)]


@pytest.mark.parametrize("make", [
    lambda: NB201Space().supernet(C=4, N=1),
    lambda: NB201Space().supernet(C=4, N=1, partial_channels=2),
    lambda: DartsSpace().supernet(C=4, layers=3),
    lambda: DartsSpace().supernet(C=4, layers=3, partial_channels=2),
])
def test_arch_and_weight_parameters_split_all_parameters(make):
    net = make()
    arch, weights = {id(p) for p in net.arch_parameters()}, {id(p) for p in net.weight_parameters()}
    assert not arch & weights
    assert arch | weights == {id(p) for p in net.parameters()}
    partial = getattr(net, "partial_channels", 1) > 1
    expected = 6 * 5 if isinstance(net.cells[0], NB201SearchCell) else 2 * 14 * 8 + (2 * 14 if partial else 0)
    assert count(net.arch_parameters()) == expected


# ----------------------------------------------------------------------------- the baseline


def paired_darts_networks(C=4, layers=5):
    """nasnb's DARTS supernet and the baseline with the same weights and α, in float64."""
    torch.manual_seed(0)
    ours = DartsSpace().supernet(C=C, layers=layers, num_classes=10, in_channels=1).double()
    with torch.no_grad():
        for a in ours.arch_parameters():
            a.normal_()  # well-spread α, so a wrong op/weight pairing would show
    theirs = baseline.Network(C, 10, layers, in_channels=1).double()
    baseline.copy_weights(ours, theirs)
    theirs.alphas_normal = ours.alpha["normal"].detach().clone().requires_grad_()
    theirs.alphas_reduce = ours.alpha["reduce"].detach().clone().requires_grad_()
    return ours, theirs


def run_baseline(net, x, weights):
    """Network.forward of the baseline with given mixing weights {'normal': (14, 8), 'reduce': ...}."""
    s0 = s1 = net.stem(x)
    for cell in net.cells:
        s0, s1 = s1, cell(s0, s1, weights["reduce" if cell.reduction else "normal"])
    return net.classifier(net.global_pooling(s1).flatten(1))


def test_darts_supernet_matches_the_baseline_outputs_and_gradients():
    ours, theirs = paired_darts_networks()
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    probe = torch.randn(3, 10, dtype=torch.float64)  # a loss that weighs every logit differently
    y_ours, y_theirs = ours(x), theirs(x)
    torch.testing.assert_close(y_ours, y_theirs, rtol=1e-10, atol=1e-10)
    (y_ours * probe).sum().backward()
    (y_theirs * probe).sum().backward()
    ours_w = ours.weight_parameters()
    theirs_w = [p for _, p in theirs.named_parameters()]
    assert len(ours_w) == len(theirs_w)
    for a, b in zip(ours_w, theirs_w):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(ours.alpha["normal"].grad, theirs.alphas_normal.grad, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(ours.alpha["reduce"].grad, theirs.alphas_reduce.grad, rtol=1e-8, atol=1e-10)


def test_the_zero_op_is_never_run_but_counts_in_the_softmax():
    net = DartsSpace().supernet(C=4, layers=3, in_channels=1)
    for cell in net.cells:
        for mixed in cell.mixed:
            assert mixed.names == DARTS_PRIMITIVES and "none" not in mixed.ops
    # every edge 'none': every cell outputs zeros, so the logits are the classifier's bias
    none = {cell: [0] * 14 for cell in ("normal", "reduce")}
    logits = net(torch.randn(2, 1, 8, 8), ops=none)
    torch.testing.assert_close(logits, net.classifier.bias.expand(2, 10).detach())


def one_hot(indices, num_ops=8):
    return F.one_hot(torch.tensor(indices), num_ops).double()


def genotype_edge(node, j):
    return sum(range(2, node + 2)) + j  # node i's edges follow the 2 + 3 + ... edges of the nodes before it


def test_a_genotype_runs_as_the_baseline_with_one_hot_weights():
    ours, theirs = paired_darts_networks()
    genotype = GENOTYPES["DARTS_V2"]
    weights = {}
    for cell in ("normal", "reduce"):
        w = torch.zeros(14, 8, dtype=torch.float64)
        w[:, 0] = 1.0  # edges the genotype leaves out carry 'none'
        for e, (op, j) in enumerate(getattr(genotype, cell)):
            edge = genotype_edge(e // 2, j)
            w[edge] = one_hot([DARTS_PRIMITIVES.index(op)])[0]
        weights[cell] = w
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    expected = run_baseline(theirs, x, weights)
    torch.testing.assert_close(ours(x, arch=genotype), expected, rtol=1e-10, atol=1e-10)
    indices = {cell: w.argmax(-1).tolist() for cell, w in weights.items()}
    torch.testing.assert_close(ours(x, ops=indices), expected, rtol=1e-10, atol=1e-10)


def test_gdas_hard_weights_pass_a_straight_through_gradient_to_alpha():
    ours, theirs = paired_darts_networks()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    probe = torch.randn(2, 10, dtype=torch.float64)
    index = {cell: a.argmax(-1) for cell, a in ours.alpha.items()}

    def hard_weights():  # one-hot in value, the softmax's gradient (straight-through, GDAS eq. 5)
        soft = {cell: F.softmax(a, dim=-1) for cell, a in ours.alpha.items()}
        return {cell: one_hot(index[cell].tolist()) - s.detach() + s for cell, s in soft.items()}

    def through_softmax(cell, grad_weights):  # dL/dα from dL/dweights, by the chain rule
        return torch.autograd.grad(F.softmax(ours.alpha[cell], dim=-1), ours.alpha[cell], grad_weights)[0]

    # the baseline runs every op on the hard weights: dL/dhard[e, k] = <dL/dh_e, o_k(x)> for every k
    hard_theirs = {cell: h.detach().clone().requires_grad_() for cell, h in hard_weights().items()}
    y_theirs = run_baseline(theirs, x, hard_theirs)
    (y_theirs * probe).sum().backward()

    # weights alone: the full weighted sum
    y_full = ours(x, weights=hard_weights())
    torch.testing.assert_close(y_full, y_theirs, rtol=1e-10, atol=1e-10)
    (y_full * probe).sum().backward()
    for cell in ("normal", "reduce"):
        expected = through_softmax(cell, hard_theirs[cell].grad)
        torch.testing.assert_close(ours.alpha[cell].grad, expected, rtol=1e-8, atol=1e-12)
        ours.alpha[cell].grad = None

    # weights and ops (GDAS): only the chosen op runs, so only its entry of dL/dhard is kept
    y_gdas = ours(x, weights=hard_weights(), ops=index)
    torch.testing.assert_close(y_gdas, y_theirs, rtol=1e-10, atol=1e-10)
    (y_gdas * probe).sum().backward()
    for cell in ("normal", "reduce"):
        expected = through_softmax(cell, hard_theirs[cell].grad * one_hot(index[cell].tolist()))
        torch.testing.assert_close(ours.alpha[cell].grad, expected, rtol=1e-8, atol=1e-12)


# ----------------------------------------------------------------------------- NB201


def test_nb201_sub_network_is_the_stand_alone_network_on_the_same_weights():
    space = NB201Space()
    arch = space.parse("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|")
    torch.manual_seed(0)
    net = space.supernet(C=4, N=2, num_classes=10, in_channels=1)
    standalone = space.build(arch, C=4, N=2, num_classes=10, in_channels=1)
    # copy the chosen ops' weights; the stand-alone cells' BN scale 1 and shift 0 make them non-affine
    for name in ("stem", "lastact", "classifier"):
        getattr(standalone, name).load_state_dict(getattr(net, name).state_dict())
    for mine, theirs in zip(net.cells, standalone.cells):
        if isinstance(theirs, NB201Cell):
            for e, (edge, op) in enumerate(zip(theirs.edges, arch)):
                if op != "none":
                    theirs.edges[edge].load_state_dict(mine.mixed[e].ops[op].state_dict(), strict=False)
        else:
            theirs.load_state_dict(mine.state_dict())
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(net(x, arch=arch), standalone(x))
    torch.testing.assert_close(net(x, arch=space.format(arch)), standalone(x))


def test_nb201_cell_relaxation_is_the_weighted_sum_of_eq_1():
    torch.manual_seed(0)
    cell = NB201SearchCell(4)
    x = torch.randn(2, 4, 6, 6)
    w = F.softmax(torch.randn(6, 5), dim=-1)

    def mixed(e, h):  # sum_o w_o o(h), with o = 'none' giving 0
        return sum(w[e, k] * cell.mixed[e].ops[op](h) for k, op in enumerate(NB201_OPS) if op != "none")

    n1 = mixed(0, x)
    n2 = mixed(1, x) + mixed(2, n1)
    n3 = mixed(3, x) + mixed(4, n1) + mixed(5, n2)
    torch.testing.assert_close(cell(x, w), n3)


# ----------------------------------------------------------------------------- PC-DARTS


def test_partial_channels_send_one_kth_through_the_ops_then_shuffle():
    K = 2
    net = DartsSpace().supernet(C=8, layers=3, in_channels=1, partial_channels=K)
    w = torch.zeros(8)
    w[DARTS_PRIMITIVES.index("skip_connect")] = 0.5
    normal = net.cells[0]  # 8 channels; edge 0 has stride 1
    x = torch.randn(2, 8, 6, 6)
    out = normal.mixed[0](x, w)  # the first C/K channels become 0.5 x, the others pass untouched
    group = 8 // K
    for a in range(group):  # channel shuffle: op channel a lands on a*K, bypass group g channel a on a*K + g
        torch.testing.assert_close(out[:, a * K], 0.5 * x[:, a])
        for g in range(1, K):
            torch.testing.assert_close(out[:, a * K + g], x[:, g * group + a])
    reduce = net.cells[1]  # 16 channels; edge 0 has stride 2, so the bypassed channels are max-pooled 2x2
    x = torch.randn(2, 16, 6, 6)
    out = reduce.mixed[0](x, w)
    assert out.shape == (2, 16, 3, 3)
    torch.testing.assert_close(out[:, 1::K], F.max_pool2d(x[:, 16 // K:], 2))


def test_edge_normalisation_weighs_node_inputs_and_the_derived_cell():
    net = DartsSpace().supernet(C=4, layers=3, partial_channels=2)
    with torch.no_grad():
        for p in net.arch_parameters():
            p.zero_()
        a, b = net.alpha["normal"], net.beta["normal"]
        sep = DARTS_PRIMITIVES.index("sep_conv_3x3")
        a[2, sep], a[3, sep], a[4, sep] = 3.0, 2.0, 1.0  # node 1's inputs 0, 1, 2 by α: 0 then 1
        b[4] = 5.0  # ... but β favours input 2 so much that 2 and 0 win
    w = net.edge_weights()["normal"]
    z = 2 + math.exp(5.0)
    torch.testing.assert_close(w[2:5], torch.tensor([1 / z, 1 / z, math.exp(5.0) / z]))
    torch.testing.assert_close(w[:2], torch.tensor([0.5, 0.5]))
    node1 = net.derived().normal[2:4]
    assert [j for _, j in node1] == [2, 0]


def test_a_pc_darts_node_adds_its_inputs_weighted_by_beta():
    torch.manual_seed(0)
    net = DartsSpace().supernet(C=4, layers=3, in_channels=1, partial_channels=2).double()
    cell = net.cells[0]  # normal: stem (12 channels) -> 4 channels, 4 nodes
    s0, s1 = torch.randn(2, 12, 6, 6, dtype=torch.float64), torch.randn(2, 12, 6, 6, dtype=torch.float64)
    w = F.softmax(torch.randn(14, 8, dtype=torch.float64), dim=-1)
    beta = torch.randn(14, dtype=torch.float64)
    edge_weights = torch.cat([F.softmax(beta[sum(range(2, i + 2)):sum(range(2, i + 3))], dim=-1) for i in range(4)])
    states = [cell.preprocess0(s0), cell.preprocess1(s1)]
    for i in range(4):
        edges = [genotype_edge(i, j) for j in range(i + 2)]
        states.append(sum(edge_weights[e] * cell.mixed[e](states[j], w[e]) for j, e in enumerate(edges)))
    torch.testing.assert_close(cell(s0, s1, w, None, edge_weights), torch.cat(states[2:], dim=1))


# ----------------------------------------------------------------------------- read-outs


def test_alphas_are_softmax_rows_as_plain_lists():
    net = NB201Space().supernet(C=2, N=1)
    with torch.no_grad():
        net.alpha["cell"].zero_()
        net.alpha["cell"][0, 3] = math.log(6.0)  # weights 1, 1, 1, 6, 1 over 10
    alphas = net.alphas()
    assert list(alphas) == ["cell"] and isinstance(alphas["cell"][0][0], float)
    assert alphas["cell"][0] == pytest.approx([0.1, 0.1, 0.1, 0.6, 0.1])
    assert alphas["cell"][1] == pytest.approx([0.2] * 5)
    assert list(DartsSpace().supernet(C=2, layers=3).alphas()) == ["normal", "reduce"]


def test_nb201_derived_is_argmax_per_edge_none_included():
    net = NB201Space().supernet(C=2, N=1)
    chosen = ("none", "nor_conv_3x3", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "none")
    with torch.no_grad():
        net.alpha["cell"].zero_()
        for e, op in enumerate(chosen):
            net.alpha["cell"][e, NB201_OPS.index(op)] = 1.0
    assert net.derived() == chosen
    assert NB201Space().format(net.derived()) == (
        "|none~0|+|nor_conv_3x3~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|")


def test_darts_derived_follows_the_papers_rule():
    space = DartsSpace()
    net = space.supernet(C=2, layers=3)
    ops = {name: k for k, name in enumerate(DARTS_PRIMITIVES)}
    with torch.no_grad():
        for p in net.arch_parameters():
            p.zero_()
        a = net.alpha["normal"]
        # node 0 (edges 0, 1): both inputs, input 1 stronger; on edge 0 'none' is largest but never chosen
        a[0, ops["none"]], a[0, ops["dil_conv_3x3"]] = 9.0, 1.0
        a[1, ops["sep_conv_5x5"]] = 2.0
        # node 1 (edges 2-4, inputs 0-2): input 2 then input 0
        a[2, ops["max_pool_3x3"]], a[3, ops["skip_connect"]], a[4, ops["sep_conv_3x3"]] = 1.5, 1.0, 2.5
        # node 2 (edges 5-8, inputs 0-3): inputs 3 and 1
        a[6, ops["avg_pool_3x3"]], a[8, ops["dil_conv_5x5"]] = 1.0, 2.0
        # node 3 (edges 9-13, inputs 0-4): all equal, so the first two inputs and the first non-'none' op
    expected_normal = [("sep_conv_5x5", 1), ("dil_conv_3x3", 0), ("sep_conv_3x3", 2), ("max_pool_3x3", 0),
                       ("dil_conv_5x5", 3), ("avg_pool_3x3", 1), ("max_pool_3x3", 0), ("max_pool_3x3", 1)]
    derived = net.derived()
    assert derived == Genotype(normal=expected_normal, normal_concat=[2, 3, 4, 5],
                               reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1)] * 4, reduce_concat=[2, 3, 4, 5])
    assert space.parse(space.format(derived)) == derived


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("call, words", [
    (lambda: NB201Space().supernet(C=0), ["C", "0", "C=16"]),
    (lambda: NB201Space().supernet(C=4, partial_channels=3), ["partial_channels=3", "partial_channels=2"]),
    (lambda: DartsSpace().supernet(C=5), ["C", "5", "C=16"]),
    (lambda: DartsSpace().supernet(layers=2.5), ["layers", "2.5", "layers=8"]),
    (lambda: DartsSpace().supernet(steps=3), ["steps=3", "steps=4"]),
    (lambda: DartsSpace().supernet(multiplier=5), ["multiplier", "5", "multiplier=4"]),
])
def test_bad_construction_arguments_are_named(call, words):
    with pytest.raises(NasnbError) as info:
        call()
    for word in words:
        assert word in str(info.value)


def test_bad_forward_arguments_are_named():
    net = DartsSpace().supernet(C=2, layers=3, in_channels=1)
    x = torch.randn(2, 1, 8, 8)
    with pytest.raises(NasnbError, match="weights"):
        net(x, weights=torch.zeros(14, 8))  # one tensor for a two-cell-type network
    with pytest.raises(NasnbError, match=r"\(14, 8\)"):
        net(x, weights={"normal": torch.zeros(14, 7), "reduce": torch.zeros(14, 8)})
    with pytest.raises(NasnbError, match="14"):
        net(x, ops={"normal": [0] * 13, "reduce": [0] * 14})
    with pytest.raises(NasnbError, match="<= 7"):
        net(x, ops={"normal": [8] * 14, "reduce": [0] * 14})
    twice = GENOTYPES["DARTS_V2"]._replace(normal=(("sep_conv_3x3", 0), ("skip_connect", 0)) * 4)
    with pytest.raises(NasnbError, match="twice"):
        net(x, arch=twice)
    with pytest.raises(NasnbError, match=r"\(B, 1, H, W\).*in_channels=3"):
        net(torch.randn(2, 3, 8, 8))
    with pytest.raises(NasnbError, match="not both"):
        net(x, arch=GENOTYPES["DARTS_V2"], ops={"normal": [0] * 14, "reduce": [0] * 14})
