"""nasnb.predictors (encodings, the ensemble) and PredictorGuided, checked by hand and against scipy."""
import itertools

import numpy as np
import pytest
from scipy.stats import kendalltau

from nasnb.errors import InvalidValueError, UnknownNameError
from nasnb.predictors import Predictor, decode_onehot, encode, kendall_tau, nb201_paths, onehot_encoding, path_encoding
from nasnb.spaces import NB201Space
from nasnb.spaces.toy import ToySpace
from nasnb.strategies.predictor import PredictorGuided
from nasnb.strategies.random import RandomSearch

SPACE = NB201Space()
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")  # NB201's order, indices 0..4


def cheap(space, evaluator, seed, **kwargs):
    """A PredictorGuided small enough for tests (2 members instead of 5)."""
    return PredictorGuided(space, evaluator, members=2, seed=seed, **kwargs)


def record(history):
    return [(t.number, t.arch, t.metrics, t.info) for t in history]


# ---------------------------------------------------------------- encodings

def test_the_nb201_cell_has_four_input_output_paths():
    # Edges in arch order: 0: 1<-0, 1: 2<-0, 2: 2<-1, 3: 3<-0, 4: 3<-1, 5: 3<-2. From node 0 to
    # node 3: directly (edge 3), through 1 (0, 4), through 2 (1, 5), through 1 and 2 (0, 2, 5).
    assert nb201_paths() == [(3,), (0, 4), (1, 5), (0, 2, 5)]
    assert path_encoding(SPACE.sample(0)).shape == (5 + 25 + 125,)


def test_path_encoding_counted_by_hand():
    arch = SPACE.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    # path 0->3: skip (1)                         -> column 1
    # path 0->1->3: conv3 (3), conv3 (3)          -> 5 + 3 + 3*5 = 23
    # path 0->2->3: conv3 (3), skip (1)           -> 5 + 3 + 1*5 = 13
    # path 0->1->2->3: conv3, avg (4), skip (1)   -> 30 + 3 + 4*5 + 1*25 = 78
    assert np.flatnonzero(path_encoding(arch)).tolist() == [1, 13, 23, 78]
    # All 3x3 convs: the two length-2 paths share a column, so 3 ones, not 4.
    every = ("nor_conv_3x3",) * 6
    assert np.flatnonzero(path_encoding(every)).tolist() == [3, 5 + 3 + 15, 30 + 3 + 15 + 75]


def test_onehot_round_trip_and_layout():
    rng = np.random.default_rng(0)
    for _ in range(50):
        arch = SPACE.sample(rng)
        x = onehot_encoding(arch)
        assert x.shape == (30,) and x.sum() == 6
        assert [int(np.flatnonzero(x[5 * e:5 * e + 5])[0]) for e in range(6)] == [OPS.index(op) for op in arch]
        assert decode_onehot(x) == arch
    toy = ToySpace(length=3, options=4)
    x = onehot_encoding(("op3", "op0", "op1"), toy)
    assert np.flatnonzero(x).tolist() == [3, 4 + 0, 8 + 1] and decode_onehot(x, toy) == ("op3", "op0", "op1")
    assert encode([SPACE.format(SPACE.sample(1))], SPACE).shape == (1, 30)  # strings are parsed
    with pytest.raises(InvalidValueError):
        decode_onehot(np.zeros(30))


def test_kendall_tau_matches_scipy_with_ties():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 6, 400)
    y = x + rng.integers(0, 4, 400)
    assert kendall_tau(x, y) == pytest.approx(kendalltau(x, y)[0], abs=1e-12)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0


# ---------------------------------------------------------------- the ensemble

WEIGHT = {"none": -0.3, "skip_connect": 0.0, "nor_conv_1x1": 0.4, "nor_conv_3x3": 0.7, "avg_pool_3x3": 0.1}


def additive(arch):
    """A known function of the ops: each edge adds its op's weight, later edges count more."""
    return sum(WEIGHT[op] * (1 + 0.2 * e) for e, op in enumerate(arch))


def along_paths(arch):
    """A known function of the paths: each input -> output path adds the weights of its ops."""
    return sum(sum(WEIGHT[arch[e]] for e in path) for path in [(3,), (0, 4), (1, 5), (0, 2, 5)])


# One-hot: 30 columns, each seen ~40 times in 200 cells. Path: 155 columns, most length-3 paths
# seen once or twice in 200 cells, so the same data pins the function down less.
@pytest.mark.parametrize("encoding, target, least", [("onehot", additive, 0.8), ("path", along_paths, 0.6)])
def test_predictor_ranks_a_target_additive_in_its_encoding(encoding, target, least):
    rng = np.random.default_rng(0)
    archs = [SPACE.sample(rng) for _ in range(700)]
    train, held_out = archs[:200], archs[200:]
    predictor = Predictor(SPACE, encoding=encoding, members=3, seed=0).fit(train, [target(a) for a in train])
    mean, std = predictor.predict(held_out)
    assert mean.shape == std.shape == (500,) and (std >= 0).all()
    assert kendalltau(mean, [target(a) for a in held_out])[0] > least


def test_ensemble_is_less_sure_far_from_its_data():
    # Trained on cells of skip / 1x1 / 3x3 only; "far" cells are none / avg_pool only. (Boosted trees
    # fail this: unseen columns are never split on, so far cells share the leaves of seen ones.)
    rng = np.random.default_rng(1)
    near_ops, far_ops = OPS[1:4], (OPS[0], OPS[4])
    train = [tuple(near_ops[k] for k in rng.integers(3, size=6)) for _ in range(150)]
    far = list(itertools.product(far_ops, repeat=6))
    predictor = Predictor(SPACE, members=4, seed=0).fit(train, [additive(a) for a in train])  # MLPs
    assert predictor.predict(far)[1].mean() > 2 * predictor.predict(train)[1].mean()


def test_same_seed_same_predictions():
    rng = np.random.default_rng(2)
    archs = [SPACE.sample(rng) for _ in range(60)]
    values = [additive(a) for a in archs]
    a = Predictor(SPACE, members=2, seed=4).fit(archs, values).predict(archs[:10])
    b = Predictor(SPACE, members=2, seed=4).fit(archs, values).predict(archs[:10])
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_bad_input_is_refused_by_name():
    archs = [SPACE.sample(k) for k in range(3)]
    predictor = Predictor(SPACE, members=1)
    with pytest.raises(InvalidValueError, match="not fitted"):
        predictor.predict(archs)
    with pytest.raises(InvalidValueError, match="no architectures"):
        predictor.fit([], [])
    with pytest.raises(InvalidValueError, match="3 architectures but 2 values"):
        predictor.fit(archs, [0.1, 0.2])
    with pytest.raises(InvalidValueError, match=r"values\[1\] = nan"):
        predictor.fit(archs, [0.1, float("nan"), 0.3])
    with pytest.raises(UnknownNameError, match="encoding='paths'"):
        Predictor(SPACE, encoding="paths")
    with pytest.raises(UnknownNameError, match="model='gp'"):
        Predictor(SPACE, model="gp")
    with pytest.raises(InvalidValueError, match="encoding='onehot'"):
        Predictor(ToySpace(), encoding="path")


# ---------------------------------------------------------------- the search

def first_optimum(history, space):
    """The trial count when the optimum was first evaluated (the cap + 1 when never)."""
    hits = [t.number + 1 for t in history.trials if space.parse(t.arch) == space.target]
    return hits[0] if hits else len(history) + 1


def test_predictor_guided_finds_the_toy_optimum_sooner_than_random_search():
    space = ToySpace(length=6, options=4)  # 4,096 archs, one optimum: random search needs ~2,000 on average
    guided, random = [], []
    for seed in (0, 1):
        search = cheap(space, space.evaluate, seed)
        search.run(50, progress=False)
        guided.append(first_optimum(search.history, space))
        random.append(first_optimum(RandomSearch(space, space.evaluate, seed=seed).run(50, progress=False), space))
    assert max(guided) <= 50 and np.mean(guided) < np.mean(random), (guided, random)


def test_trials_record_the_prediction_and_random_start():
    space = ToySpace(length=6, options=4)
    search = cheap(space, space.evaluate, 0, initial=5)
    search.run(12, progress=False)
    start, guided = search.history.trials[:5], search.history.trials[5:]
    assert all(t.info["kind"] == "random" and t.info["predicted_mean"] is None for t in start)
    for t in guided:
        assert isinstance(t.info["predicted_mean"], float) and t.info["predicted_std"] >= 0
        assert t.info["fit_size"] >= 5 and t.info["repeat"] is False
        if t.info["kind"] == "mutation":
            assert search.history[t.info["parent"]].ok


def test_never_proposes_an_isomorphic_duplicate_until_the_space_is_exhausted():
    search = cheap(SPACE, lambda arch: {"val_accuracy": additive(arch)}, 0, initial=5, refit_every=20)
    search.run(40, progress=False)
    keys = [SPACE.canonical(SPACE.parse(t.arch)) for t in search.history.trials]
    assert len(set(keys)) == 40
    tiny = ToySpace(length=2, options=3)  # 9 archs
    search = cheap(tiny, tiny.evaluate, 0, initial=3)
    search.run(12, progress=False)
    archs = [t.arch for t in search.history.trials]
    assert len(set(archs[:9])) == 9  # every arch once first
    assert all(t.info["repeat"] for t in search.history.trials[9:])


def test_resume_equals_uninterrupted(tmp_path):
    space = ToySpace(length=6, options=4)
    uninterrupted = cheap(space, space.evaluate, 7, initial=4, refit_every=4).run(16, progress=False)
    path = tmp_path / "search.ckpt"
    cheap(space, space.evaluate, 7, initial=4, refit_every=4).run(9, checkpoint=path, progress=False)
    resumed = cheap(space, space.evaluate, 7, initial=4, refit_every=4)  # a fresh object, no model
    resumed.run(16, checkpoint=path, progress=False)
    assert record(resumed.history) == record(uninterrupted)
    # load_state_dict in the middle of a fit cycle: the model is refitted on the same trials
    first = cheap(space, space.evaluate, 7, initial=4, refit_every=4)
    first.run(11, progress=False)
    second = cheap(space, space.evaluate, 7, initial=4, refit_every=4)
    second.load_state_dict(first.state_dict())
    second.run(16, progress=False)
    assert record(second.history) == record(uninterrupted)


def test_bad_settings_are_refused():
    space = ToySpace()
    with pytest.raises(UnknownNameError, match="acquisition"):
        PredictorGuided(space, space.evaluate, acquisition="ei")
    with pytest.raises(ValueError, match="initial"):
        PredictorGuided(space, space.evaluate, initial=0)
