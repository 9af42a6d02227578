"""The supernets' speed and memory tricks (nasnb/spaces/fast_ops.py) change no number.

The fast depthwise convolution is checked by finite differences (gradcheck, float64) and against
nn.Conv2d's gradients; every trick, alone and together, against benchmarks/darts_baseline.py (the
authors' straightforward network) on the same weights: outputs, weight gradients and α gradients;
DARTS' second-order α gradient (torch.func.functional_call on w', w±) against the plain network.
"""
import importlib.util
import pathlib

import pytest
import torch
import torch.nn as nn

from nasnb.errors import NasnbError
from nasnb.spaces.darts_supernet import DartsSupernet
from nasnb.spaces.fast_ops import (DEFAULT_TRICKS, FAST_TRICKS, FastAvgPool2d, LeanBatchNorm2d, LeanMaxPool2d,
                                   _AvgPool3x3, _BatchNormFromOutput, _DepthwiseConv2d, _MaxPool2dFromInput,
                                   _ReLUDepthwisePointwise, _column_shifts, _weight_grad_by_columns,
                                   depthwise_conv2d, weighted_sum)
from nasnb.strategies.darts import first_order_alpha_gradient, unrolled_alpha_gradient
from nasnb.strategies.reinforce import one_thread

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("darts_baseline", ROOT / "benchmarks" / "darts_baseline.py")
baseline = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(baseline)

CONVS = [(3, 1, 1), (5, 2, 1), (3, 2, 2), (5, 4, 2)]  # DARTS' (kernel, padding, dilation)


@pytest.fixture(autouse=True)
def single_thread():
    with one_thread():
        yield


# ----------------------------------------------------------------------------- the depthwise convolution


@pytest.mark.parametrize("kernel, padding, dilation", CONVS)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [1, 4, 7])
def test_depthwise_gradients_equal_nn_conv2d(kernel, padding, dilation, stride, size):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 3, kernel, stride, padding, dilation, groups=3, bias=False).double()
    x = torch.randn(2, 3, size, size, dtype=torch.float64, requires_grad=True)
    expected = conv(x)
    probe = torch.randn_like(expected)
    expected_grads = torch.autograd.grad(expected, [x, conv.weight], probe)
    y = depthwise_conv2d(x, conv)
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)
    for got, want in zip(torch.autograd.grad(y, [x, conv.weight], probe), expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kernel, padding, dilation", CONVS)
def test_depthwise_gradients_in_channels_last_equal_nn_conv2d_and_stay_channels_last(kernel, padding, dilation):
    # the strided input gradient is built in the output gradient's layout (an NCHW map there slowed
    # every op after it); the numbers are those of nn.Conv2d in NCHW
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 3, kernel, 2, padding, dilation, groups=3, bias=False).double()
    x = torch.randn(2, 3, 7, 7, dtype=torch.float64)
    probe = torch.randn_like(conv(x))
    want = torch.autograd.grad(conv(x.requires_grad_()), [x, conv.weight], probe)
    x_cl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    y = depthwise_conv2d(x_cl, conv)
    got = torch.autograd.grad(y, [x_cl, conv.weight], probe.contiguous(memory_format=torch.channels_last))
    assert not got[0].is_contiguous() and got[0].is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kernel, padding, dilation", CONVS)
@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_gradients_pass_gradcheck_and_gradgradcheck(kernel, padding, dilation, stride):
    torch.manual_seed(0)
    x = torch.randn(2, 2, 6, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 1, kernel, kernel, dtype=torch.float64, requires_grad=True)

    def conv(x, w):
        return _DepthwiseConv2d.apply(x, w, (stride, stride), (padding, padding), (dilation, dilation))

    assert torch.autograd.gradcheck(conv, (x, w))  # against central differences
    assert torch.autograd.gradgradcheck(conv, (x, w))  # double backpropagation works through it


@pytest.mark.parametrize("kernel, dilation", [(3, 1), (5, 1), (3, 2), (5, 2), (7, 1), (3, 3)])
def test_column_shifts_cover_every_column_offset_with_the_fewest_windows(kernel, dilation):
    padding = dilation * (kernel - 1) // 2
    offsets = {dilation * j - padding for j in range(kernel)}
    shifts = _column_shifts(kernel, dilation, padding)
    assert offsets <= {c + o for c in shifts for o in (-1, 0, 1)}
    # fewest: each window of three consecutive columns holds at most ceil(3 / dilation) offsets
    assert len(shifts) == -(-len(offsets) // -(-3 // dilation))


def test_column_shifts_of_darts_kernels():
    assert _column_shifts(5, 1, 2) == (-1, 1)  # sep_conv_5x5: offsets -2..2, two windows, two copies
    assert _column_shifts(3, 2, 2) == (-1, 1)  # dil_conv_3x3: -2, 0, 2
    assert _column_shifts(5, 2, 4) == (-3, 0, 3)  # dil_conv_5x5: -4..4 by 2; the middle window needs no copy
    assert _column_shifts(3, 1, 1) == (0,)


@pytest.mark.parametrize("kernel, dilation", [(5, 1), (3, 2), (5, 2)])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size, channels_last", [((6, 5), False), ((7, 9), True), ((3, 4), True), ((9, 2), False)])
def test_weight_gradient_by_columns_equals_nn_conv2d(kernel, dilation, stride, size, channels_last):
    torch.manual_seed(0)
    padding = dilation * (kernel - 1) // 2
    conv = nn.Conv2d(3, 3, kernel, stride, padding, dilation, groups=3, bias=False).double()
    x = torch.randn(2, 3, *size, dtype=torch.float64, requires_grad=True)
    probe = torch.randn_like(conv(x))
    want, = torch.autograd.grad(conv(x), conv.weight, probe)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    conf = ((stride, stride), (padding, padding), (dilation, dilation))
    shifts = _column_shifts(kernel, dilation, padding)
    got = _weight_grad_by_columns(probe.contiguous(memory_format=fmt), x.detach().contiguous(memory_format=fmt),
                                  conv.weight, conf, shifts)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_batchnorm_from_output_when_only_its_inverse_std_is_used():
    # the 1/σ output alone reaching the loss: the backward gets no gradient for y (None, not zeros)
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    _, invstd = _BatchNormFromOutput.apply(x, None, None, 0.1, 1e-5)
    got, = torch.autograd.grad((invstd * torch.arange(1.0, 4.0, dtype=torch.float64)).sum(), x)
    var = x.var(dim=(0, 2, 3), unbiased=False)
    want, = torch.autograd.grad(((var + 1e-5).rsqrt() * torch.arange(1.0, 4.0, dtype=torch.float64)).sum(), x)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_weighted_sum_of_a_sliced_gradient_equals_autograds():
    # a cell's output is the concatenation of its nodes: a node's gradient is a non-dense slice
    torch.manual_seed(0)
    outputs = [torch.randn(2, 3, 4, 4, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
               .requires_grad_() for _ in range(3)]
    weights = torch.rand(3, dtype=torch.float64, requires_grad=True)
    other = torch.randn(2, 5, 4, 4, dtype=torch.float64)
    probe = torch.randn(2, 8, 4, 4, dtype=torch.float64)
    ours = torch.cat([weighted_sum(weights, outputs), other], 1)
    plain = torch.cat([sum(w * o for w, o in zip(weights, outputs)), other], 1)
    for got, want in zip(torch.autograd.grad(ours, [weights, *outputs], probe),
                         torch.autograd.grad(plain, [weights, *outputs], probe)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_fast_pools_after_inference_mode_still_backpropagate_twice():
    # cached constants first made under torch.inference_mode are normal tensors: a later double
    # backward may save them (before, "Inference tensors cannot be saved for backward")
    pool = FastAvgPool2d(1)
    with torch.inference_mode():
        pool(torch.randn(2, 3, 5, 6))
    x = torch.randn(2, 3, 5, 6, requires_grad=True)
    g, = torch.autograd.grad(pool(x).pow(2).sum(), x, create_graph=True)
    second, = torch.autograd.grad(g.sum(), x)
    want = torch.autograd.grad(torch.autograd.grad(
        nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False).pow(2).sum(), x, create_graph=True)[0].sum(),
        x)[0]
    torch.testing.assert_close(second, want, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- the whole supernet


def paired(fast, C=4, layers=5, partial_channels=1, checkpoint_min_elements=0, checkpoint_strided=True,
           lean_min_elements=0):
    # checkpoint_min_elements=0: these tiny networks are checkpointed as the paper's sizes are by default;
    # checkpoint_strided=True: the stride-2 edges' recomputation is checked too; lean_min_elements=0:
    # the lean saves at every size
    torch.manual_seed(0)
    ours = DartsSupernet(C=C, layers=layers, in_channels=1, fast=fast, partial_channels=partial_channels,
                         checkpoint_min_elements=checkpoint_min_elements, checkpoint_strided=checkpoint_strided,
                         lean_min_elements=lean_min_elements).double()
    with torch.no_grad():
        for a in ours.arch_parameters():
            a.normal_()
    return ours


def with_baseline(fast):
    ours = paired(fast)
    theirs = baseline.Network(4, 10, 5, in_channels=1).double()
    baseline.copy_weights(ours, theirs)
    theirs.alphas_normal = ours.alpha["normal"].detach().clone().requires_grad_()
    theirs.alphas_reduce = ours.alpha["reduce"].detach().clone().requires_grad_()
    return ours, theirs


@pytest.mark.parametrize("fast", [True, FAST_TRICKS] + [{trick} for trick in FAST_TRICKS])
def test_every_trick_gives_the_baselines_outputs_and_gradients(fast):
    ours, theirs = with_baseline(fast)
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    probe = torch.randn(3, 10, dtype=torch.float64)
    y_ours, y_theirs = ours(x), theirs(x)
    torch.testing.assert_close(y_ours, y_theirs, rtol=1e-10, atol=1e-10)
    (y_ours * probe).sum().backward()
    (y_theirs * probe).sum().backward()
    ours_w, theirs_w = ours.weight_parameters(), [p for _, p in theirs.named_parameters()]
    assert len(ours_w) == len(theirs_w)
    for a, b in zip(ours_w, theirs_w):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(ours.alpha["normal"].grad, theirs.alphas_normal.grad, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(ours.alpha["reduce"].grad, theirs.alphas_reduce.grad, rtol=1e-8, atol=1e-10)


def batch(seed, B=4):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, 1, 8, 8, generator=g, dtype=torch.float64), torch.randint(10, (B,), generator=g)


@pytest.mark.parametrize("partial_channels", [1, 2])
@pytest.mark.parametrize("tricks", [True, FAST_TRICKS])
def test_second_order_alpha_gradient_equals_the_plain_networks(partial_channels, tricks):
    # DARTS eq. 7-8 through functional_call: w', w+ and w− must reach the lean ops' recomputations
    # and (FAST_TRICKS) the checkpointed one
    fast, plain = paired(tricks, partial_channels=partial_channels), paired(False, partial_channels=partial_channels)
    plain.load_state_dict(fast.state_dict())
    train, val = batch(1), batch(2)
    buffers = {name: torch.randn_like(p) for name, p in fast.named_parameters()
               if not name.startswith(("alpha", "beta"))}
    got = unrolled_alpha_gradient(fast, train, val, xi=0.1, momentum=0.9, momentum_buffers=buffers, weight_decay=3e-4)
    want = unrolled_alpha_gradient(plain, train, val, xi=0.1, momentum=0.9, momentum_buffers=buffers,
                                   weight_decay=3e-4)
    assert len(got) == len(want) == (4 if partial_channels > 1 else 2)
    for a, b in zip(got, want):
        assert a.abs().max() > 0
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-12)
    for a, b in zip(first_order_alpha_gradient(fast, val), first_order_alpha_gradient(plain, val)):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)
    # BatchNorm's running statistics moved once per forward pass, as in the plain network
    for (name, a), b in zip(fast.named_buffers(), plain.buffers()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)


def test_partial_channels_fast_equals_plain_with_gradients():
    fast, plain = paired(FAST_TRICKS, partial_channels=2), paired(False, partial_channels=2)
    plain.load_state_dict(fast.state_dict())
    x, _ = batch(3)
    probe = torch.randn(4, 10, dtype=torch.float64)
    (fast(x) * probe).sum().backward()
    (plain(x) * probe).sum().backward()
    for (name, a), b in zip(fast.named_parameters(), plain.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-8, atol=1e-10, msg=name)


@pytest.mark.parametrize("fast", [True, FAST_TRICKS])
def test_sub_network_modes_and_skip_dropout_are_unchanged(fast):
    fast, plain = paired(fast), paired(False)
    plain.load_state_dict(fast.state_dict())
    x, _ = batch(4)
    ops = {cell: a.argmax(-1) for cell, a in fast.alpha.items()}
    torch.testing.assert_close(fast(x, ops=ops), plain(x, ops=ops), rtol=1e-10, atol=1e-10)
    hard = {cell: torch.nn.functional.one_hot(i, 8).double() for cell, i in ops.items()}
    torch.testing.assert_close(fast(x, weights=hard, ops=ops), plain(x, weights=hard, ops=ops))
    # dropout in the checkpointed edges: the recomputation must reuse the forward's masks
    fast.skip_dropout = plain.skip_dropout = 0.5
    probe = torch.randn(4, 10, dtype=torch.float64)
    torch.manual_seed(7)
    (fast(x) * probe).sum().backward()
    torch.manual_seed(7)
    (plain(x) * probe).sum().backward()
    for (name, a), b in zip(fast.named_parameters(), plain.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-8, atol=1e-10, msg=name)


@pytest.mark.parametrize("offset, strided, checkpointed_edges", [
    (None, True, 0), (0, True, 14 + 8 + 8), (1, True, 8), (10 ** 9, True, 0), (0, False, 14), (1, False, 0)])
def test_checkpoint_threshold_changes_no_number_on_either_side(monkeypatch, offset, strided, checkpointed_edges):
    # layers=5 reduces at cells 1 and 3. Threshold at the first cell's edge size (4 x 4 x 8 x 8 = 1024
    # elements): cell 0's 14 edges, reduction cell 1's 8 stride-2 edges from its two inputs (4 x 8 x 8
    # x 8 = 2048 elements each) and reduction cell 3's 8 (4 x 16 x 4 x 4 = 1024); one above it: only
    # cell 1's 8; None: the default CHECKPOINT_MIN_ELEMENTS, far above these sizes: nothing. Without
    # checkpoint_strided (the default) the stride-2 edges are never checkpointed: cell 0's 14, or none
    from nasnb.spaces import darts_supernet

    calls = []
    real = darts_supernet.checkpointed
    monkeypatch.setattr(darts_supernet, "checkpointed", lambda *a, **k: calls.append(a[1].numel()) or real(*a, **k))
    minimum = darts_supernet.CHECKPOINT_MIN_ELEMENTS if offset is None else 1024 + offset
    fast, plain = paired(FAST_TRICKS, checkpoint_min_elements=minimum, checkpoint_strided=strided), paired(False)
    plain.load_state_dict(fast.state_dict())
    x, _ = batch(8)
    probe = torch.randn(4, 10, dtype=torch.float64)
    y_fast, y_plain = fast(x), plain(x)
    assert len(calls) == checkpointed_edges and all(n >= minimum for n in calls)
    torch.testing.assert_close(y_fast, y_plain, rtol=1e-10, atol=1e-10)
    (y_fast * probe).sum().backward()
    (y_plain * probe).sum().backward()
    for (name, a), b in zip(fast.named_parameters(), plain.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-8, atol=1e-10, msg=name)
    with pytest.raises(NasnbError, match="checkpoint_min_elements"):
        DartsSupernet(C=2, layers=3, checkpoint_min_elements=-1)
    with pytest.raises(NasnbError, match="checkpoint_strided"):
        DartsSupernet(C=2, layers=3, checkpoint_strided="yes")


def test_fast_is_the_default_and_its_argument_is_checked():
    assert DartsSupernet(C=2, layers=3).fast == frozenset(DEFAULT_TRICKS) == frozenset(FAST_TRICKS) - {"checkpoint"}
    assert DartsSupernet(C=2, layers=3, fast=False).fast == frozenset()
    with pytest.raises(NasnbError, match=r"fast.*'checkpoitn'"):
        DartsSupernet(C=2, layers=3, fast={"checkpoitn"})
    with pytest.raises(NasnbError, match="fast"):
        DartsSupernet(C=2, layers=3, fast="checkpoint")


def test_the_baselines_architect_gives_nasnbs_second_order_alpha_gradient():
    # benchmarks/darts_step.py times the two side by side: they must compute the same thing
    ours, theirs = with_baseline(True)
    train, val = batch(5), batch(6)
    w_opt = torch.optim.SGD(theirs.parameters(), lr=0.025, momentum=0.9)
    buffers = {}
    for (name, p), q in zip(((n, p) for n, p in ours.named_parameters() if not n.startswith("alpha")),
                            theirs.parameters()):
        buffers[name] = torch.randn_like(p)
        w_opt.state[q]["momentum_buffer"] = buffers[name].clone()
    want = unrolled_alpha_gradient(ours, train, val, xi=0.025, momentum=0.9, momentum_buffers=buffers,
                                   weight_decay=3e-4)
    architect = baseline.Architect(theirs, momentum=0.9, weight_decay=3e-4)
    architect.step(*train, *val, 0.025, w_opt, unrolled=True)
    torch.testing.assert_close(theirs.alphas_normal.grad, want[0], rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(theirs.alphas_reduce.grad, want[1], rtol=1e-6, atol=1e-12)


# ----------------------------------------------------------------------------- lean saves and fast pools


@pytest.mark.parametrize("kernel, padding, dilation", CONVS)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("fast", [True, False])
def test_relu_depthwise_pointwise_passes_gradcheck_and_gradgradcheck(kernel, padding, dilation, stride, fast):
    torch.manual_seed(0)
    x = torch.randn(2, 2, 6, 5, dtype=torch.float64, requires_grad=True)
    w_dw = torch.randn(2, 1, kernel, kernel, dtype=torch.float64, requires_grad=True)
    w_pw = torch.randn(3, 2, 1, 1, dtype=torch.float64, requires_grad=True)
    conf = ((stride, stride), (padding, padding), (dilation, dilation))

    def op(x, w_dw, w_pw):
        return _ReLUDepthwisePointwise.apply(x, w_dw, w_pw, conf, fast, None)

    want = nn.functional.conv2d(nn.functional.conv2d(x.relu(), w_dw, None, *conf, 2), w_pw)
    torch.testing.assert_close(op(x, w_dw, w_pw), want, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(op, (x, w_dw, w_pw))
    assert torch.autograd.gradgradcheck(op, (x, w_dw, w_pw))


def test_lean_batchnorm_matches_nn_batchnorm_with_gradcheck_and_running_statistics():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    for momentum in (0.1, None):  # None: the cumulative average, 1 / num_batches_tracked
        ours = LeanBatchNorm2d(3, affine=False, momentum=momentum).double()
        theirs = nn.BatchNorm2d(3, affine=False, momentum=momentum).double()
        probe = torch.randn_like(x)
        for _ in range(3):
            y_ours, y_theirs = ours(x), theirs(x)
            torch.testing.assert_close(y_ours, y_theirs, rtol=1e-12, atol=1e-12)
            g_ours, = torch.autograd.grad(y_ours, x, probe)
            g_theirs, = torch.autograd.grad(y_theirs, x, probe)
            torch.testing.assert_close(g_ours, g_theirs, rtol=1e-10, atol=1e-12)
        for a, b in zip(ours.buffers(), theirs.buffers()):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    mean, var = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)

    def bn(x):
        return _BatchNormFromOutput.apply(x, mean.clone(), var.clone(), 0.1, 1e-5)  # (y, 1/σ)

    assert torch.autograd.gradcheck(bn, (x,))
    assert torch.autograd.gradgradcheck(bn, (x,))


@pytest.mark.parametrize("separable", [True, False])
def test_max_pool_from_input_passes_gradcheck_and_equals_max_pool2d(separable):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64, requires_grad=True)

    def pool(x):
        return _MaxPool2dFromInput.apply(x, (3, 3), (1, 1), (1, 1), separable)

    torch.testing.assert_close(pool(x), nn.functional.max_pool2d(x, 3, 1, 1), rtol=0, atol=0)
    assert torch.autograd.gradcheck(pool, (x,))
    assert torch.autograd.gradgradcheck(pool, (x,))
    module = LeanMaxPool2d(3, stride=1, padding=1, separable=separable)
    with torch.no_grad():
        torch.testing.assert_close(module(x), nn.functional.max_pool2d(x, 3, 1, 1), rtol=0, atol=0)
    assert not LeanMaxPool2d(3, stride=2, padding=1, separable=True).separable  # only 3x3, stride 1


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [(6, 5), (7, 7), (1, 2)])
def test_fast_avg_pool_equals_avg_pool2d_without_padding_counts(stride, size):
    torch.manual_seed(0)
    x = torch.randn(2, 3, *size, dtype=torch.float64, requires_grad=True)
    want = nn.functional.avg_pool2d(x, 3, stride, 1, count_include_pad=False)
    module = FastAvgPool2d(stride)
    torch.testing.assert_close(module(x), want, rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        torch.testing.assert_close(module(x), want, rtol=1e-12, atol=1e-12)
    probe = torch.randn_like(want)
    torch.testing.assert_close(torch.autograd.grad(module(x), x, probe)[0], torch.autograd.grad(want, x, probe)[0],
                               rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(lambda x: _AvgPool3x3.apply(x, stride), (x,))
    assert torch.autograd.gradgradcheck(lambda x: _AvgPool3x3.apply(x, stride), (x,))


def saved_maps(tricks, stride=1):
    """Map-sized tensors a stride-`stride` DARTS mixed op keeps for its backward, in maps' worth."""
    from nasnb.spaces.darts_supernet import _search_op
    from nasnb.spaces.ops import DARTS_PRIMITIVES
    from nasnb.spaces.supernet import MixedOp

    torch.manual_seed(0)
    ops = {name: _search_op(name, 4, stride, frozenset(tricks)) for name in DARTS_PRIMITIVES}
    edge = MixedOp(ops, stride, shared_relu="shared_relu" in tricks, fused_sum="fused_sum" in tricks).double()
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64, requires_grad=True) * 1.0
    out_numel = x.numel() // stride ** 2
    storages = {}

    def pack(t):
        if t.numel() >= out_numel:  # weights and per-channel statistics are not maps
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        edge(x, torch.randn(8, dtype=torch.float64, requires_grad=True))
    return sum(storages.values()) / (x.numel() * x.element_size())


def test_lean_saves_keep_nine_maps_of_a_stride_1_edge():
    # x (the skip's term and every op's input), the middle BatchNorm output of each of the two sep
    # convs and the six ops' outputs (the weighted sum's): 1 + 2 + 6
    assert saved_maps(DEFAULT_TRICKS) == 9
    assert saved_maps(set(DEFAULT_TRICKS) - {"lean_saves", "fast_pools"}) >= 2.5 * 9


@pytest.mark.parametrize("offset", [None, 0, 1, 10 ** 9])
def test_lean_threshold_changes_no_number_on_either_side(offset):
    # the first cell's edges have 4 x 4 x 8 x 8 = 1024 elements; None: LEAN_MIN_ELEMENTS, above them all
    from nasnb.spaces import darts_supernet

    minimum = darts_supernet.LEAN_MIN_ELEMENTS if offset is None else 1024 + offset
    fast, plain = paired(True, lean_min_elements=minimum), paired(False)
    plain.load_state_dict(fast.state_dict())
    x, _ = batch(9)
    probe = torch.randn(4, 10, dtype=torch.float64)
    y_fast, y_plain = fast(x), plain(x)
    torch.testing.assert_close(y_fast, y_plain, rtol=1e-10, atol=1e-10)
    (y_fast * probe).sum().backward()
    (y_plain * probe).sum().backward()
    for (name, a), b in zip(fast.named_parameters(), plain.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-8, atol=1e-10, msg=name)
    for (name, a), b in zip(fast.named_buffers(), plain.buffers()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)
    with pytest.raises(NasnbError, match="lean_min_elements"):
        DartsSupernet(C=2, layers=3, lean_min_elements=-1)


def test_lean_saves_apply_only_from_the_threshold():
    from nasnb.spaces.fast_ops import lean_at

    net = DartsSupernet(C=2, layers=3, lean_min_elements=100)
    conv = net.cells[0].mixed[0].ops["sep_conv_3x3"]
    assert conv.lean and conv.lean_min_elements == 100
    assert lean_at(conv, torch.zeros(100)) and not lean_at(conv, torch.zeros(99))
    assert not lean_at(DartsSupernet(C=2, layers=3, fast={"fused_sum"}).cells[0].mixed[0].ops["sep_conv_3x3"],
                       torch.zeros(10 ** 6))
