"""ProxylessNAS (nasnb/strategies/proxyless.py) and its supernet (nasnb/spaces/mobilenet_supernet.py).

The BinaryConnect gradient and the two-path rescaling are checked against finite differences and
plain numpy sums; the gate gradients of the supernet against finite differences of its loss in the
gates; E[latency] against a hand sum and the mean of table.predict over every architecture; the
path binarisation by counting the blocks that run and the weights that get a gradient.
"""
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import nasnb
from nasnb.errors import InvalidTypeError, InvalidValueError, TrainingDivergedError
from nasnb.latency import LatencyTable, layer_shapes
from nasnb.spaces import MobileNetSpace, NB201Space
from nasnb.spaces.mobilenet_network import mbconv_params
from nasnb.spaces.mobilenet_supernet import MobileNetSupernet, binary_connect_gradient, rescale_pair
from nasnb.strategies.proxyless import ProxylessNAS, expected_latency
from nasnb.strategies.reinforce import one_thread
from nasnb.viz.alphas import alpha_data

# layer 0: 4 -> 8 (4 MBConvs), layer 1: 8 -> 8 (4 MBConvs and Zero), layer 2: 8 -> 16 at stride 2 (4 MBConvs)
SPACE = MobileNetSpace(widths=(8, 16), depths=(2, 1), strides=(1, 2), stem_width=4, first_width=4, head_width=16,
                       kernels=(3, 5), expansions=(1, 3))
OPS = ("3x3_MBConv1", "3x3_MBConv3", "5x5_MBConv1", "5x5_MBConv3")


@pytest.fixture(autouse=True)
def single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def data():
    return nasnb.data.load("digits").subset(train_size=48, val_size=48)


def hand_table(fixed=1e-5):
    """Latency k*k*e microseconds, +1 us per layer index: a cheap block is a small kernel and expansion."""
    shapes = layer_shapes(SPACE, (1, 8, 8))
    entries = {}
    for row, (layer, shape) in enumerate(zip(SPACE.layers, shapes)):
        for op in layer.options:
            if op != "Zero":
                k, e = mbconv_params(op)
                entries[(op, *shape)] = (k * k * e + row) * 1e-6
    return LatencyTable(entries, fixed, shapes, {"device": "cpu"})


def make(data, **kwargs):
    return ProxylessNAS(SPACE, data, **{"batch_size": 8, "device": "cpu", **kwargs})


# ============================================================================= the gradients, against the math

def expected_gated_loss(alpha: np.ndarray, G: np.ndarray, paths: np.ndarray) -> float:
    """Σ_rows Σ_{j in paths} q_j G_j, q = softmax over the paths: the loss when it is linear in the gates."""
    total = 0.0
    for a, g, m in zip(alpha, G, paths):
        e = np.where(m, np.exp(a - a[m].max()), 0.0)
        total += float((e / e.sum() * g).sum())
    return total


@pytest.mark.parametrize("two_paths", [False, True])
def test_binary_connect_gradient_equals_finite_differences(two_paths):
    rng = np.random.default_rng(0)
    alpha, G = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    paths = np.ones((3, 5), dtype=bool)
    if two_paths:
        paths[:] = False
        for row, pair in enumerate([(0, 3), (4, 1), (2, 0)]):
            paths[row, list(pair)] = True
    grad = binary_connect_gradient(torch.tensor(G), torch.tensor(alpha), torch.tensor(paths)).numpy()
    h, fd = 1e-6, np.zeros_like(alpha)
    for index in np.ndindex(alpha.shape):
        step = np.zeros_like(alpha)
        step[index] = h
        plus, minus = expected_gated_loss(alpha + step, G, paths), expected_gated_loss(alpha - step, G, paths)
        fd[index] = (plus - minus) / (2 * h)
    np.testing.assert_allclose(grad, fd, atol=1e-8)
    assert np.all(grad[~paths] == 0.0)  # only the sampled paths' α move
    # the formula Σ_j G_j p_j (δ_ij − p_i) written out for row 0
    a = np.where(paths[0], alpha[0], -np.inf)
    p = np.exp(a - a.max()) / np.exp(a - a.max()).sum()
    by_hand = [sum(G[0, j] * p[j] * ((i == j) - p[i]) for j in range(5)) for i in range(5)]
    np.testing.assert_allclose(grad[0], by_hand, atol=1e-12)


def test_rescaling_the_pair_keeps_every_other_probability():
    before = torch.tensor([[0.3, -1.2, 2.0, 0.5], [1.0, 0.0, -0.5, 0.2]], dtype=torch.float64)
    paths = torch.tensor([[True, False, True, False], [False, True, False, True]])
    moved = before.clone()
    moved[0, 0] += 0.7
    moved[0, 2] -= 0.1
    moved[1, 1] -= 0.4
    moved[1, 3] += 0.9
    after = rescale_pair(moved, before, paths)
    p_before, p_after = F.softmax(before, -1), F.softmax(after, -1)
    assert float((p_after[~paths] - p_before[~paths]).abs().max()) <= 1e-15
    # the pair's total is kept, its split is the moved one's
    assert float((p_after[paths].view(2, 2).sum(-1) - p_before[paths].view(2, 2).sum(-1)).abs().max()) <= 1e-15
    assert math.isclose(float(after[0, 0] - after[0, 2]), 0.3 + 0.7 - (2.0 - 0.1), abs_tol=1e-12)
    assert torch.equal(after[~paths], before[~paths])


def test_gate_gradients_of_the_supernet_equal_finite_differences():
    """∂L/∂g_j of the gated two-path forward (inactive block under no_grad) against central
    differences of the loss in g_j, in float64."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = MobileNetSupernet(SPACE, num_classes=3).double().train()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, 1, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 3, (6,), generator=g)
    active, others = [0, 4, 3], [2, 1, 1]  # columns of op_names; layer 1 runs Zero (the identity)
    gates = torch.zeros(3, 5, dtype=torch.float64)
    gates[[0, 1, 2], active] = 1.0
    loss = lambda gates: F.cross_entropy(net(x, ops=active, gates=gates, others=others), y)  # noqa: E731
    gates.requires_grad_()
    (grad,) = torch.autograd.grad(loss(gates), [gates])
    gates = gates.detach()
    for row, columns in enumerate(zip(active, others)):
        for column in columns:
            step = torch.zeros_like(gates)
            step[row, column] = 1e-5
            with torch.no_grad():
                fd = (loss(gates + step) - loss(gates - step)) / 2e-5
            assert math.isclose(float(grad[row, column]), float(fd), rel_tol=1e-5, abs_tol=1e-9)
    assert float(grad[1, 1]) != 0.0  # the inactive path gets its gradient without autograd through it


# ============================================================================= expected latency

def test_expected_latency_equals_a_hand_sum_and_its_gradient_finite_differences(data):
    table = hand_table(fixed=2e-5)
    search = make(data, latency_table=table, latency_weight=1.0)
    alpha = np.array([[0.5, -1.0, 0.2, 1.5, 0.7], [0.0, 0.3, -0.4, 0.8, -0.6],
                      [1.0, 1.0, -2.0, 0.1, 2.0]])  # columns: op_names; 4 is Zero, an option of layer 1 only
    with torch.no_grad():
        search.net.alpha["chain"].copy_(torch.tensor(alpha))
    assert search.net.op_names == (*OPS, "Zero")
    us = [[9 + 0, 27 + 0, 25 + 0, 75 + 0], [9 + 1, 27 + 1, 25 + 1, 75 + 1], [9 + 2, 27 + 2, 25 + 2, 75 + 2]]

    def by_hand(alpha):
        total = 20.0  # fixed, in microseconds
        for row in range(3):
            columns = [0, 1, 2, 3] + ([4] if row == 1 else [])
            z = sum(math.exp(alpha[row][c]) for c in columns)
            total += sum(math.exp(alpha[row][c]) / z * us[row][c] for c in range(4))  # Zero costs 0
        return total * 1e-6

    assert math.isclose(search.expected_latency(), by_hand(alpha), rel_tol=1e-6)
    # = the mean of table.predict over every architecture, each weighted by the product of its p
    p = search.net.mixing_weights()["chain"].detach().double()
    mean = sum(math.prod(float(p[row, search.net.op_names.index(op)]) for row, op in enumerate(arch))
               * table.predict(arch) for arch in itertools.product(*(layer.options for layer in SPACE.layers)))
    assert math.isclose(search.expected_latency(), mean, rel_tol=1e-6)
    # its gradient in α (autograd through softmax) against central differences of the hand sum
    a = torch.tensor(alpha, requires_grad=True)
    value = expected_latency(F.softmax(search.net.masked_alpha(a), -1), search.seconds, table.fixed)
    (grad,) = torch.autograd.grad(value, a)
    for row, column in [(0, 0), (0, 3), (1, 4), (1, 2), (2, 1), (2, 3)]:
        plus, minus = alpha.copy(), alpha.copy()
        plus[row, column] += 1e-6
        minus[row, column] -= 1e-6
        fd = (by_hand(plus) - by_hand(minus)) / 2e-6
        assert math.isclose(float(grad[row, column]), fd, rel_tol=1e-5, abs_tol=1e-14)
    assert float(grad[0, 4]) == float(grad[2, 4]) == 0.0  # no Zero in layers 0 and 2: no gradient


def test_a_larger_latency_weight_gives_a_lower_expected_latency(data):
    table = hand_table()
    """Seeds 0-4 here: λ = 5 ends at 0.36-0.41 of uniform p's searched-layer latency, 0.35-0.56 of λ = 0's."""
    free = make(data, latency_table=table, latency_weight=0.0, alpha_lr=0.2).run(20, progress=False)
    costly = make(data, latency_table=table, latency_weight=5.0, alpha_lr=0.2).run(20, progress=False)
    uniform = 1e3 * make(data, latency_table=table).latency_reference
    fixed_ms = 1e3 * table.fixed
    free_ms, costly_ms = (h[-1].metrics["expected_latency_ms"] - fixed_ms for h in (free, costly))
    assert costly_ms < 0.55 * (uniform - fixed_ms)  # far below uniform p
    assert costly_ms < 0.8 * free_ms
    assert costly[-1].metrics["latency_loss"] > 0 and free[-1].metrics["latency_loss"] == 0


# ============================================================================= path binarisation

def test_a_step_runs_one_block_per_layer_for_w_and_two_for_alpha(data):
    search = make(data)
    calls = {}
    for row, layer in enumerate(search.net.layers):
        for op, block in layer.blocks.items():
            calls[row, op] = 0
            block.register_forward_hook(lambda *_, key=(row, op): calls.__setitem__(key, calls[key] + 1))
    with_grad = {}  # (layer, op) -> whether every parameter of the block has a gradient at the weight update
    search.w_optimizer.register_step_pre_hook(lambda *_: with_grad.update(
        {(row, op): [p.grad is not None for p in block.parameters()] for row, layer in enumerate(search.net.layers)
         for op, block in layer.blocks.items()}))
    record = search.step()
    sampled = SPACE.parse(record.info["sampled"])
    active = SPACE.parse(record.info["active"])
    inactive = record.info["inactive"]
    for row, layer in enumerate(search.net.layers):
        expected = {op: [sampled[row], active[row], inactive[row]].count(op) for op in layer.options}
        assert {op: calls[row, op] for op in layer.options} == expected  # 3 calls, not 4-5 blocks x 2
        for op in layer.options:  # only the weight step's blocks have gradients when SGD steps
            assert with_grad[row, op] == ([op == sampled[row]] * len(with_grad[row, op]))
        assert sampled[row] == "Zero" or with_grad[row, sampled[row]]  # an MBConv has parameters
    assert all(p.grad is None for p in search.net.parameters())  # spent gradients are freed


def test_the_alpha_step_moves_only_the_two_sampled_paths(data):
    search = make(data, alpha_lr=0.1)
    before = search.net.mixing_weights()["chain"].detach().clone()
    record = search.step()
    after = search.net.mixing_weights()["chain"].detach()
    names = search.net.op_names
    active = SPACE.parse(record.info["active"])
    for row, (a, b) in enumerate(zip(active, record.info["inactive"])):
        pair = [names.index(a), names.index(b)]
        others = [c for c in range(len(names)) if c not in pair]
        assert float((after[row, others] - before[row, others]).abs().max()) <= 1e-7
        assert not torch.allclose(after[row, pair], before[row, pair], rtol=0, atol=1e-4)  # the pair did move
        assert math.isclose(float(after[row, pair].sum()), float(before[row, pair].sum()), rel_tol=1e-5)


# ============================================================================= the search

def test_same_seed_same_history_and_a_resumed_run_equals_an_uninterrupted_one(data, tmp_path):
    table = hand_table()
    settings = dict(latency_table=table, latency_weight=0.5, warmup_steps=2)
    uninterrupted = make(data, **settings).run(5, progress=False)
    again = make(data, **settings).run(5, progress=False)
    assert [(r.metrics, r.info, r.arch) for r in again] == [(r.metrics, r.info, r.arch) for r in uninterrupted]
    make(data, **settings).run(3, checkpoint=tmp_path / "px", progress=False)
    resumed = make(data, **settings)
    resumed.run(5, checkpoint=tmp_path / "px", progress=False)
    assert [(r.metrics, r.info) for r in resumed.history] == [(r.metrics, r.info) for r in uninterrupted]
    assert [r.info["warmup"] for r in uninterrupted] == [True, True, False, False, False]
    assert uninterrupted[0].info["alphas"] == uninterrupted[1].info["alphas"]  # α rests in warm-up
    with pytest.raises(nasnb.errors.ResumeMismatchError, match="latency_weight"):
        make(data, **{**settings, "latency_weight": 1.0}).run(5, checkpoint=tmp_path / "px", progress=False)
    other = make(data, seed=1).run(2, progress=False)
    assert [r.info["sampled"] for r in other] != [r.info["sampled"] for r in uninterrupted[:2]]


def test_a_step_that_diverges_in_the_weight_step_is_undone(data):
    """NaN logits in the weight step, after the α update: the search is back as it was (α and its
    optimiser, weights, momenta, BatchNorm statistics, streams, generator), then steps as a fresh
    search does."""
    search, fresh = make(data, alpha_lr=0.1), make(data, alpha_lr=0.1)
    search.step()
    fresh.step()
    before = search.state_dict()
    forward, calls = search.net.forward, []

    def nan_in_weight_step(x, *args, **kwargs):
        calls.append(kwargs.get("gates") is None)
        logits = forward(x, *args, **kwargs)
        return logits * float("nan") if calls[-1] else logits

    search.net.forward = nan_in_weight_step
    with pytest.raises(TrainingDivergedError, match="training loss is nan"):
        search.step()
    assert calls == [False, True] and len(search.history) == 1  # the α step ran, then the weight step
    after = search.state_dict()
    for name, value in before["extra"]["net"].items():
        assert torch.equal(after["extra"]["net"][name], value), name
    assert str(after["extra"]["w_optimizer"]) == str(before["extra"]["w_optimizer"])
    assert str(after["extra"]["alpha_optimizer"]) == str(before["extra"]["alpha_optimizer"])
    assert torch.equal(after["torch_generator"], before["torch_generator"])
    del search.net.forward
    assert search.step().info == fresh.step().info


def test_derived_is_the_argmax_per_layer_and_the_alphas_view_reads_the_history(data):
    search = make(data)
    with torch.no_grad():
        search.net.alpha["chain"].copy_(torch.tensor([[0, 0, 3., 0, 9.], [0, 1., 0, 0, 0.5], [0, 0, 0, 2., 0]]))
    assert search.derived() == ("5x5_MBConv1", "3x3_MBConv3", "5x5_MBConv3")  # column 4 (Zero) is not layer 0's
    assert SPACE.validate(search.derived()) == search.derived()
    search.run(2, progress=False)
    data_ = alpha_data(search.history)
    (cell,) = data_["cells"]
    assert cell["edges"] == ["stage0/layer0", "stage0/layer1", "stage1/layer0"]
    assert data_["op_names"] == [*OPS, "Zero"]
    assert data_["derived"] == search.history[-1].arch == SPACE.format(search.derived())
    for row, weights in enumerate(cell["weights"]):
        assert math.isclose(sum(weights), 1.0, rel_tol=1e-6)
        assert (weights[4] > 0) == (row == 1)  # Zero where the shape allows it; elsewhere it weighs 0


def test_bad_arguments_raise_clear_errors(data):
    with pytest.raises(InvalidTypeError, match="MobileNetSpace"):
        ProxylessNAS(NB201Space(), data, device="cpu")
    with pytest.raises(InvalidValueError, match="latency_weight=0.1 needs a latency_table"):
        make(data, latency_weight=0.1)
    with pytest.raises(InvalidValueError, match="latency_weight"):
        make(data, latency_table=hand_table(), latency_weight=-1.0)
    with pytest.raises(InvalidTypeError, match="LatencyTable"):
        make(data, latency_table={"3x3_MBConv1": 1e-5})
    other = MobileNetSpace(widths=(8,), depths=(2,), strides=(1,), stem_width=4, first_width=4, head_width=16,
                           kernels=(3, 5), expansions=(1, 3))
    with pytest.raises(InvalidValueError, match="layers"):
        ProxylessNAS(other, data, hand_table(), device="cpu", batch_size=8)
    with pytest.raises(InvalidValueError, match="alpha_betas"):
        make(data, alpha_betas=0.5)
    with pytest.raises(InvalidValueError, match="batch_size=48"):
        make(data, batch_size=100)
    with pytest.raises(InvalidTypeError, match="TensorData"):
        ProxylessNAS(SPACE, [1, 2, 3])
    net = make(data).net
    with pytest.raises(InvalidValueError, match="not an option of layer stage0/layer0"):
        net(torch.zeros(2, 1, 8, 8), ops=[4, 0, 0])
    with pytest.raises(InvalidValueError, match="one op index per layer"):
        net(torch.zeros(2, 1, 8, 8), ops=[0, 0])
