"""P-DARTS' hooks on both supernets (Chen et al., ICCV 2019): `keep` (the op switches of Sec. 3.2)
and `skip_dropout` (Sec. 3.3).

A kept-op supernet is checked against the full supernet run with mixing weights computed here by
hand (exp / sum over the kept ops, zeros elsewhere), on the same weights; dropout by its statistics.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from nasnb.errors import NasnbError
from nasnb.spaces import GENOTYPES, DartsSpace
from nasnb.spaces.darts_supernet import DartsSupernet
from nasnb.spaces.ops import DARTS_PRIMITIVES
from nasnb.spaces.supernet import NB201Supernet
from nasnb.strategies.reinforce import one_thread

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
OP = {name: k for k, name in enumerate(DARTS_PRIMITIVES)}


@pytest.fixture(autouse=True)
def single_thread():
    with one_thread():
        yield


def random_keep(num_edges, num_ops, seed):
    """A random mask with at least one kept op per edge (and two on some)."""
    g = torch.Generator().manual_seed(seed)
    keep = torch.rand(num_edges, num_ops, generator=g) < 0.5
    keep[torch.arange(num_edges), torch.randint(num_ops, (num_edges,), generator=g)] = True
    return keep


def softmax_over_kept_by_hand(alpha, keep):
    """exp(α_k) / Σ_{j kept} exp(α_j) on kept entries, 0 on dropped ones (an independent computation)."""
    rows = []
    for a_row, k_row in zip(alpha.tolist(), keep.tolist()):
        z = sum(math.exp(a) for a, k in zip(a_row, k_row) if k)
        rows.append([math.exp(a) / z if k else 0.0 for a, k in zip(a_row, k_row)])
    return torch.tensor(rows, dtype=torch.float64)


def darts_pair(keep, C=4, layers=3):
    """A full DARTS supernet and one with `keep`, the kept ops' weights copied from the full one."""
    torch.manual_seed(0)
    full = DartsSupernet(C=C, layers=layers, in_channels=1).double()
    masked = DartsSupernet(C=C, layers=layers, in_channels=1, keep=keep).double()
    with torch.no_grad():
        for a in full.arch_parameters():
            a.normal_()
    state = full.state_dict()
    masked.load_state_dict({name: state[name] for name in masked.state_dict()})  # kept ops keep their names
    return full, masked


def test_dropped_ops_have_no_module_and_no_weights():
    keep = {"normal": torch.ones(14, 8, dtype=torch.bool), "reduce": torch.ones(14, 8, dtype=torch.bool)}
    keep["normal"][:, OP["sep_conv_3x3"]] = False  # dropped on every normal edge
    keep["normal"][3, OP["skip_connect"]] = False
    full = DartsSupernet(C=4, layers=3)
    net = DartsSupernet(C=4, layers=3, keep=keep)
    for cell in net.cells:
        for e, mixed in enumerate(cell.mixed):
            assert mixed.names == DARTS_PRIMITIVES  # α's columns are unchanged
            if cell.reduction:
                assert set(mixed.ops) == set(DARTS_PRIMITIVES) - {"none"}
            else:
                assert "sep_conv_3x3" not in mixed.ops and ("skip_connect" in mixed.ops) == (e != 3)
    # layers=3: cells 1 and 2 reduce, cell 0 is the only normal cell, at C=4: sep_conv_3x3 has 2(9c + c^2)
    removed = 14 * 2 * (9 * 4 + 4 * 4)
    count = lambda params: sum(p.numel() for p in params)  # noqa: E731
    assert count(full.weight_parameters()) - count(net.weight_parameters()) == removed
    assert [tuple(a.shape) for a in net.arch_parameters()] == [(14, 8), (14, 8)]
    assert torch.equal(net.keep["normal"], keep["normal"]) and net.keep["reduce"].all()


def test_no_keep_keeps_every_op():
    net = NB201Supernet(C=2, N=1)
    assert list(net.keep) == ["cell"] and net.keep["cell"].shape == (6, 5) and net.keep["cell"].all()
    assert all(set(m.ops) == set(NB201_OPS) - {"none"} for m in net.cells[0].mixed)


def test_the_relaxation_is_the_softmax_over_kept_ops_on_the_same_weights():
    keep = {cell: random_keep(14, 8, seed) for seed, cell in enumerate(("normal", "reduce"))}
    full, masked = darts_pair(keep)
    with torch.no_grad():
        for cell in ("normal", "reduce"):
            masked.alpha[cell].copy_(full.alpha[cell])
    by_hand = {cell: softmax_over_kept_by_hand(full.alpha[cell], keep[cell]) for cell in keep}
    for cell, w in masked.alphas().items():
        torch.testing.assert_close(torch.tensor(w, dtype=torch.float64), by_hand[cell], rtol=1e-12, atol=1e-15)
        assert all(w[e][k] == 0.0 for e in range(14) for k in range(8) if not keep[cell][e, k])  # exactly 0
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    probe = torch.randn(3, 10, dtype=torch.float64)
    y = masked(x)
    torch.testing.assert_close(y, full(x, weights=by_hand), rtol=1e-10, atol=1e-10)

    # α's gradient: through exp / sum over the kept entries only, computed with autograd here
    (y * probe).sum().backward()
    alpha = {cell: full.alpha[cell].detach().clone().requires_grad_() for cell in keep}
    weights = {}
    for cell, a in alpha.items():
        e = torch.exp(a) * keep[cell]
        weights[cell] = e / e.sum(dim=-1, keepdim=True)
    (full(x, weights=weights) * probe).sum().backward()
    for cell in keep:
        torch.testing.assert_close(masked.alpha[cell].grad, alpha[cell].grad, rtol=1e-8, atol=1e-12)
        assert (masked.alpha[cell].grad[~keep[cell]] == 0).all()


def test_nb201_keep_masks_every_cell_and_the_derived_edge():
    keep = torch.tensor([[False, True, True, False, False]] * 6)  # skip_connect and nor_conv_1x1 only
    net = NB201Supernet(C=2, N=2, keep=keep)
    for layer in net.cells:
        if hasattr(layer, "mixed"):
            assert all(set(m.ops) == {"skip_connect", "nor_conv_1x1"} for m in layer.mixed)
    with torch.no_grad():
        net.alpha["cell"].zero_()
        net.alpha["cell"][:, NB201_OPS.index("nor_conv_3x3")] = 10.0  # strongest, but dropped
        net.alpha["cell"][0, NB201_OPS.index("skip_connect")] = 1.0
    assert net.derived() == ("skip_connect",) * 6  # α ties on the other edges: the first kept op
    with torch.no_grad():
        net.alpha["cell"][1:, NB201_OPS.index("nor_conv_1x1")] = 2.0
    assert net.derived() == ("skip_connect",) + ("nor_conv_1x1",) * 5
    assert net.alphas()["cell"][0] == pytest.approx([0, math.e / (1 + math.e), 1 / (1 + math.e), 0, 0])


def test_darts_derived_never_picks_a_dropped_op():
    keep = {cell: torch.ones(14, 8, dtype=torch.bool) for cell in ("normal", "reduce")}
    keep["normal"][:, OP["sep_conv_5x5"]] = False
    keep["normal"][3, :] = False
    keep["normal"][3, OP["none"]] = True  # edge 3 (node 1, input 1) keeps 'none' only: never derived
    net = DartsSupernet(C=2, layers=3, keep=keep)
    with torch.no_grad():
        for p in net.arch_parameters():
            p.zero_()
        net.alpha["normal"][:, OP["sep_conv_5x5"]] = 9.0  # strongest everywhere, but dropped
        net.alpha["normal"][3, OP["dil_conv_3x3"]] = 9.0  # dropped on edge 3
        net.alpha["normal"][4, OP["dil_conv_3x3"]] = 1.0  # node 1, input 2
    # node 0: equal weights, so both inputs and the first kept op; node 1: input 2, then input 0
    # (input 1 has no op to derive)
    assert list(net.derived().normal[:4]) == [("max_pool_3x3", 0), ("max_pool_3x3", 1),
                                        ("dil_conv_3x3", 2), ("max_pool_3x3", 0)]
    # node 0 has only two inputs; if input 0 keeps nothing but 'none', node 0 cannot be derived
    keep["normal"][0, :] = False
    keep["normal"][0, OP["none"]] = True
    with pytest.raises(NasnbError, match=r"node 0.*keep"):
        DartsSupernet(C=2, layers=3, keep=keep).derived()


def test_sub_networks_may_not_choose_a_dropped_op():
    keep = {cell: torch.ones(14, 8, dtype=torch.bool) for cell in ("normal", "reduce")}
    keep["normal"][2, OP["sep_conv_3x3"]] = False  # DARTS_V2's node 1 reads input 0 with sep_conv_3x3
    net = DartsSupernet(C=2, layers=3, in_channels=1, keep=keep)
    x = torch.randn(2, 1, 8, 8)
    ops = {"normal": [OP["sep_conv_3x3"]] * 14, "reduce": [OP["none"]] * 14}
    with pytest.raises(NasnbError, match=r"sep_conv_3x3.*edge 2.*keep"):
        net(x, ops=ops)
    with pytest.raises(NasnbError, match=r"arch.*sep_conv_3x3.*edge 2.*keep"):
        net(x, arch=GENOTYPES["DARTS_V2"])
    ops["normal"][2] = OP["none"]  # 'none' (no edge) is always allowed
    assert net(x, ops=ops).shape == (2, 10)


@pytest.mark.parametrize("keep, words", [
    ({"normal": torch.ones(14, 7, dtype=torch.bool), "reduce": torch.ones(14, 8, dtype=torch.bool)},
     ["keep['normal']", "(14, 7)", "(14, 8)"]),
    ({"normal": torch.ones(14, 8), "reduce": torch.ones(14, 8, dtype=torch.bool)}, ["keep['normal']", "bool"]),
    ({"normal": torch.ones(14, 8, dtype=torch.bool)}, ["keep", "reduce"]),
    (torch.ones(14, 8, dtype=torch.bool), ["keep", "dict"]),
    ({"normal": [[True] * 8] * 13 + [[False] * 8], "reduce": [[True] * 8] * 14}, ["keep['normal']", "edge 13"]),
    ({"normal": "all", "reduce": [[True] * 8] * 14}, ["keep['normal']", "bool"]),
])
def test_bad_keep_is_named(keep, words):
    with pytest.raises(NasnbError) as info:
        DartsSupernet(C=2, layers=3, keep=keep)
    for word in words:
        assert word in str(info.value)


def test_nested_lists_of_bools_are_a_keep():
    rows = [[True, False, True, True, False]] * 6
    net = NB201Supernet(C=2, N=1, keep={"cell": rows})
    assert net.keep["cell"].tolist() == rows
    assert NB201Supernet(C=2, N=1, keep=rows).keep["cell"].tolist() == rows  # one cell type: no dict needed


# ----------------------------------------------------------------------------- skip dropout


def skip_only(num_ops, names):
    w = torch.zeros(num_ops)
    w[names.index("skip_connect")] = 1.0
    return w


def test_skip_dropout_zeroes_a_fraction_p_and_rescales_the_rest():
    p = 0.3
    net = NB201Supernet(C=8, N=1, skip_dropout=p).train()
    mixed = net.cells[0].mixed[0]
    x = torch.rand(50, 8, 16, 16) + 1.0  # no zeros of its own
    torch.manual_seed(0)
    out = mixed(x, skip_only(5, NB201_OPS))
    dropped = (out == 0).double().mean().item()
    n = x.numel()  # 102,400 Bernoulli(p) draws: 5 standard deviations is ~0.007
    assert abs(dropped - p) < 5 * math.sqrt(p * (1 - p) / n)
    kept = out != 0
    torch.testing.assert_close(out[kept], x[kept] / (1 - p))


def test_skip_dropout_is_off_at_zero_and_in_eval_mode_and_settable():
    net = NB201Supernet(C=4, N=1, in_channels=1).train()
    mixed = net.cells[0].mixed[3]
    x = torch.randn(4, 4, 6, 6)
    assert net.skip_dropout == 0.0 and torch.equal(mixed(x, skip_only(5, NB201_OPS)), x)
    net.skip_dropout = 0.5  # P-DARTS changes it every epoch
    assert all(m.skip_dropout == 0.5 for layer in net.cells if hasattr(layer, "mixed") for m in layer.mixed)
    assert (mixed(x, skip_only(5, NB201_OPS)) == 0).any()
    net.eval()
    assert torch.equal(mixed(x, skip_only(5, NB201_OPS)), x)
    # the whole net: dropout changes a training-mode output, and not an eval-mode one
    images = torch.randn(4, 1, 8, 8)
    net.train()
    torch.manual_seed(1)
    noisy = net(images)
    net.skip_dropout = 0.0
    torch.manual_seed(1)
    assert not torch.allclose(noisy, net(images))


def test_skip_dropout_leaves_strided_skips_alone():
    # the authors put dropout after Identity only; a reduction edge's skip is a FactorizedReduce
    net = DartsSupernet(C=4, layers=3, in_channels=1, skip_dropout=0.6).train()
    mixed = net.cells[1].mixed[0]  # a reduction cell's edge from input 0: stride 2
    x = torch.randn(4, 8, 8, 8)
    w = skip_only(8, DARTS_PRIMITIVES)
    torch.manual_seed(0)
    out = mixed(x, w)
    net.skip_dropout = 0.0
    torch.testing.assert_close(out, mixed(x, w))


@pytest.mark.parametrize("value, words", [(1.0, ["skip_dropout", "1.0", "[0, 1)"]), (-0.1, ["skip_dropout", "-0.1"]),
                                          ("0.2", ["skip_dropout", "0.2"]), (True, ["skip_dropout", "True"])])
def test_bad_skip_dropout_is_named(value, words):
    with pytest.raises(NasnbError) as info:
        DartsSupernet(C=2, layers=3, skip_dropout=value)
    for word in words:
        assert word in str(info.value)
    net = NB201Supernet(C=2, N=1)
    with pytest.raises(NasnbError, match="skip_dropout"):
        net.skip_dropout = value


def test_the_space_supernet_is_unchanged_without_the_hooks():
    net = DartsSpace().supernet(C=2, layers=3)
    assert net.skip_dropout == 0.0 and all(k.all() for k in net.keep.values())
    assert F.softmax(net.alpha["normal"], dim=-1).tolist() == net.alphas()["normal"]
