"""nasnb.proxies against hand computations on tiny networks whose every weight the test sets."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

import nasnb.data
from nasnb.errors import InvalidTypeError, InvalidValueError, UnknownNameError
from nasnb.evaluators import TrainEvaluator
from nasnb.proxies import (PROXIES, build_seeded, flops, grad_norm, jacov, naswot, naswot_kernel, params, score,
                           scores, snip, synflow)
from nasnb.spaces import NB201Space

SPACE = NB201Space()
W1 = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])  # (hidden 4, in 3)
W2 = np.array([[0.5, -1.0, 2.0, 0.0], [-1.5, 1.0, 0.5, 1.0]])  # (out 2, hidden 4)
X = np.array([[1.0, -1.0, 2.0], [-1.0, -1.0, -1.0], [1.0, 1.0, -3.0]])  # 3 inputs
Y = np.array([0, 1, 1])
CONV3 = ("nor_conv_3x3",) * 6


def two_layer(w1=W1, w2=W2) -> nn.Module:
    """x -> W2 relu(W1 x), no biases."""
    net = nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(w1))
        net[2].weight.copy_(torch.tensor(w2))
    return net.double()


def tensors(x=X, y=Y):
    return torch.tensor(x), torch.tensor(y)


@pytest.fixture(scope="module")
def digits():
    return nasnb.data.load("digits", seed=0, train_size=80, val_size=20)


def hand_gradients():
    """∂L/∂W1, ∂L/∂W2 of the mean cross-entropy, by the chain rule written out."""
    pre = X @ W1.T  # (3, 4)
    hidden = np.maximum(pre, 0)
    logits = hidden @ W2.T  # (3, 2)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    G = (p - np.eye(2)[Y]) / len(Y)  # ∂L/∂logits of the mean over the batch
    dW2 = G.T @ hidden
    dW1 = ((G @ W2) * (pre > 0)).T @ X
    return dW1, dW2


def test_synflow_of_a_two_layer_net_is_twice_the_flow_through_it():
    # With |W| and input 1: R = 1ᵀ|W2||W1|1. ∂R/∂W2 = 1 hᵀ with h = |W1|1, ∂R/∂W1 = (1ᵀ|W2|)ᵀ 1ᵀ,
    # so each layer's Σ|θ ⊙ ∂R/∂θ| is R itself, and the score is 2R.
    R = np.ones(2) @ np.abs(W2) @ np.abs(W1) @ np.ones(3)
    assert R == pytest.approx(9.5)  # column sums of |W2| (2, 2, 2.5, 1) . row sums of |W1| (1, 1, 1, 3)
    x, y = tensors()
    assert synflow(two_layer(), x, y) == pytest.approx(2 * R)
    # only the input's shape counts: any batch values, any batch size
    assert synflow(two_layer(), 100 * torch.randn(7, 3, dtype=torch.float64) + 5) == pytest.approx(2 * R)


def test_synflow_removes_batchnorm_and_sums_in_float64():
    # 60 layers of width 1 and weight -10 (abs: 10), BatchNorm between them (in train mode on one
    # input BatchNorm would fail; removed, it cannot rescale): R = 10^60, beyond float32's 3.4e38.
    layers = []
    for _ in range(60):
        linear = nn.Linear(1, 1, bias=False)
        nn.init.constant_(linear.weight, -10.0)
        layers += [linear, nn.BatchNorm1d(1)]
    net = nn.Sequential(*layers)
    assert synflow(net, torch.zeros(4, 1)) == pytest.approx(60 * 1e60, rel=1e-9)
    assert net[0].weight.item() == -10.0 and net[0].weight.dtype == torch.float32  # the caller's net untouched


def test_snip_and_grad_norm_are_the_hand_computed_gradients():
    dW1, dW2 = hand_gradients()
    x, y = tensors()
    assert snip(two_layer(), x, y) == pytest.approx(np.abs(W1 * dW1).sum() + np.abs(W2 * dW2).sum())
    # the sum of per-layer Frobenius norms, not the norm of all gradients together
    per_layer = np.sqrt((dW1 ** 2).sum()) + np.sqrt((dW2 ** 2).sum())
    assert grad_norm(two_layer(), x, y) == pytest.approx(per_layer)
    assert per_layer > np.sqrt((dW1 ** 2).sum() + (dW2 ** 2).sum()) + 1e-3  # the two readings differ here


def test_naswot_kernel_of_three_inputs_by_hand():
    # W1 x for the three inputs: (1, -1, 2, 2), (-1, -1, -1, -3), (1, 1, -3, -1)
    # codes 1011, 0000, 1100; N_A = 4 units; Hamming distances d12 = 3, d13 = 3, d23 = 2
    K = np.array([[4, 1, 1], [1, 4, 2], [1, 2, 4]], dtype=float)
    x, _ = tensors()
    np.testing.assert_array_equal(naswot_kernel(two_layer(), x), K)
    det = 4 * (4 * 4 - 2 * 2) - 1 * (1 * 4 - 2 * 1) + 1 * (1 * 2 - 4 * 1)  # cofactors of row 1: 44
    assert naswot(two_layer(), x) == pytest.approx(math.log(det))
    # two inputs with one code (x and 2x) make K singular: the worst score
    assert naswot(two_layer(), torch.tensor([[1.0, -1.0, 2.0], [2.0, -2.0, 4.0]], dtype=torch.float64)) == -math.inf


def test_naswot_diagonal_is_the_number_of_relu_units_of_an_nb201_network():
    # all-conv cell, C=8, N=1, 8x8 input; ReLU units per stage (each ReLUConvBN's input):
    # stage 1: 6 convs x 8ch x 8x8 = 3072; block 1: 8x8x8 + 16x4x4 = 768; stage 2: 6 x 16x4x4 = 1536;
    # block 2: 16x4x4 + 32x2x2 = 384; stage 3: 6 x 32x2x2 = 768; final BN-ReLU: 32x2x2 = 128.
    n_units = 3072 + 768 + 1536 + 384 + 768 + 128
    torch.manual_seed(0)
    net = SPACE.build(CONV3, C=8, N=1, in_channels=1)
    K = naswot_kernel(net, torch.randn(5, 1, 8, 8))
    np.testing.assert_array_equal(np.diag(K), np.full(5, n_units))
    assert np.all(K <= n_units) and np.all(K >= 0) and np.array_equal(K, K.T)


def test_jacov_of_hand_written_jacobians():
    # J_i = ∂(Σ_k out_k)/∂x_i = ((1ᵀW2) ⊙ relu'(W1 x_i)) W1 = (m4 - m1, m4, 2.5 m3 + m4) for the
    # mask m of x_i: here (0, 1, 3.5), (0, 1, 3.5), (1, 1, 3.5)
    inputs = np.array([[1.0, 2.0, 3.0], [3.0, -1.0, 0.5], [-1.0, 2.0, 1.0]])
    masks = (inputs @ W1.T > 0).astype(float)
    J = (W2.sum(axis=0) * masks) @ W1  # (3, 3)
    np.testing.assert_array_equal(J, [[0, 1, 3.5], [0, 1, 3.5], [1, 1, 3.5]])
    lam = np.linalg.eigvalsh(np.corrcoef(J))
    k = 1e-5
    assert jacov(two_layer(), torch.tensor(inputs)) == pytest.approx(-np.sum(np.log(lam + k) + 1 / (lam + k)))
    # an input whose ReLUs are all off has a zero Jacobian: no correlation, the worst score
    x, _ = tensors()  # its second input is such a one
    assert jacov(two_layer(), x) == -math.inf
    # a linear network has one Jacobian for every input: correlations all 1, eigenvalues 3, 0, 0
    linear = nn.Sequential(nn.Linear(3, 2, bias=False)).double()
    with torch.no_grad():
        linear[0].weight.copy_(torch.tensor(W2[:, :3]))
    expected = -(math.log(3 + k) + 1 / (3 + k) + 2 * (math.log(k) + 1 / k))
    assert jacov(linear, x) == pytest.approx(expected, rel=1e-6)


def test_params_and_flops_count_the_two_layers():
    x, y = tensors()
    assert params(two_layer(), x, y) == 3 * 4 + 4 * 2
    assert flops(two_layer().float(), x.float(), y) == 2 * (3 * 4 + 4 * 2)  # one multiply-add = 2 FLOPs


def test_a_proxy_leaves_the_network_as_it_was(digits):
    net = build_seeded(SPACE, CONV3, digits, seed=0)
    before = {k: v.clone() for k, v in net.state_dict().items()}  # weights and BatchNorm statistics
    x, y = digits.train[0][:16], digits.train[1][:16]
    for name, proxy in PROXIES.items():
        proxy(net, x, y)
        assert all(torch.equal(before[k], v) for k, v in net.state_dict().items()), name
        assert all(p.grad is None for p in net.parameters()), name


def test_score_builds_the_table_s_initial_network_and_is_seeded(digits):
    arch = ("nor_conv_3x3", "skip_connect", "nor_conv_1x1", "avg_pool_3x3", "none", "nor_conv_3x3")
    trained = TrainEvaluator(digits, 1, space=SPACE, seed=3).build(arch)  # what the table trains for seed 3
    mine = build_seeded(SPACE, arch, digits, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), mine.state_dict().values()))
    state = torch.get_rng_state()
    for name in ("synflow", "snip", "naswot"):
        a = score(SPACE, arch, digits, proxy=name, seed=1, batch_size=32)
        assert score(SPACE, SPACE.format(arch), digits, proxy=name, seed=1, batch_size=32) == a  # string or tuple
        assert score(SPACE, arch, digits, proxy=name, seed=2, batch_size=32) != a, name
    assert torch.equal(state, torch.get_rng_state())  # the caller's RNG untouched
    both = scores(SPACE, arch, digits, ["synflow", "params"], seed=1, batch_size=32)
    assert both["synflow"] == score(SPACE, arch, digits, "synflow", seed=1, batch_size=32)
    assert both["params"] == sum(p.numel() for p in mine.parameters())
    # the table's network size by default; another size on request
    assert score(SPACE, arch, digits, "params", C=4, N=1) < both["params"]


def test_bad_names_and_arguments_are_refused_with_the_valid_ones(digits):
    with pytest.raises(UnknownNameError, match="choose from.*synflow.*snip.*grad_norm.*naswot.*jacov.*params.*flops"):
        score(SPACE, CONV3, digits, proxy="synflo")
    with pytest.raises(InvalidValueError, match="batch_y"):
        snip(two_layer(), tensors()[0], None)
    with pytest.raises(InvalidTypeError, match="batch_x"):
        synflow(two_layer(), [[1.0, 2.0, 3.0]])
    with pytest.raises(InvalidTypeError, match="net must be a torch.nn.Module"):
        naswot("net", tensors()[0])
    with pytest.raises(InvalidValueError, match="at least 2"):
        jacov(two_layer(), tensors()[0][:1])
    with pytest.raises(InvalidValueError, match="batch_size=500 is more than the 80"):
        score(SPACE, CONV3, digits, batch_size=500)
    with pytest.raises(InvalidTypeError, match="seed"):
        score(SPACE, CONV3, digits, seed=1.5)
    with pytest.raises(UnknownNameError, match="does not take.*layers"):
        score(SPACE, CONV3, digits, layers=3)
    with pytest.raises(InvalidTypeError, match="TensorData"):
        score(SPACE, CONV3, (tensors()))
    with pytest.raises(InvalidTypeError, match="list of names"):
        scores(SPACE, CONV3, digits, "synflow")
    assert score(SPACE, CONV3, digits, proxy=lambda net, x, y: float(len(x)), batch_size=8) == 8.0  # a callable works
