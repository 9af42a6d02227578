"""Property-based tests of the argument checks of nasnb/train.py, data.py and evaluators.py.

Hypothesis gives one argument at a time a value drawn mostly from malformed ones (wrong types,
bools, NaN, infinities, negatives, zeros, huge numbers, strings, arrays) and sometimes a valid one.
Every call must either raise a `NasnbError` whose message names the argument, before any training
starts (the model's weights are unchanged), or return a correct result. Data is tiny (40 random
2x2 images, digits subsets) so that the valid draws train in milliseconds.

Malformed inputs tried per run: the sum of the `max_examples` below (MALFORMED_INPUTS).
"""
import functools
import json
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import HealthCheck, given, settings, strategies as st

import nasnb
from nasnb import data as nd
from nasnb import train
from nasnb.errors import NasnbError, TrainingDivergedError
from nasnb.evaluators import TrainEvaluator
from nasnb.spaces import NB201Space
from nasnb.spaces.toy import ToySpace

EXAMPLES = {"fit": 60, "evaluate": 25, "evaluator": 60, "load": 20, "subset": 30, "from_tensors": 40,
            "images": 40, "batches": 25}
MALFORMED_INPUTS = sum(EXAMPLES.values())  # 300 per run


def cheap(name):
    return settings(max_examples=EXAMPLES[name], deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


# ----------------------------------------------------------------------------- values

NUMBERS = st.one_of(
    st.integers(min_value=-10**20, max_value=10**20),
    st.sampled_from([0, -1, 1, 2, 3, 2**63, 2**64, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 0.5, 1.0, 1e-300, 1e300, math.nan, math.inf, -math.inf]),
    st.sampled_from([np.int64(3), np.float32(0.1), np.float64(math.nan), np.bool_(True)]),
)
ANYTHING = st.one_of(
    NUMBERS, st.none(), st.booleans(),
    st.text(max_size=6), st.sampled_from(["cpu", "auto", "cuda", "sgd", "val", "0.1", "", "nan"]),
    st.lists(st.integers(0, 3), max_size=3), st.tuples(st.integers(0, 3)),
    st.sampled_from([np.array([1, 2]), torch.tensor(1.0), {"a": 1}, object()]),
)


def is_big_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and value > 2


def names_the_argument(error: Exception, name: str) -> bool:
    return isinstance(error, NasnbError) and bool(str(error)) and name in str(error)


@functools.lru_cache(maxsize=None)
def tiny_data():
    gen = torch.Generator().manual_seed(0)
    return nd.from_tensors(torch.randn(40, 1, 2, 2, generator=gen), torch.arange(40) % 4)


@functools.lru_cache(maxsize=None)
def digits():
    return nd.load("digits").subset(train_size=100, val_size=50)


def tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 4))  # (B, 1, 2, 2) -> (B, 4)


def weights(model):
    return [p.detach().clone() for p in model.parameters()]


# ----------------------------------------------------------------------------- train.fit

FIT_ARGUMENTS = ["epochs", "batch_size", "lr", "momentum", "weight_decay", "optimizer", "schedule", "grad_clip",
                 "aux_weight", "label_smoothing", "amp", "device", "seed", "eval_split", "progress", "augment",
                 "callback", "channels_last", "model", "data"]


@cheap("fit")
@given(name=st.sampled_from(FIT_ARGUMENTS), value=ANYTHING)
def test_fit_refuses_a_bad_argument_before_training_or_trains(name, value):
    if name == "epochs" and is_big_int(value):
        value = 2  # a valid huge epoch count would simply train for ever
    model = tiny_model()
    before = weights(model)
    arguments = {"model": model, "data": tiny_data(), "epochs": 1, "progress": False, name: value}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a valid amp=True on a CPU warns, then trains in float32
            records = train.fit(**arguments)
    except TrainingDivergedError as error:  # a correct outcome for a huge learning rate only
        assert name == "lr" and float(value) > 1 and "lr=" in str(error), error
        return
    except Exception as error:
        assert names_the_argument(error, name), f"{name}={value!r}: {type(error).__name__}: {error}"
        assert all(torch.equal(a, b) for a, b in zip(before, weights(model))), "it trained before refusing"
        return
    assert len(records) == arguments["epochs"]
    for record in records:
        assert math.isfinite(record["loss"]) and 0 <= record["train_accuracy"] <= 1


# ----------------------------------------------------------------------------- train.evaluate


@cheap("evaluate")
@given(name=st.sampled_from(["split", "batch_size", "device", "model", "data"]), value=ANYTHING)
def test_evaluate_refuses_a_bad_argument_or_scores(name, value):
    arguments = {"model": tiny_model(), "data": tiny_data(), "device": "cpu", name: value}
    try:
        result = train.evaluate(**arguments)
    except Exception as error:
        assert names_the_argument(error, name), f"{name}={value!r}: {type(error).__name__}: {error}"
        return
    assert math.isfinite(result["loss"]) and result["loss"] >= 0 and 0 <= result["accuracy"] <= 1


# ----------------------------------------------------------------------------- TrainEvaluator

EVALUATOR_ARGUMENTS = ["epochs", "seed", "test", "count_flops", "space", "build_kwargs", "lr", "batch_size",
                       "momentum", "weight_decay", "optimizer", "grad_clip", "label_smoothing", "device",
                       "amp", "eval_split", "augment", "learning_rate"]
BUILD_KWARGS = st.dictionaries(st.sampled_from(["C", "N", "layers", "auxiliary", "drop_path_prob", "num_classes",
                                                "width"]), ANYTHING, max_size=2)


@cheap("evaluator")
@given(name=st.sampled_from(EVALUATOR_ARGUMENTS),
       value=st.one_of(ANYTHING, BUILD_KWARGS, st.sampled_from([NB201Space(), ToySpace()])))
def test_train_evaluator_refuses_a_bad_argument_at_construction(name, value):
    try:
        evaluator = TrainEvaluator(tiny_data(), **{name: value})
    except Exception as error:
        key_named = name == "build_kwargs" and isinstance(value, dict) and any(k in str(error) for k in value)
        assert key_named or names_the_argument(error, name), f"{name}={value!r}: {type(error).__name__}: {error}"
        assert isinstance(error, NasnbError)
        return
    assert name != "learning_rate" and evaluator.trainings == 0
    settings_ = evaluator.settings()
    assert json.loads(json.dumps(settings_)) == settings_
    if name in ("epochs", "seed", "test", "count_flops"):
        assert settings_[name] == value
    elif name == "batch_size":
        assert settings_["fit"][name] == value
    elif name in ("lr", "momentum", "weight_decay", "grad_clip", "label_smoothing") and value is not None:
        assert settings_["fit"][name] == float(value)  # ints are fine where floats are meant


# ----------------------------------------------------------------------------- data


@cheap("load")
@given(name=st.sampled_from(["root", "download", "device", "seed", "train_size", "val_size"]), value=ANYTHING)
def test_load_digits_refuses_a_bad_argument_or_loads(name, value):
    try:
        data = nd.load("digits", **{name: value})
    except Exception as error:
        assert names_the_argument(error, name), f"{name}={value!r}: {type(error).__name__}: {error}"
        return
    sizes = {"train_size": len(data.train[1]), "val_size": len(data.val[1])}
    if name in sizes and value is not None:
        assert sizes[name] == value
    assert len(data.test[1]) == 400 and bool(torch.isfinite(data.train[0]).all())


@cheap("subset")
@given(name=st.sampled_from(["train_size", "val_size", "seed"]), value=ANYTHING)
def test_subset_refuses_a_bad_argument_or_shrinks(name, value):
    full = digits()
    try:
        sub = full.subset(**{name: value})
    except Exception as error:
        assert names_the_argument(error, name), f"{name}={value!r}: {type(error).__name__}: {error}"
        return
    sizes = {"train_size": len(sub.train[1]), "val_size": len(sub.val[1])}
    if name in sizes and value is not None:
        assert sizes[name] == value
    assert torch.equal(sub.test[1], full.test[1])


def random_images(n=20):
    return torch.rand(n, 1, 2, 2, generator=torch.Generator().manual_seed(1))


@cheap("from_tensors")
@given(name=st.sampled_from(["num_classes", "name", "val_fraction", "test_fraction", "seed", "device"]),
       value=ANYTHING)
def test_from_tensors_refuses_a_bad_argument_or_splits(name, value):
    try:
        data = nd.from_tensors(random_images(), torch.arange(20) % 2, **{name: value})
    except Exception as error:
        assert names_the_argument(error, name), f"{name}={value!r}: {type(error).__name__}: {error}"
        return
    assert sum(len(data.split(s)[1]) for s in ("train", "val", "test")) == 20
    assert all(bool(torch.isfinite(data.split(s)[0]).all()) for s in ("train", "val", "test"))


PIXELS = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                   st.sampled_from([0.0, 1.0, 1e38, -1e38, 1e-40, math.nan, math.inf]))


@cheap("images")
@given(n=st.integers(0, 12), channels=st.integers(1, 2), constant=st.booleans(),
       pixels=st.lists(PIXELS, min_size=1, max_size=6), labels=st.lists(st.integers(-1, 3), min_size=1, max_size=12))
def test_from_tensors_refuses_images_that_would_normalise_to_nan(n, channels, constant, pixels, labels):
    """Random contents: NaN, inf, huge and tiny pixels, constant channels, few images, one class."""
    count = n * channels * 4
    values = [pixels[0]] * count if constant else [pixels[k % len(pixels)] * (1 + k % 5) for k in range(count)]
    x = torch.tensor(values, dtype=torch.float32).reshape(n, channels, 2, 2)
    y = torch.tensor([labels[k % len(labels)] for k in range(n)], dtype=torch.long)
    try:
        data = nd.from_tensors(x, y)
    except Exception as error:
        assert isinstance(error, NasnbError) and str(error), f"{type(error).__name__}: {error}"
        return
    for split in ("train", "val", "test"):
        assert bool(torch.isfinite(data.split(split)[0]).all()), f"{split} images normalised to NaN or inf"
    assert data.num_classes >= 2 and len(data.train[1]) >= 1


@cheap("batches")
@given(name=st.sampled_from(["split", "batch_size", "shuffle", "generator", "augment", "drop_last"]),
       value=ANYTHING)
def test_batches_refuses_a_bad_argument_at_the_call_or_covers_the_split(name, value):
    arguments = {"split": "train", "batch_size": 8, name: value}
    try:
        batches = tiny_data().batches(**arguments)
    except Exception as error:
        assert names_the_argument(error, name), f"{name}={value!r}: {type(error).__name__}: {error}"
        return
    seen = sum(len(y) for _, y in batches)
    total = len(tiny_data().split(arguments["split"])[1])
    assert seen == total or (arguments.get("drop_last") and seen == total - total % arguments["batch_size"])


def test_the_weight_check_can_see_training():
    """The 'no training happened' check above is not vacuous: one epoch does change the weights."""
    model = tiny_model()
    before = weights(model)
    train.fit(model, tiny_data(), 1, progress=False)
    assert not all(torch.equal(a, b) for a, b in zip(before, weights(model)))
