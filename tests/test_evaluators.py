"""TrainEvaluator: build -> train -> measure, cached by isomorphism class, seeded."""
import math

import pytest
import torch

import nasnb
from nasnb.evaluators import TrainEvaluator
from nasnb.spaces import DartsSpace, NB201Space


@pytest.fixture(scope="module")
def digits():
    return nasnb.data.load("digits", seed=0).subset(train_size=300, seed=0)


def test_metrics_and_caching_by_canonical_form(digits):
    space = NB201Space()
    evaluator = TrainEvaluator(digits, epochs=1, device="cpu")
    # Node 3 reads only node 0, so the ops feeding nodes 1 and 2 do not matter: same function.
    a = space.parse("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|nor_conv_3x3~0|none~1|none~2|")
    b = space.parse("|nor_conv_1x1~0|+|none~0|skip_connect~1|+|nor_conv_3x3~0|none~1|none~2|")
    first = evaluator(a)
    second = evaluator(b)
    assert evaluator.trainings == 1, "an isomorphic cell must not be trained again"
    assert first == second
    for key in ("val_accuracy", "test_accuracy", "train_accuracy", "train_loss", "params", "flops", "seconds"):
        assert key in first
    assert 0.0 <= first["val_accuracy"] <= 1.0 and len(first["val_curve"]) == 1
    # params must be those of the network the evaluator builds
    assert first["params"] == sum(p.numel() for p in evaluator.build(a).parameters())


def test_same_seed_same_result_and_caller_rng_untouched(digits):
    space = NB201Space()
    arch = space.sample(4)
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    m1 = TrainEvaluator(digits, epochs=1, device="cpu", seed=7)(arch)
    assert torch.equal(torch.rand(1), expected_next), "evaluating must not consume the caller's torch RNG"
    m2 = TrainEvaluator(digits, epochs=1, device="cpu", seed=7)(arch)
    assert m1["val_accuracy"] == m2["val_accuracy"] and m1["train_loss"] == m2["train_loss"]


def test_disconnected_cell_scores_near_chance_and_connected_cell_learns(digits):
    space = NB201Space()
    evaluator = TrainEvaluator(digits, epochs=6, device="cpu")
    dead = evaluator(space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|"))
    alive = evaluator(space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"))
    # A constant output can only be right on its most frequent class: ~1/10 of balanced digits.
    assert dead["val_accuracy"] < 0.2
    assert alive["val_accuracy"] > 0.6


def test_darts_genotypes_are_evaluated_with_the_darts_space(digits):
    darts = DartsSpace()
    evaluator = TrainEvaluator(digits, epochs=1, device="cpu", count_flops=False)
    metrics = evaluator(darts.GENOTYPES["DARTS_V2"])
    assert metrics["params"] == nasnb.train.count_params(evaluator.build(darts.GENOTYPES["DARTS_V2"]))
    assert math.isfinite(metrics["train_loss"])


def test_bad_arguments_are_clear_errors(digits):
    with pytest.raises(ValueError, match="epochs"):
        TrainEvaluator(digits, epochs=0)
    with pytest.raises((ValueError, KeyError), match="conv_9x9"):
        TrainEvaluator(digits, epochs=1)(("conv_9x9",) * 6)


def test_process_pool_reproduces_in_process_results(digits):
    """Spawned one-thread workers give the metrics a one-thread evaluation gives in this process."""
    from nasnb.evaluators import process_pool
    from nasnb.strategies import RandomSearch

    space = NB201Space()
    evaluator = TrainEvaluator(digits, epochs=1, device="cpu", count_flops=False)
    with process_pool(2) as pool:
        parallel = RandomSearch(space, evaluator, seed=3).run(4, executor=pool, progress=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sequential = RandomSearch(space, TrainEvaluator(digits, epochs=1, device="cpu", count_flops=False),
                                  seed=3).run(4, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert [t.arch for t in parallel] == [t.arch for t in sequential]
    assert parallel.values() == sequential.values()
