"""Tests for nasnb/train.py: devices, the training loop's math, evaluation, parameter/FLOP counts."""
import copy
import dataclasses
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from nasnb import data as nd
from nasnb import cost, train
from nasnb.errors import InvalidTypeError, InvalidValueError, NasnbError, TrainingDivergedError, UnknownNameError


@pytest.fixture(scope="module")
def digits():
    return nd.load("digits")


def conv_net(in_channels=1, num_classes=10, dropout=0.0):
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Flatten(), nn.Dropout(dropout), nn.Linear(32 * 4 * 4, num_classes),
    )


def tiny_data(n=40, classes=4):
    gen = torch.Generator().manual_seed(0)
    return nd.from_tensors(torch.randn(n, 1, 2, 2, generator=gen), torch.arange(n) % classes)


class Bias(nn.Module):
    """Logits that ignore the image: one learnable score per class."""

    def __init__(self, classes=4):
        super().__init__()
        self.b = nn.Parameter(torch.zeros(classes))

    def forward(self, x):
        return self.b.expand(len(x), -1)  # (B, classes)


# ----------------------------------------------------------------------------- devices


def test_pick_device_passes_cpu_through_and_auto_falls_back():
    assert train.pick_device("cpu") == torch.device("cpu")
    assert train.pick_device(torch.device("cpu")) == torch.device("cpu")
    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert train.pick_device("auto") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_pick_device_unavailable_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="no CUDA GPU.*device='cpu'"):
        train.pick_device("cuda")


def test_pick_device_unknown_name():
    with pytest.raises(ValueError, match="'gpu'.*'auto', 'cpu', 'cuda'"):
        train.pick_device("gpu")


# ----------------------------------------------------------------------------- learning rate


def test_cosine_learning_rate_matches_formula_and_torch():
    epochs, lr = 7, 0.1
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=0)
    for t in range(epochs):
        assert train.learning_rate(t, epochs, lr) == pytest.approx(lr / 2 * (1 + math.cos(math.pi * t / epochs)))
        assert train.learning_rate(t, epochs, lr) == pytest.approx(opt.param_groups[0]["lr"])
        opt.step()
        reference.step()
    assert train.learning_rate(3, epochs, lr, "constant") == lr


def test_fit_records_the_schedule():
    data = tiny_data()
    records = train.fit(Bias(), data, 4, lr=0.2, progress=False)
    assert [r["lr"] for r in records] == pytest.approx([0.2 / 2 * (1 + math.cos(math.pi * t / 4)) for t in range(4)])
    constant = train.fit(Bias(), data, 3, lr=0.2, schedule="constant", progress=False)
    assert [r["lr"] for r in constant] == [0.2] * 3
    assert [r["epoch"] for r in records] == [0, 1, 2, 3]


def test_fit_takes_plain_sgd_steps_with_the_scheduled_rates():
    data = tiny_data()  # 24 training images: one full batch per epoch
    model = Bias()
    train.fit(model, data, 2, lr=0.5, momentum=0.0, weight_decay=0.0, grad_clip=None, progress=False)
    b = torch.zeros(4, requires_grad=True)
    for lr_t in (0.5, 0.25):  # cosine over 2 epochs: lr, then lr/2
        loss = F.cross_entropy(b.expand(len(data.train[1]), -1), data.train[1])
        (grad,) = torch.autograd.grad(loss, b)
        b = (b - lr_t * grad).detach().requires_grad_()
    assert torch.allclose(model.b.detach(), b.detach(), atol=1e-6)


# ----------------------------------------------------------------------------- the loop


def test_fit_learns_digits(digits):
    torch.manual_seed(0)
    records = train.fit(conv_net(), digits, 4, lr=0.05, progress=False)
    assert records[-1]["val_accuracy"] > 0.9
    assert set(records[0]) == {"epoch", "loss", "train_accuracy", "val_accuracy", "val_loss", "lr", "seconds"}


def test_fit_is_reproducible_and_leaves_the_global_rng_alone(digits):
    data = dataclasses.replace(digits.subset(train_size=200, val_size=50), augment="crop + flip")

    def run(seed):
        torch.manual_seed(0)
        model = conv_net(dropout=0.3)  # dropout and augmentation both draw from `seed`
        before = torch.random.get_rng_state()
        records = train.fit(model, data, 2, seed=seed, progress=False)
        assert torch.equal(torch.random.get_rng_state(), before)  # the caller's generator is untouched
        return [{k: v for k, v in r.items() if k != "seconds"} for r in records], model.state_dict()

    (rec1, w1), (rec2, w2), (_, w3) = run(0), run(0), run(1)
    assert rec1 == rec2 and all(torch.equal(w1[k], w2[k]) for k in w1)
    assert not all(torch.equal(w1[k], w3[k]) for k in w1)


def test_aux_tuple_adds_weighted_auxiliary_loss():
    class WithAux(nn.Module):
        def __init__(self):
            super().__init__()
            self.head, self.aux = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            h = x.flatten(1)  # (B, 4)
            return (self.head(h), self.aux(h)) if self.training else self.head(h)

    data = tiny_data()  # 24 training images, one batch: the recorded loss is that of the initial weights
    torch.manual_seed(0)
    model = WithAux()
    initial = copy.deepcopy(model)
    records = train.fit(model, data, 1, lr=0.1, aux_weight=0.4, progress=False)
    x, y = data.train
    with torch.no_grad():
        h = x.flatten(1)
        expected = F.cross_entropy(initial.head(h), y) + 0.4 * F.cross_entropy(initial.aux(h), y)
        val_accuracy = (model.head(data.val[0].flatten(1)).argmax(1) == data.val[1]).float().mean()  # after the step
    assert records[0]["loss"] == pytest.approx(expected.item(), rel=1e-5)
    assert records[0]["val_accuracy"] == pytest.approx(val_accuracy.item())


def test_drop_path_prob_ramps_linearly_and_is_restored():
    class Recorder(Bias):
        drop_path_prob = 0.3

        def forward(self, x):
            if self.training:
                self.seen.append(self.drop_path_prob)
            return super().forward(x)

    model = Recorder()
    model.seen = []
    train.fit(model, tiny_data(), 4, batch_size=64, progress=False)  # one batch per epoch
    assert model.seen == pytest.approx([0.3 * e / 4 for e in range(4)])
    assert model.drop_path_prob == 0.3


def test_callback_sees_every_record_and_adam_and_eval_split_work():
    seen = []
    records = train.fit(Bias(), tiny_data(), 3, optimizer="adam", lr=1e-2, eval_split="test",
                        callback=seen.append, progress=False)
    assert seen == records and "test_accuracy" in records[0]


def test_bad_settings_are_named():
    with pytest.raises(UnknownNameError, match="'sgdm'.*'sgd', 'adam'"):
        train.fit(Bias(), tiny_data(), 1, optimizer="sgdm", progress=False)
    with pytest.raises(UnknownNameError, match="'valid'"):
        train.fit(Bias(), tiny_data(), 1, eval_split="valid", progress=False)


def test_amp_without_cuda_warns_and_trains():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.warns(UserWarning, match="amp=True needs a CUDA device"):
        records = train.fit(Bias(), tiny_data(), 1, amp=True, device="cpu", progress=False)
    assert len(records) == 1


def test_wrong_input_shape_names_the_data_shape(digits):
    with pytest.raises(ValueError, match=r"\(1, 8, 8\).*3 input channels.*in_channels=1"):
        train.fit(conv_net(in_channels=3), digits, 1, progress=False)
    with pytest.raises(ValueError, match="outputs 7 class scores.*num_classes=10"):
        train.fit(conv_net(num_classes=7), digits, 1, progress=False)


# ----------------------------------------------------------------------------- evaluation and measures


def test_evaluate_matches_plain_torch_and_keeps_the_mode(digits):
    torch.manual_seed(0)
    model = conv_net().train()
    result = train.evaluate(model, digits, split="val", batch_size=7)
    assert model.training  # mode restored
    model.eval()
    with torch.no_grad():
        logits = model(digits.val[0])
    assert result["loss"] == pytest.approx(F.cross_entropy(logits, digits.val[1]).item(), rel=1e-5)
    assert result["accuracy"] == pytest.approx((logits.argmax(1) == digits.val[1]).float().mean().item())


def test_count_params_leaves_out_the_auxiliary_head():
    model = nn.Module()
    model.stem = nn.Conv2d(3, 8, 3, bias=False)  # 3*8*9 = 216
    model.classifier = nn.Linear(8, 10)  # 80 + 10 = 90
    model.auxiliary_head = nn.Linear(8, 10)  # 90, not counted by default
    assert train.count_params(model) == 306
    assert train.count_params(model, include_auxiliary=True) == 396


def test_count_flops_matches_hand_count(digits):
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10))
    conv = 2 * (4 * 1 * 3 * 3) * (8 * 8)  # 2 FLOPs per multiply-add, per output pixel
    linear = 2 * 256 * 10
    assert train.count_flops(model, (1, 8, 8)) == conv + linear == 9728
    assert train.count_flops(model, digits) == 9728
    strided = nn.Conv2d(3, 16, 3, stride=2, padding=1)
    assert train.count_flops(strided, (3, 32, 32)) == 2 * 16 * 3 * 9 * 16 * 16


class FakeClock:
    """Stands in for the `time` module: its clock moves only when a forward pass says so."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


def test_measure_latency_leaves_out_the_warmup_and_reports_median_and_p90(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(cost, "time", clock)  # measure_latency lives in nasnb/cost.py
    durations = [100.0, 100.0, 5.0, 1.0, 4.0, 2.0, 3.0]  # two slow warm-up calls, then five timed ones

    class Timed(nn.Module):
        def __init__(self):
            super().__init__()
            self.calls = 0
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            clock.now += durations[self.calls]
            self.calls += 1
            return x

    model = Timed()
    result = train.measure_latency(model, (1, 8, 8), batch_size=2, device="cpu", warmup=2, repeats=5)
    assert model.calls == 7
    # timed calls sorted: 1, 2, 3, 4, 5 -> median 3; the 90th percentile lies 0.9 * 4 = 3.6 steps
    # into the sorted list, between 4 and 5 (linear interpolation): 4 + 0.6 * (5 - 4)
    assert result["median"] == 3.0 and result["p90"] == pytest.approx(4.6)
    assert result["batch_size"] == 2 and result["device"] == "cpu"


# ----------------------------------------------------------------------------- divergence


def test_a_learning_rate_too_high_stops_with_the_epoch_batch_and_a_smaller_lr():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 4))
    # lr 1e38 with gradients clipped to norm 5: the first step takes weights past float32's
    # largest number (3.4e38), so a later batch of the first epoch has a NaN loss.
    with pytest.raises(TrainingDivergedError) as info:
        train.fit(model, tiny_data(), 3, lr=1e38, batch_size=8, progress=False)
    message = str(info.value)
    assert "epoch 0, batch " in message and "batch 0 " not in message
    assert "lr=1e+38" in message and "lr=1e+37" in message
    assert isinstance(info.value, FloatingPointError)


def test_non_finite_images_stop_training_and_are_named_as_the_cause():
    data = tiny_data()
    x, y = data.train
    x = x.clone()
    x[3, 0, 1, 1] = math.inf  # TensorData made by hand: from_tensors would have refused this
    broken = dataclasses.replace(data, train=(x, y))
    with pytest.raises(TrainingDivergedError, match=r"epoch 0, batch 0 .*'custom' hold NaN or infinite"):
        train.fit(nn.Sequential(nn.Flatten(), nn.Linear(4, 4)), broken, 2, batch_size=64, progress=False)


# ----------------------------------------------------------------------------- argument checks


BAD_FIT_SETTINGS = [  # (setting, bad value, error class)
    ("epochs", 0, InvalidValueError), ("epochs", 2.0, InvalidTypeError), ("epochs", True, InvalidTypeError),
    ("batch_size", 0, InvalidValueError), ("batch_size", 32.5, InvalidTypeError),
    ("lr", 0.0, InvalidValueError), ("lr", -0.1, InvalidValueError), ("lr", math.nan, InvalidValueError),
    ("lr", math.inf, InvalidValueError), ("lr", "0.1", InvalidTypeError),
    ("momentum", 1.0, InvalidValueError), ("momentum", -0.5, InvalidValueError),
    ("weight_decay", -1e-4, InvalidValueError), ("label_smoothing", 1.5, InvalidValueError),
    ("aux_weight", -0.4, InvalidValueError), ("grad_clip", 0, InvalidValueError),
    ("grad_clip", -5.0, InvalidValueError), ("optimizer", "sgdm", UnknownNameError),
    ("schedule", "linear", UnknownNameError), ("schedule", 3, InvalidTypeError),
    ("eval_split", "valid", UnknownNameError), ("seed", -1, InvalidValueError), ("seed", 1.5, InvalidTypeError),
    ("seed", 2**64, InvalidValueError), ("amp", "yes", InvalidTypeError), ("progress", 0, InvalidTypeError),
    ("augment", 1, InvalidTypeError), ("callback", "print", InvalidTypeError), ("device", "gpu", InvalidValueError),
    ("device", None, InvalidTypeError), ("channels_last", None, InvalidTypeError),
]


@pytest.mark.parametrize("setting, value, error", BAD_FIT_SETTINGS)
def test_fit_names_a_bad_setting_before_training(setting, value, error):
    model = Bias()
    kwargs = {"epochs": 1, "progress": False, setting: value}
    with pytest.raises(error) as info:
        train.fit(model, tiny_data(), **kwargs)
    assert isinstance(info.value, NasnbError) and setting in str(info.value)
    assert torch.equal(model.b.detach(), torch.zeros(4)), "training started before the check"


def test_fit_names_a_misspelled_setting_and_the_wrong_model_or_data():
    with pytest.raises(UnknownNameError, match="'learning_rate'.*'lr'"):
        train.check_fit_settings({"learning_rate": 0.1})
    with pytest.raises(InvalidTypeError, match="model must be a torch.nn.Module"):
        train.fit("resnet", tiny_data(), 1)
    with pytest.raises(InvalidTypeError, match="(?s)data must be a nasnb.data.TensorData.*load"):
        train.fit(Bias(), [(torch.zeros(1, 1, 2, 2), 0)], 1)
    frozen = Bias().requires_grad_(False)
    with pytest.raises(InvalidValueError, match="no trainable parameters"):
        train.fit(frozen, tiny_data(), 1, progress=False)


def test_check_fit_settings_fills_in_the_defaults():
    settings = train.check_fit_settings({"lr": 0.1})
    assert settings["lr"] == 0.1 and settings["batch_size"] == 64 and settings["optimizer"] == "sgd"
    assert set(settings) == {"batch_size", "lr", "momentum", "weight_decay", "optimizer", "schedule", "grad_clip",
                             "aux_weight", "label_smoothing", "amp", "device", "seed", "eval_split", "progress",
                             "augment", "callback", "channels_last"}


@pytest.mark.parametrize("call, name", [
    (lambda d: train.evaluate(Bias(), d, split="valid"), "split"),
    (lambda d: train.evaluate(Bias(), d, batch_size=0), "batch_size"),
    (lambda d: train.evaluate(Bias(), d, device="tpu"), "device"),
    (lambda d: train.learning_rate(5, 4, 0.1), "epoch"),
    (lambda d: train.learning_rate(0, 4, -0.1), "lr"),
    (lambda d: train.count_params(Bias(), include_auxiliary="no"), "include_auxiliary"),
    (lambda d: train.count_flops(Bias(), (1, 0, 8)), "input_shape"),
    (lambda d: train.measure_latency(Bias(), (1, 8, 8), repeats=0, device="cpu"), "repeats"),
    (lambda d: train.measure_latency(Bias(), (1, 8, 8), warmup=-1, device="cpu"), "warmup"),
    (lambda d: train.pick_device(True), "device"),
])
def test_other_functions_name_a_bad_argument(call, name):
    with pytest.raises(NasnbError, match=name):
        call(tiny_data())
