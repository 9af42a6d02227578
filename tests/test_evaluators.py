"""TrainEvaluator: build -> train -> measure, one training per isomorphism class (its canonical member), seeded."""
import json
import math

import pytest
import torch

import nasnb
from nasnb.errors import InvalidTypeError, InvalidValueError, NasnbError, UnknownNameError
from nasnb.evaluators import TrainEvaluator, space_for
from nasnb.spaces import DartsSpace, NB201Space


@pytest.fixture(scope="module")
def digits():
    return nasnb.data.load("digits", seed=0).subset(train_size=300, seed=0)


def conv_bn(c_in, c_out, k):
    """Parameters of ReLU -> Conv(k x k, no bias) -> BatchNorm: the weights, then BN's scale and shift."""
    return k * k * c_in * c_out + 2 * c_out


def nb201_params(arch, C, N=1, in_channels=1, num_classes=10):
    """NB201's network counted by hand from the paper's ops (Dong & Yang, 2020, Fig. 1 and Sec. 2)."""
    op_params = {"none": lambda w: 0, "skip_connect": lambda w: 0, "avg_pool_3x3": lambda w: 0,
                 "nor_conv_1x1": lambda w: conv_bn(w, w, 1), "nor_conv_3x3": lambda w: conv_bn(w, w, 3)}
    stem = 9 * in_channels * C + 2 * C  # 3x3 conv without bias, BatchNorm
    cells = sum(N * op_params[op](width) for width in (C, 2 * C, 4 * C) for op in arch)
    # between stages: a residual block of two 3x3 ReLU-Conv-BN and a 1x1 conv shortcut (after avg pooling)
    blocks = sum(conv_bn(w // 2, w, 3) + conv_bn(w, w, 3) + (w // 2) * w for w in (2 * C, 4 * C))
    head = 2 * 4 * C + 4 * C * num_classes + num_classes  # BatchNorm, then the linear classifier
    return stem + cells + blocks + head


# Node 3 reads only node 0, so the ops feeding nodes 1 and 2 do not matter: the same function,
# but a has convolutions on three edges and b on two, so their networks differ in parameters.
A = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|nor_conv_3x3~0|none~1|none~2|"
B = "|nor_conv_1x1~0|+|none~0|skip_connect~1|+|nor_conv_3x3~0|none~1|none~2|"


@pytest.fixture(scope="module")
def both_orders(digits):
    """Two evaluators: one sees a then b, the other b then a."""
    space = NB201Space()
    a, b = space.parse(A), space.parse(B)
    first, second = TrainEvaluator(digits, epochs=1, device="cpu"), TrainEvaluator(digits, epochs=1, device="cpu")
    results = {"a_then_b": (first(a), first(b)), "b_then_a": (second(b), second(a))}
    return first, second, results


def test_isomorphic_cells_are_trained_once_and_the_order_does_not_matter(both_orders):
    first, second, results = both_orders
    (a1, b1), (b2, a2) = results["a_then_b"], results["b_then_a"]
    assert first.trainings == 1 and second.trainings == 1, "an isomorphic cell must not be trained again"
    assert a1["val_accuracy"] == a2["val_accuracy"] == b1["val_accuracy"] == b2["val_accuracy"]  # bit for bit
    assert a1["val_curve"] == b2["val_curve"] and a1["train_loss"] == b2["train_loss"]
    # the trained cell is the same in both orders and computes the same function as a and b
    space = NB201Space()
    assert a1["trained_arch"] == a2["trained_arch"] == b1["trained_arch"]
    assert space.canonical(space.parse(a1["trained_arch"])) == space.canonical(space.parse(A))


def test_params_are_each_architectures_own(both_orders):
    _, _, results = both_orders
    (a1, b1), (b2, a2) = results["a_then_b"], results["b_then_a"]
    space = NB201Space()
    assert a1["params"] == a2["params"] == nb201_params(space.parse(A), C=8)
    assert b1["params"] == b2["params"] == nb201_params(space.parse(B), C=8)
    assert a1["params"] - b1["params"] == sum(conv_bn(w, w, 3) for w in (8, 16, 32))  # a's extra 3x3 conv
    assert a1["flops"] > b1["flops"]


def test_metrics_lists_exactly_what_an_evaluation_returns(both_orders, digits):
    first, _, results = both_orders
    a1 = results["a_then_b"][0]
    assert list(a1) == list(first.metrics)
    for key in ("val_accuracy", "test_accuracy", "train_accuracy", "train_loss", "params", "flops", "seconds"):
        assert key in first.metrics
    assert 0.0 <= a1["val_accuracy"] <= 1.0 and len(a1["val_curve"]) == 1
    lean = TrainEvaluator(digits, epochs=1, test=False, count_flops=False)
    assert "test_accuracy" not in lean.metrics and "flops" not in lean.metrics and "val_accuracy" in lean.metrics


def test_a_returned_dict_is_the_callers_to_change(both_orders):
    first, _, _ = both_orders
    arch = NB201Space().parse(A)
    result = first(arch)
    result["val_curve"].append(2.0)
    result["params"] = -1
    assert first(arch)["val_curve"] == result["val_curve"][:-1] and first(arch)["params"] > 0


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
    genotype = darts.GENOTYPES["DARTS_V2"]
    metrics = evaluator(genotype)
    assert darts.canonical(darts.parse(metrics["trained_arch"])) == darts.canonical(genotype)
    assert math.isfinite(metrics["train_loss"]) and metrics["params"] > 0


def test_space_for_finds_the_space_through_the_registry():
    assert isinstance(space_for(("nor_conv_3x3",) * 6), NB201Space)
    assert isinstance(space_for(DartsSpace().GENOTYPES["DARTS_V2"]), DartsSpace)
    with pytest.raises(InvalidValueError, match=r"arch=\('conv_9x9'.*nb201: .*conv_9x9.*darts: ") as info:
        space_for(("conv_9x9",) * 6)
    with pytest.raises(InvalidValueError) as info:
        space_for(["x" * 1000] * 6)
    message = str(info.value)  # the arch is shortened: a 6,000-character arch is not echoed back whole
    assert message.startswith("arch=['xxx") and "chars>" in message and len(message) < 1000


BAD_EVALUATOR_ARGUMENTS = [  # (keyword arguments, error class, what the message names)
    ({"epochs": 0}, InvalidValueError, "epochs"), ({"epochs": 1.5}, InvalidTypeError, "epochs"),
    ({"seed": -1}, InvalidValueError, "seed"), ({"seed": True}, InvalidTypeError, "seed"),
    ({"test": "yes"}, InvalidTypeError, "test"), ({"count_flops": 1}, InvalidTypeError, "count_flops"),
    ({"space": "nb201"}, InvalidTypeError, "space"),
    ({"build_kwargs": [8, 1]}, InvalidTypeError, "build_kwargs"),
    ({"build_kwargs": {"width": 8}}, UnknownNameError, "width"),
    ({"build_kwargs": {"C": 0}}, InvalidValueError, "C"),
    ({"build_kwargs": {"num_classes": 7}}, InvalidValueError, "num_classes=7"),
    ({"space": NB201Space(), "build_kwargs": {"layers": 5}}, UnknownNameError, "layers"),
    # fit's settings fail here, not at the first training
    ({"lr": -0.1}, InvalidValueError, "lr"), ({"lr": math.nan}, InvalidValueError, "lr"),
    ({"batch_size": 0}, InvalidValueError, "batch_size"), ({"batch_size": 64.0}, InvalidTypeError, "batch_size"),
    ({"optimizer": "rmsprop"}, UnknownNameError, "optimizer"), ({"learning_rate": 0.1}, UnknownNameError, "learning_rate"),
    ({"device": "gpu"}, InvalidValueError, "device"), ({"eval_split": "test"}, InvalidValueError, "eval_split"),
]


@pytest.mark.parametrize("kwargs, error, name", BAD_EVALUATOR_ARGUMENTS)
def test_bad_arguments_fail_at_construction(digits, kwargs, error, name):
    with pytest.raises(error, match=name):
        TrainEvaluator(digits, **kwargs)


def test_bad_data_and_architectures_are_clear_errors(digits):
    with pytest.raises(InvalidTypeError, match="data must be a nasnb.data.TensorData"):
        TrainEvaluator([1, 2, 3])
    with pytest.raises(NasnbError, match="conv_9x9"):
        TrainEvaluator(digits, epochs=1)(("conv_9x9",) * 6)


# ----------------------------------------------------------------------------- settings


def test_settings_are_json_and_equal_for_equal_evaluators(digits):
    settings = TrainEvaluator(digits, epochs=2, lr=0.05).settings()
    again = TrainEvaluator(nasnb.data.load("digits", seed=0).subset(train_size=300, seed=0), epochs=2, lr=0.05)
    assert json.loads(json.dumps(settings)) == settings == again.settings()
    assert settings["evaluator"] == "TrainEvaluator" and settings["epochs"] == 2 and settings["seed"] == 0
    assert settings["fit"]["lr"] == 0.05 and settings["fit"]["batch_size"] == 64 and "progress" not in settings["fit"]
    assert settings["data"]["name"] == "digits" and settings["data"]["train_size"] == 300
    assert settings["build_kwargs"]["nb201"] == {"num_classes": 10, "in_channels": 1, "C": 8, "N": 1}
    assert settings["space"] is None and settings["test"] is True and settings["count_flops"] is True


def test_settings_differ_when_the_results_would(digits):
    base = TrainEvaluator(digits, epochs=2).settings()
    x = torch.rand(60, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    others = {
        "epochs": TrainEvaluator(digits, epochs=3),
        "train size": TrainEvaluator(digits.subset(train_size=200), epochs=2),
        "data set": TrainEvaluator(nasnb.data.from_tensors(x, torch.arange(60) % 10, name="digits"), epochs=2),
        "seed": TrainEvaluator(digits, epochs=2, seed=1),
        "lr": TrainEvaluator(digits, epochs=2, lr=0.1),
        "size": TrainEvaluator(digits, epochs=2, build_kwargs={"C": 16}),
        "space": TrainEvaluator(digits, epochs=2, space=NB201Space()),
        "test": TrainEvaluator(digits, epochs=2, test=False),
    }
    for what, evaluator in others.items():
        assert evaluator.settings() != base, what
    assert TrainEvaluator(digits, epochs=2, progress=True).settings() == base  # a progress bar changes nothing


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
