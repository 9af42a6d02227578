"""nasnb.hybrid.alpha_sampler against softmax by hand, and RegularizedEvolution's `initial=` start."""
import math

import numpy as np
import pytest

from nasnb.errors import InvalidTypeError, InvalidValueError, ResumeMismatchError
from nasnb.hybrid import alpha_sampler
from nasnb.spaces import NB201Space
from nasnb.spaces.toy import ToySpace
from nasnb.strategies.evolution import RegularizedEvolution

SPACE = NB201Space()
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def softmax_by_hand(row, temperature=1.0):
    e = [math.exp(a / temperature) for a in row]
    return [x / sum(e) for x in e]


ALPHA = [[0.0, 0.0, 0.0, 0.0, 0.0],         # uniform: 1/5 each
         [math.log(4), 0.0, 0.0, 0.0, 0.0],  # none 4/8, the others 1/8
         [0.0, 1.0, 2.0, 3.0, -1.0],
         [-2.0, -2.0, 5.0, -2.0, -2.0],
         [1.0, 1.0, 1.0, 1.0, 1.0],          # uniform again (a constant shift changes nothing)
         [0.0, 0.0, 0.0, math.log(3), -math.inf]]  # avg_pool never; conv3 3/6


def test_the_sampler_holds_softmax_of_alpha():
    sampler = alpha_sampler(np.array(ALPHA))
    for row, p in zip(ALPHA, sampler.probabilities):
        finite = [a if a != -math.inf else -1e9 for a in row]
        assert p.tolist() == pytest.approx(softmax_by_hand(finite), abs=1e-12)
    assert sampler.probabilities[1].tolist() == pytest.approx([0.5, 0.125, 0.125, 0.125, 0.125])
    hot = alpha_sampler(np.array(ALPHA), temperature=2.0).probabilities[2]
    assert hot.tolist() == pytest.approx(softmax_by_hand(ALPHA[2], 2.0))


def test_drawn_frequencies_match_softmax():
    sampler = alpha_sampler(ALPHA)
    rng = np.random.default_rng(0)
    n = 3_000
    counts = np.zeros((6, 5))
    for _ in range(n):
        arch = sampler(rng)
        for e, op in enumerate(arch):
            counts[e, OPS.index(op)] += 1
    p = sampler.probabilities
    # 5 standard errors of a binomial proportion: a wrong distribution fails, sampling noise does not
    assert np.all(np.abs(counts / n - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-12)
    assert counts[5, 4] == 0  # probability 0 is never drawn


def test_a_darts_search_gives_its_softmax():
    class FakeDarts:  # what alpha_sampler reads of a DARTS search: net, space, state()["alphas"]
        net = object()
        space = SPACE

        def state(self):
            return {"alphas": {"cell": [softmax_by_hand(row) for row in ALPHA[:5]] + [[0.25, 0.25, 0.25, 0.25, 0.0]]}}

    p = alpha_sampler(FakeDarts()).probabilities
    assert p[2].tolist() == pytest.approx(softmax_by_hand(ALPHA[2]))
    assert p[5].tolist() == pytest.approx([0.25, 0.25, 0.25, 0.25, 0.0])


def test_bad_alphas_are_refused():
    with pytest.raises(InvalidValueError, match=r"shape \(6, 5\)"):
        alpha_sampler(np.zeros((5, 5)))
    with pytest.raises(InvalidValueError, match="finite"):
        alpha_sampler(np.full((6, 5), np.nan))
    with pytest.raises(InvalidTypeError):
        alpha_sampler("alphas")
    with pytest.raises(InvalidValueError, match="NB201Space"):
        alpha_sampler(np.zeros((6, 5)), ToySpace())


def convs(arch):
    return {"val_accuracy": sum(op == "nor_conv_3x3" for op in arch) / 6}


def test_initial_draws_only_the_first_population():
    conv_only = np.full((6, 5), -math.inf)
    conv_only[:, 3] = 0.0  # every edge a 3x3 conv, with probability 1
    sampler = alpha_sampler(conv_only)
    search = RegularizedEvolution(SPACE, convs, population_size=6, sample_size=2, initial=sampler, seed=0)
    search.run(30, progress=False)
    trials = search.history.trials
    assert all(t.info["kind"] == "random" and t.arch == SPACE.format(("nor_conv_3x3",) * 6) for t in trials[:6])
    # after it: children, each one mutation (one edge changed) from its parent
    for t in trials[6:]:
        assert t.info["kind"] == "mutation"
        parent = SPACE.parse(trials[t.info["parent"]].arch)
        assert sum(a != b for a, b in zip(parent, SPACE.parse(t.arch))) == 1


def test_initial_list_is_used_in_order_then_uniform():
    space = ToySpace(length=4, options=3)
    start = ["op0-op0-op0-op0", ("op1", "op1", "op1", "op1")]
    search = RegularizedEvolution(space, space.evaluate, population_size=4, sample_size=2, initial=start, seed=3)
    search.run(4, progress=False)
    archs = [t.arch for t in search.history.trials]
    assert archs[:2] == ["op0-op0-op0-op0", "op1-op1-op1-op1"]
    uniform = RegularizedEvolution(space, space.evaluate, population_size=4, sample_size=2, seed=3)
    uniform.run(2, progress=False)  # the list drew nothing from the rng: the rest is the uniform start's
    assert archs[2:] == [t.arch for t in uniform.history.trials]


def test_default_is_uniform_and_settings_unchanged():
    space = ToySpace(length=5, options=3)
    plain = RegularizedEvolution(space, space.evaluate, population_size=5, seed=1)
    explicit = RegularizedEvolution(space, space.evaluate, population_size=5, initial=None, seed=1)
    assert "initial" not in plain.settings()
    assert [t.arch for t in plain.run(12, progress=False)] == [t.arch for t in explicit.run(12, progress=False)]


def test_resume_with_another_start_is_refused(tmp_path):
    path = tmp_path / "evo.ckpt"
    RegularizedEvolution(SPACE, convs, population_size=4, initial=alpha_sampler(ALPHA), seed=0).run(
        6, checkpoint=path, progress=False)
    again = RegularizedEvolution(SPACE, convs, population_size=4, initial=alpha_sampler(ALPHA), seed=0)
    again.run(10, checkpoint=path, progress=False)
    uninterrupted = RegularizedEvolution(SPACE, convs, population_size=4, initial=alpha_sampler(ALPHA), seed=0)
    assert [t.arch for t in again.history] == [t.arch for t in uninterrupted.run(10, progress=False)]
    other = RegularizedEvolution(SPACE, convs, population_size=4, initial=alpha_sampler(np.zeros((6, 5))), seed=0)
    with pytest.raises(ResumeMismatchError, match="initial"):
        other.run(10, checkpoint=path, progress=False)
    with pytest.raises(InvalidTypeError, match="initial"):
        RegularizedEvolution(SPACE, convs, initial="conv")
