"""MobileNetSpace against hand counts, the ProxylessNAS code's names, MobileNetV2's published size
(and torchvision's implementation of it), and plain math."""
import math
import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nasnb.errors import InvalidTypeError, InvalidValueError, NasnbError
from nasnb.spaces.base import BuildableSpace, EnumerableSpace, SearchSpace
from nasnb.spaces.mobilenet import MobileNetSpace
from nasnb.spaces.mobilenet_network import MBConv, ZeroLayer
from nasnb.spaces.ops import UnknownOpError

SPACE = MobileNetSpace()
PAPER = MobileNetSpace.paper()
# ProxylessNAS's conv_candidates (search/imagenet_arch_search.py), in its order, and its 'Zero'.
MB = ("3x3_MBConv3", "3x3_MBConv6", "5x5_MBConv3", "5x5_MBConv6", "7x7_MBConv3", "7x7_MBConv6")
K3E3, K3E6, K5E3, K5E6, K7E3, K7E6 = MB
ZERO = "Zero"
# The default layout written out by hand: (in_channels, out_channels, stride) of each searched layer.
# Stem 1 -> 8, first block 8 -> 8, stage 0 at 16 (stride 1), stage 1 at 32 (stride 2), head 64.
DEFAULT_LAYERS = [(8, 16, 1), (16, 16, 1), (16, 16, 1), (16, 32, 2), (32, 32, 1), (32, 32, 1)]
ARCH = (K5E6, ZERO, K3E3, K7E3, ZERO, ZERO)
ARCH_STR = "5x5_MBConv6,Zero,3x3_MBConv3|7x7_MBConv3,Zero,Zero"


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny convolutions: on a busy 2-core machine a second thread only waits (7x slower here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def budget(examples: int):
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def mbconv_count(c_in: int, c_out: int, k: int, e: int) -> int:
    """MobileNetV2's Table 1 block by hand: 1x1 expand (skipped at e = 1), k x k depthwise, 1x1
    project, each conv without bias and followed by a BN with a scale and a shift per channel."""
    m = c_in * e
    expand = (c_in * m + 2 * m) if e != 1 else 0
    return expand + (k * k * m + 2 * m) + (m * c_out + 2 * c_out)


def net_count(in_channels, stem, first, layers, ops, head, num_classes) -> int:
    """A whole chain by hand: 3x3 stem conv + BN, 3x3_MBConv1, the layers, 1x1 conv + BN, linear."""
    total = in_channels * stem * 9 + 2 * stem + mbconv_count(stem, first, 3, 1)
    for (c_in, c_out, _), op in zip(layers, ops):
        if op != ZERO:
            total += mbconv_count(c_in, c_out, int(op[0]), int(op[-1]))
    last = layers[-1][1]
    return total + last * head + 2 * head + head * num_classes + num_classes


def stage_layers(first, widths, depths, strides):
    """(in, out, stride) per layer of a stage layout, written from the papers' tables."""
    layers, c = [], first
    for w, n, s in zip(widths, depths, strides):
        for i in range(n):
            layers.append((c, w, s if i == 0 else 1))
            c = w
    return layers


# ----------------------------------------------------------------------------- the space itself


def test_names_layout_and_protocol():
    assert SPACE.name == "mobilenet" and SPACE.cell_names == ("chain",)
    assert SPACE.ops == MB
    assert [c.name for c in SPACE.choices] == ["stage0/layer0", "stage0/layer1", "stage0/layer2",
                                               "stage1/layer0", "stage1/layer1", "stage1/layer2"]
    # 'Zero' only where stride 1 and width in == width out: not 8 -> 16, not 16 -> 32 at stride 2
    assert [c.options for c in SPACE.choices] == [MB, MB + (ZERO,), MB + (ZERO,), MB, MB + (ZERO,), MB + (ZERO,)]
    assert [(l.in_channels, l.out_channels, l.stride) for l in SPACE.layers] == DEFAULT_LAYERS
    assert isinstance(SPACE, SearchSpace) and isinstance(SPACE, BuildableSpace) and isinstance(SPACE, EnumerableSpace)
    assert SPACE == MobileNetSpace() and hash(SPACE) == hash(MobileNetSpace()) and SPACE != PAPER
    assert "widths=(16, 32)" in repr(SPACE) and "zero=True" in repr(SPACE)


def test_counts_by_hand():
    assert len(SPACE) == 6 * 7 * 7 * 6 * 7 * 7 == 86_436
    # ProxylessNAS on ImageNet: 21 layers, the 6 first layers of a stage without Zero (stage 3 is
    # stride 1 but 80 -> 96 channels; stage 5 has one layer), 15 with it.
    assert len(PAPER) == 6**6 * 7**15 == 221_502_229_807_900_608
    # MobileNetV2's layout: depths 2, 3, 4, 3, 3, 1 -> 1 + 2 + 3 + 2 + 2 + 0 layers may be Zero
    assert len(MobileNetSpace.mobilenet_v2()) == 6**6 * 7**10
    assert len(MobileNetSpace(zero=False)) == 6**6
    assert len(MobileNetSpace(kernels=(3,), expansions=(6,), zero=False)) == 1
    assert len(MobileNetSpace(kernels=(3, 5), expansions=(6,))) == 2 * 3 * 3 * 2 * 3 * 3
    # a stride-1 stage of the same width as the one before: its first layer may be Zero too
    assert len(MobileNetSpace(widths=(8, 8), depths=(1, 2), strides=(1, 1))) == 7**3


def test_enumerate_lists_each_arch_once_and_refuses_huge_spaces():
    archs = list(SPACE.enumerate())
    assert len(archs) == len(set(archs)) == 86_436
    assert archs[0] == (K3E3,) * 6 and archs[-1] == (K7E6, ZERO, ZERO, K7E6, ZERO, ZERO)
    with pytest.raises(InvalidValueError, match="too many to list"):
        PAPER.enumerate()


def test_sample_is_uniform_and_reproducible():
    rng = np.random.default_rng(0)
    archs = [SPACE.sample(rng) for _ in range(7000)]
    zeros = sum(a[1] == ZERO for a in archs)  # 1/7 of 7000 = 1000, sd about 29
    firsts = sum(a[0] == K7E6 for a in archs)  # 1/6: 1167, sd about 31
    assert 880 < zeros < 1120 and 1040 < firsts < 1290
    assert all(a[0] != ZERO and a[3] != ZERO for a in archs)
    assert SPACE.sample(5) == SPACE.sample(5) and len({SPACE.sample(s) for s in range(20)}) > 15


# ----------------------------------------------------------------------------- strings


def test_format_and_parse_by_hand():
    assert SPACE.format(ARCH) == ARCH_STR
    assert SPACE.parse(ARCH_STR) == ARCH
    assert SPACE.parse(" 5x5_MBConv6 , Zero,3x3_MBConv3 | 7x7_MBConv3,Zero ,Zero\n") == ARCH  # spaces are fine


@given(st.integers(0, 2**32 - 1))
@budget(200)
def test_round_trip(seed):
    for space in (SPACE, PAPER):
        arch = space.sample(seed)
        text = space.format(arch)
        assert space.parse(text) == arch and text.count("|") == len(space.depths) - 1


@pytest.mark.parametrize("text, fragment", [
    ("", "1 stages"),
    ("5x5_MBConv6,Zero,3x3_MBConv3", "1 stages"),
    (ARCH_STR + "|3x3_MBConv3", "3 stages"),
    ("5x5_MBConv6,Zero|7x7_MBConv3,Zero,Zero", "stage 0 has 2 layers"),
    ("5x5_MBConv6,Zero,3x3_MBConv3|7x7_MBConv3,Zero,Zero,Zero", "stage 1 has 4 layers"),
    ("5x5_MBConv6,,3x3_MBConv3|7x7_MBConv3,Zero,Zero", "unknown op '' in layer stage0/layer1"),
    ("5x5_MBConv6,zero,3x3_MBConv3|7x7_MBConv3,Zero,Zero", "unknown op 'zero'"),
    ("9x9_MBConv6,Zero,3x3_MBConv3|7x7_MBConv3,Zero,Zero", "unknown op '9x9_MBConv6' in layer stage0/layer0"),
    ("3x3_MBConv1,Zero,3x3_MBConv3|7x7_MBConv3,Zero,Zero", "unknown op '3x3_MBConv1'"),
    ("5x5_MBConv6,Zero,3x3_MBConv3|Zero,Zero,Zero",
     "stage1/layer0 cannot be Zero: it maps 16 to 32 channels at stride 2"),
    ("Zero,Zero,3x3_MBConv3|7x7_MBConv3,Zero,Zero", "stage0/layer0 cannot be Zero: it maps 8 to 16"),
])
def test_malformed_strings_name_the_problem(text, fragment):
    with pytest.raises(InvalidValueError) as info:
        SPACE.parse(text)
    assert fragment in str(info.value), str(info.value)
    assert len(str(info.value)) < 400


def test_unknown_op_is_a_key_error_and_a_value_error():
    with pytest.raises(UnknownOpError, match="choose from"):
        SPACE.parse(ARCH_STR.replace("7x7_MBConv3", "sep_conv_3x3"))
    with pytest.raises(KeyError) as info:
        SPACE.validate((K3E3, "nor_conv_3x3", K3E3, K3E3, K3E3, K3E3))
    assert isinstance(info.value, ValueError) and "layer stage0/layer1" in str(info.value)


@pytest.mark.parametrize("text", ["|" * 1_000_000, "," * 1_000_000, "x" * 1_000_000, ARCH_STR + "," * 500_000,
                                  " " * 1_000_000 + ARCH_STR])
def test_a_megabyte_of_junk_is_refused_at_once(text):
    start = time.thread_time()  # CPU time, not wall time: a busy machine must not fail it
    with pytest.raises(InvalidValueError, match="characters"):
        SPACE.parse(text)
    assert time.thread_time() - start < 0.05


def plain_rule(text: str):
    """The test's own reading of the notation: stages by '|', layers by ',', names stripped."""
    stages = text.split("|")
    if [len(s.split(",")) for s in stages] != [3, 3]:
        return None
    names = [name.strip() for s in stages for name in s.split(",")]
    allowed = [MB, MB + (ZERO,), MB + (ZERO,), MB, MB + (ZERO,), MB + (ZERO,)]
    return tuple(names) if all(n in a for n, a in zip(names, allowed)) else None


@given(st.integers(0, 2**32 - 1), st.lists(st.tuples(st.integers(0, 80), st.sampled_from(
    ["|", ",", " ", "Zero", "zero", "3x3", "_MBConv", "6", "\x00", "é", "", "||", ",,", "7x7_MBConv3"])),
    min_size=1, max_size=4))
@budget(300)
def test_edited_strings_parse_exactly_when_the_plain_rule_accepts(seed, edits):
    text = SPACE.format(SPACE.sample(seed))
    for at, piece in edits:
        at = min(at, len(text))
        text = text[:at] + piece + text[at + (seed % 3):]  # insert, or replace 1 or 2 characters
    expected = plain_rule(text)
    try:
        arch = SPACE.parse(text)
    except NasnbError as err:
        assert expected is None and 0 < len(str(err)) < 400
    else:
        assert arch == expected and SPACE.parse(SPACE.format(arch)) == arch


def test_validate():
    assert SPACE.validate(list(ARCH)) == ARCH and type(SPACE.validate(list(ARCH))) is tuple
    assert SPACE.validate(np.array(ARCH)) == ARCH and all(type(op) is str for op in SPACE.validate(np.array(ARCH)))
    with pytest.raises(InvalidValueError, match="5 ops; this space has 6 layers"):
        SPACE.validate(ARCH[:5])
    with pytest.raises(InvalidValueError, match="space.parse"):
        SPACE.validate(ARCH_STR)
    with pytest.raises(InvalidTypeError, match="tuple of 6 op names"):
        SPACE.validate(42)
    with pytest.raises(InvalidValueError, match="cannot be Zero"):
        SPACE.format((ZERO,) + ARCH[1:])


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(widths=()), "non-empty sequence"), (dict(widths="16"), "non-empty sequence"),
    (dict(depths=(3,)), "depths has 1 entries but widths has 2"), (dict(strides=(1, 3)), "strides[1] must be"),
    (dict(widths=(16, 0)), "widths[1] must be an int >= 1"), (dict(kernels=(3, 4)), "even sizes [4]"),
    (dict(expansions=(3, 3)), "repeats a value"), (dict(zero="yes"), "zero must be True or False"),
    (dict(stem_stride=3), "stem_stride must be"), (dict(depths=(3, 2.0)), "depths[1] must be an int"),
    (dict(widths=(8,) * 33, depths=(1,) * 33, strides=(1,) * 33), "at most 32 stages"),
])
def test_settings_are_checked_by_name(kwargs, fragment):
    with pytest.raises(NasnbError) as info:
        MobileNetSpace(**kwargs)
    assert fragment in str(info.value), str(info.value)


# ----------------------------------------------------------------------------- moves of a search


def test_neighbors_are_exactly_one_layer_away():
    nbrs = SPACE.neighbors(ARCH)
    assert len(nbrs) == len(set(nbrs)) == 2 * 5 + 4 * 6  # first layers: 5 others; the rest: 6
    assert all(sum(x != y for x, y in zip(n, ARCH)) == 1 for n in nbrs)
    assert all(SPACE.validate(n) == n for n in nbrs)


def test_mutate_changes_exactly_one_layer_and_reaches_every_neighbor():
    rng = np.random.default_rng(0)
    children = [SPACE.mutate(ARCH, rng) for _ in range(2000)]
    assert all(sum(x != y for x, y in zip(c, ARCH)) == 1 for c in children)
    assert set(children) == set(SPACE.neighbors(ARCH))
    single = MobileNetSpace(kernels=(3,), expansions=(6,), zero=False)
    with pytest.raises(InvalidValueError, match="nothing to mutate"):
        single.mutate(single.sample(0), 0)


def test_crossover_takes_each_layer_from_a_parent():
    a, b = (K3E3,) * 6, (K7E6,) * 6
    children = [SPACE.crossover(a, b, seed) for seed in range(200)]
    assert all(all(op in (x, y) for op, x, y in zip(c, a, b)) for c in children)
    for layer in range(6):  # each parent gives each layer about half the time
        assert 60 < sum(c[layer] == K3E3 for c in children) < 140
    assert SPACE.crossover(ARCH, ARCH, 3) == ARCH


def test_choices_round_trip():
    for seed in range(20):
        arch = SPACE.sample(seed)
        values = SPACE.to_choices(arch)
        assert values == list(arch) and SPACE.from_choices(values) == arch
        assert all(v in c.options for v, c in zip(values, SPACE.choices))


# ----------------------------------------------------------------------------- canonical form


def test_canonical_moves_zeros_to_the_end_of_their_run():
    assert SPACE.canonical(ARCH) == (K5E6, K3E3, ZERO, K7E3, ZERO, ZERO)
    assert SPACE.canonical((K3E3, ZERO, ZERO, K5E3, ZERO, K7E6)) == (K3E3, ZERO, ZERO, K5E3, K7E6, ZERO)
    # runs cross a stage boundary when the next stage keeps the shape (8 -> 8 -> 8, stride 1)
    flat = MobileNetSpace(widths=(8, 8), depths=(1, 2), strides=(1, 1))
    assert flat.canonical((ZERO, K3E6, ZERO)) == (K3E6, ZERO, ZERO)
    assert flat.canonical((K5E3, ZERO, K3E6)) == (K5E3, K3E6, ZERO)


def test_canonical_classes_counted_by_hand():
    """Per stage: the first layer (6 ops), then the network's depth d in {0, 1, 2} of the other
    two layers with 6^d block choices: 6 * (1 + 6 + 36) = 258 networks; squared for two stages."""
    archs = list(SPACE.enumerate())
    classes = {SPACE.canonical(a) for a in archs}
    assert len(classes) == 258**2 == 66_564
    assert all(SPACE.canonical(c) == c for c in classes)  # a member, and idempotent


def test_equal_canonical_forms_build_the_same_network():
    x = torch.randn(3, 1, 8, 8)
    outputs = {}
    same = [(K5E6, ZERO, K3E3, K7E3, ZERO, K5E3), (K5E6, K3E3, ZERO, K7E3, K5E3, ZERO),
            (K5E6, ZERO, K3E3, K7E3, K5E3, ZERO)]
    assert len({SPACE.canonical(a) for a in same}) == 1
    for arch in same + [(K5E6, K3E3, ZERO, K7E3, K5E3, K3E3)]:
        torch.manual_seed(0)
        net = SPACE.build(arch).eval()
        outputs[arch] = net(x)
    first, *same, other = outputs.values()
    assert all(torch.equal(first, o) for o in same)  # same blocks in the same order: same weights, same output
    assert not torch.allclose(first, other)  # one more block: another network


# ----------------------------------------------------------------------------- the network


@pytest.mark.parametrize("c_in, c_out, k, stride, e", [
    (8, 8, 3, 1, 1), (8, 16, 3, 1, 3), (16, 16, 5, 1, 6), (16, 32, 7, 2, 3), (24, 40, 5, 2, 6), (40, 40, 7, 1, 6)])
def test_one_block_against_the_hand_formula(c_in, c_out, k, stride, e):
    block = MBConv(c_in, c_out, k, stride, e)
    assert params(block) == mbconv_count(c_in, c_out, k, e)
    assert block.residual == (stride == 1 and c_in == c_out)
    x = torch.randn(2, c_in, 8, 8)
    y = block.eval()(x)
    assert y.shape == (2, c_out, 8 // stride, 8 // stride)
    branch = block.point_linear(block.depth_conv(x if e == 1 else block.inverted_bottleneck(x)))
    assert torch.allclose(y, x + branch if block.residual else branch)


def test_block_count_written_out():
    # 16 -> 16, 5x5, e = 6: m = 96; expand 16*96 + 192, depthwise 25*96 + 192, project 96*16 + 32
    assert params(MBConv(16, 16, 5, 1, 6)) == 1536 + 192 + 2400 + 192 + 1536 + 32 == 5888


def test_small_network_against_the_hand_count():
    net = SPACE.build(ARCH)
    # stem 1*8*9 + 16 = 88; first 8*9 + 16 + 8*8 + 16 = 168; 5x5_MBConv6 8 -> 16: m = 48,
    # 384 + 96 + 1200 + 96 + 768 + 32 = 2576; 3x3_MBConv3 16 -> 16: m = 48, 768 + 96 + 432 + 96 + 768
    # + 32 = 2192; 7x7_MBConv3 16 -> 32 (stride 2): m = 48, 768 + 96 + 2352 + 96 + 1536 + 64 = 4912;
    # head 32*64 + 128 = 2176; classifier 64*10 + 10 = 650. Zeros: nothing.
    assert params(net) == 88 + 168 + 2576 + 2192 + 4912 + 2176 + 650 == 12_762
    assert params(net) == net_count(1, 8, 8, DEFAULT_LAYERS, ARCH, 64, 10)
    for seed in range(10):
        arch = SPACE.sample(seed)
        net = SPACE.build(arch, num_classes=7, in_channels=3)
        assert params(net) == net_count(3, 8, 8, DEFAULT_LAYERS, arch, 64, 7)


def test_zero_layers_add_no_parameters_and_pass_their_input_through():
    full = (K5E6, K3E3, K3E3, K7E3, K5E3, K3E6)
    for i in (1, 2, 4, 5):
        skipped = full[:i] + (ZERO,) + full[i + 1:]
        c_in, c_out, _ = DEFAULT_LAYERS[i]
        block = mbconv_count(c_in, c_out, int(full[i][0]), int(full[i][-1]))
        assert params(SPACE.build(full)) - params(SPACE.build(skipped)) == block
    net = SPACE.build(ARCH)
    zeros = [m for m in net.blocks if isinstance(m, ZeroLayer)]
    assert len(zeros) == 3 and all(params(z) == 0 for z in zeros)
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(zeros[0](x), x)


def test_residuals_exactly_where_shapes_match():
    net = SPACE.build((K3E3,) * 6)
    blocks = [net.first, *net.blocks]
    shapes = [(8, 8, 1)] + DEFAULT_LAYERS
    assert [b.residual for b in blocks] == [c_in == c_out and s == 1 for c_in, c_out, s in shapes]
    assert [b.residual for b in blocks] == [True, False, True, True, False, True, True]


@pytest.mark.parametrize("space, shape, in_channels", [
    (SPACE, (8, 8), 1), (SPACE, (28, 28), 1), (SPACE, (32, 32), 3), (PAPER, (32, 32), 3)])
def test_output_shapes(space, shape, in_channels):
    net = space.build(space.sample(0), num_classes=10, in_channels=in_channels).eval()
    with torch.no_grad():
        assert net(torch.randn(2, in_channels, *shape)).shape == (2, 10)


def test_build_checks_its_arguments():
    with pytest.raises(InvalidValueError, match="num_classes must be an int >= 1"):
        SPACE.build(ARCH, num_classes=0)
    with pytest.raises(InvalidTypeError, match="in_channels"):
        SPACE.build(ARCH, in_channels=1.5)
    with pytest.raises(InvalidValueError, match="cannot be Zero"):
        SPACE.build((ZERO,) * 6)


def test_mobilenet_v2_size():
    """MobileNetV2 1.0 (Sandler et al. 2018, Table 2: every bottleneck 3x3 at expansion 6 after the
    first, t=1, one): the paper's Table 4 gives 3.4M parameters; the layout counted by hand gives
    3,504,872, 3% more (the paper rounds, or counts without the BNs' shifts), which is also what
    torchvision's implementation has, to the parameter."""
    v2 = MobileNetSpace.mobilenet_v2()
    net = v2.build((K3E6,) * len(v2.layers), num_classes=1000, in_channels=3)
    layers = stage_layers(16, (24, 32, 64, 96, 160, 320), (2, 3, 4, 3, 3, 1), (2, 2, 2, 1, 2, 1))
    by_hand = net_count(3, 32, 16, layers, (K3E6,) * 17, 1280, 1000)
    assert params(net) == by_hand == 3_504_872
    assert abs(params(net) / 3.4e6 - 1) < 0.05
    torchvision = pytest.importorskip("torchvision")
    assert params(torchvision.models.mobilenet_v2(weights=None)) == params(net)


def test_proxylessnas_space_size():
    """ProxylessNAS's ImageNet backbone with every layer 3x3_MBConv6, counted by hand: the searched
    nets' own configs are not in the code's repository, so no published figure to match."""
    layers = stage_layers(16, (24, 40, 80, 96, 192, 320), (4, 4, 4, 4, 4, 1), (2, 2, 2, 1, 2, 1))
    assert [(l.in_channels, l.out_channels, l.stride) for l in PAPER.layers] == layers
    for arch in ((K3E6,) * 21, PAPER.sample(0), PAPER.sample(1)):
        net = PAPER.build(arch, num_classes=1000, in_channels=3)
        assert params(net) == net_count(3, 32, 16, layers, arch, 1280, 1000)
    largest = params(PAPER.build((K7E6,) * 21, num_classes=1000, in_channels=3))
    smallest = params(PAPER.build(tuple(K3E3 if ZERO not in c.options else ZERO for c in PAPER.choices),
                                  num_classes=1000, in_channels=3))
    assert smallest < 3e6 < 4e6 < largest  # the space spans MobileNetV2's size


def test_a_network_trains_on_digits():
    from nasnb.data import load

    data = load("digits")
    x, y = data.train
    x, y = x[:512], y[:512]
    torch.manual_seed(0)
    net = SPACE.build(ARCH, num_classes=data.num_classes, in_channels=data.in_channels)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    losses = []
    for step in range(40):
        batch = slice(64 * (step % 8), 64 * (step % 8 + 1))
        loss = torch.nn.functional.cross_entropy(net(x[batch]), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert math.isclose(np.mean(losses[:5]), math.log(10), rel_tol=0.3)  # chance level at the start
    assert np.mean(losses[-8:]) < 0.5 * np.mean(losses[:5])


# ----------------------------------------------------------------------------- graph and drawing


def test_to_graph_is_the_chain_of_layers():
    g = SPACE.to_graph(ARCH)
    assert list(g.nodes) == list(range(11)) and list(g.edges) == [(i, i + 1) for i in range(10)]
    assert [op for _, _, op in g.edges(data="op")] == ["3x3_Conv", "3x3_MBConv1", *ARCH, "1x1_Conv", "Linear"]
    assert [g.nodes[n]["channels"] for n in range(1, 10)] == [8, 8, 16, 16, 16, 32, 32, 32, 64]
    assert g.nodes[10]["reduction"] == 2 and g.nodes[0]["role"] == "input" and g.nodes[10]["role"] == "output"
    residual = [False, True, False, True, True, False, True, True, False, False]  # stem ... classifier
    assert [r for *_, r in g.edges(data="residual")] == residual
    assert sum(s for *_, s in g.edges(data="searched")) == 6
    assert g.graph["arch"] == ARCH_STR
    with pytest.raises(InvalidValueError, match="one chain"):
        SPACE.to_graph(ARCH, cell="normal")


def test_the_chain_draws_with_matplotlib_and_colours_each_block():
    from nasnb.viz import cells as viz
    from nasnb.viz.cells import cell_data, draw_cell

    data = cell_data(SPACE, ARCH)
    edges = data["cells"][0]["edges"]
    assert [e["label"] for e in edges][2:8] == list(ARCH)
    colours = {e["op"]: e["color"] for e in edges}
    assert len({colours[op] for op in (K5E6, K3E3, K7E3, ZERO)}) == 4  # four ops, four colours
    assert len({viz.op_color(op) for op in MB + (ZERO, "3x3_Conv")}) == 8  # every option its own; fixed layers grey
    assert [n["x"] for n in data["cells"][0]["nodes"]] == [float(i) for i in range(11)]  # left to right
    fig = draw_cell(SPACE, ARCH, backend="matplotlib")
    assert len(fig.axes) == 1 and len(fig.axes[0].patches) == 11 + 10


def test_train_evaluator_trains_the_canonical_member():
    from nasnb.data import load
    from nasnb.evaluators import TrainEvaluator

    evaluator = TrainEvaluator(load("digits"), epochs=1, space=SPACE, test=False)
    metrics = evaluator(ARCH)
    canonical = "5x5_MBConv6,3x3_MBConv3,Zero|7x7_MBConv3,Zero,Zero"
    assert metrics["trained_arch"] == SPACE.format(SPACE.canonical(ARCH)) == canonical
    assert metrics["params"] == 12_762 and 0 <= metrics["val_accuracy"] <= 1
    evaluator((K5E6, K3E3, ZERO, K7E3, ZERO, ZERO))  # the same network: no second training
    assert evaluator.trainings == 1
