"""TransformerSpace, its network and the generated sequence tasks, checked against hand counts and formulas."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from nasnb.data_sequences import build_kwargs, count, load_sequences, lookup
from nasnb.errors import InvalidTypeError, InvalidValueError, NasnbError, UnknownNameError
from nasnb.spaces.transformer import Layer, TransformerSpace
from nasnb.spaces.transformer_network import RMSNorm, TransformerLayer

SPACE = TransformerSpace()
SMALL = TransformerSpace(depths=(1, 2), heads=(0, 2), ffn=(0, 16), norms=("pre", "rms"), activations=("relu", "gelu"),
                         d_model=8)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- size


def test_size_by_hand():
    # 4 heads x 3 widths x 3 norms x 3 activations = 108 per layer; depths 1-4
    assert len(SPACE) == 108 + 108**2 + 108**3 + 108**4 == 137_320_380
    # SMALL: 2 * 2 * 2 * 2 = 16 per layer, depth 1 or 2: 16 + 256, and enumerate lists each once
    archs = list(SMALL.enumerate())
    assert len(SMALL) == 272 == len(archs) == len(set(archs))
    assert TransformerSpace(max_depth=2).depths == (1, 2)


def test_count_canonical_by_hand_and_by_listing():
    # non-identity layer kinds in SMALL: heads 2 without FFN: 2 norms; FFN 16: 2 heads x 2 norms x 2 acts = 8
    # -> m = 10; every k <= 2 real layers is one network: 1 + m + m^2
    assert SMALL.count_canonical() == 1 + 10 + 100 == 111
    assert len({SMALL.canonical(a) for a in SMALL.enumerate()}) == 111
    # default: m = 3 heads x 3 norms + 4 heads x 2 widths x 3 norms x 3 acts = 81, up to 4 layers
    assert SPACE.count_canonical() == 1 + 81 + 81**2 + 81**3 + 81**4
    # no identity option (no 0 width): every depth counts m^d, m = 2 heads x 1 width x 2 norms x 2 acts
    no_identity = TransformerSpace(depths=(1, 3), heads=(0, 2), ffn=(16,), norms=("pre", "rms"),
                                   activations=("relu", "gelu"), d_model=8)
    assert no_identity.count_canonical() == 8 + 8**3 == len({no_identity.canonical(a) for a in no_identity.enumerate()})


def test_canonical_builds_the_same_network():
    a = (Layer(2, 16, "pre", "gelu"), Layer(0, 0, "rms", "gelu"))
    b = (Layer(0, 0, "pre", "relu"), Layer(2, 16, "pre", "gelu"))
    c = (Layer(2, 16, "pre", "gelu"),)
    assert SMALL.canonical(a) == SMALL.canonical(b) == SMALL.canonical(c) == c
    assert SMALL.canonical((Layer(2, 0, "rms", "gelu"),)) == (Layer(2, 0, "rms", "relu"),)  # no FFN: no activation
    gapped = TransformerSpace(depths=(2, 4), heads=(0, 2), ffn=(0, 16), d_model=8)  # 3 real layers need depth 4
    real = (Layer(2, 16, "pre", "gelu"),) * 3
    assert gapped.canonical(real + (Layer(0, 0, "rms", "swish"),)) == real + (Layer(0, 0, "pre", "relu"),)
    x = torch.randint(0, 4, (3, 9))
    outs = []
    for arch in (a, b, c):
        torch.manual_seed(0)
        outs.append(SMALL.build(arch)(x))
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(outs[0], outs[2])


# ----------------------------------------------------------------------------- strings


def test_format_parse_round_trip():
    arch = (Layer(2, 64, "pre", "gelu"), Layer(0, 128, "rms", "relu"))
    assert SPACE.format(arch) == "L1:h2-f64-pre-gelu|L2:h0-f128-rms-relu"
    assert SPACE.parse(" L1:h2-f64-pre-gelu | L2:h0-f128-rms-relu ") == arch
    for seed in range(20):
        arch = SPACE.sample(seed)
        assert SPACE.parse(SPACE.format(arch)) == arch


@pytest.mark.parametrize("text, words", [
    ("L1:h3-f64-pre-gelu", "heads=3"),
    ("L1:h2-f65-pre-gelu", "ffn=65"),
    ("L1:h2-f64-mid-gelu", "norm='mid'"),
    ("L1:h2-f64-pre-tanh", "activation='tanh'"),
    ("L2:h2-f64-pre-gelu", "numbered L2"),
    ("L1:h2-f64-pre", "cannot read layer 1"),
    ("L1:h2-f64-pre-gelu|" * 4 + "L5:h2-f64-pre-gelu", "5 layers"),
    ("", "cannot read layer 1"),
    ("L\u0661:h2-f64-pre-gelu", "cannot read layer 1"),  # an Arabic-Indic 1: int() would take it
    ("L1:h2-f64-pre-gelu" * 100, "characters"),
])
def test_parse_refuses_malformed_text_naming_the_problem(text, words):
    with pytest.raises(InvalidValueError, match=words.replace("|", r"\|")):
        SPACE.parse(text)


def test_validate_and_settings_refuse_bad_values():
    with pytest.raises(InvalidTypeError):
        SPACE.parse(3)
    with pytest.raises(InvalidValueError, match="depth"):
        SPACE.validate(())
    with pytest.raises(InvalidValueError, match="layer 1: heads=True"):
        SPACE.validate([(True, 0, "pre", "relu")])
    with pytest.raises(InvalidValueError, match="do not divide d_model=32"):
        TransformerSpace(heads=(0, 3))
    with pytest.raises(InvalidValueError, match="repeats"):
        TransformerSpace(depths=(1, 1))
    with pytest.raises(NasnbError, match="norm"):
        TransformerSpace(norms=("pre", "batch"))


# ----------------------------------------------------------------------------- moves


def _changes(a, b) -> int:
    """Choices that differ: the depth counts once, and so does each differing field of a shared layer."""
    fields = sum(x != y for la, lb in zip(a, b) for x, y in zip(la, lb))
    return fields + (len(a) != len(b))


def test_mutate_changes_exactly_one_choice():
    rng = np.random.default_rng(0)
    depth_changes = 0
    for _ in range(200):
        arch = SPACE.sample(rng)
        child = SPACE.mutate(arch, rng)
        assert _changes(arch, child) == 1, (SPACE.format(arch), SPACE.format(child))
        if len(child) != len(arch):
            depth_changes += 1
            assert child[:min(len(arch), len(child))] == arch[:min(len(arch), len(child))]
    # 1 layer of 4 options... default depth 4: 4 * (3 + 2 + 2 + 2) field moves + 3 depth moves = 39
    assert len(SPACE.neighbors((Layer(1, 64, "pre", "relu"),) * 4)) == 39
    assert 0 < depth_changes < 60  # about 200 * 3/39 = 15


def test_crossover_mixes_parents():
    a = (Layer(1, 64, "pre", "relu"),) * 4
    b = (Layer(4, 128, "rms", "gelu"),) * 2
    children = [SPACE.crossover(a, b, seed) for seed in range(40)]
    for child in children:
        assert len(child) in (2, 4)
        assert all(layer in (a[k], b[k] if k < 2 else a[k]) for k, layer in enumerate(child))
    mixed = [c for c in children if a[0] in c[:2] and b[0] in c[:2]]
    assert mixed and {len(c) for c in children} == {2, 4}


def test_choices_round_trip_and_inactive_slots():
    assert len(SPACE.choices) == 1 + 4 * 4
    for seed in range(10):
        arch = SPACE.sample(seed)
        assert SPACE.from_choices(SPACE.to_choices(arch)) == arch
    values = [1] + [2, 64, "post", "swish"] + [4, 128, "rms", "gelu"] * 3
    assert SPACE.from_choices(values) == (Layer(2, 64, "post", "swish"),)
    with pytest.raises(InvalidValueError, match="not an option of choice 'L2 heads'"):
        SPACE.from_choices([1, 2, 64, "post", "swish", 3, 128, "rms", "gelu"] + [4, 128, "rms", "gelu"] * 2)


def test_to_graph_is_the_layer_stack():
    arch = (Layer(2, 64, "pre", "gelu"), Layer(0, 0, "post", "relu"), Layer(4, 0, "rms", "relu"))
    g = SPACE.to_graph(arch)
    ops = [g.edges[k, k + 1]["op"] for k in range(len(g) - 1)]
    assert ops == ["embed+pos", "h2-f64-pre-gelu", "identity", "h4-f0-rms", "LN+linear"]
    assert g.nodes[0]["role"] == "input" and g.nodes[len(g) - 1]["label"] == "logits"
    from nasnb.viz.cells import cell_data

    assert [e["label"] for e in cell_data(SPACE, arch)["cells"][0]["edges"]] == ops


# ----------------------------------------------------------------------------- network


def test_build_shapes_and_parameter_count():
    arch = (Layer(2, 16, "pre", "gelu"), Layer(0, 0, "pre", "relu"))
    net = SMALL.build(arch, num_classes=5, vocab=7, seq_len=6)
    assert net(torch.randint(0, 7, (3, 1, 1, 6)).float()).shape == (3, 5)
    d = 8  # embeddings 7*8 + 6*8; attention qkv 8*24+24, out 8*8+8; 2 LayerNorms 2*16; FFN 8*16+16 + 16*8+8;
    expected = 7 * d + 6 * d + (d * 3 * d + 3 * d) + (d * d + d) + 2 * 2 * d + (d * 16 + 16) + (16 * d + d) + 2 * d + (d * 5 + 5)
    assert sum(p.numel() for p in net.parameters()) == expected  # the identity layer has none
    with pytest.raises(ValueError, match="sequences of 6 tokens"):
        net(torch.zeros(3, 1, 1, 7))
    with pytest.raises(NasnbError, match="in_channels"):
        SMALL.build(arch, in_channels=3)


def test_rmsnorm_against_the_formula():
    norm = RMSNorm(4)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 2.0, 0.5, -1.0]))
    x = torch.tensor([[3.0, -4.0, 0.0, 0.0]])  # mean of squares (9 + 16) / 4 = 6.25, rms 2.5
    expected = torch.tensor([[3 / 2.5, -8 / 2.5, 0.0, 0.0]])
    torch.testing.assert_close(norm(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind, order", [
    ("pre", ["attn_norm", "attn", "ffn_norm", "ffn"]),
    ("post", ["attn", "attn_norm", "ffn", "ffn_norm"]),
    ("rms", ["attn_norm", "attn", "ffn_norm", "ffn"]),
])
def test_norm_order_by_hooks(kind, order):
    layer = TransformerLayer(8, 2, 16, kind, "relu")
    calls = []
    for name in order:
        getattr(layer, name).register_forward_hook(lambda m, i, o, name=name: calls.append(name))
    layer(torch.randn(2, 5, 8))
    assert calls == order
    assert isinstance(layer.attn_norm, RMSNorm) == (kind == "rms")
    if kind == "post":  # the output is a LayerNorm's: mean 0 and variance 1 per position
        out = layer(torch.randn(2, 5, 8) * 3)
        torch.testing.assert_close(out.mean(-1), torch.zeros(2, 5), atol=1e-5, rtol=0)


def test_attention_free_network_ignores_everything_but_the_last_token():
    """Without attention, the answer read at the last position depends on the last token only."""
    net = SPACE.build((Layer(0, 64, "pre", "relu"), Layer(0, 128, "post", "gelu")))
    x = torch.randint(0, 4, (6, 9))
    y = x.clone()
    y[:, :-1] = torch.randint(0, 4, (6, 8))
    torch.testing.assert_close(net(x), net(y))
    with_attention = SPACE.build((Layer(1, 64, "pre", "relu"),))
    assert not torch.allclose(with_attention(x), with_attention(y))


# ----------------------------------------------------------------------------- the tasks


def test_count_and_lookup_labels_by_hand():
    x, y = count(300, np.random.default_rng(0))
    assert x.shape == (300, 9) and x.max() <= 3
    for seq, label in zip(x[:20], y[:20]):
        assert label == sum(1 for t in seq[:8] if t == seq[8])
    x, y = lookup(300, np.random.default_rng(1))
    for seq, label in zip(x[:20], y[:20]):
        assert 10 <= seq[8] <= 17 and label == seq[seq[8] - 10]
    # the count of the query among 8 uniform symbols of 4 is Binomial(8, 1/4): P(2) = C(8,2) 3^6 / 4^8
    _, y = count(20_000, np.random.default_rng(2))
    assert abs(np.mean(y == 2) - math.comb(8, 2) * 3**6 / 4**8) < 0.015


def test_load_sequences_is_seeded_and_checks_names():
    a, b = load_sequences("count", seed=3, train_size=50, val_size=20, test_size=10), load_sequences("count", seed=3, train_size=50, val_size=20, test_size=10)
    assert torch.equal(a.train[0], b.train[0]) and a.train[0].shape == (50, 1, 1, 9) and a.num_classes == 9
    assert not torch.equal(a.train[0], load_sequences("count", seed=4, train_size=50).train[0][:50])
    assert build_kwargs("lookup") == {"vocab": 18, "seq_len": 9}
    with pytest.raises(UnknownNameError, match="count"):
        load_sequences("sort")


def test_regularized_evolution_runs_on_the_space():
    from nasnb.evaluators import TrainEvaluator
    from nasnb.strategies.evolution import RegularizedEvolution

    space = TransformerSpace(depths=(1, 2), heads=(0, 2), ffn=(0, 16), d_model=8)
    data = load_sequences("count", train_size=64, val_size=32, test_size=8)
    evaluator = TrainEvaluator(data, epochs=1, space=space, optimizer="adam", lr=3e-3, weight_decay=0.0,
                               device="cpu", test=False, count_flops=False)
    history = RegularizedEvolution(space, evaluator, population_size=2, sample_size=2, seed=0).run(3, progress=False)
    assert len(history) == 3
    for trial in history:
        assert 0.0 <= trial.metrics["val_accuracy"] <= 1.0
        space.parse(trial.arch)  # every trial's arch is a string of the space


def test_nasnb_data_load_knows_the_tasks():
    from nasnb.data import load

    data = load("seq-lookup", seed=5, train_size=40)
    assert data.name == "seq-lookup" and data.num_classes == 10 and len(data.train[1]) == 40
    assert torch.equal(data.train[0], load_sequences("lookup", seed=5, train_size=40).train[0])
